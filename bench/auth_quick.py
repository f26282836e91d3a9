"""Quick figure for auth_svc: events applied per second over a pre-filled topic.

Starts its own broker (free ports), fills the events topic, then starts auth_svc and times
it from SERVING to the last event applied. Indicative only; the performance suite compares.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from confluent_kafka import Producer

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka_config import producer_config
from herald.localkafka import LocalKafka
from herald.topics import EVENTS_TOPIC, ensure_topics
from tests.conftest import kafka_libs
from tests.e2e.processes import ServiceProcess
from users_svc.events import EventRecords
from users_svc.model import User


def prefill(bootstrap: str, events: int) -> None:
    kafka = Producer(producer_config(bootstrap, "bench-prefill"))
    records = EventRecords(EVENTS_TOPIC, "/bench")
    now = datetime.now(UTC)
    for n in range(events):
        record = records.user_created(User(f"user-{n}", "Bench", f"b{n}@example.com", now, now, 1))
        while True:
            try:
                kafka.produce(
                    EVENTS_TOPIC, key=record.key, value=record.value, headers=record.headers
                )
                break
            except BufferError:
                kafka.poll(0.05)
    if kafka.flush(60):
        raise RuntimeError("the broker did not take every event")


def applied(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        status = stub.GetConsumerStatus(auth_pb2.GetConsumerStatusRequest(), timeout=5)
        return int(status.events_applied)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cluster = LocalKafka.on_free_ports(
            libs_dir=kafka_libs(), run_dir=Path(folder) / "kafka", node_count=1
        )
        cluster.start()
        auth = ServiceProcess(
            "auth_svc",
            {
                "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
                "AUTH_DATA_DIR": str(Path(folder) / "auth"),
                "LOG_LEVEL": "WARNING",
            },
            Path(folder) / "auth_svc.log",
        )
        try:
            ensure_topics(cluster.bootstrap_servers)
            prefill(cluster.bootstrap_servers, args.events)
            began = time.monotonic()
            auth.start(timeout_s=60)
            serving = time.monotonic()
            while applied(auth.target) < args.events:
                time.sleep(0.1)
            done = time.monotonic()
            print(
                json.dumps(
                    {
                        "events": args.events,
                        "start_to_serving_s": round(serving - began, 2),
                        "apply_s": round(done - serving, 2),
                        "events_per_s": round(args.events / (done - serving)),
                    },
                    indent=2,
                )
            )
        finally:
            if auth.process is not None:
                auth.terminate()
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
