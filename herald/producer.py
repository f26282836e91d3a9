"""Sending records to Kafka and knowing, record by record, which ones the broker acknowledged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from herald.cloudevents import Headers
from herald.kafka_config import ClientConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One Kafka record to send."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


class KafkaBatchSender:
    """Sends records in order with one idempotent producer and waits for every delivery report.

    The producer's `message.timeout.ms` must be shorter than `wait_s`: then each record has
    failed or been acknowledged when `send` returns, and nothing of the batch is left in the
    queue to race a retry of the records that failed.
    """

    def __init__(self, producer: Producer, wait_s: float) -> None:
        self._producer = producer
        self._wait_s = wait_s

    def send(self, records: Sequence[Record]) -> list[bool]:
        """True for each record the broker acknowledged, in the order given."""
        acknowledged = [False] * len(records)

        def report(index: int) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(error: KafkaError | None, _message: Message) -> None:
                if error is None:
                    acknowledged[index] = True
                else:
                    logger.debug("record %d not delivered: %s", index, error.str())

            return on_delivery

        for index, record in enumerate(records):
            self._produce(record, report(index))
        left = self._producer.flush(self._wait_s)
        if left:
            logger.error("%d records still queued after %.0f s", left, self._wait_s)
        return acknowledged

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush; return how many records were still undelivered."""
        left: int = self._producer.flush(timeout_s)
        return left

    def _produce(
        self, record: Record, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
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
                # librdkafka's local queue is full: serve delivery reports to make room.
                self._producer.poll(0.05)
            else:
                return


def producer(config: ClientConfig) -> Producer:
    """A producer that logs client-level errors (most are retried by librdkafka itself)."""
    return Producer({**config, "error_cb": _log_client_error})


def _log_client_error(error: KafkaError) -> None:
    level = logging.ERROR if error.fatal() else logging.WARNING
    logger.log(level, "kafka client: %s", error.str())
