"""A Kafka producer whose `send` returns only once the broker has acknowledged the record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from herald.cloudevents import Headers
from herald.kafka_config import ClientConfig

logger = logging.getLogger(__name__)


DeliveryCallback = Callable[[KafkaError | None, Message], None]


class DeliveryError(Exception):
    """The broker did not acknowledge a record; it may or may not be in the log."""


@dataclass(frozen=True)
class Record:
    """One Kafka record to send."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class Delivered:
    """Where an acknowledged record landed."""

    partition: int
    offset: int


class DeliveringProducer:
    """One idempotent producer per process, shared by every request thread.

    librdkafka runs delivery callbacks only inside `poll()` or `flush()`, so a background
    thread polls; each `send` waits on its own future instead of flushing the whole queue,
    which would make every caller wait for everyone else's records.
    """

    def __init__(self, config: ClientConfig) -> None:
        self._producer = Producer({**config, "error_cb": _log_client_error})
        self._closing = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_delivery_reports, name="kafka-delivery-reports", daemon=True
        )
        self._poller.start()

    def send(self, record: Record, timeout_s: float) -> Delivered:
        """Send one record and wait for its acknowledgement; raise DeliveryError otherwise."""
        acknowledged: Future[Delivered] = Future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            partition, offset = message.partition(), message.offset()
            if error is not None:
                acknowledged.set_exception(DeliveryError(error.str()))
            elif partition is None or offset is None:
                acknowledged.set_exception(DeliveryError("acknowledged without a position"))
            else:
                acknowledged.set_result(Delivered(partition, offset))

        self._enqueue(record, on_delivery)
        try:
            return acknowledged.result(timeout=timeout_s)
        except FutureTimeout:
            raise DeliveryError(f"not acknowledged within {timeout_s:g} s") from None

    def close(self, timeout_s: float = 30.0) -> int:
        """Stop polling and flush; return how many records were still undelivered."""
        self._closing.set()
        self._poller.join()
        remaining: int = self._producer.flush(timeout_s)
        if remaining:
            logger.error("producer closed with %d undelivered records", remaining)
        return remaining

    def _enqueue(self, record: Record, on_delivery: DeliveryCallback) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    on_delivery=on_delivery,
                )
            except BufferError:
                # The local queue is full: give the poller's deliveries a moment to drain it.
                self._producer.poll(0.05)
            else:
                return

    def _serve_delivery_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)


def _log_client_error(error: KafkaError) -> None:
    # Most client errors (a broker unreachable, say) are retried by librdkafka itself;
    # they are worth a line in the log, not an exception in a request.
    level = logging.ERROR if error.fatal() else logging.WARNING
    logger.log(level, "kafka client: %s", error.str())
