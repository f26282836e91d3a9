"""Sending records to Kafka and knowing, record by record, which ones the broker acknowledged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from herald.contract.fields import quoted
from herald.kafka.config import ClientConfig
from herald.kafka.records import Record

logger = logging.getLogger(__name__)

# How much longer than the records' own timeout `send` waits for their delivery reports.
REPORT_MARGIN_S = 5.0


class RecordSender(Protocol):
    """What the outbox relay, the dead-letter writer and the replay tool send records with."""

    def send(self, records: Sequence[Record]) -> list[bool]:
        """Send records in order; True for each one the broker acknowledged."""
        ...


class KafkaBatchSender:
    """Sends records in order with one idempotent producer and waits for every delivery report.

    Each record is given `timeout_s` to be acknowledged (librdkafka's `message.timeout.ms`),
    and `send` waits a little longer than that: so each record has failed or been
    acknowledged when `send` returns, and nothing of the batch is left in the queue to race a
    retry of the records that failed.

    When librdkafka reports a fatal error (the idempotence guarantees can no longer be kept),
    the producer is unusable: the next `send` replaces it with a new one, as librdkafka's
    documentation prescribes, and the caller's retry resends what failed.
    """

    def __init__(self, config: ClientConfig, timeout_s: float) -> None:
        self._config = {**config, "message.timeout.ms": int(timeout_s * 1000)}
        self._wait_s = timeout_s + REPORT_MARGIN_S
        self._fatal = False
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        def on_error(error: KafkaError) -> None:
            if error.fatal():
                self._fatal = True
            _log_client_error(error)

        return Producer({**self._config, "error_cb": on_error})

    def send(self, records: Sequence[Record]) -> list[bool]:
        """True for each record the broker acknowledged, in the order given."""
        if self._fatal:
            logger.error("replacing the producer after a fatal error")
            self._producer.flush(0)
            self._fatal = False
            self._producer = self._new_producer()
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
        """Flush; return (and log) how many records were still undelivered."""
        left: int = self._producer.flush(timeout_s)
        if left:
            logger.error("closed with %d records undelivered", left)
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
            except KafkaException as error:
                # Refused before it was queued (MSG_SIZE_TOO_LARGE, say): this record is not
                # acknowledged, which the caller sees like any other failure; no retry here
                # could make it fit.
                # A replayed letter's topic comes from its header: quoted, as any text of a
                # record's, so a hostile one cannot forge or flood a line.
                logger.error(
                    "record for %s refused by the client: %s", quoted(record.topic), quoted(error)
                )
                return
            else:
                return


def _log_client_error(error: KafkaError) -> None:
    # Most client errors (a broker unreachable, say) are retried by librdkafka itself.
    level = logging.ERROR if error.fatal() else logging.WARNING
    logger.log(level, "kafka client: %s", error.str())
