"""The services as processes: `python -m <module>` on a port of its own, up once its health says
SERVING, down with SIGTERM (SIGKILL after a grace). `herald up`, the bench and the tests all
start them through ServiceProcess, and every one started is killed at exit if still running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from herald.rpc.client import wait_until_serving
from herald.rpc.tls import ClientTls

# The variable each service reads its gRPC port from.
PORT_VARIABLES = {"users_svc": "USERS_GRPC_PORT", "auth_svc": "AUTH_GRPC_PORT"}


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass
class ServiceProcess:
    """One service process. Its output is appended to `log`, or, without one, printed on this
    terminal behind `[label] `; with `cpus` (a taskset list) it runs pinned to them. With
    `own_session`, Ctrl-C in the terminal reaches only the parent, which then stops its
    children in order; without, the child gets it too."""

    module: str
    env: Mapping[str, str]
    log: Path | None = None
    label: str = ""
    port: int = field(default_factory=lambda: free_ports(1)[0])
    port_variable: str = ""  # by default the one PORT_VARIABLES names for the module
    cpus: str | None = None
    cwd: Path | None = None
    own_session: bool = False
    tls: ClientTls | None = None  # how to reach it when it serves TLS
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.module} is not started")
        return self.process.pid

    def start(self, timeout_s: float = 30.0) -> float:
        """Start it and wait for SERVING; return the seconds from spawning it to SERVING."""
        began = time.perf_counter()
        self.spawn()
        self.wait_serving(timeout_s)
        return time.perf_counter() - began

    def spawn(self) -> None:
        """Start the process, without waiting for it to serve."""
        port_variable = self.port_variable or PORT_VARIABLES[self.module]
        command = [sys.executable, "-m", self.module]
        if self.cpus is not None:
            command = ["taskset", "-c", self.cpus, *command]
        with self.log.open("ab") if self.log is not None else contextlib.nullcontext() as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **self.env, port_variable: str(self.port)},
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_session,
            )
        _STARTED.append(self)
        if log is None and self.process.stdout is not None:
            _copy_lines(self.process.stdout, f"[{self.label or self.module}] ")

    def wait_serving(self, timeout_s: float = 30.0) -> None:
        """Wait until its health says SERVING; stop it and raise TimeoutError if it does not."""
        try:
            wait_until_serving(self.target, timeout_s=timeout_s, tls=self.tls)
        except TimeoutError:
            self.stop(grace_s=5)
            output = self.log_text() if self.log is not None else "(its output is above)"
            raise TimeoutError(f"{self.module} not serving:\n{output}") from None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM, and SIGKILL if it outlives the grace: its exit code, 0 after a clean
        shutdown; None if it was never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> int | None:
        """SIGKILL, as a crash or the OOM killer would: its exit code (-9 once it is gone),
        None if it was never started."""
        if self.process is None:
            return None
        self.process.kill()
        return self.process.wait(10)

    def kill_if_running(self) -> None:
        if self.running():
            self.kill()

    def log_text(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")


# Every process started here, so none outlives its parent: a test that fails half-way would
# otherwise leave services running (and holding ports) after it exits.
_STARTED: list[ServiceProcess] = []


def started() -> list[ServiceProcess]:
    """Every ServiceProcess this process has started, oldest first."""
    return list(_STARTED)


@atexit.register
def _kill_leftovers() -> None:
    for service in _STARTED:
        service.kill_if_running()


def _copy_lines(stream: IO[bytes], prefix: str) -> None:
    """Print what a child writes, line by line behind `prefix`, from a thread of its own."""

    def copy() -> None:
        for line in stream:
            sys.stdout.write(prefix + line.decode(errors="replace"))
            sys.stdout.flush()

    threading.Thread(target=copy, name=f"output-{prefix.strip()}", daemon=True).start()
