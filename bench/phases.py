"""The bench's phases, each measuring Herald and its baseline in turn.

Each phase starts the services it needs on data of its own and stops them before the next,
so no phase measures another's leftovers. The figures go into `raw` by phase, and the
alternating pairs behind each throughput ratio into `raw["pairs"]`; bench.ratios turns them
into the figures `make bench` is judged by.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import bare, rpc_phase
from bench.ghz import Ghz, GhzResult, Load
from bench.lean import lean_apply_throughput
from bench.plan import Plan
from bench.processes import Pinning, Services, bench_topic, pinned, rss_mib
from bench.progress import PARTITIONS, TopicSize, time_drain, wait_applied
from bench.ratios import pair
from bench.records import sample_record, user_created_records
from bench.stats import Latencies
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess

# The topic the relay phase's users_svc publishes to (see Bench.pipeline).
RELAY_TOPIC = "bench.relay"


class Bench:
    """One run's phases, called in turn by bench.run; each adds its figures to `raw`."""

    def __init__(
        self, plan: Plan, workdir: Path, cluster: LocalKafka, ghz: Ghz, pinning: Pinning
    ) -> None:
        self.plan = plan
        self.workdir = workdir
        self.cluster = cluster
        self.bootstrap = cluster.bootstrap_servers
        self.ghz = ghz
        self.server_cpus = pinning.server
        self.others_cpus = pinning.others_list
        self.services = Services(workdir, cluster, pinning)
        self.raw: dict[str, Any] = {"pairs": {}}  # every measured figure, by phase
        self.series: dict[str, Latencies] = {}  # latency distributions for the plot

    # --- phases ---

    def startup(self) -> None:
        """Spawn -> SERVING for each service, against the import time of its libraries."""
        n = self.plan.startups
        imports = [self._import_time() for _ in range(max(n, 3))]
        users_dir, auth_dir = self.workdir / "startup-users", self.workdir / "startup-auth"
        users_s, auth_s = [], []
        for _ in range(n):
            users = self.services.users(users_dir)
            users_s.append(users.start(timeout_s=60))
            users.stop()
        for _ in range(n):
            # The same group each time: a restart, as a deploy does.
            auth = self.services.auth(auth_dir, "bench-startup")
            auth_s.append(auth.start(timeout_s=60))
            auth.stop()
        self.raw["startup"] = {
            "import_grpc_confluent_kafka_s": _spread(imports),
            "users_svc_s": _spread(users_s),
            "auth_svc_s": _spread(auth_s),
        }

    def _import_time(self) -> float:
        began = time.perf_counter()
        command = [sys.executable, "-c", "import grpc, confluent_kafka"]
        subprocess.run(["taskset", "-c", self.server_cpus, *command], check=True)
        return time.perf_counter() - began

    def rpc_and_e2e(self) -> None:
        """Max RPS (no-op, CreateUser, secured CreateUser), CPU per call and latency at half of
        it, end-to-end against a bare round trip: see bench.rpc_phase."""
        rpc_phase.rpc_and_e2e(self)

    def memory(self) -> None:
        """RSS after the first calls and after an outage's backlog of calls."""
        plan, services = self.plan, self.services
        users, auth = self.pipeline("memory")
        closed = Load(plan.concurrency, plan.connections)
        with services.running(users, auth):
            base = self.ghz.create_users(users.target, _calls(closed, plan.memory_base), "base")
            wait_applied(auth.target, base.ok)
            rss_first = {"users_svc": rss_mib(users), "auth_svc": rss_mib(auth)}
            self.cluster.stop_node(1)
            backlog = self.ghz.create_users(users.target, _calls(closed, plan.backlog), "backlog")
            # users_svc right after its last call, as the figure is defined; it is sampled
            # again after the drain, when the relay's batches have passed through it.
            users_after_calls = rss_mib(users)
            self.cluster.start_node(1)
            wait_applied(auth.target, base.ok + backlog.ok, timeout_s=900)
            rss_last = {"users_svc": users_after_calls, "auth_svc": rss_mib(auth)}
            rss_after_drain = {"users_svc": rss_mib(users), "auth_svc": rss_last["auth_svc"]}
        self.check(base, backlog)
        self.raw["memory"] = {
            "calls_first": base.ok,
            "calls_last": base.ok + backlog.ok,
            "rss_first_mib": _rounded(rss_first),
            "rss_last_mib": _rounded(rss_last),
            "rss_after_drain_mib": _rounded(rss_after_drain),
        }

    def relay(self) -> None:
        """The relay draining an outage's backlog, against a bare idempotent producer sending
        as many records of the same shape, in alternating pairs. Each side has an auth_svc
        consuming what it sends, as a deployment does."""
        plan, services = self.plan, self.services
        users, auth = self.pipeline("relay")
        self.topic("bench.bare-relay")
        bare_auth = services.auth(
            self.workdir / "bare-relay-auth", "bench-bare-relay", topic="bench.bare-relay"
        )
        closed = Load(plan.concurrency, plan.connections)
        rounds: list[dict[str, Any]] = []
        with services.running(users, auth, bare_auth):
            for n in range(plan.pairs):
                records = user_created_records("bench.bare-relay", plan.relay_backlog)
                # On the core the relay has (it runs in users_svc), the broker on the others.
                with pinned(self.server_cpus):
                    bare_send = bare.produce_throughput(
                        self.bootstrap, records, "bench.bare-relay", warm=True
                    )
                size = TopicSize(self.bootstrap, RELAY_TOPIC)
                published = size()
                size.close()
                self.cluster.stop_node(1)
                calls = _calls(closed, plan.relay_backlog)
                backlog = self.ghz.create_users(users.target, calls, f"relay{n}")
                self.check(backlog)
                self.cluster.start_node(1)
                meter = services.meter(users_svc=users, auth_svc=auth)
                drain = time_drain(self.bootstrap, RELAY_TOPIC, published, backlog.ok)
                rounds.append(
                    {
                        "backlog": backlog.ok,
                        **drain,
                        "cpu_cores": meter.cores(),
                        "bare_producer": bare_send.summary(),
                    }
                )
                wait_applied(auth.target, _applied_total(rounds), timeout_s=900)
        self.raw["relay"] = {"rounds": rounds}
        self.raw["pairs"]["relay_throughput"] = [
            pair(r["bare_producer"]["per_s"], r["events_per_s"]) for r in rounds
        ]

    def consumer(self) -> None:
        """auth_svc over a pre-filled topic, against the bare consume-and-decode loop and the
        lean apply loop (bench.lean) over the same topic, in alternating rounds."""
        topic = "bench.prefill"
        self.topic(topic)
        records = user_created_records(topic, self.plan.prefill)
        bare.produce_throughput(self.bootstrap, records, topic)
        rounds: list[dict[str, Any]] = []
        for n in range(self.plan.pairs):
            bare_loop = bare.consume_throughput(self.bootstrap, topic, len(records), f"bare{n}")
            auth = self.services.auth(
                self.workdir / f"consumer-auth-{n}", f"bench-consumer-{n}", topic=topic
            )
            with self.services.running(auth):
                meter = self.services.meter(auth_svc=auth)
                began = time.perf_counter()
                wait_applied(auth.target, len(records), timeout_s=900)
                seconds = time.perf_counter() - began
                cpu = meter.cores()
            herald = bare.Throughput(len(records), seconds)
            # Where auth_svc ran: on the cores the server under test does not have.
            with pinned(self.others_cpus):
                lean = lean_apply_throughput(
                    self.bootstrap, topic, len(records), f"lean{n}", self.workdir / f"lean{n}.db"
                )
            rounds.append(
                {
                    "auth_svc": {**herald.summary(), "cpu_cores": cpu},
                    "bare_consume_decode": bare_loop.summary(),
                    "lean_apply": lean.summary(),
                }
            )
        self.raw["consumer"] = {"events": len(records), "rounds": rounds}
        self.raw["pairs"]["consumer_throughput"] = [
            pair(r["bare_consume_decode"]["per_s"], r["auth_svc"]["per_s"]) for r in rounds
        ]
        self.raw["pairs"]["consumer_vs_lean_apply"] = [
            pair(r["lean_apply"]["per_s"], r["auth_svc"]["per_s"]) for r in rounds
        ]

    # --- shared by the phases ---

    def pipeline(self, name: str) -> tuple[ServiceProcess, ServiceProcess]:
        """A users_svc and an auth_svc joined by a topic of their own, `bench.<name>`: a
        group reading the events topic from its start would first work through every
        earlier phase's events, and the phase would measure that too."""
        topic = f"bench.{name}"
        self.topic(topic)
        users = self.services.users(
            self.workdir / f"{name}-users", env={"HERALD_EVENTS_TOPIC": topic}
        )
        auth = self.services.auth(self.workdir / f"{name}-auth", f"bench-{name}", topic=topic)
        return users, auth

    def topic(self, name: str) -> None:
        """A topic of the bench's own (bench.processes.bench_topic)."""
        bench_topic(self.bootstrap, name)

    def round_trip(self, rate: int) -> Latencies:
        topic = "bench.round-trip"
        self.topic(topic)
        return bare.round_trip(
            self.bootstrap,
            topic,
            sample_record(),
            partitions=PARTITIONS,
            rate=rate,
            seconds=self.plan.seconds,
        )

    def check(self, *runs: GhzResult) -> None:
        """A run with failed calls measures errors, not Herald: stop rather than report it."""
        for run in runs:
            if run.ok < run.calls:
                raise RuntimeError(f"{run.calls - run.ok} calls failed: {run.statuses}")


def _applied_total(rounds: list[dict[str, Any]]) -> int:
    return sum(int(r["backlog"]) for r in rounds)


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
