"""What the consumer has done and how far behind it is: counted by the consumer thread, its lag
worked out by a thread of its own, read from any other (GetConsumerStatus, health)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from auth_svc.accounts import Outcome
from herald.lifecycle import name_os_thread

logger = logging.getLogger(__name__)

# A loop that has not polled for this long is stuck.
STALL_LIMIT_S = 60.0
# The longest pause reason kept: it is shown to operators, and may quote a client's record.
MAX_REASON = 300


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int  # -1: nothing committed yet
    high_watermark: int

    @property
    def lag(self) -> int:
        return self.high_watermark - max(self.committed, 0)


@dataclass(frozen=True)
class ConsumerStatus:
    group_id: str
    connected: bool = True
    partitions: tuple[PartitionLag, ...] = ()
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    dead_lettered: int = 0
    retries: int = 0
    # Times the group changed this member's partitions after it first joined.
    rebalances: int = 0
    # Times the consumer paused its partitions to hold a batch it could not finish, and why
    # it is paused now ("" while it is not).
    pauses: int = 0
    paused_reason: str = ""
    # Offset commits the group coordinator refused (after this member lost its partitions).
    commits_refused: int = 0
    # monotonic time since when the lag has been over the limit, or None
    lagging_since: float | None = None

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)


class StatusBoard:
    """The counters and the latest view of the assignment's lag; thread-safe."""

    def __init__(self, group_id: str, max_lag: int, refresh_every_s: float) -> None:
        self._max_lag = max_lag
        self._refresh_every_s = refresh_every_s
        self._lock = threading.Lock()
        self._status = ConsumerStatus(group_id=group_id)
        self._last_poll = time.monotonic()
        # The consumer thread's latest look at its assignment: each partition and its cached
        # high watermark; `_wake` tells the refreshing thread there is a new one.
        self._next_look = 0.0
        self._looked: tuple[tuple[TopicPartition, int], ...] = ()
        self._wake = threading.Event()

    def count(self, outcomes: Sequence[Outcome]) -> None:
        applied = duplicates = stale = 0
        for outcome in outcomes:
            if outcome is Outcome.APPLIED:
                applied += 1
            elif outcome is Outcome.DUPLICATE:
                duplicates += 1
            else:
                stale += 1
        with self._lock:
            s = self._status
            self._status = replace(
                s,
                applied=s.applied + applied,
                duplicates=s.duplicates + duplicates,
                stale=s.stale + stale,
            )

    def count_retry(self) -> None:
        with self._lock:
            self._status = replace(self._status, retries=self._status.retries + 1)

    def count_dead_letter(self) -> None:
        with self._lock:
            self._status = replace(self._status, dead_lettered=self._status.dead_lettered + 1)

    def count_rebalance(self) -> None:
        with self._lock:
            self._status = replace(self._status, rebalances=self._status.rebalances + 1)

    def paused(self, reason: str) -> None:
        with self._lock:
            s = self._status
            pauses = s.pauses + (not s.paused_reason)
            self._status = replace(s, pauses=pauses, paused_reason=reason[:MAX_REASON])

    def resumed(self) -> None:
        with self._lock:
            self._status = replace(self._status, paused_reason="")

    def committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's on_commit callback: count the commits the group refused."""
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            self.count_commit_refused(f"offset commit refused: {error.str()}")

    def count_commit_refused(self, why: str) -> None:
        logger.warning("%s", why)
        with self._lock:
            self._status = replace(self._status, commits_refused=self._status.commits_refused + 1)

    def snapshot(self) -> ConsumerStatus:
        with self._lock:
            return self._status

    def polled(self, consumer: Consumer) -> None:
        """Note that the loop polled; every `refresh_every_s`, note what it is assigned and how
        far each partition goes, for `refreshing`'s thread to work out the lag from.

        Only local reads, on the consumer thread: the assignment, and the high watermarks
        librdkafka caches from every fetch response. What the group has committed takes a
        round trip to its coordinator, which `refreshing`'s thread makes with its own client.
        """
        self._last_poll = now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + self._refresh_every_s
        try:
            self._looked = tuple(
                (tp, consumer.get_watermark_offsets(tp, cached=True)[1])
                for tp in consumer.assignment()
            )
        except KafkaException as error:
            # A partition that went away meanwhile, say; the next look tries again.
            logger.warning("could not read the assignment's watermarks: %s", error)
            return
        self._wake.set()

    @contextmanager
    def refreshing(self, lag_client: Consumer) -> Iterator[None]:
        """While the block runs, work out the lag on a thread of its own whenever `polled`
        has looked again; the thread has stopped by the time the block ends.

        `lag_client` is a client of the same group that never subscribes: it only asks the
        coordinator what is committed. Not the consumer itself: confluent_kafka (2.16) lets
        one thread at a time into a Consumer's methods. Asked from here, the consumer's
        assignment() waited behind the consumer thread's back-to-back consume() calls for
        minutes on end; and had it got in, consume() would have waited for its round trip
        (up to the 2 s timeout while the cluster is away), the stall this thread is for.
        """
        done = threading.Event()
        thread = threading.Thread(
            target=self._refresh_until, args=(lag_client, done), name="kafka-status"
        )
        thread.start()
        try:
            yield
        finally:
            done.set()
            self._wake.set()
            thread.join()

    def _refresh_until(self, lag_client: Consumer, done: threading.Event) -> None:
        name_os_thread()
        while True:
            self._wake.wait()
            self._wake.clear()
            if done.is_set():
                return
            try:
                self._refresh(lag_client, self._looked)
            except Exception:
                # Whatever it is, a dead thread would freeze the lag silently: log, go on.
                logger.exception("consumer lag not refreshed")

    def healthy(self, lag_grace_s: float, stall_limit_s: float = STALL_LIMIT_S) -> bool:
        """Connected, polling, and not lagging past the limit for longer than the grace.

        A consumer holding a batch it cannot finish (paused) is not healthy either. A loop
        stuck some other way stops polling, and its status would look frozen but fine: the
        time since the last poll catches that.
        """
        status = self.snapshot()
        now = time.monotonic()
        lagging_too_long = (
            status.lagging_since is not None and now - status.lagging_since > lag_grace_s
        )
        stalled = now - self._last_poll > stall_limit_s
        return (
            status.connected and not lagging_too_long and not stalled and not status.paused_reason
        )

    def _refresh(
        self, lag_client: Consumer, looked: tuple[tuple[TopicPartition, int], ...]
    ) -> None:
        """How far each partition's committed offset is behind its high watermark. The
        cluster out of reach keeps the last figures, disconnected."""
        try:
            # Committed, not the position: lag counts what a restart would read again.
            committed = lag_client.committed([tp for tp, _ in looked], timeout=2) if looked else []
            highs = {(tp.topic, tp.partition): high for tp, high in looked}
            partitions = tuple(
                PartitionLag(
                    tp.topic,
                    tp.partition,
                    tp.offset if tp.offset >= 0 else -1,
                    max(highs.get((tp.topic, tp.partition), 0), tp.offset, 0),
                )
                for tp in committed
            )
            connected = True
        except KafkaException as error:
            logger.warning("consumer cannot reach the cluster: %s", error)
            partitions, connected = self.snapshot().partitions, False
        total_lag = sum(p.lag for p in partitions)
        with self._lock:
            lagging_since = self._status.lagging_since
            if total_lag <= self._max_lag:
                lagging_since = None
            elif lagging_since is None:
                lagging_since = time.monotonic()
            self._status = replace(
                self._status,
                connected=connected,
                partitions=partitions,
                lagging_since=lagging_since,
            )
