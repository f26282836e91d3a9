"""The Kafka side of auth_svc: consume a batch, decode it, apply it, store the offsets.

At-least-once delivery plus the store's inbox gives exactly-once effects. A record that can
never be applied (a poison record) goes to the dead-letter topic with the reason, and the
partition moves on. A failure that may pass (the database or the dead-letter topic refusing
writes) holds the batch: the partitions pause, Kafka is still polled so the group keeps this
member, and the batch is tried again with backoff until it goes through. Nothing is skipped
silently, and a good event is never dead-lettered because the database was down.

Records are applied a batch at a time, in one store transaction, because a transaction
costs a sync to disk: per record, that sync was nearly all of the work. A batch behaves as
its records one after another would: same outcomes, same dead letters, same offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from confluent_kafka import Consumer, KafkaException, Message

from auth_svc.accounts import AccountStore
from auth_svc.applying import Applier, RetryPolicy
from auth_svc.batch import BlockedError, InFlight, in_flight, offsets_after
from auth_svc.dead_letters import DeadLetterWriter
from auth_svc.decoders import Decoder, PoisonRecordError, Router
from auth_svc.holding import Hold
from auth_svc.rebalance import RebalanceListener
from auth_svc.status import ConsumerStatus, StatusBoard
from herald.contract.events import USERS_SVC_SOURCE
from herald.kafka.sender import RecordSender
from herald.storage.errors import StoreUnavailableError
from herald.timestamps import utc_now

logger = logging.getLogger(__name__)

# Event ids are remembered twice as long as the events topic keeps events (7 days), so any
# redelivery Kafka can still make is recognised; older ids only take space.
INBOX_RETENTION = timedelta(days=14)

# How long one consume() call waits for a record to arrive when none is waiting.
POLL_TIMEOUT_S = 0.5
# The most records one consume() call may ask for.
MAX_BATCH_SIZE = 1_000_000


@dataclass(frozen=True)
class Subscription:
    """What the consumer reads, as which group, and where its dead letters go."""

    group_id: str
    topic: str
    dlq_topic: str
    # The CloudEvents sources whose events are applied; a record from any other is poison.
    sources: frozenset[str] = frozenset({USERS_SVC_SOURCE})


@dataclass(frozen=True)
class ConsumerTuning:
    """The consumer's tunables. The batch size, lag limit and retries come from the service's
    Settings; how often the lag is looked at is fixed here."""

    batch_size: int
    max_lag: int
    retry: RetryPolicy
    status_every_s: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size must be from 1 to {MAX_BATCH_SIZE}, not {self.batch_size}"
            )


class EventConsumer:
    def __init__(
        self,
        consumer: Consumer,
        subscription: Subscription,
        *,
        store: AccountStore,
        decoders: Mapping[str, Decoder],
        dead_letters: RecordSender,
        tuning: ConsumerTuning,
        lag_client: Consumer,
        clock: Callable[[], datetime] = utc_now,
        status: StatusBoard | None = None,
    ) -> None:
        self._consumer = consumer
        # A second client of the group, never subscribed, for StatusBoard.refreshing's thread
        # to ask what is committed without waiting on (or holding up) this one.
        self._lag_client = lag_client
        self._topic = subscription.topic
        self._store = store
        self._router = Router(decoders, subscription.sources)
        self._batch_size = tuning.batch_size
        self._clock = clock
        # Given when the Kafka consumer reports to it too (its offset commits, say).
        self._status = status or StatusBoard(
            subscription.group_id, tuning.max_lag, tuning.status_every_s
        )
        self._dead_letters = DeadLetterWriter(
            dead_letters, subscription.dlq_topic, self._status, clock
        )
        self._applier = Applier(store, tuning.retry, self._dead_letters, self._status)
        self._backoff = tuning.retry.backoff
        self._hold: Hold | None = None
        self._rebalances = RebalanceListener(self._status)
        # Set once the group has taken this member in: from then on it serves.
        self.joined = self._rebalances.joined
        self._next_prune = 0.0

    def run(self, stopping: threading.Event) -> None:
        """Consume until `stopping` is set; then close, which commits and leaves the group."""
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._rebalances.on_assign,
            on_revoke=self._rebalances.on_revoke,
            on_lost=self._rebalances.on_lost,
        )
        try:
            with self._status.refreshing(self._lag_client):
                self._consume(stopping)
        finally:
            try:
                self._consumer.close()
                logger.info("consumer closed: offsets committed, group left")
            finally:
                self._lag_client.close()

    def _consume(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            if self._hold is not None:
                batch = self._hold.wait(stopping, self._status)
                if stopping.is_set():
                    break  # what is unfinished stays unstored, for the next owner
            else:
                batch = in_flight(self._next_batch())
                self._status.polled(self._consumer)
                self._prune_inbox_when_due()
            if batch or self._hold is not None:
                self._process(batch)

    def status(self) -> ConsumerStatus:
        """A snapshot for GetConsumerStatus and health; safe from any thread."""
        return self._status.snapshot()

    def healthy(self, lag_grace_s: float) -> bool:
        """Connected, polling, and not lagging past the limit for longer than the grace."""
        return self._status.healthy(lag_grace_s)

    def _next_batch(self) -> list[Message]:
        """Up to a batch of records: those already fetched, or else the first to arrive
        within the poll timeout together with any that came with it.

        consume(n, timeout) returns early only once it has n records, so asking for a
        whole batch with a timeout would hold each event of a trickle back that long.
        """
        batch = self._consumer.consume(self._batch_size, 0)
        if batch:
            return batch
        batch = self._consumer.consume(1, POLL_TIMEOUT_S)
        if batch and self._batch_size > 1:
            batch += self._consumer.consume(self._batch_size - 1, 0)
        return batch

    def _process(self, batch: list[InFlight]) -> None:
        """Dead-letter the batch's poison records and apply the rest, then store the offsets of
        what is finished; hold the batch if some of it cannot be finished now, release it
        once all of it is."""
        tries = self._hold.tries if self._hold is not None else 0
        self._decode(batch)
        blocked: list[BlockedError] = []
        try:
            self._dead_letters.write(
                [(r, r.poison) for r in batch if r.poison is not None and not r.finished]
            )
        except BlockedError as error:
            # Applied all the same: the events behind a poison record that cannot be
            # dead-lettered yet need not wait (its partition's offset does).
            blocked.append(error)
        try:
            self._applier.apply(batch, tries)
        except BlockedError as error:
            blocked.append(error)
        if blocked:
            self._held(batch, "; ".join(str(error) for error in blocked))
        elif self._hold is not None:
            self._hold.release()
            self._hold = None
            self._status.resumed()
        # Only now: a crash before this line redelivers the records, and the inbox makes
        # the second delivery a no-op.
        offsets = offsets_after(batch)
        if offsets:
            try:
                self._consumer.store_offsets(offsets=offsets)
            except KafkaException as error:
                # The partitions went to another member meanwhile (this one was frozen past
                # its session timeout, say): their new owner reads these records again, and
                # the inbox makes that harmless. Committing them from here would be wrong.
                self._status.count_commit_refused(f"offsets not stored: {error}")

    def _held(self, batch: list[InFlight], reason: str) -> None:
        if self._hold is None:
            logger.warning("pausing every partition: %s", reason)
            self._hold = Hold(self._consumer, batch, reason, self._backoff)
        else:
            self._hold.reason = reason
            self._hold.tries += 1
        self._status.paused(reason)

    def _decode(self, batch: list[InFlight]) -> None:
        """Decode the records of the batch not decoded yet; the poison ones keep why."""
        now = self._clock()  # one reading serves the batch: it is applied all at once
        for record in batch:
            if record.event is not None or record.poison is not None:
                continue
            try:
                record.event = self._router.decode(record.message, record.position, now)
            except PoisonRecordError as error:
                record.poison = error

    def _prune_inbox_when_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + 3600
        try:
            pruned = self._store.prune_inbox(self._clock() - INBOX_RETENTION)
        except StoreUnavailableError:
            return
        if pruned:
            logger.info("pruned %d event ids from the inbox", pruned)
