"""The Kafka topics Herald uses: their names, sizes and retention, and how they are replicated;
and the consumer groups that read them.

`herald topics ensure` (herald.tools.topic_admin) creates them from these specs, and grants
the groups and topics to Herald's principals (herald.kafka.acls).
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS_TOPIC = "herald.users.v1.events"
DLQ_TOPIC = "herald.users.v1.events.dlq"

# auth_svc's group (AUTH_CONSUMER_GROUP by default), and the one `herald dlq replay` keeps
# its place in: fixed names, so the ACLs can grant exactly them.
AUTH_GROUP = "auth-svc"
REPLAY_GROUP = "herald-dlq-replay"

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    # A limit, not a default: `herald topics ensure` lowers a longer retention on an existing
    # topic too. Only where keeping records longer would keep personal data longer than
    # promised; an operator's longer retention of the events topic is theirs to choose.
    retention_is_limit: bool = False


TOPICS = (
    # Six partitions give a consumer group something to split; a user's events share a
    # partition because the record key is the user id. Seven days of retention let a new
    # consumer group, or one restored from a backup, replay a week of history.
    TopicSpec(EVENTS_TOPIC, partitions=6, retention_ms=7 * _DAY_MS),
    # A dead letter holds the record as it was, names and emails included: keeping it longer
    # than the events topic keeps the record would keep that personal data longer too. A
    # week is also the longest a replayed event can still be caught up by a new consumer.
    TopicSpec(DLQ_TOPIC, partitions=1, retention_ms=7 * _DAY_MS, retention_is_limit=True),
)


def replication_for(broker_count: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of this size.

    Three replicas with two in sync survive one broker down without refusing writes or
    acknowledging a write that only one broker holds.
    """
    if broker_count >= 3:
        return 3, 2
    return broker_count, 1
