"""Scenarios on a 3-node cluster (RF 3, min.insync.replicas 2), shared between them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from herald.tools.localkafka import LocalKafka, running_cluster
from tests.conftest import free_port_cluster
from tests.reliability.harness import Load, Result, scenario

Report = Callable[[Result], None]


@pytest.fixture(autouse=True)
def all_nodes_running(three_nodes: LocalKafka) -> Iterator[None]:
    yield
    for node in three_nodes.nodes:
        if not three_nodes.is_running(node.node_id):
            three_nodes.start_node(node.node_id, timeout_s=None)
    three_nodes.wait_until_ready(deadline=time.monotonic() + 120)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with running_cluster(free_port_cluster(tmp_path_factory.mktemp("kafka-3"), 3)) as cluster:
        yield cluster


def leader_of(cluster: LocalKafka, topic: str, partition: int = 0) -> int:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)


def test_leader_kill_3node(three_nodes: LocalKafka, tmp_path: Path, report: Report) -> None:
    """Kafka's ReplicationTest shape: chase partition 0's leader with SIGKILL, 3 times."""
    with scenario("leader_kill_3node", three_nodes.bootstrap_servers, tmp_path, report) as run:
        load = run.stream(pause_s=0.02)  # about 4 x 50 calls/s for as long as the kills take
        for _ in range(3):
            load.progress(200)
            leader = leader_of(three_nodes, run.stack.topic)
            three_nodes.kill_node(leader)
            load.progress(100)  # the others took over: the stream goes on
            three_nodes.start_node(leader)
        run.end_of_fault()
        load.progress(200)


def test_too_few_replicas(three_nodes: LocalKafka, tmp_path: Path, report: Report) -> None:
    """Two of three brokers down: nothing is acknowledged by Kafka falsely, the outbox holds
    the events, calls still succeed, and everything arrives after recovery."""
    with scenario("too_few_replicas", three_nodes.bootstrap_servers, tmp_path, report) as run:
        assert run.stack.users is not None
        three_nodes.stop_node(2)
        three_nodes.stop_node(3)
        run.load = Load(run.stack.users.target, workers=4, users_per_worker=25, updates_per_user=3)
        run.load.start().join(timeout_s=60)
        assert len(run.load.user_ids) == 100
        three_nodes.start_node(2, timeout_s=None)
        three_nodes.start_node(3, timeout_s=None)
        three_nodes.wait_until_ready(deadline=time.monotonic() + 120)
        run.end_of_fault()
