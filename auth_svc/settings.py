"""auth_svc settings, read once from the environment; the defaults match `make run`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from herald.topics import EVENTS_TOPIC


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    grpc_port: int = 50052
    events_topic: str = EVENTS_TOPIC
    consumer_group: str = "auth-svc"
    shutdown_grace_s: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        defaults = cls()
        return cls(
            kafka_bootstrap_servers=env.get(
                "KAFKA_BOOTSTRAP_SERVERS", defaults.kafka_bootstrap_servers
            ),
            grpc_port=int(env.get("AUTH_GRPC_PORT", defaults.grpc_port)),
            events_topic=env.get("HERALD_EVENTS_TOPIC", defaults.events_topic),
            consumer_group=env.get("AUTH_CONSUMER_GROUP", defaults.consumer_group),
            shutdown_grace_s=float(env.get("SHUTDOWN_GRACE_S", defaults.shutdown_grace_s)),
            log_level=env.get("LOG_LEVEL", defaults.log_level),
        )
