"""Running auth_svc's consumer against the real broker, for the integration tests: topics,
raw records in, and a consumer thread over them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer, TopicPartition

from auth_svc.accounts import AccountStore
from auth_svc.consumer import EventConsumer, Subscription
from auth_svc.decoders import DECODERS
from auth_svc.settings import Settings
from herald.contract.events import USERS_SVC_SOURCE
from herald.kafka.config import consumer_config, producer_config
from herald.kafka.records import Headers
from herald.kafka.sender import KafkaBatchSender
from tests.support import uid, unique
from users_svc.events import EventRecordFactory
from users_svc.model import User

USER_CREATED = "herald.users.v1.UserCreated"
RawRecord = tuple[bytes, bytes, Headers]


def produce(bootstrap: str, topic: str, records: list[RawRecord], **config: str | int) -> None:
    """Write raw (key, value, headers) records, in order."""
    kafka = Producer(producer_config(bootstrap, "test-producer", **config))
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
    group = group or unique("group")
    consumer = EventConsumer(
        Consumer(
            consumer_config(bootstrap, group, "test-auth", **{"auto.commit.interval.ms": 200})
        ),
        Subscription(group_id="test", topic=topic, dlq_topic=dlq_topic),
        store=store,
        decoders=DECODERS,
        dead_letters=dead_letters,
        tuning=replace(
            Settings(retry_attempts=3, retry_backoff_s=0.01).consumer_tuning(), status_every_s=0.2
        ),
        lag_client=Consumer(
            consumer_config(bootstrap, group, "test-auth-lag", **{"enable.auto.commit": False})
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
