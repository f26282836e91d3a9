"""Quick figures for users_svc: CreateUser latency and throughput, and the outbox drain rate.

Starts its own broker (free ports) and a users_svc process, so it runs beside `make run`.
Run with `make bench-users`. These are indicative figures on the machine at hand, not the
side-by-side comparisons of the performance suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc

from herald.localkafka import LocalKafka
from herald.topics import EVENTS_TOPIC, ensure_topics
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.conftest import kafka_libs
from tests.e2e.processes import ServiceProcess
from tests.support import end_offsets


def load(target: str, clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads calling CreateUser back to back for `seconds`."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        mine = []
        with grpc.insecure_channel(target) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)
            while time.monotonic() < deadline:
                request = users_pb2.CreateUserRequest(
                    name="Bench User", email=f"{uuid.uuid4().hex}@example.com"
                )
                began = time.perf_counter()
                stub.CreateUser(request, timeout=10)
                mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "calls": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
    }


def outage_drain(cluster: LocalKafka, target: str, users: int) -> dict[str, float]:
    """Create `users` while Kafka is down, start it, time until every event is on the topic."""
    before = sum(end_offsets(cluster.bootstrap_servers, EVENTS_TOPIC).values())
    cluster.stop_node(1)
    with grpc.insecure_channel(target) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        for _ in range(users):
            request = users_pb2.CreateUserRequest(
                name="Backlog User", email=f"{uuid.uuid4().hex}@example.com"
            )
            stub.CreateUser(request, timeout=10)
    cluster.start_node(1)
    ready = time.monotonic()
    first = None
    while (
        published := sum(end_offsets(cluster.bootstrap_servers, EVENTS_TOPIC).values()) - before
    ) < users:
        if first is None and published > 0:
            first = time.monotonic()
        time.sleep(0.02)
    done = time.monotonic()
    first = first or done
    return {
        "backlog": users,
        # From the broker answering again to the first backlog event on the topic: the
        # relay's backoff showing through.
        "resume_s": round(first - ready, 2),
        "drain_s": round(done - first, 2),
        "events_per_s": round(users / max(done - first, 1e-3)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backlog", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cluster = LocalKafka.on_free_ports(
            libs_dir=kafka_libs(), run_dir=Path(folder) / "kafka", node_count=1
        )
        cluster.start()
        ensure_topics(cluster.bootstrap_servers)
        users = ServiceProcess(
            "users_svc",
            {
                "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
                "USERS_DATA_DIR": str(Path(folder) / "users"),
                "USERS_RELAY_TIMEOUT_S": "2",
                "LOG_LEVEL": "WARNING",
            },
            Path(folder) / "users_svc.log",
        )
        try:
            users.start()
            load(users.target, clients=2, seconds=2)  # warm-up
            figures = {
                "load": {"clients": args.clients, **load(users.target, args.clients, args.seconds)},
                "outage": outage_drain(cluster, users.target, args.backlog),
            }
            print(json.dumps(figures, indent=2))
        finally:
            if users.process is not None:
                users.terminate()
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
