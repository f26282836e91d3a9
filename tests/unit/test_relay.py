"""The outbox relay over a real SQLite outbox, with a sender that fails on command."""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.backoff import Backoff
from herald.kafka.records import Record
from tests.reliability.oracle import TopicRecord, order_violations
from tests.support import ce_id, eventually
from users_svc.outbox_marks import WaitingMarks
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
    """One event for each value, each of a user of its own (the value is its key)."""
    for value in values:
        append_event(store, Record("events", value, value, [("ce_id", value)]))


def append_event(store: SqliteUserStore, record: Record) -> None:
    store.atomically(lambda unit: unit.append_event(record, ce_id(record)))


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


class TopicSender:
    """A partition that fails each record named in `fail_once` the first time it is sent, and
    acknowledges the rest: the case where a record expires in the producer's queue while the
    ones behind it are delivered."""

    def __init__(self, fail_once: set[bytes]) -> None:
        self.fail_once = set(fail_once)
        self.log: list[TopicRecord] = []

    def send(self, records: Sequence[Record]) -> list[bool]:
        results = []
        for record in records:
            if record.value in self.fail_once:
                self.fail_once.discard(record.value)
                results.append(False)
                continue
            version = int(record.value.split(b":")[1])
            self.log.append(TopicRecord(0, len(self.log), record.key, version))
            results.append(True)
        return results


def append_versions(store: SqliteUserStore, changes: Sequence[bytes]) -> list[bytes]:
    """An event per change, in this commit order; a key's n-th change is its version n."""
    versions: Counter[bytes] = Counter()
    values = []
    for key in changes:
        versions[key] += 1
        value = b"%s:%d" % (key, versions[key])
        append_event(store, Record("events", key, value, [("ce_id", value)]))
        values.append(value)
    return values


def drain(relay: OutboxRelay, store: SqliteUserStore) -> None:
    for _ in range(100):
        relay.publish_once()
        if store.pending_count() == 0:
            return
    raise AssertionError("the outbox never emptied")


def test_a_record_failing_mid_batch_holds_back_its_users_later_ones(
    store: SqliteUserStore,
) -> None:
    append_versions(store, [b"a", b"b", b"a", b"b", b"a"])
    sender = TopicSender(fail_once={b"a:1"})
    drain(OutboxRelay(store, sender, batch_size=10, retention=RETENTION), store)
    # Sent in one go, a:2 and a:3 would reach the topic before the retried a:1.
    assert order_violations(sender.log) == 0, sender.log
    assert sorted((r.key, r.version) for r in sender.log) == [
        (b"a", 1),
        (b"a", 2),
        (b"a", 3),
        (b"b", 1),
        (b"b", 2),
    ]


def test_a_batch_of_distinct_users_goes_out_in_one_send(store: SqliteUserStore) -> None:
    append_versions(store, [b"a", b"b", b"c", b"a"])
    sender = FlakySender()
    relay = OutboxRelay(store, sender, batch_size=10, retention=RETENTION)
    assert relay.publish_once() == (True, 4)
    assert sender.batches == [3, 1]  # a's second change waits for its first


@settings(max_examples=200, deadline=None)
@given(
    changes=st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=20),
    failing=st.sets(st.integers(0, 19)),
    batch_size=st.integers(1, 8),
)
def test_whatever_fails_each_users_events_reach_the_topic_in_order(
    changes: list[bytes], failing: set[int], batch_size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteUserStore(Path(folder) / "users.sqlite3")
        values = append_versions(store, changes)
        sender = TopicSender(fail_once={values[i] for i in failing if i < len(values)})
        drain(OutboxRelay(store, sender, batch_size=batch_size, retention=RETENTION), store)
        store.close()
    assert order_violations(sender.log) == 0, sender.log
    assert len(sender.log) == len(values)


def test_marks_wait_in_memory_and_a_restart_sends_their_rows_again(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    append(store, b"1", b"2")
    relay = OutboxRelay(store, FlakySender(), batch_size=10, retention=RETENTION)
    assert relay.publish_once() == (True, 2)
    # This process sends them no more, but the file does not say they were sent yet: what a
    # crash now would leave, and the next start publishes both again.
    assert store.pending(10) == []
    assert store.pending_count() == 0
    assert [row.record.value for row in SqliteUserStore(path).pending(10)] == [b"1", b"2"]
    append(store, b"3")
    assert [row.record.value for row in store.pending(10)] == [b"3"]
    store.store_marks()
    assert [row.record.value for row in SqliteUserStore(path).pending(10)] == [b"3"]


def test_the_running_relay_stores_its_marks_soon_without_new_rows(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    relay = OutboxRelay(store, FlakySender(), batch_size=BATCH, retention=RETENTION)
    with running(relay):
        append(store, b"a")
        relay.wake()
        # Asked of another store on the file, which sees only what is stored.
        eventually(lambda: SqliteUserStore(path).pending_count() == 0 or None, timeout_s=5)


def test_stopping_stores_the_marks_waiting(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    append(store, b"a", b"b")
    relay = OutboxRelay(store, FlakySender(), batch_size=BATCH, retention=RETENTION)
    stopping = threading.Event()
    stopping.set()  # the loop ends at once; the drain publishes, and the marks are stored
    relay.run(stopping)
    assert SqliteUserStore(path).pending_count() == 0


def test_waiting_marks_of_consecutive_batches_join_into_one_range() -> None:
    marks = WaitingMarks()
    marks.add([3, 1, 2], 10)
    marks.add([4, 5], 11)
    marks.add([9], 12)
    assert marks.taken() == [(10, 1, 3), (11, 4, 5), (12, 9, 9)]
    assert marks.ranges() == [(1, 5), (9, 9)]
    taken = marks.taken()[:2]
    marks.add([10], 13)  # while the two are being stored
    marks.stored(taken)
    marks.stored(taken)  # a second caller that stored the same runs removes nothing more
    assert marks.ranges() == [(9, 10)]
