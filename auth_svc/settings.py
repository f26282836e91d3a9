"""auth_svc settings, read once from the environment; the defaults match `make run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auth_svc.applying import MAX_BACKOFF_S, RetryPolicy
from auth_svc.consumer import ConsumerTuning, Subscription
from herald.contract.events import USERS_SVC_SOURCE
from herald.kafka.config import SESSION_TIMEOUT_MS
from herald.kafka.topics import AUTH_GROUP, DLQ_TOPIC
from herald.settings import ServiceSettings, server_limit, setting


@dataclass(frozen=True)
class Settings(ServiceSettings):
    grpc_host: str = setting(
        "AUTH_GRPC_HOST",
        "127.0.0.1",
        "address the gRPC server binds; off loopback it needs TLS (or HERALD_INSECURE_LISTEN)",
    )
    grpc_port: int = setting("AUTH_GRPC_PORT", 50052, "gRPC port")
    consumer_group: str = setting("AUTH_CONSUMER_GROUP", AUTH_GROUP, "Kafka consumer group")
    # Instances on one host may share the file: SQLite serialises their writes.
    data_dir: Path = setting(
        "AUTH_DATA_DIR",
        Path(".run/auth-svc"),
        "folder of the SQLite database `auth.sqlite3` (shareable by instances on one host)",
    )
    dlq_topic: str = setting("HERALD_DLQ_TOPIC", DLQ_TOPIC, "the dead-letter topic")
    # Only users_svc publishes user events; anything else on the topic is a mistake or forged.
    event_sources: str = setting(
        "AUTH_EVENT_SOURCES",
        USERS_SVC_SOURCE,
        "CloudEvents sources whose events are applied (comma-separated); others are poison",
    )
    # Records already fetched make up a batch; none waits for a batch to fill, so the size
    # only matters when auth_svc is behind. A batch's records are all in memory at once: over
    # a 100,000-event backlog, 5,000 grew RSS by a quarter and 1,000 by 5%, for ~8% less
    # throughput (bench/README.md; with time-ordered ids the per-event SQLite work hardly
    # depends on the batch size any more).
    batch_size: int = setting(
        "AUTH_BATCH_SIZE",
        1000,
        "most records applied in one transaction (one sync to disk)",
        at_least=1,
    )
    # For a whole batch, then for each of its records alone, before a record is
    # dead-lettered.
    retry_attempts: int = setting(
        "AUTH_RETRY_ATTEMPTS",
        5,
        "attempts at a transiently failing batch, then record, before it is dead-lettered",
        at_least=1,
    )
    retry_backoff_s: float = setting(
        "AUTH_RETRY_BACKOFF_S",
        0.1,
        f"first backoff between attempts (doubles, at most {MAX_BACKOFF_S:g} s)",
    )
    max_lag: int = setting(
        "AUTH_MAX_LAG", 10_000, "lag over which health turns NOT_SERVING (after the grace)"
    )
    lag_grace_s: float = setting(
        "AUTH_LAG_GRACE_S", 30.0, "how long the lag may stay over the limit"
    )
    # librdkafka's default; set here so it is seen. A held batch keeps the loop polling, so
    # even a long database outage never comes near it.
    max_poll_interval_ms: int = setting(
        "AUTH_MAX_POLL_INTERVAL_MS",
        300_000,
        "longest time between two polls before the group drops this member",
        at_least=SESSION_TIMEOUT_MS,
    )
    # librdkafka also commits them on rebalance and on close.
    commit_interval_ms: int = setting(
        "AUTH_COMMIT_INTERVAL_MS", 5000, "how often stored offsets are committed"
    )

    # The gRPC server's limits (herald.rpc.limits.ServerLimits says what each one bounds).
    max_concurrent_rpcs: int = server_limit("AUTH", "max_concurrent_rpcs")
    max_streams_per_connection: int = server_limit("AUTH", "max_streams_per_connection")
    max_message_bytes: int = server_limit("AUTH", "max_message_bytes")
    max_metadata_bytes: int = server_limit("AUTH", "max_metadata_bytes")
    keepalive_time_s: float = server_limit("AUTH", "keepalive_time_s")
    keepalive_timeout_s: float = server_limit("AUTH", "keepalive_timeout_s")
    min_client_ping_interval_s: float = server_limit("AUTH", "min_client_ping_interval_s")
    max_connection_age_s: float = server_limit("AUTH", "max_connection_age_s")
    max_connection_age_grace_s: float = server_limit("AUTH", "max_connection_age_grace_s")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "auth.sqlite3"

    def subscription(self) -> Subscription:
        sources = frozenset(s.strip() for s in self.event_sources.split(",") if s.strip())
        return Subscription(self.consumer_group, self.events_topic, self.dlq_topic, sources)

    def consumer_tuning(self) -> ConsumerTuning:
        return ConsumerTuning(
            batch_size=self.batch_size,
            max_lag=self.max_lag,
            retry=RetryPolicy(self.retry_attempts, self.retry_backoff_s),
        )
