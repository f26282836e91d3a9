"""users_svc settings, read once from the environment; the defaults match `make run`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from herald.kafka.topics import EVENTS_TOPIC


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    grpc_port: int = 50051
    events_topic: str = EVENTS_TOPIC
    # The SQLite database lives here, as users.sqlite3 (with its -wal and -shm files).
    data_dir: Path = Path(".run/users-svc")
    # The CloudEvents `source` of every event this service publishes.
    event_source: str = "/herald/users-svc"
    # Rows the relay sends per batch, and how long one send may wait for the broker.
    # Each batch waits for its acks before the next is read, so bigger batches drain a
    # backlog faster: 500 -> 6,100 rows/s, 5,000 -> 16,800, 20,000 -> 28,000 (make bench's
    # relay phase). 5,000 keeps the rows a batch holds in memory to a couple of MiB.
    relay_batch_size: int = 5_000
    relay_timeout_s: float = 15.0
    # Published outbox rows are deleted after this long; they only serve debugging then.
    outbox_retention_s: float = 7 * 24 * 3600
    # Calls in progress (running or queued) past which new ones get RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 128
    shutdown_grace_s: float = 5.0
    log_level: str = "INFO"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "users.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        d = cls()
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", d.kafka_bootstrap_servers),
            grpc_port=int(env.get("USERS_GRPC_PORT", d.grpc_port)),
            events_topic=env.get("HERALD_EVENTS_TOPIC", d.events_topic),
            data_dir=Path(env.get("USERS_DATA_DIR", str(d.data_dir))),
            event_source=env.get("USERS_EVENT_SOURCE", d.event_source),
            relay_batch_size=int(env.get("USERS_RELAY_BATCH_SIZE", d.relay_batch_size)),
            relay_timeout_s=float(env.get("USERS_RELAY_TIMEOUT_S", d.relay_timeout_s)),
            outbox_retention_s=float(env.get("USERS_OUTBOX_RETENTION_S", d.outbox_retention_s)),
            max_concurrent_rpcs=int(env.get("USERS_MAX_CONCURRENT_RPCS", d.max_concurrent_rpcs)),
            shutdown_grace_s=float(env.get("SHUTDOWN_GRACE_S", d.shutdown_grace_s)),
            log_level=env.get("LOG_LEVEL", d.log_level),
        )
