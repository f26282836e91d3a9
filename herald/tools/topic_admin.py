"""`herald topics ensure`: the one idempotent command that creates Herald's topics."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from herald.kafka.topics import TOPICS, TopicSpec, replication_for

logger = logging.getLogger(__name__)


def ensure_topics(
    bootstrap_servers: str, specs: tuple[TopicSpec, ...] = TOPICS, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names it created.

    Existing topics are left as they are, so this is safe to run on every start.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=timeout_s)
    replicas, min_insync = replication_for(len(metadata.brokers))
    missing = [spec for spec in specs if spec.name not in metadata.topics]
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
