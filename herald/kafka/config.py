"""Kafka client settings both services share: the ones that keep data safe, in one place."""

from __future__ import annotations

from herald.kafka.security import PLAINTEXT, KafkaSecurity

# librdkafka reads every value; numbers and bools stay typed so a typo fails at creation
# (float too, because the admin client's stub asks for it).
ClientConfig = dict[str, str | int | float | bool]

# Each config function takes the client's KafkaSecurity positionally (PLAINTEXT by default),
# before `/`: so no librdkafka override passed as **overrides can be taken for it.

# A member that stops heartbeating (a crash) is declared dead after this long.
SESSION_TIMEOUT_MS = 10_000


def producer_config(
    bootstrap_servers: str,
    client_id: str,
    security: KafkaSecurity = PLAINTEXT,
    /,
    **overrides: str | int,
) -> ClientConfig:
    """A producer that writes each record once, in order, to every in-sync replica.

    librdkafka leaves idempotence off by default (the Java client turns it on). With it on,
    a retried batch is not written twice and a key's records keep their order.
    """
    config: ClientConfig = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        **security.client_config(),
    }
    config.update(overrides)
    return config


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    client_id: str,
    security: KafkaSecurity = PLAINTEXT,
    /,
    **overrides: str | int,
) -> ClientConfig:
    """A consumer that gives at-least-once delivery: offsets advance only after processing.

    The application calls `store_offsets` once it has applied a record; librdkafka then
    commits the stored offsets in the background, on rebalance and on close.
    """
    config: ClientConfig = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        # A new group starts at the beginning, so events produced before it first
        # subscribed are not skipped.
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        # 10 s, not the default 45 s: a crashed member's partitions move, and a restarted
        # process gets in, that much sooner.
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "isolation.level": "read_committed",
        **security.client_config(),
    }
    config.update(overrides)
    return config


def admin_config(
    bootstrap_servers: str, client_id: str, *, security: KafkaSecurity = PLAINTEXT
) -> ClientConfig:
    """An admin client's settings: only where the brokers are and who is asking."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        **security.client_config(),
    }
