"""`make run` and `make run-secure` as a new user meets them: `herald up` (with `--secure`)
starts a broker and both services, every one of them listens on loopback only, and the lines
it prints work as printed; in secure mode, the same lines without the token or without the
client certificate are refused."""

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
from contextlib import contextmanager
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


def pasted(command: str, user_id: str = "") -> subprocess.CompletedProcess[str]:
    """Run one printed line as a user would paste it, with the id they would put in."""
    return subprocess.run(
        ["bash", "-c", command.replace("<id from CreateUser>", user_id)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run_printed(command: str, user_id: str = "") -> dict[str, object] | None:
    """Run one printed line: its JSON answer, or None if it failed."""
    run = pasted(command, user_id)
    if run.returncode != 0:
        return None
    return json.loads(run.stdout) if run.stdout.lstrip().startswith("{") else {}


@contextmanager
def running_up(run_dir: Path, *flags: str) -> Iterator[Up]:
    stack = Up(run_dir, *flags)
    try:
        yield stack
    finally:
        assert stack.stop() == 0, stack.output


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with running_up(tmp_path / "kafka") as stack:
        yield stack


def listening_addresses(root: int) -> set[tuple[int, str, str]]:
    """(pid, name, address) of every listening inet socket of `root` and its descendants."""
    processes = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    return {
        (process.pid, process.name(), c.laddr.ip)
        for process in processes
        for c in process.net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    }


def assert_loopback_only(stack: Up) -> None:
    listening = listening_addresses(stack.process.pid)
    # The broker and both services, each with at least one socket.
    names = {pid: name for pid, name, _ in listening}.values()
    assert sum(n.startswith("python") for n in names) >= 2, listening
    assert any(n.startswith("java") for n in names), listening
    # grpc may bind 127.0.0.1 through an IPv6 socket (::ffff:127.0.0.1): loopback all the same.
    assert all(is_loopback(address.removeprefix("::ffff:")) for _, _, address in listening), (
        listening
    )


def test_make_run_listens_on_loopback_and_its_printed_commands_work(up: Up) -> None:
    output = up.wait_up()
    assert "Dev mode: loopback only, plaintext, no tokens" in output
    assert_loopback_only(up)

    commands = printed_commands(output)
    user = create_and_follow(commands)
    assert user["name"] == "Ada Lovelace"
    erase(commands, user)


def create_and_follow(commands: dict[str, str]) -> dict[str, object]:
    """Run the printed lines in order: list, CreateUser, GetUser, then GetAccount until the
    account has come through Kafka; return the user."""
    assert {"list", "CreateUser", "GetUser", "GetAccount"} <= commands.keys()
    assert run_printed(commands["list"]) is not None
    created = run_printed(commands["CreateUser"])
    assert created is not None
    user = created["user"]
    assert isinstance(user, dict)
    assert run_printed(commands["GetUser"], user["id"]) == {"user": user}
    answer = eventually(lambda: run_printed(commands["GetAccount"], user["id"]), timeout_s=15)
    account = answer["account"]
    assert isinstance(account, dict)
    assert (account["userId"], account["email"]) == (user["id"], user["email"])
    return user


def erase(commands: dict[str, str], user: dict[str, object]) -> None:
    """The printed DeleteUser line erases the user; its account goes soon after."""
    answer = run_printed(commands["DeleteUser"], str(user["id"]))
    assert answer == {"id": user["id"], "version": "2"}

    def account_gone() -> str | None:
        run = pasted(commands["GetAccount"], str(user["id"]))
        return run.stderr if run.returncode != 0 else None

    assert "NotFound" in eventually(account_gone, timeout_s=15)


def test_make_run_secure_needs_the_token_and_the_certificate(tmp_path: Path) -> None:
    secure = tmp_path / "secure"
    with running_up(tmp_path / "kafka", "--secure", str(secure)) as stack:
        output = stack.wait_up()
        assert_loopback_only(stack)
        commands = printed_commands(output)
        user = create_and_follow(commands)

        create = commands["CreateUser"]
        without_token = re.sub(r'-H "authorization: Bearer \$\([^)]*\)"', "", create)
        assert without_token != create
        refused = pasted(without_token)
        assert refused.returncode != 0
        assert "Unauthenticated" in refused.stderr, refused.stderr
        without_certificate = re.sub(r"-cert \S+ -key \S+", "", create)
        assert without_certificate != create
        refused = pasted(without_certificate)
        assert refused.returncode != 0
        assert "Unauthenticated" not in refused.stderr  # turned away before any call

        assert_no_password_shown(stack, secure)

        # The Kafka line reads the topic as herald-admin: the user's event is there.
        joined = output.replace("\\\n", " ")
        [tail] = [line.strip() for line in joined.splitlines() if "events tail" in line]
        events = eventually(lambda: ((run := pasted(tail)).returncode == 0 and run.stdout) or None)
        assert str(user["id"]) in events


def assert_no_password_shown(stack: Up, secure: Path) -> None:
    """No Kafka password in what `herald up` printed, nor in any of its processes' command
    lines or environments (they hold the password files' paths)."""
    passwords = [f.read_text().strip() for f in (secure / "kafka").glob("*.password")]
    assert len(passwords) == 4
    root = psutil.Process(stack.process.pid)
    shown = [stack.output]
    for process in [root, *root.children(recursive=True)]:
        shown.append(" ".join(process.cmdline()))
        shown.append(" ".join(f"{k}={v}" for k, v in process.environ().items()))
    leaks = sum(password in text for password in passwords for text in shown)
    assert leaks == 0, f"{leaks} places show a password"  # counted, never printed
