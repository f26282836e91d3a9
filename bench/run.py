"""`make bench`: Herald measured against the bare libraries beneath it, in one run.

Every figure is a ratio to a baseline measured in the same run, on the same broker and
machine, with the same load generator settings:

  rpc_throughput       CreateUser's max RPS / a no-op UserService's max RPS
  rpc_p99              CreateUser p99 / no-op p99, both at half CreateUser's max rate
  e2e_p99_vs_bare      p99 from CreateUser's start to the account committed in auth_svc
                       / p99 of a bare produce -> consume round trip, same rate and record
  consumer_throughput  auth_svc events applied/s over a pre-filled topic
                       / a bare consume-and-decode loop over the same topic
  relay_throughput     outbox rows published/s after an outage backlog
                       / a bare idempotent producer sending the same records
  startup_users        users_svc spawn -> SERVING / `import grpc, confluent_kafka`
  startup_auth         auth_svc spawn -> SERVING (assignment held) / the same import
  rss_growth           RSS after the last CreateUser / RSS after the first thousand (the
                       larger of the two services)

The server under test runs alone on the last CPU; the broker, auth_svc, ghz and this
process share the others. `--smoke` runs every phase with tiny sizes, so `make test` keeps
this code working; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from confluent_kafka import Consumer, TopicPartition

from bench import bare, report
from bench.ghz import Ghz, GhzResult, Load
from bench.observer import POLL_S, AccountWatcher
from bench.processes import REPO, CpuMeter, Pinning, pinned, rss_mib
from bench.stats import Latencies
from bench.versions import environment
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka.records import Record
from herald.kafka.topics import EVENTS_TOPIC, TopicSpec
from herald.timestamps import from_micros
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess
from herald.tools.topic_admin import ensure_topics
from users_svc.events import EventRecordFactory
from users_svc.model import User, new_user_id

PARTITIONS = 6  # as the events topic has


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    name: str
    seconds: float  # each fixed-duration load
    warmup_s: float
    concurrency: int  # ghz workers in the closed-loop runs
    connections: int
    light_rate: int  # calls/s for the absolute end-to-end figure
    backlog: int  # users created while the broker is down
    memory_base: int  # calls before the first RSS sample
    prefill: int  # events for the consumer figure
    startups: int  # starts of each service; the median is reported


FULL = Plan("full", 15, 3, 32, 1, 100, 100_000, 1_000, 200_000, 5)
SMOKE = Plan("smoke", 1, 0.3, 4, 1, 50, 300, 100, 2_000, 1)


class Bench:
    def __init__(
        self, plan: Plan, workdir: Path, cluster: LocalKafka, ghz: Ghz, pinning: Pinning
    ) -> None:
        self.plan = plan
        self.workdir = workdir
        self.cluster = cluster
        self.bootstrap = cluster.bootstrap_servers
        self.ghz = ghz
        self.server_cpus = pinning.server
        self.other_cpus = pinning.others_list
        self.raw: dict[str, Any] = {}  # every measured figure, by phase
        self.series: dict[str, Latencies] = {}  # latency distributions for the plot
        self._services = 0

    # --- processes ---

    def users(self, data: Path, log_level: str = "INFO") -> ServiceProcess:
        return self._service(
            "users_svc",
            "USERS_GRPC_PORT",
            self.server_cpus,
            {"USERS_DATA_DIR": str(data), "USERS_RELAY_TIMEOUT_S": "5", "LOG_LEVEL": log_level},
        )

    def auth(self, data: Path, group: str, topic: str = EVENTS_TOPIC) -> ServiceProcess:
        return self._service(
            "auth_svc",
            "AUTH_GRPC_PORT",
            self.other_cpus,
            {
                "AUTH_DATA_DIR": str(data),
                "AUTH_CONSUMER_GROUP": group,
                "HERALD_EVENTS_TOPIC": topic,
                "AUTH_MAX_LAG": str(10**9),
            },
        )

    def noop(self) -> ServiceProcess:
        return self._service("bench.noop_server", "USERS_GRPC_PORT", self.server_cpus, {})

    def _service(
        self, module: str, port_var: str, cpus: str, env: dict[str, str]
    ) -> ServiceProcess:
        self._services += 1
        log = self.workdir / f"{self._services:02d}-{module}.log"
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, **env}
        return ServiceProcess(module, env, log=log, port_variable=port_var, cpus=cpus, cwd=REPO)

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
        pids = {name: s.pid for name, s in services.items()}
        broker = self.cluster.status().get(1)
        if broker is not None:
            pids["broker"] = broker
        pids["bench"] = os.getpid()
        return CpuMeter(pids)

    # --- phases ---

    def startup(self) -> None:
        """Spawn -> SERVING for each service, against the import time of its libraries."""
        n = self.plan.startups
        imports = [self._import_time() for _ in range(max(n, 3))]
        users_dir, auth_dir = self.workdir / "startup-users", self.workdir / "startup-auth"
        users_s, auth_s = [], []
        for _ in range(n):
            users = self.users(users_dir)
            users_s.append(users.start(timeout_s=60))
            users.stop()
        for _ in range(n):
            # The same group each time: a restart, as a deploy does.
            auth = self.auth(auth_dir, "bench-startup")
            auth_s.append(auth.start(timeout_s=60))
            auth.stop()
        self.raw["startup"] = {
            "import_grpc_confluent_kafka_s": _spread(imports),
            "users_svc_s": _spread(users_s),
            "auth_svc_s": _spread(auth_s),
        }

    def _import_time(self) -> float:
        began = time.perf_counter()
        subprocess.run(
            [
                "taskset",
                "-c",
                self.server_cpus,
                sys.executable,
                "-c",
                "import grpc, confluent_kafka",
            ],
            check=True,
        )
        return time.perf_counter() - began

    def rpc_and_e2e(self) -> None:
        """Max RPS and latency at half of it, no-op vs CreateUser; end-to-end vs bare."""
        plan = self.plan
        closed = Load(plan.concurrency, plan.connections, seconds=plan.seconds)
        warmup = Load(plan.concurrency, plan.connections, seconds=plan.warmup_s)
        noop = self.noop()
        users = self.users(self.workdir / "rpc-users")
        auth = self.auth(self.workdir / "rpc-auth", "bench-rpc")
        with self.running(noop, users, auth):
            self.ghz.create_users(noop.target, warmup, "warm")
            meter = self.meter(noop=noop)
            noop_max = self.ghz.create_users(noop.target, closed, "noop-max")
            noop_max_cpu = meter.cores()

            self.ghz.create_users(users.target, warmup, "warm")
            meter = self.meter(users_svc=users, auth_svc=auth)
            users_max = self.ghz.create_users(users.target, closed, "max")
            users_max_cpu = meter.cores()

            half = max(int(users_max.rps / 2), 10)
            at_half = Load(max(plan.concurrency, 64), plan.connections, plan.seconds, rps=half)
            light = Load(16, plan.connections, plan.seconds, rps=plan.light_rate)
            noop_half = self.ghz.create_users(noop.target, at_half, "noop-half")
            with AccountWatcher(self.workdir / "rpc-auth" / "auth.sqlite3") as watcher:
                meter = self.meter(users_svc=users, auth_svc=auth)
                users_half = self.ghz.create_users(users.target, at_half, "half")
                users_half_cpu = meter.cores()
                e2e_half = watcher.latencies("half", users_half.ok)
                users_light = self.ghz.create_users(users.target, light, "light")
                e2e_light = watcher.latencies("light", users_light.ok)

        size = len(_sample_record().value)
        bare_half = self._round_trip(half)
        bare_light = self._round_trip(plan.light_rate)
        self.raw["rpc"] = {
            "noop_max": {**noop_max.summary(), "cpu_cores": noop_max_cpu},
            "create_user_max": {**users_max.summary(), "cpu_cores": users_max_cpu},
            "half_rate": half,
            "noop_at_half": noop_half.summary(),
            "create_user_at_half": {**users_half.summary(), "cpu_cores": users_half_cpu},
            "create_user_light": users_light.summary(),
        }
        self.raw["e2e"] = {
            "observer_poll_ms": POLL_S * 1000,
            "record_bytes": size,
            "herald_at_half_ms": e2e_half.summary(),
            "bare_at_half_ms": bare_half.summary(),
            "herald_light_ms": e2e_light.summary(),
            "bare_light_ms": bare_light.summary(),
        }
        self.series = {
            "no-op @ half": noop_half.latencies,
            "CreateUser @ half": users_half.latencies,
            "end-to-end @ half": e2e_half,
            "bare round trip @ half": bare_half,
        }
        self._check(noop_max, users_max, noop_half, users_half, users_light)

    def _topic(self, name: str) -> None:
        """A topic of the bench's own, partitioned like the events topic, kept an hour."""
        ensure_topics(self.bootstrap, (TopicSpec(name, PARTITIONS, 3_600_000),))

    def _round_trip(self, rate: int) -> Latencies:
        topic = "bench.round-trip"
        self._topic(topic)
        return bare.round_trip(
            self.bootstrap,
            topic,
            _sample_record(),
            partitions=PARTITIONS,
            rate=rate,
            seconds=self.plan.seconds,
        )

    def memory_and_relay(self) -> None:
        """RSS after the first calls and after the outage backlog; the relay's drain of it."""
        plan = self.plan
        users = self.users(self.workdir / "relay-users")
        auth = self.auth(self.workdir / "relay-auth", "bench-relay")
        closed = Load(plan.concurrency, plan.connections)
        with self.running(users, auth):
            base = self.ghz.create_users(users.target, _calls(closed, plan.memory_base), "base")
            _wait_applied(auth.target, base.ok)
            rss_first = {"users_svc": rss_mib(users), "auth_svc": rss_mib(auth)}

            size = _TopicSize(self.bootstrap)
            published = size()
            size.close()
            self.cluster.stop_node(1)
            backlog = self.ghz.create_users(users.target, _calls(closed, plan.backlog), "backlog")
            # users_svc right after its last call, as the figure is defined; it is sampled
            # again after the drain, when the relay's batches have passed through it.
            users_after_calls = rss_mib(users)
            self.cluster.start_node(1)
            meter = self.meter(users_svc=users, auth_svc=auth)
            drain = _time_drain(self.bootstrap, published, backlog.ok)
            drain_cpu = meter.cores()
            _wait_applied(auth.target, base.ok + backlog.ok, timeout_s=900)
            rss_last = {"users_svc": users_after_calls, "auth_svc": rss_mib(auth)}
            rss_after_drain = {"users_svc": rss_mib(users), "auth_svc": rss_last["auth_svc"]}

        records = _backlog_records(self.workdir / "relay-users" / "users.sqlite3", backlog.ok)
        self._topic("bench.bare-relay")
        # On the core the relay had (it runs in users_svc), the broker on the others.
        with pinned(self.server_cpus):
            bare_send = bare.produce_throughput(self.bootstrap, records, "bench.bare-relay")
        self.raw["relay"] = {
            "backlog": backlog.ok,
            "backlog_calls": backlog.summary(),
            **drain,
            "cpu_cores": drain_cpu,
            "bare_producer": bare_send.summary(),
        }
        self.raw["memory"] = {
            "calls_first": base.ok,
            "calls_last": base.ok + backlog.ok,
            "rss_first_mib": _rounded(rss_first),
            "rss_last_mib": _rounded(rss_last),
            "rss_after_drain_mib": _rounded(rss_after_drain),
        }

    def consumer(self) -> None:
        """auth_svc over a pre-filled topic, against a bare consume-and-decode loop."""
        topic = "bench.prefill"
        self._topic(topic)
        records = _user_created_records(topic, self.plan.prefill)
        bare.produce_throughput(self.bootstrap, records, topic)
        auth = self.auth(self.workdir / "consumer-auth", "bench-consumer", topic=topic)
        with self.running(auth):
            meter = self.meter(auth_svc=auth)
            began = time.perf_counter()
            _wait_applied(auth.target, len(records), timeout_s=900)
            seconds = time.perf_counter() - began
            cpu = meter.cores()
        herald = bare.Throughput(len(records), seconds)
        bare_loop = bare.consume_throughput(self.bootstrap, topic, len(records), "bench-bare")
        self.raw["consumer"] = {
            "events": len(records),
            "auth_svc": {**herald.summary(), "cpu_cores": cpu},
            "bare_consume_decode": bare_loop.summary(),
        }

    # --- results ---

    def ratios(self) -> dict[str, float]:
        raw = self.raw
        rpc, e2e, startup = raw["rpc"], raw["e2e"], raw["startup"]
        imported = startup["import_grpc_confluent_kafka_s"]["median"]
        rss = raw["memory"]
        growth = {
            name: rss["rss_last_mib"][name] / rss["rss_first_mib"][name]
            for name in rss["rss_first_mib"]
        }
        figures = {
            "rpc_throughput": rpc["create_user_max"]["rps"] / rpc["noop_max"]["rps"],
            "rpc_p99": rpc["create_user_at_half"]["latency_ms"]["p99"]
            / rpc["noop_at_half"]["latency_ms"]["p99"],
            "e2e_p99_vs_bare": e2e["herald_at_half_ms"]["p99"] / e2e["bare_at_half_ms"]["p99"],
            "consumer_throughput": raw["consumer"]["auth_svc"]["per_s"]
            / raw["consumer"]["bare_consume_decode"]["per_s"],
            "relay_throughput": raw["relay"]["events_per_s"]
            / raw["relay"]["bare_producer"]["per_s"],
            "startup_users": startup["users_svc_s"]["median"] / imported,
            "startup_auth": startup["auth_svc_s"]["median"] / imported,
            "rss_growth": max(growth.values()),
        }
        return {name: round(value, 3) for name, value in figures.items()}

    def _check(self, *runs: GhzResult) -> None:
        """A run with failed calls measures errors, not Herald: stop rather than report it."""
        for run in runs:
            if run.ok < run.calls:
                raise RuntimeError(f"{run.calls - run.ok} calls failed: {run.statuses}")


