"""auth_svc's consumer against the real broker: apply once, dead-letter poison, retry, commit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from auth_svc.accounts import AccountStore, DecodedEvent
from auth_svc.consumer import EventConsumer, Subscription
from auth_svc.decoders import DECODERS
from auth_svc.settings import Settings
from auth_svc.sqlite_store import SqliteAccountStore
from herald.contract.events import USERS_SVC_SOURCE
from herald.contract.ids import event_id
from herald.kafka.config import consumer_config, producer_config
from herald.kafka.records import Headers, header_values
from herald.kafka.sender import KafkaBatchSender
from herald.users.v1 import events_pb2
from tests.support import FlakyStore, end_offsets, eventually, read_topic, uid, unique
from users_svc.events import EventRecordFactory
from users_svc.model import User

USER_CREATED = "herald.users.v1.UserCreated"
RawRecord = tuple[bytes, bytes, Headers]


@pytest.fixture
def dlq_topic(kafka_bootstrap: str) -> str:
    name = unique("test-dlq")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    return name


@pytest.fixture
def store(tmp_path: Path) -> SqliteAccountStore:
    return SqliteAccountStore(tmp_path / "auth.sqlite3")


def produce(bootstrap: str, topic: str, records: list[RawRecord]) -> None:
    """Write raw (key, value, headers) records, in order."""
    kafka = Producer(producer_config(bootstrap, "test-producer"))
    for key, value, headers in records:
        kafka.produce(topic, key=key, value=value, headers=headers)
    assert kafka.flush(10) == 0


def user_created(topic: str, user_id: str) -> RawRecord:
    now = datetime.now(UTC)
    record = EventRecordFactory(topic, USERS_SVC_SOURCE).user_created(
        User(uid(user_id), f"name-{user_id}", f"{user_id}@example.com", now, now, 1)
    )
    return record.key, record.value, record.headers


@contextmanager
def consuming(
    bootstrap: str, topic: str, dlq_topic: str, store: AccountStore, group: str | None = None
) -> Iterator[EventConsumer]:
    dead_letters = KafkaBatchSender(producer_config(bootstrap, "test-dlq"), timeout_s=5)
    consumer = EventConsumer(
        Consumer(
            consumer_config(
                bootstrap, group or unique("group"), "test-auth", **{"auto.commit.interval.ms": 200}
            )
        ),
        Subscription(group_id="test", topic=topic, dlq_topic=dlq_topic),
        store=store,
        decoders=DECODERS,
        dead_letters=dead_letters,
        tuning=replace(
            Settings(retry_attempts=3, retry_backoff_s=0.01).consumer_tuning(), status_every_s=0.2
        ),
    )
    stopping = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stopping,))
    thread.start()
    try:
        yield consumer
    finally:
        stopping.set()
        thread.join(30)
        assert not thread.is_alive()
        dead_letters.close()


def committed_total(bootstrap: str, topic: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def test_same_event_delivered_twice_makes_one_account(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, u) for u in ("u1", "u1", "u2")])
    with consuming(kafka_bootstrap, topic, dlq_topic, store) as consumer:
        eventually(lambda: consumer.status().applied + consumer.status().duplicates == 3 or None)
    status = consumer.status()
    assert (status.applied, status.duplicates, status.dead_lettered) == (2, 1, 0)
    account = store.get(uid("u1"))
    assert account is not None
    assert account.event_id == event_id(uid("u1"), 1)


def _far_future_user() -> bytes:
    event = events_pb2.UserCreated(event_id="e-far", user_id="u-far", version=1)
    event.create_time.seconds = 2**62  # beyond what a Timestamp may hold
    return event.SerializeToString()


POISON: dict[str, tuple[bytes | None, Headers]] = {
    "undecodable": (b"\xff\x00\xff garbage", [("ce_type", USER_CREATED.encode())]),
    "truncated": (None, [("ce_type", USER_CREATED.encode())]),  # value filled in below
    "unknown type": (b"", [("ce_type", b"herald.users.v1.UserDeleted")]),
    "no headers": (b"no headers at all", []),
    "invalid": (
        events_pb2.UserCreated(user_id="u-x").SerializeToString(),
        [("ce_type", USER_CREATED.encode())],
    ),
    "bad timestamp": (_far_future_user(), [("ce_type", USER_CREATED.encode())]),
}


def test_poison_records_go_to_the_dead_letter_topic_and_valid_ones_are_all_applied(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    valid = [user_created(topic, f"user-{n}") for n in range(100)]
    truncated = valid[0][1][:-7]
    records = []
    for n, record in enumerate(valid):
        records.append(record)
        if n % 16 == 8:  # six poison records spread among the valid ones
            kind = list(POISON)[n // 16]
            value, headers = POISON[kind]
            records.append(
                (f"poison-{kind}".encode(), value if value is not None else truncated, headers)
            )
    produce(kafka_bootstrap, topic, records)
    group = unique("group")

    with consuming(kafka_bootstrap, topic, dlq_topic, store, group) as consumer:
        eventually(lambda: consumer.status().applied == 100 or None)
        eventually(lambda: consumer.status().dead_lettered == len(POISON) or None)
        eventually(
            lambda: (consumer.status().partitions and consumer.status().total_lag == 0) or None
        )

    assert all(store.get(uid(f"user-{n}")) is not None for n in range(100))
    dead = read_topic(kafka_bootstrap, dlq_topic, count=len(POISON))
    by_key = {(m.key() or b"").decode(): m for m in dead}
    assert set(by_key) == {f"poison-{kind}" for kind in POISON}
    for kind, message in by_key.items():
        why = header_values(message.headers())
        assert why["herald.dlq.topic"] == topic
        assert int(why["herald.dlq.offset"]) >= 0
        assert why["herald.dlq.partition"].isdigit()
        assert why["herald.dlq.time"].endswith("Z")
        assert why["herald.dlq.error.class"] in {
            "DecodeError",
            "PoisonRecordError",
            "InvalidEventError",
        }
        assert why["herald.dlq.error.message"]
        original = POISON[kind.removeprefix("poison-")]
        assert message.value() == (original[0] if original[0] is not None else truncated)
    assert committed_total(kafka_bootstrap, topic, group) == sum(
        end_offsets(kafka_bootstrap, topic).values()
    )


def busy(
    failures: int, stuck: frozenset[str] = frozenset()
) -> Callable[[Sequence[DecodedEvent]], bool]:
    """A database busy for the first `failures` attempts, and always for a batch that holds
    one of the `stuck` users."""
    left = [failures]

    def failing(events: Sequence[DecodedEvent]) -> bool:
        if left[0] > 0 or any(d.account.user_id in stuck for d in events):
            left[0] -= 1
            return True
        return False

    return failing


def test_a_transient_failure_is_retried_with_backoff_then_applied(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, "u1")])
    with consuming(
        kafka_bootstrap, topic, dlq_topic, FlakyStore(store, busy(failures=2))
    ) as consumer:
        eventually(lambda: consumer.status().applied == 1 or None)
    assert (consumer.status().retries, consumer.status().dead_lettered) == (2, 0)


def test_a_batch_past_the_retry_bound_is_applied_one_by_one_and_no_record_is_lost(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, f"u{n}") for n in range(20)])
    # The 3 attempts of the first batch fail; its records, alone, then go in.
    flaky = FlakyStore(store, busy(failures=3))
    with consuming(kafka_bootstrap, topic, dlq_topic, flaky) as consumer:
        eventually(lambda: consumer.status().applied == 20 or None)
    assert consumer.status().dead_lettered == 0
    assert all(store.get(uid(f"u{n}")) is not None for n in range(20))


def test_a_record_failing_past_the_retry_bound_is_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, "u1"), user_created(topic, "u1b")])
    group = unique("group")
    flaky = FlakyStore(store, busy(failures=0, stuck=frozenset({uid("u1")})))
    with consuming(kafka_bootstrap, topic, dlq_topic, flaky, group) as consumer:
        eventually(lambda: consumer.status().dead_lettered == 1 or None)
        eventually(lambda: consumer.status().applied == 1 or None)
        eventually(
            lambda: (consumer.status().partitions and consumer.status().total_lag == 0) or None
        )
    [dead] = read_topic(kafka_bootstrap, dlq_topic, count=1)
    assert dead.key() == uid("u1").encode()
    assert header_values(dead.headers())["herald.dlq.error.class"] == "StoreUnavailableError"
    assert store.get(uid("u1b")) is not None
    assert committed_total(kafka_bootstrap, topic, group) == 2
