"""`herald dlq replay`: send dead-lettered records back to the topic they came from.

Run it once the cause is fixed (a consumer bug deployed, a database back). Each record goes
back as it first was: same key, value and headers, without the `herald.dlq.*` ones. The
replay's own consumer group remembers how far it got, so running it twice sends nothing twice.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from herald.kafka import deadletter
from herald.kafka.config import producer_config
from herald.kafka.records import Record
from herald.kafka.sender import KafkaBatchSender

logger = logging.getLogger(__name__)

REPLAY_GROUP = "herald-dlq-replay"


def replay(
    bootstrap_servers: str,
    dlq_topic: str,
    *,
    to_topic: str | None = None,
    group_id: str = REPLAY_GROUP,
    timeout_s: float = 30.0,
) -> int:
    """Replay what is in `dlq_topic` now and was not replayed before; return the count."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            # If retention has deleted records past the group's position, start at the oldest.
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    try:
        messages, next_offsets = _read_new(consumer, dlq_topic, timeout_s)
        records = [_original(message, to_topic) for message in messages]
        if records:
            sender = KafkaBatchSender(
                producer_config(bootstrap_servers, "herald-dlq-replay"), timeout_s=10
            )
            if not all(sender.send(records)):
                raise RuntimeError("some records were not acknowledged; nothing was committed")
        if next_offsets:
            # Only after every record is back: a failure above replays them all next time.
            consumer.commit(offsets=next_offsets, asynchronous=False)
        return len(records)
    finally:
        consumer.close()


def _read_new(
    consumer: Consumer, topic: str, timeout_s: float
) -> tuple[list[Message], list[TopicPartition]]:
    """The records from the group's position to the end as it is now, and where to resume."""
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    partitions = [TopicPartition(topic, p) for p in metadata.partitions]
    committed = consumer.committed(partitions, timeout=timeout_s)
    watermarks = {
        tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout_s) for tp in partitions
    }
    ends = {p: high for p, (_low, high) in watermarks.items()}
    starts = {tp.partition: tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in committed}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in starts])
    # Records below the low watermark are gone (retention); reading starts at what is left.
    positions = {p: max(offset, watermarks[p][0], 0) for p, offset in starts.items()}
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while any(positions[p] < ends[p] for p in ends):
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {topic} to its end within {timeout_s:g} s")
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        partition, offset = message.partition() or 0, message.offset() or 0
        if offset >= ends[partition]:
            continue
        messages.append(message)
        positions[partition] = offset + 1
    resume = [
        TopicPartition(topic, p, positions[p]) for p in ends if positions[p] > max(starts[p], 0)
    ]
    return messages, resume


def _original(message: Message, to_topic: str | None) -> Record:
    target = to_topic or deadletter.origin_topic(message.headers())
    if not target:
        raise ValueError(f"record at offset {message.offset()} names no original topic; use --to")
    return Record(
        topic=target,
        key=message.key() or b"",
        value=message.value() or b"",
        headers=deadletter.original_headers(message.headers()),
    )
