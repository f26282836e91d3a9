"""README's *Serving TLS* and *Tokens and policy* commands run as written: each block's server
line starts users_svc, and its client lines then succeed (against this run's broker, in a
checkout of the test's own, on a free port instead of 50051)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from herald.tools.processes import free_ports
from tests.conftest import REPO
from tests.support import within


def readme_block(section: str) -> str:
    readme = (REPO / "README.md").read_text()
    body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return str(re.findall(r"```sh\n(.*?)```", body, flags=re.DOTALL)[0])


def split_block(block: str) -> tuple[list[str], str, list[str]]:
    """(the lines before the server line, the server line, the lines after it)."""
    lines = block.replace("\\\n", " ").splitlines()
    lines = [line.split("  #")[0].strip() for line in lines if line.strip()]
    [server_at] = [i for i, line in enumerate(lines) if "-m users_svc" in line]
    return lines[:server_at], lines[server_at], lines[server_at + 1 :]


@pytest.mark.parametrize(
    ("section", "answer"),
    [("Serving TLS", "herald.users.v1.UserService"), ("Tokens and policy", '"user"')],
)
def test_readme_secure_commands_work_as_written(
    kafka_bootstrap: str, tmp_path: Path, section: str, answer: str
) -> None:
    [port] = free_ports(1)
    # A checkout of its own, so `.run/secure` is the test's: the README's paths stay as written.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for tools in (".venv", ".bin"):
        (checkout / tools).symlink_to(REPO / tools)
    setup, server_line, clients = split_block(readme_block(section).replace("50051", str(port)))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "USERS_DATA_DIR": str(tmp_path / "data"),
        "USERS_GRPC_PORT": str(port),
    }
    # The Tokens section uses the files the TLS section's `herald certs` made.
    subprocess.run([".venv/bin/herald", "certs"], cwd=checkout, check=True)
    server_log = tmp_path / "users_svc.log"
    server = subprocess.Popen(
        ["bash", "-ec", "\n".join([*setup, server_line])],
        cwd=checkout,
        env=env,
        stdout=server_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the test can stop the shell and the server it started
    )
    try:

        def clients_succeed() -> str | None:
            run = subprocess.run(
                ["bash", "-ec", "\n".join([*setup, *clients])],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            last[:] = [run.stdout, run.stderr]
            return run.stdout if run.returncode == 0 else None

        last: list[str] = []
        output = within(clients_succeed, timeout_s=30, every_s=0.5)
        assert output is not None, (server_line, clients, last, server_log.read_text())
        assert answer in output
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
