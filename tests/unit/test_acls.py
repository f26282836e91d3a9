"""The ACL table: each principal gets exactly what it needs, on named resources only; the
admin client is asked for all of it at once; README shows the same table; and
`herald topics ensure` grants it only to a SASL cluster, unless told not to."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from herald.kafka import acls
from herald.kafka.acls import ADMIN, AUTH_SVC, REPLAY, USERS_SVC, Grant, ensure_acls, grants
from herald.kafka.security import KafkaSecurity
from herald.tools import kafka_commands
from herald.tools.settings_table import acl_table
from tests.conftest import REPO

EVENTS, DLQ = "herald.users.v1.events", "herald.users.v1.events.dlq"
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
READ, WRITE, DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE

# Written out from the issue, not computed from acls.py: the table must match it.
EXPECTED = {
    USERS_SVC: {(TOPIC, EVENTS, WRITE), (TOPIC, EVENTS, DESCRIBE)},
    AUTH_SVC: {
        (TOPIC, EVENTS, READ),
        (TOPIC, EVENTS, DESCRIBE),
        (GROUP, "auth-svc", READ),
        (TOPIC, DLQ, WRITE),
        (TOPIC, DLQ, DESCRIBE),
    },
    REPLAY: {
        (TOPIC, DLQ, READ),
        (TOPIC, DLQ, DESCRIBE),
        (GROUP, "herald-dlq-replay", READ),
        (TOPIC, EVENTS, WRITE),
        (TOPIC, EVENTS, DESCRIBE),
    },
}


def by_principal(wanted: Sequence[Grant]) -> dict[str, set[tuple[ResourceType, str, Any]]]:
    table: dict[str, set[tuple[ResourceType, str, Any]]] = {}
    for each in wanted:
        table.setdefault(each.principal, set()).add((each.resource_type, each.name, each.operation))
    return table


def test_each_principal_gets_exactly_what_the_table_says() -> None:
    wanted = grants()
    assert by_principal(wanted) == EXPECTED
    assert len(set(wanted)) == len(wanted), "no grant twice"
    # A super user needs no ACL; giving it one would only hide a broken super.users.
    assert ADMIN not in by_principal(wanted)


def test_no_grant_reaches_further_than_one_named_resource() -> None:
    for binding in (each.binding() for each in grants()):
        assert binding.resource_pattern_type == ResourcePatternType.LITERAL
        assert binding.permission_type == AclPermissionType.ALLOW
        assert binding.host == "*"
        assert binding.name not in ("*", "")
        assert binding.restype in (TOPIC, GROUP)  # nothing on the cluster
        assert binding.operation in (READ, WRITE, DESCRIBE)  # never ALL, ALTER, CREATE...


def test_the_names_follow_the_settings() -> None:
    wanted = by_principal(grants("ev", "dl", auth_group="g1", replay_group="g2"))
    assert (GROUP, "g1", READ) in wanted[AUTH_SVC]
    assert (GROUP, "g2", READ) in wanted[REPLAY]
    assert {name for _type, name, _op in wanted[USERS_SVC]} == {"ev"}


class FakeAdmin:
    """create_acls as AdminClient has it: one future per binding; describe_acls lists them
    only from its `listed_after`-th call on, as a broker applies new ACLs a little later."""

    def __init__(self, error: KafkaError | None = None, listed_after: int = 1) -> None:
        self.asked: list[AclBinding] = []
        self._error = error
        self.listed_after = listed_after
        self.described = 0

    def describe_acls(self, _filter: object, request_timeout: float) -> Future[list[AclBinding]]:
        self.described += 1
        future: Future[list[AclBinding]] = Future()
        future.set_result(list(self.asked) if self.described >= self.listed_after else [])
        return future

    def create_acls(
        self, bindings: list[AclBinding], request_timeout: float
    ) -> dict[AclBinding, Future[None]]:
        self.asked += bindings
        futures: dict[AclBinding, Future[None]] = {}
        for binding in bindings:
            future: Future[None] = Future()
            if self._error is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(self._error))
            futures[binding] = future
        return futures


def as_admin(fake: FakeAdmin) -> AdminClient:
    return fake  # type: ignore[return-value]


def test_ensure_acls_asks_for_every_grant_and_waits_for_each() -> None:
    fake = FakeAdmin()
    assert ensure_acls(as_admin(fake), grants(), timeout_s=1) == len(grants())
    assert fake.asked == [each.binding() for each in grants()]


def test_ensure_acls_returns_only_once_a_broker_lists_them() -> None:
    fake = FakeAdmin(listed_after=3)
    ensure_acls(as_admin(fake), grants(), timeout_s=5)
    assert fake.described == 3


def test_acls_that_never_come_into_force_are_a_timeout() -> None:
    fake = FakeAdmin(listed_after=10**9)
    with pytest.raises(TimeoutError, match="ACLs still not in force"):
        ensure_acls(as_admin(fake), grants(), timeout_s=0.3)


def test_brokers_without_an_authorizer_are_a_clear_error() -> None:
    fake = FakeAdmin(KafkaError(KafkaError.SECURITY_DISABLED))
    with pytest.raises(ValueError, match="the brokers have no authorizer"):
        ensure_acls(as_admin(fake), grants(), timeout_s=1)


def test_other_failures_are_not_hidden() -> None:
    fake = FakeAdmin(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED))
    with pytest.raises(KafkaException):
        ensure_acls(as_admin(fake), grants(), timeout_s=1)


def test_readme_shows_the_table() -> None:
    table = acl_table()
    assert table in (REPO / "README.md").read_text()
    assert "| `User:auth-svc` | group `auth-svc` | Read |" in table
    assert "| `User:users-svc` | topic `herald.users.v1.events` | Write, Describe |" in table


SASL = KafkaSecurity("SASL_SSL", sasl_username="herald-admin", sasl_password="pw")  # noqa: S106


@pytest.mark.parametrize(
    ("security", "no_acls", "granted"),
    [(SASL, False, True), (SASL, True, False), (KafkaSecurity(), False, False)],
)
def test_topics_ensure_grants_the_acls_only_to_a_sasl_cluster(
    monkeypatch: pytest.MonkeyPatch, security: KafkaSecurity, no_acls: bool, granted: bool
) -> None:
    ensured: list[Sequence[Grant]] = []

    def ensure(_bootstrap: str, wanted: Sequence[Grant], _timeout_s: float, **_: object) -> int:
        ensured.append(wanted)
        return len(wanted)

    monkeypatch.setattr(kafka_commands, "_env_security", lambda: security)
    monkeypatch.setattr(kafka_commands, "ensure_topics", lambda *_a, **_k: [])
    monkeypatch.setattr(kafka_commands, "ensure_access", ensure)
    monkeypatch.setenv("AUTH_CONSUMER_GROUP", "auth-blue")
    args = argparse.Namespace(bootstrap_servers="k:1", timeout=1.0, no_acls=no_acls)
    assert kafka_commands._topics_ensure(args) == 0
    if granted:
        [wanted] = ensured
        assert wanted == acls.grants(auth_group="auth-blue")
    else:
        assert ensured == []
