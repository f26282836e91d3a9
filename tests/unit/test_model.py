from __future__ import annotations

import pytest

from users_svc.model import InvalidUserError, validate_new_user


class TestValidateNewUser:
    def test_trims_name_and_email(self) -> None:
        assert validate_new_user("  Ada Lovelace ", " ada@example.com\n") == (
            "Ada Lovelace",
            "ada@example.com",
        )

    @pytest.mark.parametrize(
        "email",
        ["ada@example.com", "a.b+tag@sub.example.co.uk", "ünï@exämple.org", "x@a-b.io"],
    )
    def test_accepts_ordinary_addresses(self, email: str) -> None:
        assert validate_new_user("Ada", email)[1] == email

    @pytest.mark.parametrize(
        "email",
        [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "ada lovelace@example.com",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
            "a" * 65 + "@example.com",
            "ada@" + "a" * 250 + ".com",
        ],
    )
    def test_rejects_malformed_email(self, email: str) -> None:
        with pytest.raises(InvalidUserError) as caught:
            validate_new_user("Ada", email)
        assert set(caught.value.violations) == {"email"}

    @pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Ada\x00", "Ada\nLovelace"])
    def test_rejects_bad_name(self, name: str) -> None:
        with pytest.raises(InvalidUserError) as caught:
            validate_new_user(name, "ada@example.com")
        assert set(caught.value.violations) == {"name"}

    def test_reports_every_bad_field_at_once(self) -> None:
        with pytest.raises(InvalidUserError) as caught:
            validate_new_user("", "nope")
        assert set(caught.value.violations) == {"name", "email"}
