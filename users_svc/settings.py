"""users_svc settings, read once from the environment; the defaults match `make run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from herald.contract.events import USERS_SVC_SOURCE
from herald.settings import ServiceSettings, server_limit, setting


@dataclass(frozen=True)
class Settings(ServiceSettings):
    grpc_host: str = setting(
        "USERS_GRPC_HOST",
        "127.0.0.1",
        "address the gRPC server binds; off loopback it needs TLS (or HERALD_INSECURE_LISTEN)",
    )
    grpc_port: int = setting("USERS_GRPC_PORT", 50051, "gRPC port")
    data_dir: Path = setting(
        "USERS_DATA_DIR", Path(".run/users-svc"), "folder of the SQLite database `users.sqlite3`"
    )
    event_source: str = setting(
        "USERS_EVENT_SOURCE", USERS_SVC_SOURCE, "CloudEvents `source` of published events"
    )
    # Each batch waits for its acks before the next is read, so bigger batches drain a
    # backlog faster: 500 -> 6,100 rows/s, 5,000 -> 16,800, 20,000 -> 28,000 (make bench's
    # relay phase). 5,000 keeps the rows a batch holds in memory to a couple of MiB.
    relay_batch_size: int = setting(
        "USERS_RELAY_BATCH_SIZE", 5_000, "outbox rows the relay sends at once"
    )
    relay_timeout_s: float = setting(
        "USERS_RELAY_TIMEOUT_S",
        15.0,
        "how long one relay send waits for the broker before retrying",
    )
    # Published rows only serve debugging once they are on the topic.
    outbox_retention_s: float = setting(
        "USERS_OUTBOX_RETENTION_S",
        7 * 24 * 3600.0,
        "published outbox rows are deleted after this (7 days)",
    )
    # The gRPC server's limits (herald.rpc.limits.ServerLimits says what each one bounds).
    max_concurrent_rpcs: int = server_limit("USERS", "max_concurrent_rpcs")
    max_streams_per_connection: int = server_limit("USERS", "max_streams_per_connection")
    max_message_bytes: int = server_limit("USERS", "max_message_bytes")
    max_metadata_bytes: int = server_limit("USERS", "max_metadata_bytes")
    keepalive_time_s: float = server_limit("USERS", "keepalive_time_s")
    keepalive_timeout_s: float = server_limit("USERS", "keepalive_timeout_s")
    min_client_ping_interval_s: float = server_limit("USERS", "min_client_ping_interval_s")
    max_connection_age_s: float = server_limit("USERS", "max_connection_age_s")
    max_connection_age_grace_s: float = server_limit("USERS", "max_connection_age_grace_s")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "users.sqlite3"
