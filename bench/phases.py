"""The bench's phases, each measuring Herald and its baseline in turn, and the ratios of the two.

Each phase starts the services it needs on data of its own and stops them before the next,
so no phase measures another's leftovers. The figures go into `raw` by phase; `ratios` turns
them into the figures `make bench` is judged by.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import bare
from bench.ghz import Ghz, GhzResult, Load
from bench.observer import POLL_S, AccountWatcher
from bench.plan import Plan
from bench.processes import Pinning, Services, pinned, rss_mib
from bench.progress import PARTITIONS, TopicSize, time_drain, wait_applied
from bench.records import outbox_records, sample_record, user_created_records
from bench.stats import Latencies
from herald.kafka.topics import TopicSpec
from herald.tools.localkafka import LocalKafka
from herald.tools.topic_admin import ensure_topics


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
        self.services = Services(workdir, cluster, pinning)
        self.raw: dict[str, Any] = {}  # every measured figure, by phase
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
        plan, services = self.plan, self.services
        closed = Load(plan.concurrency, plan.connections, seconds=plan.seconds)
        warmup = Load(plan.concurrency, plan.connections, seconds=plan.warmup_s)
        noop = services.noop()
        users = services.users(self.workdir / "rpc-users")
        auth = services.auth(self.workdir / "rpc-auth", "bench-rpc")
        with services.running(noop, users, auth):
            self.ghz.create_users(noop.target, warmup, "warm")
            meter = services.meter(noop=noop)
            noop_max = self.ghz.create_users(noop.target, closed, "noop-max")
            noop_max_cpu = meter.cores()

            self.ghz.create_users(users.target, warmup, "warm")
            meter = services.meter(users_svc=users, auth_svc=auth)
            users_max = self.ghz.create_users(users.target, closed, "max")
            users_max_cpu = meter.cores()

            half = max(int(users_max.rps / 2), 10)
            at_half = Load(max(plan.concurrency, 64), plan.connections, plan.seconds, rps=half)
            light = Load(16, plan.connections, plan.seconds, rps=plan.light_rate)
            noop_half = self.ghz.create_users(noop.target, at_half, "noop-half")
            with AccountWatcher(self.workdir / "rpc-auth" / "auth.sqlite3") as watcher:
                meter = services.meter(users_svc=users, auth_svc=auth)
                users_half = self.ghz.create_users(users.target, at_half, "half")
                users_half_cpu = meter.cores()
                e2e_half = watcher.latencies("half", users_half.ok)
                users_light = self.ghz.create_users(users.target, light, "light")
                e2e_light = watcher.latencies("light", users_light.ok)

        size = len(sample_record().value)
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
            sample_record(),
            partitions=PARTITIONS,
            rate=rate,
            seconds=self.plan.seconds,
        )

    def memory_and_relay(self) -> None:
        """RSS after the first calls and after the outage backlog; the relay's drain of it."""
        plan, services = self.plan, self.services
        users = services.users(self.workdir / "relay-users")
        auth = services.auth(self.workdir / "relay-auth", "bench-relay")
        closed = Load(plan.concurrency, plan.connections)
        with services.running(users, auth):
            base = self.ghz.create_users(users.target, _calls(closed, plan.memory_base), "base")
            wait_applied(auth.target, base.ok)
            rss_first = {"users_svc": rss_mib(users), "auth_svc": rss_mib(auth)}

            size = TopicSize(self.bootstrap)
            published = size()
            size.close()
            self.cluster.stop_node(1)
            backlog = self.ghz.create_users(users.target, _calls(closed, plan.backlog), "backlog")
            # users_svc right after its last call, as the figure is defined; it is sampled
            # again after the drain, when the relay's batches have passed through it.
            users_after_calls = rss_mib(users)
            self.cluster.start_node(1)
            meter = services.meter(users_svc=users, auth_svc=auth)
            drain = time_drain(self.bootstrap, published, backlog.ok)
            drain_cpu = meter.cores()
            wait_applied(auth.target, base.ok + backlog.ok, timeout_s=900)
            rss_last = {"users_svc": users_after_calls, "auth_svc": rss_mib(auth)}
            rss_after_drain = {"users_svc": rss_mib(users), "auth_svc": rss_last["auth_svc"]}

        # users_svc has stopped. The newest outbox rows are the backlog's calls (the base
        # calls came before them), so the bare producer sends what the relay sent.
        records = outbox_records(self.workdir / "relay-users" / "users.sqlite3", backlog.ok)
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
        records = user_created_records(topic, self.plan.prefill)
        bare.produce_throughput(self.bootstrap, records, topic)
        auth = self.services.auth(self.workdir / "consumer-auth", "bench-consumer", topic=topic)
        with self.services.running(auth):
            meter = self.services.meter(auth_svc=auth)
            began = time.perf_counter()
            wait_applied(auth.target, len(records), timeout_s=900)
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
