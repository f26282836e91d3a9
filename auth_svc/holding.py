"""Holding a batch the consumer cannot finish yet: its partitions paused, Kafka still polled.

A consumer that stops calling consume() for longer than `max.poll.interval.ms` is put out of
its group, and its partitions go to another member that hits the same wall. So while the
store or the dead-letter topic refuses writes, the loop keeps polling with every partition
paused, tries the held batch again after each backoff delay, and only then moves on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, TopicPartition

from auth_svc.batch import InFlight, in_flight
from auth_svc.status import StatusBoard
from herald.backoff import Backoff

logger = logging.getLogger(__name__)

# How long one consume() call waits while the partitions are paused.
PAUSED_POLL_S = 0.5
# The most records one consume() call hands over while paused: normally none at all.
PAUSED_BATCH = 1000


class Hold:
    """A held batch, how often it has been tried (and failed), and where to resume each
    partition."""

    def __init__(
        self, consumer: Consumer, batch: list[InFlight], reason: str, backoff: Backoff
    ) -> None:
        self.batch = batch
        self.reason = reason
        self.tries = 1
        self._consumer = consumer
        self._delays: Iterator[float] = backoff.delays()
        # Per partition, the lowest offset consume() handed over (and the loop dropped) while
        # paused: librdkafka may still return what it fetched before the pause, and a
        # partition assigned meanwhile starts unpaused. Resuming lower than needed only
        # redelivers records, which the inbox makes harmless; higher would skip some.
        self._rewind: dict[tuple[str, int], int] = {}
        self._pause()

    def wait(self, stopping: threading.Event, status: StatusBoard) -> list[InFlight]:
        """Keep polling, paused, for one backoff delay; then the held records whose partitions
        this member still owns (another member reads the rest from their committed offset)."""
        deadline = time.monotonic() + next(self._delays)
        while not stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            for record in in_flight(self._consumer.consume(PAUSED_BATCH, min(left, PAUSED_POLL_S))):
                topic, partition, offset = record.position
                self._rewind[topic, partition] = min(
                    offset, self._rewind.get((topic, partition), offset)
                )
            status.polled(self._consumer)
            self._pause()
        # A partition lost meanwhile restarts from its committed offset, here or elsewhere.
        owned = self._owned()
        self.batch = [r for r in self.batch if r.position[:2] in owned]
        self._rewind = {tp: offset for tp, offset in self._rewind.items() if tp in owned}
        return self.batch

    def release(self) -> None:
        """Resume every partition, each from where this member left it."""
        owned = self._owned()
        for (topic, partition), offset in self._rewind.items():
            if (topic, partition) in owned:
                try:
                    self._consumer.seek(TopicPartition(topic, partition, offset))
                except KafkaException as error:
                    # Not fetched yet, so it will start from the committed offset anyway.
                    logger.warning("could not rewind %s[%d]: %s", topic, partition, error)
        self._consumer.resume(self._consumer.assignment())
        logger.info("resumed consuming after: %s", self.reason)

    def _pause(self) -> None:
        # Every time, not once: a partition assigned (or given back) meanwhile is not paused.
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(assignment)

    def _owned(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
