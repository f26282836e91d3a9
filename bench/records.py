"""The records the bench sends itself: UserCreated records as users_svc makes them, so a
baseline sends the same bytes Herald does."""

from __future__ import annotations

from datetime import UTC, datetime

from herald.contract.events import USERS_SVC_SOURCE
from herald.contract.ids import new_user_id
from herald.kafka.records import Record
from users_svc.events import EventRecordFactory
from users_svc.model import User


def sample_record() -> Record:
    """One UserCreated record, for the bare round trip and the record size it reports."""
    now = datetime.now(UTC)
    user = User(
        "00000000-0000-4000-8000-000000000000", "Bench User", "b@bench.example", now, now, 1
    )
    return EventRecordFactory("bench.round-trip", USERS_SVC_SOURCE).user_created(user)


def user_created_records(topic: str, count: int) -> list[Record]:
    """UserCreated records as users_svc makes them, ids included (their order matters to
    auth_svc's indexes)."""
    records = EventRecordFactory(topic, USERS_SVC_SOURCE)
    now = datetime.now(UTC)
    return [
        records.user_created(User(new_user_id(), "Bench User", f"u{n}@bench.example", now, now, 1))
        for n in range(count)
    ]
