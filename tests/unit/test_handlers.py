from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.message import DecodeError

from auth_svc.accounts import InMemoryAccountStore
from auth_svc.handlers import HANDLERS, InvalidEventError, handle_user_created, handle_user_updated
from herald.users.v1 import events_pb2

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def user_created(event_id: str = "e1", user_id: str = "u1", name: str = "Ada") -> bytes:
    event = events_pb2.UserCreated(
        event_id=event_id, user_id=user_id, name=name, email="ada@example.com", version=1
    )
    event.create_time.FromDatetime(CREATED)
    return event.SerializeToString()


def user_updated(version: int, name: str, user_id: str = "u1") -> bytes:
    event = events_pb2.UserUpdated(
        event_id=f"e{version}",
        user_id=user_id,
        name=name,
        email="ada@example.com",
        version=version,
        changed_fields=["name"],
    )
    event.create_time.FromDatetime(CREATED)
    event.update_time.FromDatetime(datetime(2026, 1, version, tzinfo=UTC))
    return event.SerializeToString()


class TestHandleUserCreated:
    def test_creates_the_account(self) -> None:
        store = InMemoryAccountStore()
        assert handle_user_created(user_created(), store) is True
        account = store.get("u1")
        assert account is not None
        assert (account.name, account.email, account.last_event_id, account.version) == (
            "Ada",
            "ada@example.com",
            "e1",
            1,
        )
        assert account.create_time == CREATED

    def test_same_event_twice_creates_one_account(self) -> None:
        store = InMemoryAccountStore()
        assert handle_user_created(user_created(), store) is True
        assert handle_user_created(user_created(), store) is False
        assert len(store) == 1

    def test_bytes_that_are_not_protobuf_raise_decode_error(self) -> None:
        with pytest.raises(DecodeError):
            handle_user_created(b"\xff\xff\xff", InMemoryAccountStore())

    @pytest.mark.parametrize(("event_id", "user_id"), [("", "u1"), ("e1", "")])
    def test_event_without_ids_is_invalid(self, event_id: str, user_id: str) -> None:
        store = InMemoryAccountStore()
        with pytest.raises(InvalidEventError):
            handle_user_created(user_created(event_id, user_id), store)
        assert len(store) == 0


class TestHandleUserUpdated:
    def test_in_order_events_end_with_the_latest_state(self) -> None:
        store = InMemoryAccountStore()
        handle_user_created(user_created(), store)
        assert handle_user_updated(user_updated(2, "Ada L."), store) is True
        assert handle_user_updated(user_updated(3, "Ada K."), store) is True
        account = store.get("u1")
        assert account is not None
        assert (account.name, account.version, account.last_event_id) == ("Ada K.", 3, "e3")
        assert account.create_time == CREATED

    def test_late_or_repeated_events_do_not_roll_the_account_back(self) -> None:
        store = InMemoryAccountStore()
        handle_user_updated(user_updated(3, "Ada K."), store)  # arrived first
        assert handle_user_updated(user_updated(2, "Ada L."), store) is False
        assert handle_user_created(user_created(), store) is False
        assert handle_user_updated(user_updated(3, "Ada K."), store) is False
        account = store.get("u1")
        assert account is not None
        assert (account.name, account.version) == ("Ada K.", 3)

    def test_an_update_with_a_creation_version_is_invalid(self) -> None:
        with pytest.raises(InvalidEventError):
            handle_user_updated(user_updated(1, "X"), InMemoryAccountStore())


def test_registry_routes_by_full_event_name() -> None:
    assert {
        "herald.users.v1.UserCreated": handle_user_created,
        "herald.users.v1.UserUpdated": handle_user_updated,
    } == HANDLERS
