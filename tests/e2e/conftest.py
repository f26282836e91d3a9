"""Both services as real processes against the test run's broker, on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from herald.grpc_client import wait_until_serving
from herald.localkafka import free_ports
from tests.conftest import REPO
from tests.support import unique


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class Stack:
    users: str
    auth: str
    bootstrap_servers: str


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("services")
    users_port, auth_port = free_ports(2)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "USERS_GRPC_PORT": str(users_port),
        "AUTH_GRPC_PORT": str(auth_port),
        # Our own group, in case KAFKA_BOOTSTRAP_SERVERS points at a shared cluster.
        "AUTH_CONSUMER_GROUP": unique("auth-svc-e2e"),
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", name],
            env=env,
            cwd=REPO,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in ("users_svc", "auth_svc")
    }
    try:
        wait_until_serving(f"127.0.0.1:{users_port}", timeout_s=30)
        wait_until_serving(f"127.0.0.1:{auth_port}", timeout_s=30)
        yield Stack(f"127.0.0.1:{users_port}", f"127.0.0.1:{auth_port}", kafka_bootstrap)
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        exits = {name: process.wait(30) for name, process in processes.items()}
        for name in processes:
            print(f"--- {name} log ---\n{(logs / f'{name}.log').read_text(errors='replace')}")
    # A clean SIGTERM shutdown is part of the contract: both exit 0.
    assert exits == {"users_svc": 0, "auth_svc": 0}


@pytest.fixture(scope="session")
def grpcurl() -> str:
    """The grpcurl binary `make` installs into .bin; its absence fails the test."""
    found = shutil.which("grpcurl") or str(REPO / ".bin" / "grpcurl")
    assert Path(found).exists(), "grpcurl is missing: run `make tools`"
    return found
