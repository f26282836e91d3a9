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

from bench.progress import PARTITIONS
from herald.kafka.topics import EVENTS_TOPIC, TopicSpec
from herald.rpc.tls import ClientTls
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import PORT_VARIABLES, ServiceProcess
from herald.tools.topic_admin import ensure_topics

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pinning:
    """The server under test gets the last CPU to itself; everything else shares the rest."""

    server: str  # a taskset CPU list
    others: set[int]

    @classmethod
    def for_this_process(cls) -> Pinning:
        """The split of this process's CPUs; this process (and the broker and ghz it starts)
        moves onto the shared ones."""
        pinning = cls.split(os.sched_getaffinity(0))
        os.sched_setaffinity(0, pinning.others)
        return pinning

    @classmethod
    def split(cls, cpus: set[int]) -> Pinning:
        ordered = sorted(cpus)
        last = ordered[-1]
        return cls(str(last), set(ordered[:-1]) or {last})

    @property
    def others_list(self) -> str:
        return ",".join(str(cpu) for cpu in sorted(self.others))


def bench_topic(bootstrap: str, name: str) -> None:
    """A topic of the bench's own, partitioned like the events topic, kept an hour."""
    ensure_topics(bootstrap, (TopicSpec(name, PARTITIONS, 3_600_000),))


@contextmanager
def bench_broker(workdir: Path) -> Iterator[LocalKafka]:
    """A one-node broker of the bench's own under `workdir`, Herald's topics made; stopped
    when the block ends."""
    libs = Path(os.environ.get("KAFKA_LIBS", REPO / ".cache" / "kafka-libs"))
    cluster = LocalKafka.on_free_ports(libs_dir=libs, run_dir=workdir / "kafka", node_count=1)
    cluster.start()
    try:
        ensure_topics(cluster.bootstrap_servers)
        yield cluster
    finally:
        cluster.stop()


class Services:
    """users_svc, auth_svc and the no-op server as a phase starts them: pinned, pointed at the
    bench's broker, each with a log of its own in the work folder."""

    def __init__(self, workdir: Path, cluster: LocalKafka, pinning: Pinning) -> None:
        self._workdir = workdir
        self._cluster = cluster
        self._pinning = pinning
        self._started = 0

    def users(
        self,
        data: Path,
        log_level: str = "INFO",
        env: Mapping[str, str] | None = None,
        tls: ClientTls | None = None,
    ) -> ServiceProcess:
        """users_svc on `data`; `env` adds settings (TLS, tokens), `tls` is how to reach it."""
        settings = {"USERS_DATA_DIR": str(data), "USERS_RELAY_TIMEOUT_S": "5"}
        return self._service(
            "users_svc",
            self._pinning.server,
            {**settings, "LOG_LEVEL": log_level, **(env or {})},
            tls=tls,
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
        self,
        module: str,
        cpus: str,
        env: dict[str, str],
        port_variable: str = "",
        tls: ClientTls | None = None,
    ) -> ServiceProcess:
        self._started += 1
        log = self._workdir / f"{self._started:02d}-{module}.log"
        env = {"KAFKA_BOOTSTRAP_SERVERS": self._cluster.bootstrap_servers, **env}
        return ServiceProcess(
            module, env, log=log, port_variable=port_variable, cpus=cpus, cwd=REPO, tls=tls
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
        self._threads_start = {name: thread_cpu_s(p.pid) for name, p in self._processes.items()}

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self._began
        return {name: round(used / wall, 3) for name, used in self.seconds().items()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds each process used since the meter started."""
        used = {}
        for name, process in self._processes.items():
            try:
                used[name] = _cpu_s(process) - self._start[name]
            except psutil.NoSuchProcess:
                used[name] = float("nan")
        return used

    def thread_seconds(self, name: str) -> dict[str, float]:
        """CPU seconds process `name`'s threads used since the meter started, by OS thread
        name (herald.lifecycle.name_os_thread gives Herald's threads theirs)."""
        before = self._threads_start[name]
        by_name: dict[str, float] = {}
        for tid, (comm, seconds) in thread_cpu_s(self._processes[name].pid).items():
            used = seconds - before.get(tid, ("", 0.0))[1]
            by_name[comm] = by_name.get(comm, 0.0) + used
        return by_name


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """Each live thread of `pid`: its OS name and the CPU seconds it used, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        # "tid (comm) state ...": comm may hold spaces, so split after its closing paren.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        threads[int(task.name)] = (comm, (utime + stime) / ticks)
    return threads


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
