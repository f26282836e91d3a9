"""The processes a benchmark measures: started pinned to CPUs, watched for CPU time and RSS.

The machine may have as few as 2 cores, shared by the broker, both services and the load
generator. Each process is pinned, so the server under test always gets the same core, and
the CPU each one used in a phase is reported beside the phase's figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from herald.rpc.client import wait_until_serving
from herald.tools.localkafka import free_ports

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pinning:
    """The server under test gets the last CPU to itself; everything else shares the rest."""

    server: str  # a taskset CPU list
    others: set[int]

    @classmethod
    def split(cls, cpus: set[int]) -> Pinning:
        ordered = sorted(cpus)
        last = ordered[-1]
        return cls(str(last), set(ordered[:-1]) or {last})

    @property
    def others_list(self) -> str:
        return ",".join(str(cpu) for cpu in sorted(self.others))


@dataclass
class Service:
    """`python -m <module>` on a free port, pinned to `cpus`, output appended to `log`."""

    module: str
    port_variable: str
    env: Mapping[str, str]
    log: Path
    cpus: str
    port: int = field(default_factory=lambda: free_ports(1)[0])
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.module} is not started")
        return self.process.pid

    def start(self, timeout_s: float = 60.0) -> float:
        """Start the process; return the seconds from spawning it to health SERVING."""
        with self.log.open("ab") as log:
            began = time.perf_counter()
            self.process = subprocess.Popen(
                ["taskset", "-c", self.cpus, sys.executable, "-m", self.module],
                env={**os.environ, **self.env, self.port_variable: str(self.port)},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_serving(self.target, timeout_s)
        except TimeoutError as error:
            self.stop()
            raise RuntimeError(f"{self.module} did not reach SERVING; see {self.log}") from error
        return time.perf_counter() - began

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rss_mib(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20


@contextmanager
def pinned(cpus: str) -> Iterator[None]:
    """Run the block on `cpus` (a taskset list), then return to the CPUs this thread had.

    A baseline measured in the bench's own process goes where the Herald side it is compared
    with ran, so neither gets a core the other did not. Threads started in the block (a
    librdkafka client's) keep the pinning: create and close the client inside it.
    """
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class CpuMeter:
    """CPU used by named processes over a phase, in cores (1.0 = one core busy throughout)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._began = time.monotonic()
        self._start = {name: _cpu_s(p) for name, p in self._processes.items()}

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self._began
        used = {}
        for name, process in self._processes.items():
            try:
                used[name] = round((_cpu_s(process) - self._start[name]) / wall, 3)
            except psutil.NoSuchProcess:
                used[name] = float("nan")
        return used


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
