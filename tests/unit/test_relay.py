"""The outbox relay over a real SQLite outbox, with a sender that fails on command."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from herald.backoff import Backoff
from herald.kafka.records import Record
from tests.support import eventually
from users_svc.relay import OutboxRelay
from users_svc.sqlite_store import SqliteUserStore

BATCH = 5_000
RETENTION = timedelta(days=7)


class FlakySender:
    """Acknowledges records until told to refuse them, and remembers what it acknowledged."""

    def __init__(self) -> None:
        self.acknowledged: list[bytes] = []
        self.refuse_from: int | None = None  # index within a batch from which records fail
        self.batches: list[int] = []

    def send(self, records: Sequence[Record]) -> list[bool]:
        self.batches.append(len(records))
        results = []
        for index, record in enumerate(records):
            ok = self.refuse_from is None or index < self.refuse_from
            if ok:
                self.acknowledged.append(record.value)
            results.append(ok)
        return results


@pytest.fixture
def store(tmp_path: Path) -> SqliteUserStore:
    return SqliteUserStore(tmp_path / "users.sqlite3")


def append(store: SqliteUserStore, *values: bytes) -> None:
    for value in values:
        append_event(store, Record("events", b"k", value, [("ce_id", value)]))


def append_event(store: SqliteUserStore, record: Record) -> None:
    store.atomically(lambda unit: unit.append_event(record))


def test_publishes_in_commit_order_and_marks_only_what_was_acknowledged(
    store: SqliteUserStore,
) -> None:
    append(store, b"1", b"2", b"3", b"4")
    sender = FlakySender()
    sender.refuse_from = 2
    relay = OutboxRelay(store, sender, batch_size=10, retention=RETENTION)
    assert relay.publish_once() == (False, 2)
    assert [row.record.value for row in store.pending(10)] == [b"3", b"4"]
    sender.refuse_from = None
    assert relay.publish_once() == (True, 2)
    assert sender.acknowledged == [b"1", b"2", b"3", b"4"]
    assert store.pending_count() == 0


def test_batches_are_bounded(store: SqliteUserStore) -> None:
    append(store, *(b"%d" % n for n in range(7)))
    sender = FlakySender()
    relay = OutboxRelay(store, sender, batch_size=3, retention=RETENTION)
    while relay.publish_once()[1]:
        pass
    assert sender.batches == [3, 3, 1]


@contextmanager
def running(relay: OutboxRelay) -> Iterator[None]:
    """The relay's loop on a thread of its own; stopped (which drains) and joined on exit."""
    stopping = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stopping,))
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(10)
    assert not thread.is_alive()


def refuse_then_accept(store: SqliteUserStore, sender: FlakySender, relay: OutboxRelay) -> None:
    """Refuse every record for three sends, then accept until the outbox is empty."""
    sender.refuse_from = 0
    with running(relay):
        eventually(lambda: len(sender.batches) >= 3 or None, timeout_s=5)
        sender.refuse_from = None
        eventually(lambda: store.pending_count() == 0 or None, timeout_s=5)


def test_a_commit_wakes_the_running_relay_and_stopping_drains(store: SqliteUserStore) -> None:
    sender = FlakySender()
    relay = OutboxRelay(store, sender, batch_size=BATCH, retention=RETENTION)
    with running(relay):
        append(store, b"a")
        relay.wake()
        eventually(lambda: sender.acknowledged == [b"a"] or None, timeout_s=5)


def test_failures_back_off_and_retry_until_delivered(store: SqliteUserStore) -> None:
    append(store, b"x")
    sender = FlakySender()
    relay = OutboxRelay(
        store, sender, batch_size=BATCH, retention=RETENTION, backoff=Backoff(0.01, 0.05)
    )
    refuse_then_accept(store, sender, relay)
    assert sender.acknowledged == [b"x"]


def test_after_a_failure_one_row_probes_before_whole_batches_resume(
    store: SqliteUserStore,
) -> None:
    append(store, *(b"%d" % n for n in range(10)))
    sender = FlakySender()
    relay = OutboxRelay(
        store, sender, batch_size=4, retention=RETENTION, backoff=Backoff(0.01, 0.02)
    )
    refuse_then_accept(store, sender, relay)
    # A whole batch fails once, then single rows probe until one is acknowledged, then whole
    # batches again (the last holds the one row left); every row is delivered once, in order.
    assert sender.batches[0] == 4
    assert set(sender.batches[1:-3]) == {1}
    assert sender.batches[-3:] == [4, 4, 1]
    assert sender.acknowledged == [b"%d" % n for n in range(10)]
