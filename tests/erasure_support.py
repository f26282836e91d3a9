"""Helpers for the erasure tests: a user's events as users_svc publishes them (or as a forger
might), as Kafka records, and a look at every byte auth_svc's database keeps on disk."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Message

from herald.contract.events import USERS_SVC_SOURCE
from herald.contract.ids import event_id
from herald.kafka.cloudevents import EventAttributes
from herald.kafka.records import Headers
from herald.users.v1 import events_pb2

WHEN = datetime(2026, 3, 1, tzinfo=UTC)
# Personal data no byte of auth's database may hold once the user is erased.
CANARY_NAME = "Zebulon Canaryfield"
# Long enough that the tombstone's shorter row, written where the old one was, leaves most of
# the old row's bytes in the page's free space: where only secure_delete clears them.
CANARY_EMAIL = "zebulon.canaryfield@erasure-canary.mail.example.org"

Event = events_pb2.UserCreated | events_pb2.UserUpdated | events_pb2.UserDeleted


def created(
    user_id: str, name: str = CANARY_NAME, email: str = CANARY_EMAIL
) -> events_pb2.UserCreated:
    event = events_pb2.UserCreated(
        event_id=event_id(user_id, 1), user_id=user_id, name=name, email=email, version=1
    )
    event.create_time.FromDatetime(WHEN)
    return event


def updated(
    user_id: str, version: int, name: str = CANARY_NAME, email: str = CANARY_EMAIL
) -> events_pb2.UserUpdated:
    event = events_pb2.UserUpdated(
        event_id=event_id(user_id, version),
        user_id=user_id,
        name=name,
        email=email,
        version=version,
        changed_fields=["name"],
    )
    event.create_time.FromDatetime(WHEN)
    event.update_time.FromDatetime(WHEN)
    return event


def deleted(user_id: str, version: int, event_id_: str | None = None) -> events_pb2.UserDeleted:
    event = events_pb2.UserDeleted(
        event_id=event_id(user_id, version) if event_id_ is None else event_id_,
        user_id=user_id,
        version=version,
    )
    event.delete_time.FromDatetime(WHEN)
    return event


def raw_record(
    event: Event,
    *,
    key: str | None = None,
    source: str = USERS_SVC_SOURCE,
    ce_id: str | None = None,
) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) as users_svc writes the event; key, source and ce_id may be
    forged."""
    attributes = EventAttributes(
        id=event.event_id if ce_id is None else ce_id,
        source=source,
        type=event.DESCRIPTOR.full_name,
        time=WHEN,
    )
    return (
        (event.user_id if key is None else key).encode(),
        event.SerializeToString(),
        attributes.to_headers(),
    )


def message(
    event: Event,
    *,
    offset: int = 0,
    key: str | None = None,
    source: str = USERS_SVC_SOURCE,
    ce_id: str | None = None,
) -> Message:
    """The record as a consumer receives it, from topic `events`, partition 0."""
    key_, value, headers = raw_record(event, key=key, source=source, ce_id=ce_id)
    return Message(
        topic="events",
        partition=0,
        offset=offset,
        key=key_,
        value=value,
        headers=headers,
        timestamp=(1, int(WHEN.timestamp() * 1000)),
    )


def files_holding(folder: Path, *needles: str) -> list[str]:
    """The files in `folder` (the database, its WAL and shared memory) holding any needle."""
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file() and any(n.encode() in path.read_bytes() for n in needles)
    )
