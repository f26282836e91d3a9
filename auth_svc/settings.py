"""auth_svc settings, read once from the environment; the defaults match `make run`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from auth_svc.applying import RetryPolicy
from auth_svc.consumer import ConsumerTuning
from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    grpc_port: int = 50052
    events_topic: str = EVENTS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    consumer_group: str = "auth-svc"
    # The SQLite database lives here, as auth.sqlite3; instances on one host may share it.
    data_dir: Path = Path(".run/auth-svc")
    # A transient failure (a busy database) is retried this many times, backing off from
    # retry_backoff_s: for a whole batch, then for each of its records alone, before a
    # record is dead-lettered.
    retry_attempts: int = 5
    retry_backoff_s: float = 0.1
    # Up to this many records are applied in one transaction (one sync to disk). Records
    # already fetched make up a batch; none waits for a batch to fill, so the size only
    # matters when auth_svc is behind. A batch's records are all in memory at once: over a
    # 100,000-event backlog, 5,000 grew RSS by a quarter and 1,000 by 5%, for ~8% less
    # throughput (bench/README.md; with time-ordered ids the per-event SQLite work hardly
    # depends on the batch size any more).
    batch_size: int = 1000
    # Health turns NOT_SERVING when the group's lag on this instance's partitions stays
    # over max_lag for lag_grace_s.
    max_lag: int = 10_000
    lag_grace_s: float = 30.0
    # How often librdkafka commits the stored offsets (also on rebalance and close).
    commit_interval_ms: int = 5000
    shutdown_grace_s: float = 5.0
    log_level: str = "INFO"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "auth.sqlite3"

    def consumer_tuning(self) -> ConsumerTuning:
        return ConsumerTuning(
            batch_size=self.batch_size,
            max_lag=self.max_lag,
            retry=RetryPolicy(self.retry_attempts, self.retry_backoff_s),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        d = cls()
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", d.kafka_bootstrap_servers),
            grpc_port=int(env.get("AUTH_GRPC_PORT", d.grpc_port)),
            events_topic=env.get("HERALD_EVENTS_TOPIC", d.events_topic),
            dlq_topic=env.get("HERALD_DLQ_TOPIC", d.dlq_topic),
            consumer_group=env.get("AUTH_CONSUMER_GROUP", d.consumer_group),
            data_dir=Path(env.get("AUTH_DATA_DIR", str(d.data_dir))),
            retry_attempts=max(1, int(env.get("AUTH_RETRY_ATTEMPTS", d.retry_attempts))),
            retry_backoff_s=float(env.get("AUTH_RETRY_BACKOFF_S", d.retry_backoff_s)),
            batch_size=max(1, int(env.get("AUTH_BATCH_SIZE", d.batch_size))),
            max_lag=int(env.get("AUTH_MAX_LAG", d.max_lag)),
            lag_grace_s=float(env.get("AUTH_LAG_GRACE_S", d.lag_grace_s)),
            commit_interval_ms=int(env.get("AUTH_COMMIT_INTERVAL_MS", d.commit_interval_ms)),
            shutdown_grace_s=float(env.get("SHUTDOWN_GRACE_S", d.shutdown_grace_s)),
            log_level=env.get("LOG_LEVEL", d.log_level),
        )
