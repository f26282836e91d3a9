"""users_svc's publishing path against the real broker: the bytes on the topic are the event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from herald.cloudevents import header_values
from herald.kafka_config import producer_config
from herald.producer import DeliveringProducer
from herald.users.v1 import events_pb2
from tests.support import read_topic
from users_svc.events import user_created_record
from users_svc.model import User
from users_svc.publisher import KafkaEventPublisher


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[DeliveringProducer]:
    producer = DeliveringProducer(producer_config(kafka_bootstrap, "test-publisher"))
    yield producer
    assert producer.close(10) == 0


def test_user_created_on_the_topic_decodes_to_what_was_sent(
    kafka_bootstrap: str, topic: str, producer: DeliveringProducer
) -> None:
    user = User("user-1", "Ada Lovelace", "ada@example.com", datetime(2026, 11, 25, tzinfo=UTC))
    record = user_created_record(user, event_id="event-1", source="/herald/users-svc", topic=topic)
    KafkaEventPublisher(producer, timeout_s=10).publish(record)

    [message] = read_topic(kafka_bootstrap, topic, count=1)
    assert message.key() == b"user-1"
    event = events_pb2.UserCreated.FromString(message.value() or b"")
    expected = events_pb2.UserCreated(
        event_id="event-1", user_id="user-1", name="Ada Lovelace", email="ada@example.com"
    )
    expected.create_time.FromDatetime(user.create_time)
    assert event == expected
    assert header_values(message.headers()) == {
        "ce_specversion": "1.0",
        "ce_id": "event-1",
        "ce_source": "/herald/users-svc",
        "ce_type": "herald.users.v1.UserCreated",
        "ce_time": "2026-11-25T00:00:00.000000Z",
        "content-type": "application/protobuf",
    }


def test_a_users_events_share_a_partition_and_keep_their_order(
    kafka_bootstrap: str, topic: str, producer: DeliveringProducer
) -> None:
    sent = []
    for user_id in ("a", "b", "c"):
        for n in range(5):
            user = User(user_id, "N", "n@example.com", datetime.now(UTC))
            event_id = f"{user_id}-{n}"
            producer.send(
                user_created_record(user, event_id=event_id, source="/t", topic=topic), 10
            )
            sent.append(event_id)

    messages = read_topic(kafka_bootstrap, topic, count=len(sent))
    by_key: dict[bytes | None, list[str]] = {}
    partitions: dict[bytes | None, set[int | None]] = {}
    for message in sorted(messages, key=lambda m: (m.partition() or 0, m.offset() or 0)):
        key = message.key()
        by_key.setdefault(key, []).append(
            events_pb2.UserCreated.FromString(message.value() or b"").event_id
        )
        partitions.setdefault(key, set()).add(message.partition())
    assert all(len(p) == 1 for p in partitions.values())
    for user_id in ("a", "b", "c"):
        assert by_key[user_id.encode()] == [f"{user_id}-{n}" for n in range(5)]
