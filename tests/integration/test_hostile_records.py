"""Records auth_svc must never choke on, against the real broker: inconsistent events, a record
too large to dead-letter as it is, and a dead-letter topic that refuses writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from confluent_kafka.admin import AdminClient, NewTopic
from google.protobuf.message import Message

from auth_svc.sqlite_store import SqliteAccountStore
from herald.contract.events import USERS_SVC_SOURCE
from herald.contract.ids import event_id
from herald.kafka import deadletter
from herald.kafka.records import Headers, header_values
from herald.users.v1 import events_pb2
from tests.integration.consuming import RawRecord, consuming, produce, user_created
from tests.support import eventually, read_topic, uid, unique

CREATED = "herald.users.v1.UserCreated"
UPDATED = "herald.users.v1.UserUpdated"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(kind: str, user_id: str, version: int, **fields: object) -> Message:
    """An event as users_svc would publish it, with `fields` changed."""
    values: dict[str, object] = {
        "event_id": event_id(user_id, version),
        "user_id": user_id,
        "name": "Mallory",
        "email": "mallory@example.com",
        "version": version,
    }
    values.update(fields)
    message = (events_pb2.UserCreated if kind == CREATED else events_pb2.UserUpdated)(
        **values  # type: ignore[arg-type]
    )
    message.create_time.FromDatetime(NOW)
    return message


def record(event_: Message, kind: str, **headers: str | None) -> RawRecord:
    """The record around `event_`, its CloudEvents headers as users_svc sets them unless
    `headers` says otherwise (None leaves one out)."""
    fields = {f.name: v for f, v in event_.ListFields()}
    values: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_id": str(fields.get("event_id", "")),
        "ce_source": USERS_SVC_SOURCE,
        "ce_type": kind,
    }
    values.update(headers)
    sent: Headers = [(k, v.encode()) for k, v in values.items() if v is not None]
    return str(fields.get("user_id", "")).encode(), event_.SerializeToString(), sent


def test_each_inconsistent_event_is_dead_lettered_with_its_reason_and_the_real_ones_apply(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    victim = uid("victim")
    forged = {
        "created at version -5": (
            record(event(CREATED, uid("f1"), -5), CREATED),
            "UserCreated has version -5",
        ),
        "900,000-character name": (
            record(event(CREATED, uid("f2"), 1, name="n" * 900_000), CREATED),
            "name: must be at most 200 characters",
        ),
        "invalid email": (
            record(event(CREATED, uid("f3"), 1, email="not an email"), CREATED),
            "email: must be an address",
        ),
        "update to 2^63-1": (
            record(event(UPDATED, victim, 2**63 - 1), UPDATED),
            "UserUpdated has version 9223372036854775807",
        ),
        "the next change's event id": (
            record(event(UPDATED, victim, 1, event_id=event_id(victim, 2)), UPDATED),
            "UserUpdated has version 1",
        ),
        "a stale update with the next change's id": (
            record(event(UPDATED, victim, 2, event_id=event_id(victim, 3)), UPDATED),
            "event_id: is not the id derived",
        ),
        "ce_id not the event's": (
            record(event(CREATED, uid("f4"), 1), CREATED, ce_id=str(uuid.uuid4())),
            "ce_id header differs",
        ),
        "no ce_specversion": (
            record(event(CREATED, uid("f5"), 1), CREATED, ce_specversion=None),
            "no ce_specversion",
        ),
        "another source": (
            record(event(CREATED, uid("f6"), 1), CREATED, ce_source="/evil"),
            "ce_source is not an allowed source",
        ),
    }
    real = [
        record(event(CREATED, victim, 1), CREATED),
        *(each for each, _ in forged.values()),
        record(event(UPDATED, victim, 2, name="Victim Two"), UPDATED),
        record(event(UPDATED, victim, 3, name="Victim Three"), UPDATED),
    ]
    produce(kafka_bootstrap, topic, real)
    with consuming(kafka_bootstrap, topic, dlq_topic, store) as consumer:
        eventually(lambda: consumer.status().dead_lettered == len(forged) or None)
        eventually(lambda: consumer.status().applied == 3 or None)
    status = consumer.status()
    assert (status.applied, status.duplicates, status.stale) == (3, 0, 0)
    account = store.get(victim)
    assert account is not None
    assert (account.version, account.name) == (3, "Victim Three")
    for name in ("f1", "f2", "f3", "f4", "f5", "f6"):
        assert store.get(uid(name)) is None
    letters = read_topic(kafka_bootstrap, dlq_topic, count=len(forged))
    reasons = sorted(header_values(m.headers())[deadletter.ERROR_MESSAGE] for m in letters)
    for what, (_, reason) in forged.items():
        assert any(reason in each for each in reasons), (what, reasons)


def test_a_record_too_large_to_dead_letter_whole_is_cut_to_fit_and_the_next_event_applies(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    # Near the broker's 1 MiB limit, from a producer that allows it: it fits on the topic, but
    # not once the dead-letter headers are added (librdkafka: MSG_SIZE_TOO_LARGE).
    huge: RawRecord = (
        b"huge-key",
        b"\x08" * 1_040_000,
        [("ce_type", CREATED.encode()), ("x-trace", b"t1")],
    )
    after = user_created(topic, "after-huge")
    produce(kafka_bootstrap, topic, [huge, after], **{"message.max.bytes": 2_000_000})
    with consuming(kafka_bootstrap, topic, dlq_topic, store) as consumer:
        eventually(lambda: consumer.status().dead_lettered == 1 or None)
        eventually(lambda: consumer.status().applied == 1 or None)
    assert store.get(uid("after-huge")) is not None
    [letter] = read_topic(kafka_bootstrap, dlq_topic, count=1)
    why = header_values(letter.headers())
    assert letter.key() == b"huge-key"
    assert (why["ce_type"], why["x-trace"]) == (CREATED, "t1")
    assert why[deadletter.VALUE_TRUNCATED] == "true"
    assert why[deadletter.ORIGINAL_VALUE_SIZE] == "1040000"
    assert 900_000 < len(letter.value() or b"") < 1_000_000
    assert consumer.status().pauses == 0


def test_a_dead_letter_topic_that_refuses_writes_pauses_then_resumes_by_itself(
    kafka_bootstrap: str, topic: str, store: SqliteAccountStore
) -> None:
    missing_dlq = unique("test-dlq-later")  # the broker creates no topic by itself
    poison: RawRecord = (uid("p").encode(), b"\xff not protobuf", [("ce_type", CREATED.encode())])
    produce(kafka_bootstrap, topic, [poison, user_created(topic, "behind-poison")])
    with consuming(kafka_bootstrap, topic, missing_dlq, store) as consumer:
        eventually(lambda: consumer.status().paused_reason or None, timeout_s=60)
        assert "refused" in consumer.status().paused_reason
        assert not consumer.healthy(lag_grace_s=30)
        # Behind the poison record, but not held back by it: it is on another key.
        eventually(lambda: store.get(uid("behind-poison")), timeout_s=30)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        created = admin.create_topics([NewTopic(missing_dlq, 1, 1)])
        created[missing_dlq].result(30)
        eventually(lambda: consumer.status().dead_lettered == 1 or None, timeout_s=60)
        eventually(lambda: not consumer.status().paused_reason or None)
        assert consumer.healthy(lag_grace_s=30)
    assert consumer.status().pauses == 1
    assert [m.key() for m in read_topic(kafka_bootstrap, missing_dlq, count=1)] == [
        uid("p").encode()
    ]
