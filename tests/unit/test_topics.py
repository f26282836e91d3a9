from __future__ import annotations

import pytest

from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC, TOPICS, replication_for


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_replication_follows_cluster_size(brokers: int, expected: tuple[int, int]) -> None:
    assert replication_for(brokers) == expected


def test_events_topic_has_room_for_a_consumer_group() -> None:
    specs = {spec.name: spec for spec in TOPICS}
    assert specs[EVENTS_TOPIC].partitions == 6
    assert specs[DLQ_TOPIC].partitions == 1


def test_dead_letters_are_kept_no_longer_than_the_events_they_copy() -> None:
    specs = {spec.name: spec for spec in TOPICS}
    assert specs[DLQ_TOPIC].retention_ms <= specs[EVENTS_TOPIC].retention_ms
