"""auth_svc's consumer against the real broker: apply, skip duplicates and bad records, commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer, TopicPartition

from auth_svc.accounts import InMemoryAccountStore
from auth_svc.consumer import EventConsumer
from auth_svc.handlers import HANDLERS
from herald.kafka_config import consumer_config, producer_config
from tests.support import eventually, unique
from users_svc.events import EventRecords
from users_svc.model import User, event_id


def produce_user_created(bootstrap: str, topic: str, user_ids: list[str]) -> None:
    """Produce one UserCreated per user id, in order (a repeated id repeats the event)."""
    producer = Producer(producer_config(bootstrap, "test-producer"))
    for user_id in user_ids:
        now = datetime.now(UTC)
        user = User(user_id, f"name-{user_id}", f"{user_id}@example.com", now, now, 1)
        record = EventRecords(topic, "/test").user_created(user)
        producer.produce(topic, value=record.value, key=record.key, headers=record.headers)
    assert producer.flush(10) == 0


@contextmanager
def consuming(
    bootstrap: str, topic: str, group: str, store: InMemoryAccountStore
) -> Iterator[EventConsumer]:
    consumer = EventConsumer(
        Consumer(consumer_config(bootstrap, group, "test-auth")),
        topic=topic,
        store=store,
        handlers=HANDLERS,
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


def committed(bootstrap: str, topic: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def test_same_event_delivered_twice_makes_one_account(kafka_bootstrap: str, topic: str) -> None:
    produce_user_created(kafka_bootstrap, topic, ["u1", "u1", "u2"])
    store = InMemoryAccountStore()
    with consuming(kafka_bootstrap, topic, unique("group"), store) as consumer:
        eventually(lambda: (consumer.applied == 3) or None)
    assert len(store) == 2
    account = store.get("u1")
    assert account is not None
    assert account.last_event_id == event_id("u1", 1)


def test_bad_records_are_passed_over_and_valid_ones_applied(
    kafka_bootstrap: str, topic: str
) -> None:
    producer = Producer(producer_config(kafka_bootstrap, "test-producer"))
    producer.produce(
        topic,
        key=b"x",
        value=b"\xff\x00garbage",
        headers=[("ce_type", b"herald.users.v1.UserCreated")],
    )
    producer.produce(topic, key=b"y", value=b"", headers=[("ce_type", b"herald.users.v1.Unknown")])
    producer.produce(topic, key=b"z", value=b"no headers")
    assert producer.flush(10) == 0
    produce_user_created(kafka_bootstrap, topic, ["u1"])
    store = InMemoryAccountStore()
    with consuming(kafka_bootstrap, topic, unique("group"), store) as consumer:
        eventually(lambda: (consumer.applied + consumer.skipped == 4) or None)
    assert (consumer.applied, consumer.skipped) == (1, 3)
    assert store.get("u1") is not None


def test_offsets_are_committed_for_what_was_applied(kafka_bootstrap: str, topic: str) -> None:
    produce_user_created(kafka_bootstrap, topic, [f"u{n}" for n in range(10)])
    group = unique("group")
    store = InMemoryAccountStore()
    with consuming(kafka_bootstrap, topic, group, store) as consumer:
        eventually(lambda: (consumer.applied == 10) or None)
    # close() commits the stored offsets: the group has nothing left to read.
    assert committed(kafka_bootstrap, topic, group) == 10


def test_a_restarted_volatile_store_is_rebuilt_from_the_topic(
    kafka_bootstrap: str, topic: str
) -> None:
    produce_user_created(kafka_bootstrap, topic, ["u1", "u2"])
    group = unique("group")
    with consuming(kafka_bootstrap, topic, group, InMemoryAccountStore()) as consumer:
        eventually(lambda: (consumer.applied == 2) or None)
    # Same group, offsets committed, but a new process starts with empty memory.
    fresh = InMemoryAccountStore()
    with consuming(kafka_bootstrap, topic, group, fresh) as consumer:
        eventually(lambda: (len(fresh) == 2) or None)
