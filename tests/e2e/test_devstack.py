"""`make run` as a new user meets it: `herald up` starts a broker and both services, every one
of them listens on loopback only, and the grpcurl lines it prints work as printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from herald.rpc.tls import is_loopback
from tests.conftest import REPO, kafka_libs
from tests.support import eventually


class Up:
    """`herald up` in the background, its output collected line by line."""

    def __init__(self, run_dir: Path, *flags: str) -> None:
        grpcurl = shutil.which("grpcurl")
        assert grpcurl, "grpcurl is not on PATH (`make tools` installs it into .bin/)"
        command = [sys.executable, "-m", "herald.tools.cli", "up", "--free-ports", *flags]
        env = {**os.environ, "KAFKA_LIBS": str(kafka_libs()), "GRPCURL": grpcurl}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.process = subprocess.Popen(
            [*command, "--run-dir", str(run_dir)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_up(self) -> str:
        eventually(
            lambda: ("Herald is up" in self.output or self.process.poll() is not None) or None,
            timeout_s=120,
        )
        assert "Herald is up" in self.output, self.output
        return self.output

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def printed_commands(output: str) -> dict[str, str]:
    """The grpcurl lines `herald up` printed, joined across `\\` and keyed by method."""
    joined = output.replace("\\\n", " ")
    commands = [line.strip() for line in joined.splitlines() if "grpcurl" in line]
    keyed = {}
    for command in commands:
        method = re.search(r"(\w+Service/\w+|\blist\b|describe \S+)", command)
        assert method, command
        keyed[method.group(1).split("/")[-1].split()[0]] = command
    return keyed


def run_printed(command: str, user_id: str = "") -> dict[str, object] | None:
    """Run one printed line as a user would paste it: its JSON answer, or None if it failed."""
    run = subprocess.run(
        ["bash", "-c", command.replace("<id from CreateUser>", user_id)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if run.returncode != 0:
        return None
    return json.loads(run.stdout) if run.stdout.lstrip().startswith("{") else {}


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    stack = Up(tmp_path / "kafka")
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.output


def listening_addresses(root: int) -> set[tuple[int, str, str]]:
    """(pid, name, address) of every listening inet socket of `root` and its descendants."""
    processes = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    return {
        (process.pid, process.name(), c.laddr.ip)
        for process in processes
        for c in process.net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    }


def test_make_run_listens_on_loopback_and_its_printed_commands_work(up: Up) -> None:
    output = up.wait_up()
    assert "Dev mode: loopback only, plaintext, no tokens" in output
    listening = listening_addresses(up.process.pid)
    # The broker and both services, each with at least one socket.
    names = {pid: name for pid, name, _ in listening}.values()
    assert sum(n.startswith("python") for n in names) >= 2, listening
    assert any(n.startswith("java") for n in names), listening
    # grpc may bind 127.0.0.1 through an IPv6 socket (::ffff:127.0.0.1): loopback all the same.
    assert all(is_loopback(address.removeprefix("::ffff:")) for _, _, address in listening), (
        listening
    )

    commands = printed_commands(output)
    assert {"list", "describe", "CreateUser", "GetUser", "GetAccount"} <= commands.keys()
    assert run_printed(commands["list"]) is not None
    created = run_printed(commands["CreateUser"])
    assert created is not None
    user = created["user"]
    assert isinstance(user, dict)
    assert run_printed(commands["GetUser"], user["id"]) == {"user": user}
    # The account follows through Kafka: wait for it, as a user retrying would.
    answer = eventually(lambda: run_printed(commands["GetAccount"], user["id"]), timeout_s=15)
    account = answer["account"]
    assert isinstance(account, dict)
    assert (account["userId"], account["email"]) == (user["id"], user["email"])
