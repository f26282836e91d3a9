"""The Kafka side of auth_svc: consume a batch, route by `ce_type`, apply, store the offsets.

At-least-once delivery plus the store's inbox gives exactly-once effects. A record that can
never be applied (a poison record) goes to the dead-letter topic with the reason; a failure
that may pass (a busy database) is retried with backoff, a bounded number of times, then
dead-lettered too. Either way the partition moves on, and nothing is skipped silently.

Records are applied a batch at a time, in one store transaction, because a transaction
costs a sync to disk: per record, that sync was nearly all of the work. A batch behaves as
its records one after another would: same outcomes, same dead letters, same offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from google.protobuf.message import DecodeError

from auth_svc.accounts import Account, AccountStore, Delivery, EventSource, Outcome
from auth_svc.decoders import Handler, InvalidEventError
from herald.kafka import deadletter
from herald.kafka.records import ReceivedHeaders, header_values
from herald.kafka.sender import RecordSender
from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

# Event ids are remembered twice as long as the events topic keeps events (7 days), so any
# redelivery Kafka can still make is recognised; older ids only take space.
INBOX_RETENTION = timedelta(days=14)

# How long one consume() call waits for a record to arrive when none is waiting.
POLL_TIMEOUT_S = 0.5
# The most records one consume() call may ask for.
MAX_BATCH_SIZE = 1_000_000

T = TypeVar("T")


class PoisonRecordError(ValueError):
    """A record no retry can apply: undecodable, of an unknown type, or invalid."""


class _StoppedError(Exception):
    """`stopping` was set while a record waited for a retry or for its dead letter."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0


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
    # monotonic time since when the lag has been over the limit, or None
    lagging_since: float | None = None

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass
class _Counters:
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def count(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if outcome is Outcome.APPLIED:
                self.applied += 1
            elif outcome is Outcome.DUPLICATE:
                self.duplicates += 1
            else:
                self.stale += 1


class EventConsumer:
    def __init__(
        self,
        consumer: Consumer,
        *,
        group_id: str,
        topic: str,
        dlq_topic: str,
        store: AccountStore,
        handlers: Mapping[str, Handler],
        dead_letters: RecordSender,
        retry: RetryPolicy = RetryPolicy(),
        batch_size: int = 1000,
        max_lag: int = 10_000,
        status_every_s: float = 2.0,
        on_first_assignment: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._dlq_topic = dlq_topic
        self._store = store
        self._handlers = handlers
        # The same handlers keyed by `ce_type` as it arrives, bytes, too: most records are
        # routed by one dict lookup, without decoding their headers.
        self._routes: dict[str | bytes, tuple[str, Handler]] = {}
        for event_type, handler in handlers.items():
            self._routes[event_type] = self._routes[event_type.encode()] = (event_type, handler)
        self._dead_letters = dead_letters
        self._retry = retry
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}, not {batch_size}")
        self._batch_size = batch_size
        self._max_lag = max_lag
        self._status_every_s = status_every_s
        self._on_first_assignment: Callable[[], None] | None = on_first_assignment
        self._clock = clock
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._status = ConsumerStatus(group_id=group_id)
        self._next_status = 0.0
        self._last_poll = time.monotonic()
        self._next_prune = 0.0

    # --- the loop ---

    def run(self, stopping: threading.Event) -> None:
        """Consume until `stopping` is set; then close, which commits and leaves the group."""
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not stopping.is_set():
                messages = self._next_batch()
                self._last_poll = time.monotonic()
                self._refresh_status_when_due()
                self._prune_inbox_when_due()
                records = _records(messages)
                if records and not self._process(records, stopping):
                    break  # stopped in the middle of it: what is unfinished stays unstored
        finally:
            self._consumer.close()
            logger.info("consumer closed: offsets committed, group left")

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

    def _process(self, records: list[Message], stopping: threading.Event) -> bool:
        """Dead-letter the batch's poison records, apply the rest, then store the offsets of
        what is finished; False if stopping interrupted that."""
        sources = [
            EventSource(m.topic() or "", m.partition() or 0, m.offset() or 0) for m in records
        ]
        finished = [False] * len(records)
        try:
            deliveries, positions = self._decode_all(records, sources, finished, stopping)
            self._apply_all(records, deliveries, positions, finished, stopping)
        except _StoppedError:
            completed = False
        else:
            completed = True
        # Only now: a crash before this line redelivers the records, and the inbox makes
        # the second delivery a no-op.
        offsets = _offsets_after(sources, finished)
        if offsets:
            self._consumer.store_offsets(offsets=offsets)
        return completed

    def _decode_all(
        self,
        records: list[Message],
        sources: list[EventSource],
        finished: list[bool],
        stopping: threading.Event,
    ) -> tuple[list[Delivery], list[int]]:
        """The batch's decodable records as deliveries, with their positions in the batch;
        the poison ones are dead-lettered, in order, on the way."""
        now = self._clock()  # one reading serves the batch: it is applied all at once
        deliveries: list[Delivery] = []
        positions: list[int] = []
        for index, message in enumerate(records):
            try:
                event_type, account = self._decode(message, now)
            except PoisonRecordError as error:
                self._dead_letter(message, error, stopping)
                finished[index] = True
            else:
                deliveries.append(Delivery(account, event_type, sources[index]))
                positions.append(index)
        return deliveries, positions

    def _apply_all(
        self,
        records: list[Message],
        deliveries: list[Delivery],
        positions: list[int],
        finished: list[bool],
        stopping: threading.Event,
    ) -> None:
        """Apply the deliveries in one transaction, retried as a whole; if the retries run
        out, one at a time, so only the records that still fail are dead-lettered."""
        if not deliveries:
            return
        try:
            outcomes = self._retrying(
                partial(self._store.apply_batch, deliveries),
                f"a batch of {len(deliveries)} records",
                stopping,
            )
        except StoreUnavailableError as error:
            logger.warning("applying the batch one record at a time: %s", error)
            for delivery, index in zip(deliveries, positions, strict=True):
                self._apply_one(records[index], delivery, stopping)
                finished[index] = True
            return
        with self._lock:
            self._counters.count(outcomes)
        for index in positions:
            finished[index] = True

    def _apply_one(self, message: Message, delivery: Delivery, stopping: threading.Event) -> None:
        try:
            outcome = self._retrying(
                partial(self._store.apply, *delivery), _where(message), stopping
            )
        except StoreUnavailableError as error:
            self._dead_letter(message, error, stopping)
        else:
            with self._lock:
                self._counters.count([outcome])

    def _retrying(self, apply: Callable[[], T], what: str, stopping: threading.Event) -> T:
        """apply(), again with backoff while the store is unavailable, up to the policy's
        attempts; then the last StoreUnavailableError is raised."""
        backoff = self._retry.first_backoff_s
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return apply()
            except StoreUnavailableError as error:
                if attempt == self._retry.attempts:
                    raise
                with self._lock:
                    self._counters.retries += 1
                logger.warning("retrying %s in %.1f s: %s", what, backoff, error)
                if stopping.wait(backoff):
                    raise _StoppedError from error
                backoff = min(backoff * 2, self._retry.max_backoff_s)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _decode(self, message: Message, now: datetime) -> tuple[str, Account]:
        event_type, handler = self._route(message.headers())
        try:
            return event_type, handler(message.value() or b"", now)
        except (DecodeError, InvalidEventError) as error:
            raise PoisonRecordError(f"{type(error).__name__}: {error}") from error

    def _route(self, headers: ReceivedHeaders | None) -> tuple[str, Handler]:
        """The type and handler the record's `ce_type` header names."""
        if isinstance(headers, list):
            sent: str | bytes | None = None
            for name, value in headers:
                if name == "ce_type":
                    sent = value
            route = self._routes.get(sent) if sent is not None else None
            if route is not None:
                return route
        # Not a type known as it came: read the headers as text, as before, to route the
        # record or to say exactly what is wrong with it.
        event_type = header_values(headers).get("ce_type")
        if not event_type:
            raise PoisonRecordError("no ce_type header")
        handler = self._handlers.get(event_type)
        if handler is None:
            raise PoisonRecordError(f"unknown ce_type {event_type!r}")
        return event_type, handler

    def _dead_letter(self, message: Message, error: Exception, stopping: threading.Event) -> None:
        """Send the record, as it was plus why, to the dead-letter topic; keep trying until
        it is there (never skip a record without a trace) or until stopping."""
        cause = (
            error.__cause__ if isinstance(error, PoisonRecordError) and error.__cause__ else error
        )
        record = deadletter.dead_letter(
            message,
            self._dlq_topic,
            error_class=type(cause).__name__,
            error_message=str(error),
            at=self._clock(),
        )
        backoff = self._retry.first_backoff_s
        while not self._dead_letters.send([record])[0]:
            logger.error("could not dead-letter %s; retrying in %.1f s", _where(message), backoff)
            if stopping.wait(backoff):
                raise _StoppedError
            backoff = min(backoff * 2, self._retry.max_backoff_s)
        with self._lock:
            self._counters.dead_lettered += 1
        logger.warning("dead-lettered %s: %s", _where(message), error)

    # --- rebalances ---

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("assigned %s", _names(partitions))
        if self._on_first_assignment is not None:
            # The group has taken this member in (even with no partitions): it is serving.
            self._on_first_assignment()
            self._on_first_assignment = None

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what was applied before the partitions move, so their next owner starts
        # right after it instead of re-reading (harmless, but wasted) records.
        logger.info("revoked %s", _names(partitions))
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                logger.warning("commit on revoke failed: %s", error)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may own them already, so committing would be wrong.
        logger.warning("lost %s", _names(partitions))

    # --- status ---

    def status(self) -> ConsumerStatus:
        """A snapshot for GetConsumerStatus and health; safe from any thread."""
        with self._lock:
            c = self._counters
            return replace(
                self._status,
                applied=c.applied,
                duplicates=c.duplicates,
                stale=c.stale,
                dead_lettered=c.dead_lettered,
                retries=c.retries,
            )

    def healthy(self, lag_grace_s: float, stall_limit_s: float = 60.0) -> bool:
        """Connected, polling, and not lagging past the limit for longer than the grace.

        A loop stuck on one record (a dead letter that cannot be written) stops polling, and
        its status would look frozen but fine: the time since the last poll catches that.
        """
        status = self.status()
        now = time.monotonic()
        lagging_too_long = (
            status.lagging_since is not None and now - status.lagging_since > lag_grace_s
        )
        stalled = now - self._last_poll > stall_limit_s
        return status.connected and not lagging_too_long and not stalled

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

    def _refresh_status_when_due(self) -> None:
        if time.monotonic() < self._next_status:
            return
        self._next_status = time.monotonic() + self._status_every_s
        try:
            assignment = self._consumer.assignment()
            committed = self._consumer.committed(assignment, timeout=2) if assignment else []
            # Cached high watermarks come with every fetch response, so reading them costs
            # nothing; asking the broker would block the poll loop for each partition.
            partitions = tuple(
                PartitionLag(
                    tp.topic,
                    tp.partition,
                    tp.offset if tp.offset >= 0 else -1,
                    max(self._consumer.get_watermark_offsets(tp, cached=True)[1], tp.offset, 0),
                )
                for tp in committed
            )
            connected = True
        except KafkaException as error:
            logger.warning("consumer cannot reach the cluster: %s", error)
            partitions, connected = self._status.partitions, False
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


def _records(messages: list[Message]) -> list[Message]:
    """The records among what consume() returned; the rest are errors and events."""
    records = []
    for message in messages:
        error = message.error()
        if error is None:
            records.append(message)
        elif error.fatal():
            # librdkafka retries transient errors itself; a fatal one ends the loop.
            raise KafkaException(error)
        else:
            logger.warning("consumer error: %s", error.str())
    return records


def _offsets_after(sources: list[EventSource], finished: list[bool]) -> list[TopicPartition]:
    """Per partition, the offset after its last record that is finished with every record
    of that partition before it in the batch; an unfinished record holds its partition back."""
    after: dict[tuple[str, int], int] = {}
    held: set[tuple[str, int]] = set()
    for (topic, partition, offset), done in zip(sources, finished, strict=True):
        if not done:
            held.add((topic, partition))
        elif (topic, partition) not in held:
            after[topic, partition] = offset + 1
    return [
        TopicPartition(topic, partition, offset) for (topic, partition), offset in after.items()
    ]


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "no partitions"


def _where(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"
