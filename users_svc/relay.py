"""The outbox relay: publishes committed events to Kafka in commit order, then marks them.

A row is marked published only after the broker acknowledged it, and the marks are stored
together at most MARK_EVERY_S later (users_svc.outbox_marks says why). A crash before a mark is
stored publishes its row again on restart; every copy has the same event id, so consumers
drop it.

A user's events reach the topic in version order. The idempotent producer keeps a
partition's order through its own retries, but not past a record that expires in its queue:
the records behind it are still sent, and a retry of the expired one would land after them.
So a batch goes out in rounds, each holding at most one row per key, and a round is sent only
once every record of the one before it was acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from herald.backoff import Backoff
from herald.kafka.sender import RecordSender
from herald.storage.errors import StoreUnavailableError
from herald.timestamps import utc_now
from users_svc.store import Outbox, OutboxRow

logger = logging.getLogger(__name__)

# While Kafka is down each attempt already waits out the send timeout, so the pause between
# attempts stays short: it bounds how late the relay notices Kafka is back.
BACKOFF = Backoff(first_s=0.2, max_s=5.0)

# The longest a mark waits to be stored: the rows a crash would have published again.
MARK_EVERY_S = 0.1


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        sender: RecordSender,
        *,
        batch_size: int,
        retention: timedelta,
        backoff: Backoff = BACKOFF,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._outbox = outbox
        self._sender = sender
        self._batch_size = batch_size
        self._retention = retention
        self._backoff = backoff
        self._clock = clock
        self._wake = threading.Event()
        self._next_prune = 0.0
        self._marks_due: float | None = None  # when the marks waiting must be stored

    def wake(self) -> None:
        """Tell the relay new rows are committed; cheap, and safe from any thread."""
        self._wake.set()

    def run(self, stopping: threading.Event, drain_s: float = 5.0) -> None:
        """Publish until `stopping` is set, then spend up to `drain_s` on what is left."""
        delays = self._backoff.delays()
        complete = True
        while not stopping.is_set():
            # Cleared before looking, so a commit that lands while we publish wakes us again.
            self._wake.clear()
            try:
                # After a failure, one row probes whether Kafka is back: a whole batch would
                # sit in the producer's queue for the send timeout, and its buffers would stay
                # in the process's heap (`make bench` saw users_svc's RSS grow by a quarter).
                complete, sent = self.publish_once(self._batch_size if complete else 1)
                if self._marks_due is not None and time.monotonic() >= self._marks_due:
                    self._store_marks()
            except StoreUnavailableError:
                complete, sent = False, 0
            except Exception:
                # Whatever it is, the rows stay in the outbox: log, back off, try again.
                logger.exception("outbox relay: unexpected error")
                complete, sent = False, 0
            if not complete:
                delay = next(delays)
                logger.warning("outbox relay: delivery incomplete; retrying in %.1f s", delay)
                stopping.wait(delay)
                continue
            delays = self._backoff.delays()
            if sent == 0:
                self._prune_when_due()
                # New rows set the event; the timeout only bounds how long a row committed
                # by another process (or before a restart) can wait, or a mark.
                due = self._marks_due
                self._wake.wait(1.0 if due is None else max(due - time.monotonic(), 0.0))
        if complete:
            # Only while Kafka answers: otherwise a drain would just wait out send timeouts
            # past the shutdown grace. Unsent rows stay in the outbox for the next start.
            self._drain(time.monotonic() + drain_s)
        try:
            self._store_marks()
        except StoreUnavailableError:
            logger.warning("outbox relay stopped with marks not stored: rows will be resent")

    def publish_once(self, limit: int | None = None) -> tuple[bool, int]:
        """Publish the oldest pending rows, up to `limit` (the batch size by default):
        (every row acknowledged?, rows published)."""
        rows = self._outbox.pending(limit or self._batch_size)
        if not rows:
            return True, 0
        published: list[int] = []
        for round_ in _rounds(rows):
            acknowledged = self._sender.send([row.record for row in round_])
            published += [row.seq for row, ok in zip(round_, acknowledged, strict=True) if ok]
            if not all(acknowledged):
                # A key whose record failed must not have a later one sent; and with Kafka
                # failing, the next round would only wait out the send timeout again.
                break
        if published:
            self._outbox.mark_published_later(published, self._clock())
            if self._marks_due is None:
                self._marks_due = time.monotonic() + MARK_EVERY_S
        return len(published) == len(rows), len(published)

    def _store_marks(self) -> None:
        """Store the marks waiting; if the store refuses, they wait another MARK_EVERY_S."""
        self._marks_due = time.monotonic() + MARK_EVERY_S
        self._outbox.store_marks()
        self._marks_due = None

    def _drain(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline:
                complete, sent = self.publish_once()
                if not complete or sent == 0:
                    break
            left = self._outbox.pending_count()
        except StoreUnavailableError:
            return
        # What is left stays in the outbox; the next start publishes it.
        logger.info("outbox relay stopped; %d rows pending", left)

    def _prune_when_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + 60
        try:
            pruned = self._outbox.prune(self._clock() - self._retention)
        except StoreUnavailableError:
            return
        if pruned:
            logger.info("pruned %d published outbox rows", pruned)


def _rounds(rows: Sequence[OutboxRow]) -> list[list[OutboxRow]]:
    """The rows, in commit order, dealt into rounds: a key's first row goes in the first
    round, its second in the second, and so on. Most batches have one row per user, so one
    round; only a user changed several times in quick succession adds more."""
    rounds: list[list[OutboxRow]] = []
    seen: defaultdict[bytes, int] = defaultdict(int)
    for row in rows:
        key = row.record.key
        if seen[key] == len(rounds):
            rounds.append([])
        rounds[seen[key]].append(row)
        seen[key] += 1
    return rounds
