"""Herald's ACLs on the secure node: each principal can do its job and nothing else.

The topics and groups have names of this module's own, granted exactly as `herald topics
ensure` grants Herald's (herald.kafka.acls.grants), so the node's other tests do not mix in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
)

from herald.kafka.acls import EVERY_ACL, grants
from herald.kafka.config import admin_config, consumer_config, producer_config
from herald.kafka.topics import TOPICS
from herald.tools.replay import replay
from herald.tools.topic_admin import ensure_access, ensure_topics
from tests.secure_kafka import Secure, produce_as
from tests.support import unique


@dataclass(frozen=True)
class Granted:
    secure: Secure
    events: str
    dlq: str
    auth_group: str
    replay_group: str

    @property
    def bootstrap(self) -> str:
        return self.secure.cluster.bootstrap_servers

    def produce(self, principal: str, topic: str, value: bytes = b"x") -> KafkaError | None:
        """Produce one record as `principal`: the delivery error, or None when it was written."""
        return produce_as(self.secure.cluster, principal, topic, value)

    def consume(self, principal: str, topic: str, group: str) -> KafkaError | bytes | None:
        """Read one record as `principal` in `group`: its value, the error the broker gave, or
        None if nothing came within 20 s."""
        security = self.secure.cluster.kafka_security(principal)
        consumer = Consumer(consumer_config(self.bootstrap, group, unique("c"), security))
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is None:
                    return message.value()
                if error.code() != KafkaError._PARTITION_EOF:
                    return error
            return None
        finally:
            consumer.close()


@pytest.fixture(scope="module")
def granted(secure: Secure) -> Granted:
    events_spec, dlq_spec = TOPICS
    names = Granted(secure, unique("acl-events"), unique("acl-dlq"), unique("auth"), unique("rp"))
    admin = secure.cluster.kafka_security("herald-admin")
    specs = (replace(events_spec, name=names.events), replace(dlq_spec, name=names.dlq))
    ensure_topics(names.bootstrap, specs, security=admin)
    wanted = grants(names.events, names.dlq, names.auth_group, names.replay_group)
    assert ensure_access(names.bootstrap, wanted, security=admin) == len(wanted)
    return names


def code(answer: KafkaError | bytes | None) -> object:
    return answer.code() if isinstance(answer, KafkaError) else answer


def test_users_svc_writes_the_events_and_auth_svc_reads_them_in_its_group(
    granted: Granted,
) -> None:
    assert granted.produce("users-svc", granted.events, b"an event") is None
    assert granted.consume("auth-svc", granted.events, granted.auth_group) == b"an event"


def test_auth_svc_may_not_write_the_events_topic(granted: Granted) -> None:
    assert (
        code(granted.produce("auth-svc", granted.events)) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    )


def test_users_svc_may_not_read_the_events_topic(granted: Granted) -> None:
    answer = granted.consume("users-svc", granted.events, granted.auth_group)
    assert code(answer) in {
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }


def test_a_group_of_a_strangers_name_is_denied(granted: Granted) -> None:
    answer = granted.consume("auth-svc", granted.events, unique("stranger"))
    assert code(answer) == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_only_auth_svc_writes_dead_letters(granted: Granted) -> None:
    assert granted.produce("auth-svc", granted.dlq, b"a letter") is None
    for other in ("users-svc", "herald-replay"):
        assert code(granted.produce(other, granted.dlq)) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_replay_runs_as_its_own_principal_and_may_do_nothing_more(granted: Granted) -> None:
    headers: list[tuple[str, str | bytes | None]] = [
        ("ce_type", b"herald.users.v1.UserCreated"),
        ("herald.dlq.topic", granted.events.encode()),
        ("herald.dlq.error.class", b"StoreUnavailableError"),
    ]
    security = granted.secure.cluster.kafka_security("auth-svc")
    producer = Producer(producer_config(granted.bootstrap, "dead-letters", security))
    producer.produce(granted.dlq, key=b"k", value=b"worth a retry", headers=headers)
    assert producer.flush(20) == 0

    as_replay = granted.secure.cluster.kafka_security("herald-replay")
    summary = replay(
        granted.bootstrap,
        granted.dlq,
        to_topic=granted.events,
        group_id=granted.replay_group,
        security=as_replay,
    )
    # Ours, and not the headerless letter another test may have written.
    assert summary.replayed == 1, summary
    # Its grants are for the DLQ and writing back; reading the events is not one of them.
    answer = granted.consume("herald-replay", granted.events, granted.replay_group)
    assert code(answer) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_ensuring_the_acls_again_changes_nothing(granted: Granted) -> None:
    admin_security = granted.secure.cluster.kafka_security("herald-admin")
    admin = AdminClient(admin_config(granted.bootstrap, "acl-check", security=admin_security))

    def acl_count() -> int:
        return len(admin.describe_acls(EVERY_ACL).result(30))

    before = acl_count()
    wanted = grants(granted.events, granted.dlq, granted.auth_group, granted.replay_group)
    ensure_access(granted.bootstrap, wanted, security=admin_security)
    assert acl_count() == before
    assert before >= len(wanted)
