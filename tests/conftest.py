"""Fixtures every tier may use. The broker is real: started here, or named by the environment."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from herald.tools.localkafka import LocalKafka, running_cluster
from herald.tools.topic_admin import ensure_topics
from tests.secure_kafka import Secure, running_secure_cluster
from tests.support import unique

REPO = Path(__file__).resolve().parents[1]


def kafka_libs() -> Path:
    return Path(os.environ.get("KAFKA_LIBS", REPO / ".cache" / "kafka-libs"))


def free_port_cluster(run_dir: Path, node_count: int = 1) -> LocalKafka:
    """A cluster from the project's jars on free ports, so it never collides with `make run`."""
    return LocalKafka.on_free_ports(libs_dir=kafka_libs(), run_dir=run_dir, node_count=node_count)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka for the whole run: `KAFKA_BOOTSTRAP_SERVERS` if set, else one we start.

    Ours listens on free ports, so a test run never disturbs (or is disturbed by) `make run`.
    Without the jars this fails loudly: a broker test never skips.
    """
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if named:
        ensure_topics(named)
        yield named
        return
    began = time.monotonic()
    with running_cluster(free_port_cluster(tmp_path_factory.mktemp("kafka"))) as cluster:
        ensure_topics(cluster.bootstrap_servers)
        print(
            f"\nKafka for tests at {cluster.bootstrap_servers} in {time.monotonic() - began:.1f} s"
        )
        yield cluster.bootstrap_servers


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    """A new topic with 6 partitions, like the events topic, for one test alone."""
    name = unique("test-events")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


@pytest.fixture(scope="session")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """One secure node (SASL_SSL, ACLs enforced) for every test that needs one."""
    yield from running_secure_cluster(tmp_path_factory.mktemp("secure-kafka"), kafka_libs())
