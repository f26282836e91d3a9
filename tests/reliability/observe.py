"""What the oracle judges, gathered from the running system: the services' stores through their
own read methods (so the check follows any backend), and the topics read back from Kafka."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from auth_svc.accounts import AccountStore
from herald.kafka.records import header_values
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.users.v1 import events_pb2
from tests.reliability.oracle import (
    AccountState,
    Ack,
    History,
    TopicRecord,
    UserState,
    wanted_event_ids,
)
from tests.support import end_offsets, read_all
from users_svc.store import Outbox, UserStore

PAGE = 1_000
EVENT_TYPES = {
    message.DESCRIPTOR.full_name: message
    for message in (events_pb2.UserCreated, events_pb2.UserUpdated, events_pb2.UserDeleted)
}


class Stores(NamedTuple):
    """The services' stores, opened by the test for reading while the services run."""

    users: UserStore
    outbox: Outbox
    accounts: AccountStore


class Observed(Protocol):
    """Where a scenario's services keep their data and send their events (a Stack)."""

    bootstrap: str
    topic: str
    dlq: str

    @property
    def admin(self) -> KafkaSecurity: ...  # how to read the topics

    def stores(self) -> AbstractContextManager[Stores]: ...


def users_of(store: UserStore) -> dict[str, UserState]:
    """Every user users_svc holds, and every one it erased (as its tombstone)."""
    users: dict[str, UserState] = {}
    after = ""
    while page := store.list_users(after, PAGE):
        users.update({u.id: UserState(u.version, u.name, u.email) for u in page})
        after = page[-1].id
    after = ""
    while tombstones := store.list_tombstones(after, PAGE):
        users.update({t.id: UserState(t.version, "", "", deleted=True) for t in tombstones})
        after = tombstones[-1].id
    return users


def accounts_of(store: AccountStore, user_ids: Collection[str]) -> dict[str, AccountState]:
    """auth_svc's account of each user, or its tombstone; users it has neither of are left out."""
    accounts = {}
    for user_id in user_ids:
        account = store.get(user_id)
        if account is not None:
            accounts[user_id] = AccountState(
                account.version, account.name, account.email, store.applied_events(user_id)
            )
        elif (version := store.tombstone_version(user_id)) is not None:
            applied = store.applied_events(user_id)
            accounts[user_id] = AccountState(version, "", "", applied, deleted=True)
    return accounts


def stored_history(stack: Observed, scenario: str, acks: Sequence[Ack]) -> History:
    """The history as the two stores tell it, without the topics: cheap enough to poll."""
    with stack.stores() as (users_store, _, auth_store):
        users = users_of(users_store)
        partial = History(scenario, acks, users, {}, (), (), 0)
        accounts = accounts_of(auth_store, set(users) | {ack.user_id for ack in acks})
        inbox = auth_store.processed(wanted_event_ids(partial))
    return History(scenario, acks, users, accounts, inbox, (), 0)


def full_history(
    stack: Observed,
    scenario: str,
    acks: Sequence[Ack],
    *,
    injected: Collection[bytes] = (),
    expected_dead_letters: int = 0,
    fault: Mapping[str, object] | None = None,
) -> History:
    stored = stored_history(stack, scenario, acks)
    return History(
        scenario,
        acks,
        stored.users,
        stored.accounts,
        stored.inbox,
        topic_records(stack.bootstrap, stack.topic, stack.admin),
        sum(end_offsets(stack.bootstrap, stack.dlq, stack.admin).values()),
        injected=injected,
        expected_dead_letters=expected_dead_letters,
        fault=dict(fault or {}),
    )


def topic_records(
    bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT
) -> list[TopicRecord]:
    """Every record on the topic, with the version its event carries (None if it has none)."""
    records = []
    for message in read_all(bootstrap, topic, timeout_s=60, security=security):
        partition, offset = message.partition(), message.offset()
        assert partition is not None
        assert offset is not None
        records.append(TopicRecord(partition, offset, message.key() or b"", _version(message)))
    return records


def _version(message: Message) -> int | None:
    kind = EVENT_TYPES.get(header_values(message.headers()).get("ce_type", ""))
    if kind is None:
        return None
    try:
        version = int(kind.FromString(message.value() or b"").version)
    except DecodeError:
        return None
    return version if version > 0 else None
