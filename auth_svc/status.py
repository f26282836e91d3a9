"""What the consumer has done and how far behind it is: kept by the consumer thread, read from
any other (GetConsumerStatus, health)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from auth_svc.accounts import Outcome

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
        self._next_refresh = 0.0
        self._last_poll = time.monotonic()

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
        """Note that the loop polled; every `refresh_every_s`, look at the lag again."""
        self._last_poll = now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self._refresh_every_s
            self._refresh(consumer)

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

    def _refresh(self, consumer: Consumer) -> None:
        try:
            assignment = consumer.assignment()
            committed = consumer.committed(assignment, timeout=2) if assignment else []
            # Cached high watermarks come with every fetch response, so reading them costs
            # nothing; asking the broker would block the poll loop for each partition.
            partitions = tuple(
                PartitionLag(
                    tp.topic,
                    tp.partition,
                    tp.offset if tp.offset >= 0 else -1,
                    max(consumer.get_watermark_offsets(tp, cached=True)[1], tp.offset, 0),
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
