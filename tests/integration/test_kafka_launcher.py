"""The local Kafka launcher: topics, and a node killed and restarted keeping its data."""

from __future__ import annotations

import os
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from herald.kafka.config import producer_config
from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC
from herald.tools.topic_admin import ensure_topics
from tests.conftest import free_port_cluster
from tests.support import read_topic


def test_ensure_topics_is_idempotent_and_sets_partitions_and_retention(
    kafka_bootstrap: str,
) -> None:
    assert ensure_topics(kafka_bootstrap) == []  # the session fixture created them already
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[EVENTS_TOPIC].partitions) == 6
    assert len(topics[DLQ_TOPIC].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, EVENTS_TOPIC)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["retention.ms"].value == str(7 * 24 * 3600 * 1000)


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
