"""Starting, stopping and killing the services as real processes, with their logs kept."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from herald.rpc.client import wait_until_serving
from herald.tools.localkafka import free_ports
from tests.conftest import REPO

# Every process started here, so none outlives the run: a test that fails half-way would
# otherwise leave its services running (and holding ports) after pytest exits.
STARTED: list[ServiceProcess] = []


@dataclass
class ServiceProcess:
    """`python -m <module>` on a free port; output appended to `log`."""

    module: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=lambda: free_ports(1)[0])
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        port_variable = "USERS_GRPC_PORT" if self.module == "users_svc" else "AUTH_GRPC_PORT"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env={**os.environ, **self.env, port_variable: str(self.port)},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        STARTED.append(self)
        try:
            wait_until_serving(self.target, timeout_s=timeout_s)
        except TimeoutError:
            raise TimeoutError(f"{self.module} not serving:\n{self.log_text()}") from None

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: the exit code (0 is a clean shutdown)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@atexit.register
def _kill_leftovers() -> None:
    for service in STARTED:
        service.kill_if_running()
