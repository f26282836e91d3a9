"""Who may do what on Herald's topics and groups: the least-privilege ACLs, as data.

Each principal is a SCRAM user (KAFKA_SASL_USERNAME). With the brokers' authorizer denying
whatever no ACL allows (`allow.everyone.if.no.acl.found=false`), these grants are all that
Herald's clients can do; anyone else can do nothing. `User:herald-admin` is a super user
(`super.users`): it creates the topics and these ACLs, and needs no grant of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from herald.kafka.topics import AUTH_GROUP, DLQ_TOPIC, EVENTS_TOPIC, REPLAY_GROUP

logger = logging.getLogger(__name__)

USERS_SVC = "User:users-svc"
AUTH_SVC = "User:auth-svc"
REPLAY = "User:herald-replay"
ADMIN = "User:herald-admin"

# Connections are authenticated by SCRAM, not by where they come from.
ANY_HOST = "*"
# Every ACL of any resource, principal and host (librdkafka takes None for "any"; the stubs
# type those arguments as str).
EVERY_ACL = AclBindingFilter(
    ResourceType.ANY,
    cast(str, None),
    ResourcePatternType.ANY,
    cast(str, None),
    cast(str, None),
    AclOperation.ANY,
    AclPermissionType.ANY,
)


@dataclass(frozen=True)
class Grant:
    """One ALLOW ACL: `principal` may do `operation` on the resource of exactly this name."""

    principal: str
    resource_type: ResourceType
    name: str
    operation: AclOperation

    def binding(self) -> AclBinding:
        # LITERAL: a grant on `herald.users.v1.events` is not one on every topic it
        # prefixes (`herald.users.v1.events.dlq` among them).
        return AclBinding(
            self.resource_type,
            self.name,
            ResourcePatternType.LITERAL,
            self.principal,
            ANY_HOST,
            self.operation,
            AclPermissionType.ALLOW,
        )


def grants(
    events_topic: str = EVENTS_TOPIC,
    dlq_topic: str = DLQ_TOPIC,
    auth_group: str = AUTH_GROUP,
    replay_group: str = REPLAY_GROUP,
) -> tuple[Grant, ...]:
    """Every ACL Herald's principals need, and nothing more.

    DESCRIBE on a topic is what its metadata (partitions, leaders) needs. Producing is
    idempotent, yet no principal gets IDEMPOTENT_WRITE on the cluster: since Kafka 2.8
    (KIP-679) WRITE on any topic allows it, and the cluster-wide grant is deprecated.
    """
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    read, write, describe = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
    return (
        # The outbox relay publishes the events.
        Grant(USERS_SVC, topic, events_topic, write),
        Grant(USERS_SVC, topic, events_topic, describe),
        # The consumer reads them as its group and dead-letters what it cannot apply.
        Grant(AUTH_SVC, topic, events_topic, read),
        Grant(AUTH_SVC, topic, events_topic, describe),
        Grant(AUTH_SVC, group, auth_group, read),
        Grant(AUTH_SVC, topic, dlq_topic, write),
        Grant(AUTH_SVC, topic, dlq_topic, describe),
        # `herald dlq replay` reads the dead letters, keeps its place as its own group, and
        # sends the fixable ones back to the events topic.
        Grant(REPLAY, topic, dlq_topic, read),
        Grant(REPLAY, topic, dlq_topic, describe),
        Grant(REPLAY, group, replay_group, read),
        Grant(REPLAY, topic, events_topic, write),
        Grant(REPLAY, topic, events_topic, describe),
    )


def ensure_acls(admin: AdminClient, wanted: Sequence[Grant], timeout_s: float = 30.0) -> int:
    """Create the ACLs (an existing one is left as it is: Kafka makes creating it a no-op);
    return how many were asked for. Needs a principal allowed to ALTER the cluster (a super
    user). Raises ValueError when the brokers have no authorizer to hold ACLs."""
    futures = admin.create_acls([each.binding() for each in wanted], request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            if error.args[0].code() == KafkaError.SECURITY_DISABLED:
                raise ValueError(
                    "the brokers have no authorizer (authorizer.class.name): ACLs cannot be created"
                ) from None
            raise
    _wait_until_in_force(admin, wanted, timeout_s)
    logger.info("ensured %d ACLs for %s", len(wanted), ", ".join(principals(wanted)))
    return len(wanted)


def _wait_until_in_force(admin: AdminClient, wanted: Sequence[Grant], timeout_s: float) -> None:
    """Return once a broker lists every grant. The controller commits an ACL before the
    brokers apply it, so a client started right after `create_acls` could still be refused
    (seen here: a produce denied moments after its grant was created). DescribeAcls is
    answered from the broker's own authorizer, so what it lists is in force there."""
    bindings = {each.binding() for each in wanted}
    deadline = time.monotonic() + timeout_s
    while True:
        listed = set(admin.describe_acls(EVERY_ACL, request_timeout=timeout_s).result(timeout_s))
        if bindings <= listed:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(bindings - listed)} ACLs still not in force")
        time.sleep(0.1)


def principals(wanted: Sequence[Grant]) -> list[str]:
    """The principals the grants name, in the order they first appear."""
    return list(dict.fromkeys(each.principal for each in wanted))
