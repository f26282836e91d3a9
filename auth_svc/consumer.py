"""The Kafka side of auth_svc: poll, route by `ce_type`, apply, then store the offset."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from google.protobuf.message import DecodeError

from auth_svc.accounts import AccountStore
from auth_svc.handlers import Handler, InvalidEventError
from herald.cloudevents import header_values

logger = logging.getLogger(__name__)


class EventConsumer:
    """Applies each event, then stores its offset: at-least-once delivery, and idempotent
    handlers turn that into exactly-once effects."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        topic: str,
        store: AccountStore,
        handlers: Mapping[str, Handler],
        on_first_assignment: Callable[[], None] = lambda: None,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._store = store
        self._handlers = handlers
        self._on_first_assignment: Callable[[], None] | None = on_first_assignment
        self.applied = 0
        self.skipped = 0

    def run(self, stopping: threading.Event) -> None:
        """Consume until `stopping` is set, then close (which commits the stored offsets)."""
        self._consumer.subscribe([self._topic], on_assign=self._on_assign)
        try:
            while not stopping.is_set():
                message = self._consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    # librdkafka retries transient errors itself; a fatal one ends the loop.
                    if error.fatal():
                        raise KafkaException(error)
                    logger.warning("consumer error: %s", error.str())
                    continue
                self._apply(message)
                # Only after the event is applied: a crash before this line redelivers it.
                self._consumer.store_offsets(message=message)
        finally:
            self._consumer.close()
            logger.info("consumer closed")

    def _apply(self, message: Message) -> None:
        headers = header_values(message.headers())
        event_type = headers.get("ce_type", "")
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        handler = self._handlers.get(event_type)
        if handler is None:
            # Dead-lettering arrives with the auth issue; until then the record is logged
            # and passed over so one bad record cannot stop every account behind it.
            logger.warning("skipping %s: unknown ce_type %r", where, event_type)
            self.skipped += 1
            return
        try:
            handler(message.value() or b"", self._store)
        except (DecodeError, InvalidEventError) as error:
            logger.warning("skipping %s: bad %s: %s", where, event_type, error)
            self.skipped += 1
            return
        self.applied += 1

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        if self._store.volatile:
            # A store that starts empty must see every event again, whatever the group has
            # committed; the handlers make the replay harmless.
            for partition in partitions:
                partition.offset = OFFSET_BEGINNING
            consumer.incremental_assign(partitions)
        if self._on_first_assignment is not None:
            # The group has taken this member in: from now on events reach it.
            self._on_first_assignment()
            self._on_first_assignment = None
