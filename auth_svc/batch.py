"""One batch of records on its way through auth_svc: each record with where it was read, the
event it decoded to and whether it is finished, and the offsets that are then safe to store."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message, TopicPartition

from auth_svc.accounts import DecodedEvent, RecordPosition

logger = logging.getLogger(__name__)


class BlockedError(Exception):
    """The batch cannot be finished now (the store or the dead-letter topic refuses writes),
    but may be later: the consumer holds it, pauses its partitions and tries again."""


@dataclass(slots=True)
class InFlight:
    """A record of the batch: finished once it is applied (or found a duplicate or stale) or
    dead-lettered, and only then may its partition's offset move past it."""

    message: Message
    position: RecordPosition
    event: DecodedEvent | None = None  # None until decoded, and for a poison record
    poison: Exception | None = None  # why the record cannot be applied, once that is known
    finished: bool = False
    # Times the store refused this record alone while it took others (see Applier).
    store_failures: int = 0

    @property
    def where(self) -> str:
        topic, partition, offset = self.position
        return f"{topic}[{partition}]@{offset}"


def in_flight(messages: list[Message]) -> list[InFlight]:
    """The records among what consume() returned, in order; errors are logged and left out,
    and a fatal one raises KafkaException (librdkafka retries the others itself)."""
    batch = []
    for message in messages:
        error = message.error()
        if error is None:
            position = RecordPosition(
                message.topic() or "", message.partition() or 0, message.offset() or 0
            )
            batch.append(InFlight(message, position))
        elif error.fatal():
            raise KafkaException(error)
        else:
            logger.warning("consumer error: %s", error.str())
    return batch


def offsets_after(batch: Sequence[InFlight]) -> list[TopicPartition]:
    """Per partition, the offset after its last record that is finished with every record
    of that partition before it in the batch; an unfinished record holds its partition back."""
    after: dict[tuple[str, int], int] = {}
    held: set[tuple[str, int]] = set()
    for record in batch:
        topic, partition, offset = record.position
        if not record.finished:
            held.add((topic, partition))
        elif (topic, partition) not in held:
            after[topic, partition] = offset + 1
    return [
        TopicPartition(topic, partition, offset) for (topic, partition), offset in after.items()
    ]
