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

from herald.kafka.topics import EVENTS_TOPIC
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import PORT_VARIABLES, ServiceProcess

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


class Services:
    """users_svc, auth_svc and the no-op server as a phase starts them: pinned, pointed at the
    bench's broker, each with a log of its own in the work folder."""

    def __init__(self, workdir: Path, cluster: LocalKafka, pinning: Pinning) -> None:
        self._workdir = workdir
        self._cluster = cluster
        self._pinning = pinning
        self._started = 0

    def users(self, data: Path, log_level: str = "INFO") -> ServiceProcess:
        return self._service(
            "users_svc",
            self._pinning.server,
            {"USERS_DATA_DIR": str(data), "USERS_RELAY_TIMEOUT_S": "5", "LOG_LEVEL": log_level},
        )

    def auth(self, data: Path, group: str, topic: str = EVENTS_TOPIC) -> ServiceProcess:
        return self._service(
            "auth_svc",
            self._pinning.others_list,
            {
                "AUTH_DATA_DIR": str(data),
                "AUTH_CONSUMER_GROUP": group,
                "HERALD_EVENTS_TOPIC": topic,
                "AUTH_MAX_LAG": str(10**9),
            },
        )

    def noop(self) -> ServiceProcess:
        # It stands in for users_svc, so it reads users_svc's port variable.
        port_variable = PORT_VARIABLES["users_svc"]
        return self._service("bench.noop_server", self._pinning.server, {}, port_variable)

    def _service(
        self, module: str, cpus: str, env: dict[str, str], port_variable: str = ""
    ) -> ServiceProcess:
        self._started += 1
        log = self._workdir / f"{self._started:02d}-{module}.log"
        env = {"KAFKA_BOOTSTRAP_SERVERS": self._cluster.bootstrap_servers, **env}
        return ServiceProcess(
            module, env, log=log, port_variable=port_variable, cpus=cpus, cwd=REPO
        )

    @contextmanager
    def running(self, *services: ServiceProcess) -> Iterator[None]:
        try:
            for service in services:
                service.start(timeout_s=60)
            yield
        finally:
            for service in services:
                service.stop()

    def meter(self, **services: ServiceProcess) -> CpuMeter:
        """CPU of these services, the broker and the bench process, from now on."""
        pids = {name: s.pid for name, s in services.items()}
        broker = self._cluster.status().get(1)
        if broker is not None:
            pids["broker"] = broker
        pids["bench"] = os.getpid()
        return CpuMeter(pids)


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
