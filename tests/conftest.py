"""Fixtures every tier may use. The broker is real: started here, or named by the environment."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from herald.localkafka import LocalKafka
from herald.topics import ensure_topics
from tests.support import unique

REPO = Path(__file__).resolve().parents[1]


def kafka_libs() -> Path:
    return Path(os.environ.get("KAFKA_LIBS", REPO / ".cache" / "kafka-libs"))


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
    cluster = LocalKafka.on_free_ports(
        libs_dir=kafka_libs(), run_dir=tmp_path_factory.mktemp("kafka"), node_count=1
    )
    began = time.monotonic()
    try:
        cluster.start()
        ensure_topics(cluster.bootstrap_servers)
        print(
            f"\nKafka for tests at {cluster.bootstrap_servers} in {time.monotonic() - began:.1f} s"
        )
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    """A new topic with 6 partitions, like the events topic, for one test alone."""
    name = unique("test-events")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=1)])
    futures[name].result(timeout=30)
    return name
