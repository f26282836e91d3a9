from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.message import DecodeError

from auth_svc.decoders import DECODERS, InvalidEventError, user_created, user_updated
from herald.users.v1 import events_pb2

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 2, 1, tzinfo=UTC)


def created_payload(event_id: str = "e1", user_id: str = "u1", version: int = 1) -> bytes:
    event = events_pb2.UserCreated(
        event_id=event_id, user_id=user_id, name="Ada", email="ada@example.com", version=version
    )
    event.create_time.FromDatetime(CREATED)
    return event.SerializeToString()


def updated_payload(version: int, name: str = "Ada L.") -> bytes:
    event = events_pb2.UserUpdated(
        event_id=f"e{version}", user_id="u1", name=name, email="ada@example.com", version=version
    )
    event.create_time.FromDatetime(CREATED)
    return event.SerializeToString()


def test_user_created_describes_the_new_account() -> None:
    account = user_created(created_payload(), NOW)
    assert (account.user_id, account.name, account.email, account.version) == (
        "u1",
        "Ada",
        "ada@example.com",
        1,
    )
    assert (account.create_time, account.update_time, account.event_id) == (CREATED, NOW, "e1")


def test_an_event_from_before_versions_counts_as_version_one() -> None:
    assert user_created(created_payload(version=0), NOW).version == 1


def test_user_updated_carries_the_whole_state_and_its_version() -> None:
    account = user_updated(updated_payload(3, "Ada K."), NOW)
    assert (account.name, account.version, account.event_id) == ("Ada K.", 3, "e3")
    assert account.create_time == CREATED


def test_bytes_that_are_not_protobuf_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        user_created(b"\xff\xff\xff", NOW)


@pytest.mark.parametrize(("event_id", "user_id"), [("", "u1"), ("e1", "")])
def test_an_event_without_ids_is_invalid(event_id: str, user_id: str) -> None:
    with pytest.raises(InvalidEventError):
        user_created(created_payload(event_id, user_id), NOW)


def test_an_update_with_a_creation_version_is_invalid() -> None:
    with pytest.raises(InvalidEventError):
        user_updated(updated_payload(1), NOW)


def test_registry_routes_by_full_event_name() -> None:
    assert {
        "herald.users.v1.UserCreated": user_created,
        "herald.users.v1.UserUpdated": user_updated,
    } == DECODERS


def test_a_timestamp_out_of_range_is_invalid_not_a_crash() -> None:
    event = events_pb2.UserCreated(event_id="e1", user_id="u1", name="A", email="a@x.io", version=1)
    event.create_time.seconds = 2**62
    with pytest.raises(InvalidEventError):
        user_created(event.SerializeToString(), NOW)
