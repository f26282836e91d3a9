"""Decoding events, and refusing every record that is not consistent with the contract: each
rule below is one a forged or broken record would otherwise get past."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from confluent_kafka import Message
from google.protobuf.message import DecodeError

from auth_svc.accounts import RecordPosition
from auth_svc.decoders import (
    DECODERS,
    InvalidEventError,
    PoisonRecordError,
    Router,
    user_created,
    user_deleted,
    user_updated,
)
from herald.contract.events import MAX_VERSION, USERS_SVC_SOURCE
from herald.contract.ids import event_id
from herald.kafka.records import Headers
from herald.users.v1 import events_pb2
from tests.support import uid

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 2, 1, tzinfo=UTC)
U1 = uid("u1")
POSITION = RecordPosition("events", 0, 0)


def created_event(**fields: object) -> events_pb2.UserCreated:
    values: dict[str, object] = {
        "user_id": U1,
        "name": "Ada",
        "email": "ada@example.com",
        "version": 1,
    }
    values.update(fields)
    values.setdefault("event_id", event_id(str(values["user_id"]), int(str(values["version"]))))
    event = events_pb2.UserCreated(**values)  # type: ignore[arg-type]
    event.create_time.FromDatetime(CREATED)
    return event


def updated_event(version: int, **fields: object) -> events_pb2.UserUpdated:
    values: dict[str, object] = {
        "user_id": U1,
        "name": "Ada L.",
        "email": "ada@example.com",
        "version": version,
    }
    values.update(fields)
    values.setdefault("event_id", event_id(str(values["user_id"]), version))
    event = events_pb2.UserUpdated(**values)  # type: ignore[arg-type]
    event.create_time.FromDatetime(CREATED)
    return event


def test_user_created_describes_the_new_account() -> None:
    account = user_created(created_event().SerializeToString(), NOW)
    assert (account.user_id, account.name, account.email, account.version) == (
        U1,
        "Ada",
        "ada@example.com",
        1,
    )
    assert (account.create_time, account.update_time) == (CREATED, NOW)
    assert account.event_id == event_id(U1, 1)


def test_user_updated_carries_the_whole_state_and_its_version() -> None:
    account = user_updated(updated_event(3, name="Ada K.").SerializeToString(), NOW)
    assert (account.name, account.version, account.event_id) == ("Ada K.", 3, event_id(U1, 3))
    assert account.create_time == CREATED


def test_bytes_that_are_not_protobuf_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        user_created(b"\xff\xff\xff", NOW)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"user_id": ""}, "user_id: is required"),
        ({"user_id": "u1"}, "user_id: must be a UUID"),
        ({"event_id": ""}, "event_id: is not the id derived"),
        ({"version": 0}, "UserCreated has version 0"),
        ({"version": -5}, "UserCreated has version -5"),
        ({"version": 2}, "UserCreated has version 2"),
        ({"name": "x" * 900_000}, "name: must be at most 200"),
        ({"name": ""}, "name: is required"),
        ({"name": " Ada"}, "name: is not trimmed"),
        ({"email": "not-an-email"}, "email: must be an address"),
        ({"event_id": event_id(U1, 2)}, "event_id: is not the id derived"),
    ],
)
def test_an_inconsistent_user_created_is_invalid(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidEventError, match=problem):
        user_created(created_event(**fields).SerializeToString(), NOW)


@pytest.mark.parametrize("version", [1, 0, -1, MAX_VERSION + 1, 2**63 - 1])
def test_an_update_outside_the_version_bounds_is_invalid(version: int) -> None:
    with pytest.raises(InvalidEventError, match="UserUpdated has version"):
        user_updated(updated_event(version).SerializeToString(), NOW)


def test_the_highest_version_is_still_an_update() -> None:
    assert user_updated(updated_event(MAX_VERSION).SerializeToString(), NOW).version == MAX_VERSION


def test_an_update_carrying_the_id_of_another_version_is_invalid() -> None:
    # The id the *next* real change will have, taken early, would make that change a duplicate.
    forged = updated_event(2, event_id=event_id(U1, 3))
    with pytest.raises(InvalidEventError, match="event_id"):
        user_updated(forged.SerializeToString(), NOW)


def test_registry_routes_by_full_event_name() -> None:
    assert {
        "herald.users.v1.UserCreated": user_created,
        "herald.users.v1.UserUpdated": user_updated,
        "herald.users.v1.UserDeleted": user_deleted,
    } == DECODERS


def test_a_timestamp_out_of_range_is_invalid_not_a_crash() -> None:
    event = created_event()
    event.create_time.seconds = 2**62
    with pytest.raises(InvalidEventError):
        user_created(event.SerializeToString(), NOW)


# --- the record around the event ---


def headers(**overrides: str | None) -> Headers:
    values: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_id": event_id(U1, 1),
        "ce_source": USERS_SVC_SOURCE,
        "ce_type": "herald.users.v1.UserCreated",
    }
    values.update(overrides)
    return [(name, value.encode()) for name, value in values.items() if value is not None]


def record(key: bytes = U1.encode(), **header_overrides: str | None) -> Message:
    return Message(
        topic="events",
        partition=0,
        offset=0,
        key=key,
        value=created_event().SerializeToString(),
        headers=headers(**header_overrides),
    )


ROUTER = Router(DECODERS, {USERS_SVC_SOURCE})


def test_a_consistent_record_decodes() -> None:
    decoded = ROUTER.decode(record(), POSITION, NOW)
    assert (decoded.account.user_id, decoded.event_type) == (U1, "herald.users.v1.UserCreated")


@pytest.mark.parametrize(
    ("key", "overrides", "problem"),
    [
        (U1.encode(), {"ce_id": event_id(U1, 2)}, "ce_id header differs"),
        (U1.encode(), {"ce_id": None}, "ce_id header differs"),
        (U1.encode(), {"ce_specversion": None}, "no ce_specversion"),
        (U1.encode(), {"ce_specversion": "0.3"}, "no ce_specversion"),
        (U1.encode(), {"ce_source": "/somebody/else"}, "ce_source is not an allowed source"),
        (U1.encode(), {"ce_source": None}, "ce_source is not an allowed source"),
        (U1.encode(), {"ce_type": None}, "no ce_type header"),
        (U1.encode(), {"ce_type": "herald.users.v1.Nope"}, "unknown ce_type"),
        (uid("u2").encode(), {}, "record key differs"),
    ],
)
def test_a_record_that_disagrees_with_its_event_is_poison(
    key: bytes, overrides: dict[str, str | None], problem: str
) -> None:
    with pytest.raises(PoisonRecordError, match=problem):
        ROUTER.decode(record(key, **overrides), POSITION, NOW)


def test_sources_are_configurable() -> None:
    router = Router(DECODERS, {"/herald/users-svc-eu"})
    with pytest.raises(PoisonRecordError, match="ce_source"):
        router.decode(record(), POSITION, NOW)
    router.decode(record(ce_source="/herald/users-svc-eu"), POSITION, NOW)


def test_a_huge_unknown_type_is_not_repeated_whole() -> None:
    with pytest.raises(PoisonRecordError) as caught:
        ROUTER.decode(record(ce_type="T" * 100_000), POSITION, NOW)
    assert len(str(caught.value)) < 120
