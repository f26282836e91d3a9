"""The local Kafka launcher: topics, and a node killed and restarted keeping its data."""

from __future__ import annotations

import os
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from herald.kafka.config import producer_config
from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC, TopicSpec
from herald.tools.topic_admin import ensure_topics
from tests.conftest import free_port_cluster
from tests.support import read_topic, unique

DAY_MS = 24 * 3600 * 1000


def test_ensure_topics_is_idempotent_and_sets_partitions_and_retention(
    kafka_bootstrap: str,
) -> None:
    assert ensure_topics(kafka_bootstrap) == []  # the session fixture created them already
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[EVENTS_TOPIC].partitions) == 6
    assert len(topics[DLQ_TOPIC].partitions) == 1
    for name in (EVENTS_TOPIC, DLQ_TOPIC):
        assert retention_ms(admin, name) == 7 * DAY_MS


def retention_ms(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return int(
        admin.describe_configs([resource])[resource].result(timeout=10)["retention.ms"].value
    )


def test_ensure_topics_lowers_a_longer_retention_and_keeps_a_shorter_one(
    kafka_bootstrap: str,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    old_dlq, forever, short = unique("old-dlq"), unique("forever"), unique("short")
    events = unique("events")  # an operator's longer retention, where it is no limit
    kept = {old_dlq: 30 * DAY_MS, forever: -1, short: DAY_MS, events: 30 * DAY_MS}
    for future in admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=1,
                replication_factor=1,
                config={"retention.ms": str(ms), "min.insync.replicas": "1"},
            )
            for name, ms in kept.items()
        ]
    ).values():
        future.result(30)

    specs = tuple(
        TopicSpec(name, partitions=1, retention_ms=7 * DAY_MS, retention_is_limit=name != events)
        for name in kept
    )
    assert ensure_topics(kafka_bootstrap, specs) == []
    assert retention_ms(admin, old_dlq) == retention_ms(admin, forever) == 7 * DAY_MS
    assert retention_ms(admin, short) == DAY_MS
    assert retention_ms(admin, events) == 30 * DAY_MS
    # Only retention.ms changed: the topic's own settings are still there.
    resource = ConfigResource(ConfigResource.Type.TOPIC, old_dlq)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["min.insync.replicas"].value == "1"


def test_killed_node_restarts_on_its_data_and_stop_leaves_no_process(tmp_path: Path) -> None:
    cluster = free_port_cluster(tmp_path)
    try:
        cluster.start()
        ensure_topics(cluster.bootstrap_servers)
        producer = Producer(producer_config(cluster.bootstrap_servers, "test"))
        producer.produce(EVENTS_TOPIC, key=b"k", value=b"before the crash")
        assert producer.flush(10) == 0

        pid = cluster.status()[1]
        assert pid is not None
        cluster.kill_node(1)
        assert cluster.status() == {1: None}
        assert not Path(f"/proc/{pid}").exists()

        cluster.start_node(1, timeout_s=60)
        [message] = read_topic(cluster.bootstrap_servers, EVENTS_TOPIC, count=1)
        assert message.value() == b"before the crash"
    finally:
        cluster.stop()
    assert cluster.status() == {1: None}
    assert str(tmp_path) not in _children_commands()


def _children_commands() -> str:
    """Command lines of this process's children: a stopped cluster leaves none behind."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return " ".join(Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in children)
