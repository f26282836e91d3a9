"""Helpers shared by the test tiers: waiting with a deadline, reading topics, unique names,
and an account store whose database is busy on command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from confluent_kafka import Consumer, Message, TopicPartition

from auth_svc.accounts import Account, DecodedEvent, Outcome, RecordPosition
from auth_svc.sqlite_store import SqliteAccountStore
from herald.kafka.records import Record, header_values
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.storage.errors import StoreUnavailableError

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout_s: float = 30.0, every_s: float = 0.05) -> T:
    """Call `probe` until it returns something other than None; fail after the deadline."""
    result = within(probe, timeout_s, every_s)
    if result is None:
        raise AssertionError(f"condition not met within {timeout_s:g} s")
    return result


def within(probe: Callable[[], T | None], timeout_s: float, every_s: float = 0.05) -> T | None:
    """Call `probe` until it returns something other than None, and return that; None once
    the deadline has passed (for checks whose absence a later judge reports, not this one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None or time.monotonic() > deadline:
            return result
        time.sleep(every_s)


def refused_start(module: str, env: Mapping[str, str]) -> str:
    """Run `python -m module` with `env` over this process's environment, require that it
    refuses to start (exit code 2), and return everything it printed."""
    run = subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = run.stderr + run.stdout
    assert run.returncode == 2, output
    return output


def uid(name: str) -> str:
    """A user id for a short name in a test: the same canonical UUID for the same name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"herald-test:{name}"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def read_topic(
    bootstrap_servers: str,
    topic: str,
    count: int,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> list[Message]:
    """Read `count` records from the start of every partition of `topic`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **security.client_config(),
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(messages)} of {count} records from {topic}")
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                messages.append(message)
        return messages
    finally:
        consumer.close()


def read_all(
    bootstrap_servers: str,
    topic: str,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> list[Message]:
    """Every record now in `topic`: from the start of each partition to its high watermark."""
    count = sum(end_offsets(bootstrap_servers, topic, security).values())
    return read_topic(bootstrap_servers, topic, count, timeout_s, security)


def end_offsets(
    bootstrap_servers: str, topic: str, security: KafkaSecurity = PLAINTEXT
) -> dict[int, int]:
    """Partition → high watermark: how many records each partition has ever received."""
    config = {"bootstrap.servers": bootstrap_servers, "group.id": unique("watermarks")}
    consumer = Consumer({**config, **security.client_config()})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


class FlakyStore:
    """A real store whose writes fail while `failing` says so for the events at hand (and
    whose ping fails while it says so for none)."""

    def __init__(
        self, store: SqliteAccountStore, failing: Callable[[Sequence[DecodedEvent]], bool]
    ) -> None:
        self.store = store
        self.failing = failing
        self.batches: list[int] = []  # the size of every batch tried

    def apply(self, account: Account, event_type: str, position: RecordPosition) -> Outcome:
        [outcome] = self.apply_batch([DecodedEvent(account, event_type, position)])
        return outcome

    def apply_batch(self, events: Sequence[DecodedEvent]) -> list[Outcome]:
        self.batches.append(len(events))
        if self.failing(events):
            raise StoreUnavailableError("database is locked")
        return self.store.apply_batch(events)

    def get(self, user_id: str) -> Account | None:
        return self.store.get(user_id)

    async def get_async(self, user_id: str) -> Account | None:
        return await self.store.get_async(user_id)

    def tombstone_version(self, user_id: str) -> int | None:
        return self.store.tombstone_version(user_id)

    def applied_events(self, user_id: str) -> int:
        return self.store.applied_events(user_id)

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        return self.store.processed(event_ids)

    def prune_inbox(self, processed_before: datetime) -> int:
        return self.store.prune_inbox(processed_before)

    def ping(self) -> None:
        # Asked about no event in particular: whether the store as a whole is down.
        if self.failing([]):
            raise StoreUnavailableError("database is locked")
        self.store.ping()


def ce_id(record: Record) -> str:
    """A record's CloudEvents id, which the outbox is given with the record."""
    return header_values(record.headers)["ce_id"]
