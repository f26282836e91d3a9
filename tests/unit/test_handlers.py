from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.message import DecodeError

from auth_svc.accounts import InMemoryAccountStore
from auth_svc.handlers import HANDLERS, InvalidEventError, handle_user_created
from herald.users.v1 import events_pb2


def user_created(event_id: str = "e1", user_id: str = "u1", name: str = "Ada") -> bytes:
    event = events_pb2.UserCreated(
        event_id=event_id, user_id=user_id, name=name, email="ada@example.com"
    )
    event.create_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    return event.SerializeToString()


class TestHandleUserCreated:
    def test_creates_the_account(self) -> None:
        store = InMemoryAccountStore()
        assert handle_user_created(user_created(), store) is True
        account = store.get("u1")
        assert account is not None
        assert (account.name, account.email, account.last_event_id) == (
            "Ada",
            "ada@example.com",
            "e1",
        )
        assert account.create_time == datetime(2026, 1, 1, tzinfo=UTC)

    def test_same_event_twice_creates_one_account(self) -> None:
        store = InMemoryAccountStore()
        assert handle_user_created(user_created(), store) is True
        assert handle_user_created(user_created(), store) is False
        assert len(store) == 1

    def test_a_second_event_for_the_same_user_keeps_the_first_account(self) -> None:
        store = InMemoryAccountStore()
        handle_user_created(user_created("e1", name="Ada"), store)
        handle_user_created(user_created("e2", name="Other"), store)
        account = store.get("u1")
        assert account is not None
        assert (account.name, account.last_event_id) == ("Ada", "e1")

    def test_bytes_that_are_not_protobuf_raise_decode_error(self) -> None:
        with pytest.raises(DecodeError):
            handle_user_created(b"\xff\xff\xff", InMemoryAccountStore())

    @pytest.mark.parametrize(("event_id", "user_id"), [("", "u1"), ("e1", "")])
    def test_event_without_ids_is_invalid(self, event_id: str, user_id: str) -> None:
        store = InMemoryAccountStore()
        with pytest.raises(InvalidEventError):
            handle_user_created(user_created(event_id, user_id), store)
        assert len(store) == 0


def test_registry_routes_user_created_by_its_full_name() -> None:
    assert HANDLERS["herald.users.v1.UserCreated"] is handle_user_created
