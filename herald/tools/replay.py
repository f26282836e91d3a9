"""`herald dlq replay`: send dead-lettered records back to the events topic, once.

Run it once the cause is fixed (a consumer bug deployed, a database back). Each record goes
back with its key, value and headers, without the `herald.dlq.*` ones, to the events topic
Herald is configured for, or the topic the operator names. Never to the topic a letter's own
`herald.dlq.topic` header names: anyone who can write the DLQ could forge that header, and
the tool would then write wherever they chose.

Only letters that a retry can fix go back (see `verdict`); the rest are counted and skipped.
The replay's own consumer group remembers how far it got, skipped letters included (they are
dealt with: a person looks at them with `herald events tail`), so running it twice sends
nothing twice.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from herald.kafka import deadletter
from herald.kafka.config import consumer_config, producer_config
from herald.kafka.records import Record, header_values
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.kafka.sender import KafkaBatchSender
from herald.kafka.topics import REPLAY_GROUP
from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

REPLAY_CLIENT = "herald-dlq-replay"

# The error classes a retry can fix: the store was down, the record itself was fine. Every
# other class (DecodeError, PoisonRecordError, InvalidEventError, ...) says the record is
# wrong, and it would only come back to the DLQ.
TRANSIENT_ERRORS = frozenset({StoreUnavailableError.__name__})

# Without these a letter is not one auth_svc wrote: we cannot tell why it is there.
REQUIRED_HEADERS = (deadletter.ORIGIN_TOPIC, deadletter.ERROR_CLASS)


class Verdict(enum.Enum):
    REPLAY = "replay"
    POISON = "poison"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"


def verdict(headers: Mapping[str, str], *, include_poison: bool = False) -> Verdict:
    """What to do with a dead letter, from its headers (as text) alone."""
    if any(not headers.get(name) for name in REQUIRED_HEADERS):
        return Verdict.MALFORMED
    # A cut letter is not the record that failed: sending it back would publish a different,
    # broken one. Not even --include-poison sends it.
    if (
        headers.get(deadletter.VALUE_TRUNCATED) == "true"
        or headers.get(deadletter.HEADERS_DROPPED) == "true"
    ):
        return Verdict.TRUNCATED
    if headers[deadletter.ERROR_CLASS] not in TRANSIENT_ERRORS and not include_poison:
        return Verdict.POISON
    return Verdict.REPLAY


@dataclass(frozen=True)
class Summary:
    replayed: int = 0
    poison: int = 0
    truncated: int = 0
    malformed: int = 0

    def __str__(self) -> str:
        return (
            f"replayed {self.replayed}, skipped {self.poison} as poison, "
            f"{self.truncated} as truncated, {self.malformed} as malformed"
        )


def replay(
    bootstrap_servers: str,
    dlq_topic: str,
    *,
    to_topic: str,
    include_poison: bool = False,
    group_id: str = REPLAY_GROUP,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> Summary:
    """Replay what is in `dlq_topic` now and was not looked at before, to `to_topic`.

    Letters `verdict` does not pass are skipped, logged by partition and offset (their
    content may hold personal data), and counted; the group still commits past them.
    """
    # Herald's consumer settings (earliest: if retention deleted records past the group's
    # position, start at the oldest), committing only by hand, after the records are back.
    config = consumer_config(
        bootstrap_servers,
        group_id,
        REPLAY_CLIENT,
        security,
        **{"enable.auto.commit": False},
    )
    consumer = Consumer(config)
    try:
        messages, next_offsets = _read_new(consumer, dlq_topic, timeout_s)
        counts = dict.fromkeys(Verdict, 0)
        records = []
        for message in messages:
            decision = verdict(header_values(message.headers()), include_poison=include_poison)
            counts[decision] += 1
            if decision is Verdict.REPLAY:
                records.append(_original(message, to_topic))
            else:
                logger.warning(
                    "skipped the %s dead letter at partition %s offset %s",
                    decision.value,
                    message.partition(),
                    message.offset(),
                )
        if records:
            sender = KafkaBatchSender(
                producer_config(bootstrap_servers, REPLAY_CLIENT, security), timeout_s=10
            )
            if not all(sender.send(records)):
                raise RuntimeError("some records were not acknowledged; nothing was committed")
        if next_offsets:
            # Only after every record is back: a failure above replays them all next time.
            consumer.commit(offsets=next_offsets, asynchronous=False)
        return Summary(
            replayed=counts[Verdict.REPLAY],
            poison=counts[Verdict.POISON],
            truncated=counts[Verdict.TRUNCATED],
            malformed=counts[Verdict.MALFORMED],
        )
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


def _original(message: Message, to_topic: str) -> Record:
    return Record(
        topic=to_topic,
        key=message.key() or b"",
        value=message.value() or b"",
        headers=deadletter.original_headers(message.headers()),
    )
