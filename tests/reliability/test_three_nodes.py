"""Scenarios on a 3-node cluster (RF 3, min.insync.replicas 2), shared between them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from herald.tools.localkafka import LocalKafka, running_cluster
from tests.conftest import free_port_cluster
from tests.reliability.harness import Result, scenario
from tests.support import eventually

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


def new_leader(cluster: LocalKafka, topic: str, old: int) -> int | None:
    leader = leader_of(cluster, topic)
    return None if leader in (old, -1) else leader


def test_leader_kill_3node(three_nodes: LocalKafka, tmp_path: Path, report: Report) -> None:
    """Kafka's ReplicationTest shape: chase partition 0's leader with SIGKILL, 3 times."""
    with scenario("leader_kill_3node", three_nodes.bootstrap_servers, tmp_path, report) as run:
        load = run.stream(pause_s=0.02)  # about 4 x 50 calls/s for as long as the kills take
        moves: list[dict[str, int]] = []
        for _ in range(3):
            load.progress(200)
            leader = leader_of(three_nodes, run.stack.topic)
            three_nodes.kill_node(leader)
            load.progress(100)  # the others took over: the stream goes on
            # The controller names a new leader once the killed node's session expires.
            after = eventually(partial(new_leader, three_nodes, run.stack.topic, leader), 60)
            moves.append({"before": leader, "after": after})
            three_nodes.start_node(leader)
        run.fault["leaders"] = moves
        run.end_of_fault()
        load.progress(200)


def test_too_few_replicas(three_nodes: LocalKafka, tmp_path: Path, report: Report) -> None:
    """Two of three brokers down: nothing is acknowledged by Kafka falsely, the outbox holds
    the events, calls still succeed, and everything arrives after recovery."""
    with scenario("too_few_replicas", three_nodes.bootstrap_servers, tmp_path, report) as run:
        three_nodes.stop_node(2)
        three_nodes.stop_node(3)
        run.fault["brokers_running"] = sum(
            three_nodes.is_running(node.node_id) for node in three_nodes.nodes
        )
        with run.watch_outbox() as outbox:
            load = run.loaded(workers=4, users_per_worker=25, updates_per_user=3)
            load.start().join(timeout_s=60)
        run.fault["outbox_peak"] = outbox.peak
        assert load.created == 100
        three_nodes.start_node(2, timeout_s=None)
        three_nodes.start_node(3, timeout_s=None)
        three_nodes.wait_until_ready(deadline=time.monotonic() + 120)
        run.end_of_fault()
