"""`herald topics ensure`: the one idempotent command that creates Herald's topics (and, on
brokers that authenticate clients, the ACLs of herald.kafka.acls)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from herald.kafka.acls import Grant, ensure_acls
from herald.kafka.config import admin_config
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.kafka.topics import TOPICS, TopicSpec, replication_for

logger = logging.getLogger(__name__)


def ensure_topics(
    bootstrap_servers: str,
    specs: tuple[TopicSpec, ...] = TOPICS,
    timeout_s: float = 30.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """Create the topics that do not exist yet; return the names it created.

    An existing topic keeps its partitions and settings, except a retention longer than its
    spec, which is lowered to it: a topic created when the DLQ kept 30 days must not keep
    personal data longer than the spec says. A shorter retention an operator chose stays.
    So this is safe to run on every start.
    """
    admin = AdminClient(admin_config(bootstrap_servers, "herald-topics", security=security))
    metadata = admin.list_topics(timeout=timeout_s)
    replicas, min_insync = replication_for(len(metadata.brokers))
    missing = [spec for spec in specs if spec.name not in metadata.topics]
    existing = [s for s in specs if s.name in metadata.topics and s.retention_is_limit]
    _lower_retention(admin, existing, timeout_s)
    if not missing:
        _wait_until_visible(admin, specs, timeout_s)
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=replicas,
                config={
                    "min.insync.replicas": str(min_insync),
                    "retention.ms": str(spec.retention_ms),
                    "cleanup.policy": "delete",
                },
            )
            for spec in missing
        ],
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            # Another process may have created it between our look and our request.
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        else:
            created.append(name)
            logger.info(
                "created topic %s (replication %d, min.insync.replicas %d)",
                name,
                replicas,
                min_insync,
            )
    _wait_until_visible(admin, specs, timeout_s)
    return created


def _lower_retention(admin: AdminClient, specs: list[TopicSpec], timeout_s: float) -> None:
    """Set retention.ms to the spec on each topic that keeps records longer (or forever): the
    specs whose retention is a limit (the DLQ's)."""
    if not specs:
        return
    resources = [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in specs]
    described = admin.describe_configs(resources, request_timeout=timeout_s)
    too_long = []
    for spec, resource in zip(specs, resources, strict=True):
        current = int(described[resource].result(timeout=timeout_s)["retention.ms"].value)
        if current < 0 or current > spec.retention_ms:  # -1 is "forever"
            too_long.append((spec, current))
    if not too_long:
        return
    # Incremental, so the topic's other settings (min.insync.replicas, say) stay as they are.
    changes = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(
                    "retention.ms",
                    str(spec.retention_ms),
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        for spec, _current in too_long
    ]
    futures = admin.incremental_alter_configs(changes, request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout=timeout_s)
    for spec, current in too_long:
        logger.info(
            "lowered retention.ms of %s from %d to %d", spec.name, current, spec.retention_ms
        )


def _wait_until_visible(admin: AdminClient, specs: tuple[TopicSpec, ...], timeout_s: float) -> None:
    """Wait until metadata shows every topic with a leader for each partition.

    CreateTopics returns once the controller accepted the topic; the brokers learn of it a
    moment later, and a client that produces at once could be told it does not exist.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(
            spec.name in topics
            and topics[spec.name].partitions
            and all(p.leader >= 0 for p in topics[spec.name].partitions.values())
            for spec in specs
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics not visible in metadata after {timeout_s:g} s")
        time.sleep(0.1)


def ensure_access(
    bootstrap_servers: str,
    wanted: Sequence[Grant],
    timeout_s: float = 30.0,
    *,
    security: KafkaSecurity,
) -> int:
    """Create Herald's ACLs (herald.kafka.acls) as `security`'s principal, a super user."""
    admin = AdminClient(admin_config(bootstrap_servers, "herald-acls", security=security))
    return ensure_acls(admin, wanted, timeout_s)
