"""The outbox relay over a real SQLite outbox, with a sender that fails on command."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from herald.producer import Record
from herald.sqlite import StoreUnavailableError
from tests.support import eventually
from users_svc.relay import OutboxRelay
from users_svc.store import OutboxRow, SqliteUserStore


class FlakySender:
    """Acknowledges records until told to refuse them, and remembers what it acknowledged.

    It fails the test if a batch is started before the previous batch's result was taken:
    the relay keeps one batch in flight at a time.
    """

    def __init__(self) -> None:
        self.acknowledged: list[bytes] = []
        self.refuse_from: int | None = None  # index within a batch from which records fail
        self.batches: list[int] = []
        self.in_flight = False

    def start(self, records: Sequence[Record]) -> Sent:
        assert not self.in_flight, "a batch was started while another was in flight"
        self.in_flight = True
        self.batches.append(len(records))
        results = []
        for index, record in enumerate(records):
            ok = self.refuse_from is None or index < self.refuse_from
            if ok:
                self.acknowledged.append(record.value)
            results.append(ok)
        return Sent(self, results)


class Sent:
    def __init__(self, sender: FlakySender, results: list[bool]) -> None:
        self._sender = sender
        self._results = results

    def result(self) -> list[bool]:
        self._sender.in_flight = False
        return self._results


class MarkFailsOnce:
    """The outbox, except that its first mark_published raises StoreUnavailableError."""

    def __init__(self, store: SqliteUserStore) -> None:
        self._store = store
        self.failed = False

    def pending(self, limit: int, after: int = 0) -> list[OutboxRow]:
        return self._store.pending(limit, after)

    def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        if not self.failed:
            self.failed = True
            raise StoreUnavailableError("disk I/O error")
        self._store.mark_published(seqs, at)

    def prune(self, published_before: datetime) -> int:
        return self._store.prune(published_before)

    def pending_count(self) -> int:
        return self._store.pending_count()


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
    relay = OutboxRelay(store, sender, batch_size=10)
    assert relay.publish_pending() == (False, 2)
    assert [row.record.value for row in store.pending(10)] == [b"3", b"4"]
    sender.refuse_from = None
    assert relay.publish_pending() == (True, 2)
    assert sender.acknowledged == [b"1", b"2", b"3", b"4"]
    assert store.pending_count() == 0


def test_one_call_publishes_every_pending_row_in_bounded_batches(store: SqliteUserStore) -> None:
    append(store, *(b"%d" % n for n in range(7)))
    sender = FlakySender()
    relay = OutboxRelay(store, sender, batch_size=3)
    assert relay.publish_pending() == (True, 7)
    assert sender.batches == [3, 3, 1]
    assert sender.acknowledged == [b"%d" % n for n in range(7)]
    assert relay.publish_pending() == (True, 0)


def test_a_failed_mark_leaves_nothing_in_flight_and_its_rows_are_sent_again(
    store: SqliteUserStore,
) -> None:
    append(store, *(b"%d" % n for n in range(4)))
    sender = FlakySender()
    outbox = MarkFailsOnce(store)
    relay = OutboxRelay(outbox, sender, batch_size=2)
    with pytest.raises(StoreUnavailableError):
        relay.publish_pending()
    # The second batch had gone out when marking the first failed; its result was taken.
    assert not sender.in_flight
    assert relay.publish_pending() == (True, 4)
    # Unmarked rows go again: consumers drop the copies by event id.
    assert sender.acknowledged == [b"0", b"1", b"2", b"3", b"0", b"1", b"2", b"3"]
    assert store.pending_count() == 0


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
    relay = OutboxRelay(store, sender)
    with running(relay):
        append(store, b"a")
        relay.wake()
        eventually(lambda: sender.acknowledged == [b"a"] or None, timeout_s=5)


def test_failures_back_off_and_retry_until_delivered(store: SqliteUserStore) -> None:
    append(store, b"x")
    sender = FlakySender()
    relay = OutboxRelay(store, sender, backoff_initial_s=0.01, backoff_max_s=0.05)
    refuse_then_accept(store, sender, relay)
    assert sender.acknowledged == [b"x"]


def test_after_a_failure_one_row_probes_before_whole_batches_resume(
    store: SqliteUserStore,
) -> None:
    append(store, *(b"%d" % n for n in range(10)))
    sender = FlakySender()
    relay = OutboxRelay(store, sender, batch_size=4, backoff_initial_s=0.01, backoff_max_s=0.02)
    refuse_then_accept(store, sender, relay)
    # A whole batch fails once, then single rows probe until one is acknowledged, then whole
    # batches again (the last holds the one row left); every row is delivered once, in order.
    assert sender.batches[0] == 4
    assert set(sender.batches[1:-3]) == {1}
    assert sender.batches[-3:] == [4, 4, 1]
    assert sender.acknowledged == [b"%d" % n for n in range(10)]
