"""users_svc's publishing path against the real broker: the bytes on the topic are the event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from herald.contract.ids import event_id
from herald.kafka.config import producer_config
from herald.kafka.records import header_values
from herald.kafka.sender import KafkaBatchSender
from herald.users.v1 import events_pb2
from tests.support import read_topic
from users_svc.events import EventRecordFactory
from users_svc.model import User

T0 = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture
def sender(kafka_bootstrap: str) -> Iterator[KafkaBatchSender]:
    sender = KafkaBatchSender(producer_config(kafka_bootstrap, "test-publisher"), timeout_s=10)
    yield sender
    assert sender.close(10) == 0


def test_user_created_on_the_topic_decodes_to_what_was_sent(
    kafka_bootstrap: str, topic: str, sender: KafkaBatchSender
) -> None:
    user = User("user-1", "Ada Lovelace", "ada@example.com", T0, T0, 1)
    assert sender.send([EventRecordFactory(topic, "/herald/users-svc").user_created(user)]) == [
        True
    ]

    [message] = read_topic(kafka_bootstrap, topic, count=1)
    assert message.key() == b"user-1"
    event = events_pb2.UserCreated.FromString(message.value() or b"")
    expected = events_pb2.UserCreated(
        event_id=event_id("user-1", 1),
        user_id="user-1",
        name="Ada Lovelace",
        email="ada@example.com",
        version=1,
    )
    expected.create_time.FromDatetime(T0)
    assert event == expected
    assert header_values(message.headers()) == {
        "ce_specversion": "1.0",
        "ce_id": event_id("user-1", 1),
        "ce_source": "/herald/users-svc",
        "ce_type": "herald.users.v1.UserCreated",
        "ce_time": "2026-11-25T00:00:00.000000Z",
        "content-type": "application/protobuf",
    }


def test_a_users_events_share_a_partition_and_keep_their_order(
    kafka_bootstrap: str, topic: str, sender: KafkaBatchSender
) -> None:
    records = EventRecordFactory(topic, "/t")
    batch = []
    for user_id in ("a", "b", "c"):
        user = User(user_id, "N0", "n@example.com", T0, T0, 1)
        batch.append(records.user_created(user))
        for version in range(2, 6):
            user = User(user_id, f"N{version}", "n@example.com", T0, T0, version)
            batch.append(records.user_updated(user, ["name"]))
    assert all(sender.send(batch))

    messages = read_topic(kafka_bootstrap, topic, count=len(batch))
    versions: dict[bytes | None, list[str]] = {}
    partitions: dict[bytes | None, set[int | None]] = {}
    for message in sorted(messages, key=lambda m: (m.partition() or 0, m.offset() or 0)):
        versions.setdefault(message.key(), []).append(header_values(message.headers())["ce_id"])
        partitions.setdefault(message.key(), set()).add(message.partition())
    assert all(len(p) == 1 for p in partitions.values())
    for user_id in ("a", "b", "c"):
        assert versions[user_id.encode()] == [event_id(user_id, v) for v in range(1, 6)]
