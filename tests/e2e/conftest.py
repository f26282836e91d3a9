"""Both services as real processes against the test run's broker, on free ports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from herald.tools.processes import ServiceProcess, started
from tests.conftest import REPO
from tests.support import unique


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Kill what a test started and did not stop (it failed half-way, say)."""
    before = len(started())
    yield
    for service in started()[before:]:
        service.kill_if_running()


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
    folder = tmp_path_factory.mktemp("stack")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "USERS_DATA_DIR": str(folder / "users-data"),
        "AUTH_DATA_DIR": str(folder / "auth-data"),
        # Our own group, in case KAFKA_BOOTSTRAP_SERVERS points at a shared cluster.
        "AUTH_CONSUMER_GROUP": unique("auth-svc-e2e"),
    }
    users = ServiceProcess("users_svc", env, folder / "users_svc.log")
    auth = ServiceProcess("auth_svc", env, folder / "auth_svc.log")
    exits = {}
    try:
        users.start()
        auth.start()
        yield Stack(users.target, auth.target, kafka_bootstrap)
    finally:
        for service in (users, auth):
            if service.process is not None:
                exits[service.module] = service.stop()
            print(f"--- {service.module} log ---\n{service.log_text()}")
    # A clean SIGTERM shutdown is part of the contract: both exit 0.
    assert exits == {"users_svc": 0, "auth_svc": 0}


@pytest.fixture(scope="session")
def grpcurl() -> str:
    """The grpcurl binary `make` installs into .bin; its absence fails the test."""
    found = shutil.which("grpcurl") or str(REPO / ".bin" / "grpcurl")
    assert Path(found).exists(), "grpcurl is missing: run `make tools`"
    return found