def _calls(load: Load, total: int) -> Load:
    return Load(load.concurrency, load.connections, total=total)


def _spread(samples: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "samples": [round(s, 4) for s in samples],
    }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 1) for name, value in values.items()}


def _sample_record() -> Record:
    now = datetime.now(UTC)
    user = User(
        "00000000-0000-4000-8000-000000000000", "Bench User", "b@bench.example", now, now, 1
    )
    return EventRecordFactory("bench.round-trip", "/herald/users-svc").user_created(user)


def _user_created_records(topic: str, count: int) -> list[Record]:
    """UserCreated records as users_svc makes them, ids included (their order matters to
    auth_svc's indexes)."""
    records = EventRecordFactory(topic, "/herald/bench")
    now = datetime.now(UTC)
    return [
        records.user_created(User(new_user_id(), "Bench User", f"u{n}@bench.example", now, now, 1))
        for n in range(count)
    ]


def _applied(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        status = stub.GetConsumerStatus(auth_pb2.GetConsumerStatusRequest(), timeout=5)
        return int(status.events_applied)


def _wait_applied(target: str, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (applied := _applied(target)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"auth_svc applied {applied} of {count} events in {timeout_s} s")
        time.sleep(0.02)


class _TopicSize:
    """Records on the events topic (the sum of its end offsets), asked of the broker."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})

    def __call__(self) -> int:
        return sum(
            self._consumer.get_watermark_offsets(TopicPartition(EVENTS_TOPIC, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )

    def close(self) -> None:
        self._consumer.close()


def _time_drain(bootstrap: str, published: int, backlog: int) -> dict[str, float]:
    """From the broker being back to the whole backlog on the topic: the relay's drain."""
    size = _TopicSize(bootstrap)
    ready = time.perf_counter()
    first = None
    try:
        while (on_topic := size() - published) < backlog:
            now = time.perf_counter()
            if first is None and on_topic > 0:
                first = now
            if now - ready > 900:
                raise RuntimeError(f"relay: {on_topic} of {backlog} events after 900 s")
            time.sleep(0.005)
    finally:
        size.close()
    done = time.perf_counter()
    first = first or done
    return {
        # The relay's backoff showing through: from the broker back to its first event.
        "resume_s": round(first - ready, 3),
        "drain_s": round(done - first, 3),
        "events_per_s": round(backlog / max(done - first, 1e-6)),
    }


def _backlog_records(database: Path, count: int) -> list[Record]:
    """The UserCreated records of the last `count` users: what the relay published."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT id, name, email, create_time_us, version FROM users"
            " ORDER BY create_time_us DESC LIMIT ?",
            (count,),
        ).fetchall()
    finally:
        connection.close()
    records = EventRecordFactory(EVENTS_TOPIC, "/herald/users-svc")
    return [
        records.user_created(User(id_, name, email, from_micros(t), from_micros(t), version))
        for id_, name, email, t, version in reversed(rows)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code runs")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--ghz", type=Path, default=REPO / ".bin" / "ghz")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    # This process, the broker it starts and ghz share every CPU but the last.
    pinning = Pinning.split(os.sched_getaffinity(0))
    os.sched_setaffinity(0, pinning.others)
    libs = Path(os.environ.get("KAFKA_LIBS", REPO / ".cache" / "kafka-libs"))
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as folder:
        workdir = Path(folder)
        cluster = LocalKafka.on_free_ports(libs_dir=libs, run_dir=workdir / "kafka", node_count=1)
        cluster.start()
        try:
            ensure_topics(cluster.bootstrap_servers)
            ghz = Ghz(args.ghz, REPO / "herald" / "descriptors.binpb", workdir)
            bench = Bench(plan, workdir, cluster, ghz, pinning)
            for phase in (bench.startup, bench.rpc_and_e2e, bench.memory_and_relay, bench.consumer):
                print(f"bench: {phase.__name__} ...", flush=True)
                phase_began = time.monotonic()
                phase()
                print(f"bench: {phase.__name__} done in {time.monotonic() - phase_began:.0f} s")
        finally:
            cluster.stop()
    results = {
        "plan": asdict(plan),
        "started": began.isoformat(timespec="seconds"),
        "ratios": bench.ratios(),
        "e2e_p99_ms": bench.raw["e2e"]["herald_light_ms"]["p99"],
        "raw": bench.raw,
        "pinning": {"server_under_test": bench.server_cpus, "everything_else": bench.other_cpus},
        "environment": environment(args.ghz),
        "command": " ".join(sys.argv),
    }
    paths = report.write(results, bench.series, args.results, began)
    print(report.table(results))
    print("\n".join(f"wrote {path}" for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
