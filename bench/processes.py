"""The processes a benchmark measures: started pinned to CPUs, watched for CPU time and RSS.

The machine may have as few as 2 cores, shared by the broker, both services and the load
generator. Each process is pinned, so the server under test always gets the same core, and
the CPU each one used in a phase is reported beside the phase's figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from herald.tools.processes import ServiceProcess

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


def rss_mib(service: ServiceProcess) -> float:
    return psutil.Process(service.pid).memory_info().rss / 2**20


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
