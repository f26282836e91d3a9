"""The dead-letter format: a record that could not be applied, as it was, plus headers that say
where it came from and why. auth_svc writes it; `herald dlq replay` reads it back."""

from __future__ import annotations

from datetime import datetime

from confluent_kafka import Message

from herald.kafka.records import Headers, ReceivedHeaders, Record, header_pairs, header_values
from herald.timestamps import format_time

PREFIX = "herald.dlq."
ORIGIN_TOPIC = PREFIX + "topic"
ORIGIN_PARTITION = PREFIX + "partition"
ORIGIN_OFFSET = PREFIX + "offset"
TIME = PREFIX + "time"
ERROR_CLASS = PREFIX + "error.class"
ERROR_MESSAGE = PREFIX + "error.message"
HEADERS = (ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET, TIME, ERROR_CLASS, ERROR_MESSAGE)

# Error texts are cut to this many characters: a header is not the place for a whole dump.
MAX_ERROR_MESSAGE = 1000


def dead_letter(
    message: Message, dlq_topic: str, *, error_class: str, error_message: str, at: datetime
) -> Record:
    """The record to write to `dlq_topic` for `message`: its key, value and headers (minus any
    dead-letter headers of an earlier trip), plus where it was and why it could not be used."""
    headers = original_headers(message.headers())
    headers += [
        (ORIGIN_TOPIC, (message.topic() or "").encode()),
        (ORIGIN_PARTITION, str(message.partition()).encode()),
        (ORIGIN_OFFSET, str(message.offset()).encode()),
        (TIME, format_time(at).encode()),
        (ERROR_CLASS, error_class.encode()),
        (ERROR_MESSAGE, error_message[:MAX_ERROR_MESSAGE].encode(errors="replace")),
    ]
    return Record(dlq_topic, message.key() or b"", message.value() or b"", headers)


def original_headers(headers: ReceivedHeaders | None) -> Headers:
    """The headers as the record first had them: without the dead-letter ones."""
    return [(name, value) for name, value in header_pairs(headers) if not name.startswith(PREFIX)]


def origin_topic(headers: ReceivedHeaders | None) -> str | None:
    """The topic a dead letter came from, as its headers say."""
    return header_values(headers).get(ORIGIN_TOPIC) or None
