"""The RPC phase: CreateUser against the no-op, plain and secured, its CPU per call, and the
end-to-end trip to auth_svc against a bare round trip.

Throughput comes in rounds of three closed-loop runs: the no-op, users_svc, and a users_svc
with mTLS and token verification, each round in that order, so slow and fast spells of the
machine fall on both sides of each ratio. All three servers run on the same pinned core for
the whole phase; only the one under load does any work.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from bench import bare
from bench.ghz import Credentials, Load
from bench.observer import POLL_S, AccountWatcher
from bench.processes import CpuMeter, pinned
from bench.ratios import pair
from bench.records import sample_record, user_created_records
from herald.tools.secure_files import SecureFiles

if TYPE_CHECKING:
    from bench.phases import Bench

# The relay's threads in users_svc: its own, and librdkafka's (the relay's producer is the
# process's only Kafka client). The rest of the process is the server's share.
RELAY_THREADS = ("outbox-relay", "rdk:")


def rpc_and_e2e(bench: Bench) -> None:
    plan, services, ghz = bench.plan, bench.services, bench.ghz
    closed = Load(plan.concurrency, plan.connections, seconds=plan.seconds)
    warmup = Load(plan.concurrency, plan.connections, seconds=plan.warmup_s)
    files = SecureFiles.made(bench.workdir / "secure")
    credentials = Credentials(files.client_tls(), files.token("bench", "users.create"))
    noop = services.noop()
    users = services.users(bench.workdir / "rpc-users")
    secure = services.users(
        bench.workdir / "rpc-users-secure", env=files.server_env(), tls=files.client_tls()
    )
    auth = services.auth(bench.workdir / "rpc-auth", "bench-rpc")
    rounds: list[dict[str, Any]] = []
    with services.running(noop, users, secure, auth):
        ghz.create_users(noop.target, warmup, "warm")
        ghz.create_users(users.target, warmup, "warm")
        ghz.create_users(secure.target, warmup, "warm", credentials)
        for n in range(plan.pairs):
            meter = services.meter(noop=noop)
            noop_max = ghz.create_users(noop.target, closed, f"noop-max{n}")
            noop_cpu = meter.cores()
            meter = services.meter(users_svc=users, auth_svc=auth)
            users_max = ghz.create_users(users.target, closed, f"max{n}")
            users_cpu = meter.cores()
            secure_max = ghz.create_users(secure.target, closed, f"secure{n}", credentials)
            bench.check(noop_max, users_max, secure_max)
            rounds.append(
                {
                    "noop": {**noop_max.summary(), "cpu_cores": noop_cpu},
                    "create_user": {**users_max.summary(), "cpu_cores": users_cpu},
                    "secure_create_user": secure_max.summary(),
                }
            )

        half = max(int(statistics.median(r["create_user"]["rps"] for r in rounds) / 2), 10)
        at_half = Load(max(plan.concurrency, 64), plan.connections, plan.seconds, rps=half)
        light = Load(16, plan.connections, plan.seconds, rps=plan.light_rate)
        meter = services.meter(noop=noop)
        noop_half = ghz.create_users(noop.target, at_half, "noop-half")
        noop_cpu_s = meter.seconds()["noop"]
        with AccountWatcher(bench.workdir / "rpc-auth" / "auth.sqlite3") as watcher:
            meter = services.meter(users_svc=users, auth_svc=auth)
            users_half = ghz.create_users(users.target, at_half, "half")
            e2e_half = watcher.latencies("half", users_half.ok)
            # Read once the half-rate events are in auth_svc, so the relay has sent them all.
            herald_cpu = _split(meter)
            users_half_cpu = meter.cores()
            users_light = ghz.create_users(users.target, light, "light")
            e2e_light = watcher.latencies("light", users_light.ok)
        bench.check(noop_half, users_half, users_light)

    # The libraries' own cost of the same work at the same rate: a paced idempotent producer
    # on the core users_svc had.
    paced = user_created_records("bench.paced", max(int(half * plan.seconds), 100))
    bench.topic("bench.paced")
    with pinned(bench.server_cpus):
        producer = bare.produce_cpu_per_record(bench.bootstrap, paced, "bench.paced", half)
    bare_half = bench.round_trip(half)
    bare_light = bench.round_trip(plan.light_rate)
    bench.raw["rpc"] = {
        "rounds": rounds,
        "half_rate": half,
        "noop_at_half": noop_half.summary(),
        "create_user_at_half": {**users_half.summary(), "cpu_cores": users_half_cpu},
        "create_user_light": users_light.summary(),
        "cpu_per_call_us": {
            "noop": round(noop_cpu_s / noop_half.ok * 1e6, 1),
            "bare_producer": round(producer["cpu_us_per_record"], 1),
            "create_user": round(herald_cpu["total"] / users_half.ok * 1e6, 1),
            "create_user_server": round(herald_cpu["server"] / users_half.ok * 1e6, 1),
            "create_user_relay": round(herald_cpu["relay"] / users_half.ok * 1e6, 1),
            "users_svc_threads_s": herald_cpu["threads"],
        },
    }
    bench.raw["pairs"]["rpc_throughput"] = [
        pair(r["noop"]["rps"], r["create_user"]["rps"]) for r in rounds
    ]
    bench.raw["pairs"]["secure_rpc_throughput"] = [
        pair(r["create_user"]["rps"], r["secure_create_user"]["rps"]) for r in rounds
    ]
    bench.raw["e2e"] = {
        "observer_poll_ms": POLL_S * 1000,
        "record_bytes": len(sample_record().value),
        "herald_at_half_ms": e2e_half.summary(),
        "bare_at_half_ms": bare_half.summary(),
        "herald_light_ms": e2e_light.summary(),
        "bare_light_ms": bare_light.summary(),
    }
    bench.series = {
        "no-op @ half": noop_half.latencies,
        "CreateUser @ half": users_half.latencies,
        "end-to-end @ half": e2e_half,
        "bare round trip @ half": bare_half,
    }


def _split(meter: CpuMeter) -> dict[str, Any]:
    """users_svc's CPU seconds since `meter` started: in all, the relay's, the server's."""
    total = meter.seconds()["users_svc"]
    threads = meter.thread_seconds("users_svc")
    relay = sum(s for name, s in threads.items() if name.startswith(RELAY_THREADS))
    return {
        "total": total,
        "relay": relay,
        "server": total - relay,
        "threads": {name: round(s, 3) for name, s in sorted(threads.items())},
    }
