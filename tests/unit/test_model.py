from __future__ import annotations

import time
import unicodedata
import uuid
from datetime import UTC, datetime

import pytest

from herald.contract.ids import event_id, new_user_id
from users_svc.model import (
    InvalidRequestError,
    User,
    email_key,
    validate_change,
    validate_new_user,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)
REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"
U1 = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def reasons(error: pytest.ExceptionInfo[InvalidRequestError]) -> dict[str, str]:
    return {v.field: v.reason for v in error.value.violations}


class TestValidateNewUser:
    def test_trims_and_keeps_the_request_id(self) -> None:
        new = validate_new_user("  Ada Lovelace ", " ada@example.com\n", REQUEST_ID.upper())
        assert (new.name, new.email, new.request_id) == (
            "Ada Lovelace",
            "ada@example.com",
            REQUEST_ID,
        )

    def test_no_request_id_is_none(self) -> None:
        assert validate_new_user("Ada", "ada@example.com").request_id is None

    def test_text_is_nfc_normalised(self) -> None:
        decomposed = unicodedata.normalize("NFD", "Zoë Ångström")
        assert validate_new_user(decomposed, "zoe@example.com").name == "Zoë Ångström"

    @pytest.mark.parametrize(
        "name", ["Ada", "李小龍", "Ἀριστοτέλης", "محمد‌رضا", "👩‍💻 Grace", "x" * 200]
    )
    def test_accepts_names_in_any_script(self, name: str) -> None:
        assert validate_new_user(name, "a@example.com").name == name

    @pytest.mark.parametrize(
        "email",
        ["ada@example.com", "a.b+tag@sub.example.co.uk", "ünï@exämple.org", "x@a-b.io", "A@B.CO"],
    )
    def test_accepts_ordinary_addresses(self, email: str) -> None:
        assert validate_new_user("Ada", email).email == email

    @pytest.mark.parametrize(
        ("name", "email", "request_id", "expected"),
        [
            ("", "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("   ", "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("x" * 201, "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("Ada\x00", "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("Ada\nLovelace", "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("Ada\u202egnp.exe", "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("Ada\u2028Lovelace", "ada@example.com", "", {"name": "INVALID_NAME"}),
            ("Ada", "", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "@example.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@example", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@@example.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada lovelace@example.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@exa mple.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@-example.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@example..com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@exa_mple.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "a" * 65 + "@example.com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@" + "a" * 250 + ".com", "", {"email": "INVALID_EMAIL"}),
            ("Ada", "ada@example.com", "not-a-uuid", {"request_id": "INVALID_REQUEST_ID"}),
            (
                "Ada",
                "ada@example.com",
                REQUEST_ID.replace("-", ""),
                {"request_id": "INVALID_REQUEST_ID"},
            ),
            (
                "",
                "nope",
                "x",
                {
                    "name": "INVALID_NAME",
                    "email": "INVALID_EMAIL",
                    "request_id": "INVALID_REQUEST_ID",
                },
            ),
        ],
    )
    def test_rejects_with_a_reason_per_field(
        self, name: str, email: str, request_id: str, expected: dict[str, str]
    ) -> None:
        with pytest.raises(InvalidRequestError) as caught:
            validate_new_user(name, email, request_id)
        assert reasons(caught) == expected

    def test_fingerprint_depends_on_content_only(self) -> None:
        one = validate_new_user("Ada", "ada@example.com", REQUEST_ID)
        same = validate_new_user(" Ada ", "ada@example.com")
        other = validate_new_user("Ada", "ada2@example.com", REQUEST_ID)
        assert one.fingerprint == same.fingerprint != other.fingerprint


class TestValidateChange:
    def test_mask_selects_fields(self) -> None:
        change = validate_change(U1, "New", "ignored@example.com", ["name"])
        assert (change.name, change.email) == ("New", None)

    def test_empty_mask_means_the_fields_that_are_set(self) -> None:
        change = validate_change(U1, "", "new@example.com", [])
        assert (change.name, change.email) == (None, "new@example.com")

    def test_star_means_every_updatable_field(self) -> None:
        with pytest.raises(InvalidRequestError) as caught:
            validate_change(U1, "", "new@example.com", ["*"])
        assert reasons(caught) == {"user.name": "INVALID_NAME"}

    @pytest.mark.parametrize(
        ("user_id", "paths", "expected"),
        [
            ("", ["name"], {"user.id": "INVALID_USER_ID"}),
            ("u1", ["name"], {"user.id": "INVALID_USER_ID"}),
            ("x" * 20_000, ["name"], {"user.id": "INVALID_USER_ID"}),
            (U1, ["id"], {"update_mask": "INVALID_UPDATE_MASK"}),
            (U1, ["create_time", "name"], {"update_mask": "INVALID_UPDATE_MASK"}),
        ],
    )
    def test_rejects_bad_ids_and_masks(
        self, user_id: str, paths: list[str], expected: dict[str, str]
    ) -> None:
        with pytest.raises(InvalidRequestError) as caught:
            validate_change(user_id, "Name", "", paths)
        assert reasons(caught) == expected

    def test_nothing_to_change_is_invalid(self) -> None:
        with pytest.raises(InvalidRequestError) as caught:
            validate_change(U1, "", "", [])
        assert reasons(caught) == {"update_mask": "INVALID_UPDATE_MASK"}

    def test_apply_bumps_version_only_when_something_changes(self) -> None:
        user = User(U1, "Ada", "ada@example.com", T0, T0, 1)
        same, changed = validate_change(U1, "Ada", "", []).apply(user, T1)
        assert (same, changed) == (user, [])
        updated, changed = validate_change(U1, "Ada L.", "ada@example.com", ["*"]).apply(user, T1)
        assert changed == ["name"]
        assert (updated.name, updated.version, updated.update_time, updated.create_time) == (
            "Ada L.",
            2,
            T1,
            T0,
        )


def test_event_ids_are_stable_per_user_and_version() -> None:
    assert event_id("u1", 1) == event_id("u1", 1)
    assert len({event_id("u1", 1), event_id("u1", 2), event_id("u2", 1)}) == 3
    assert User("u1", "A", "a@x.io", T0, T0, 3).event_id == event_id("u1", 3)


def test_user_ids_are_uuid7_and_sort_in_creation_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_user_id() for _ in range(3)]
    after = time.time_ns() // 1_000_000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 7, uuid.RFC_4122)
        assert before <= parsed.int >> 80 <= after
    assert len(set(ids)) == 3


def test_event_ids_are_uuid8_that_sort_with_their_users_ids() -> None:
    old, new = (
        f"{millis:012x}"[:8] + "-" + f"{millis:012x}"[8:] + "-7abc-8def-0123456789ab"
        for millis in (1_700_000_000_000, 1_800_000_000_000)
    )
    ids = [event_id(user, version) for user in (old, new) for version in (1, 2)]
    for text, user in zip(ids, (old, old, new, new), strict=True):
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 8, uuid.RFC_4122)
        assert text[:13] == user[:13]  # the user id's milliseconds
    assert max(ids[:2]) < min(ids[2:])
    # An id that is not a UUIDv7 still gets a stable UUIDv8, from the hash alone.
    assert uuid.UUID(event_id("u1", 1)).version == 8


def test_email_key_ignores_case_in_every_script() -> None:
    assert email_key("Ada@Example.COM") == email_key("ada@example.com")
    assert email_key("ÜNÏ@EXÄMPLE.ORG") == email_key("ünï@exämple.org")
