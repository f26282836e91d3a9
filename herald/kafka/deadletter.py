"""The dead-letter format: a record that could not be applied, as it was, plus headers that say
where it came from and why. auth_svc writes it; `herald dlq replay` reads it back."""

from __future__ import annotations

from datetime import datetime

from confluent_kafka import Message

from herald.kafka.records import Headers, ReceivedHeaders, Record, header_pairs
from herald.timestamps import format_time

PREFIX = "herald.dlq."
ORIGIN_TOPIC = PREFIX + "topic"
ORIGIN_PARTITION = PREFIX + "partition"
ORIGIN_OFFSET = PREFIX + "offset"
TIME = PREFIX + "time"
ERROR_CLASS = PREFIX + "error.class"
ERROR_MESSAGE = PREFIX + "error.message"
# Set on a letter that had to be cut to fit: what was cut, and how long it was.
VALUE_TRUNCATED = PREFIX + "value.truncated"
ORIGINAL_VALUE_SIZE = PREFIX + "value.size"
HEADERS_DROPPED = PREFIX + "headers.dropped"
HEADERS = (ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET, TIME, ERROR_CLASS, ERROR_MESSAGE)

# Error texts are cut to this many characters: a header is not the place for a whole dump.
MAX_ERROR_MESSAGE = 1000

# The most bytes of key, value and headers a letter may carry. librdkafka refuses a record
# over its `message.max.bytes` (1,000,000 by default) with MSG_SIZE_TOO_LARGE, and a record
# that only just fitted on the events topic no longer does once the headers above are added;
# the margin leaves room for the record's own framing.
MAX_LETTER_BYTES = 990_000


def dead_letter(
    message: Message,
    dlq_topic: str,
    *,
    error_class: str,
    error_message: str,
    at: datetime,
    max_bytes: int = MAX_LETTER_BYTES,
) -> Record:
    """The record to write to `dlq_topic` for `message`: its key, value and headers (minus any
    dead-letter headers of an earlier trip), plus where it was and why it could not be used.

    A letter that would be larger than `max_bytes` keeps its key and headers and as much of
    the value as fits, and says so (VALUE_TRUNCATED, ORIGINAL_VALUE_SIZE); one whose headers
    alone are too large drops them too (HEADERS_DROPPED). The broker then always takes it.
    """
    ours: Headers = [
        (ORIGIN_TOPIC, (message.topic() or "")[:MAX_ERROR_MESSAGE].encode()),
        (ORIGIN_PARTITION, str(message.partition()).encode()),
        (ORIGIN_OFFSET, str(message.offset()).encode()),
        (TIME, format_time(at).encode()),
        (ERROR_CLASS, error_class[:MAX_ERROR_MESSAGE].encode(errors="replace")),
        (ERROR_MESSAGE, error_message[:MAX_ERROR_MESSAGE].encode(errors="replace")),
    ]
    key, value = message.key() or b"", message.value() or b""
    original = original_headers(message.headers())
    # Room for the two size headers, and for a key cut to a tenth of the letter at most.
    budget = max_bytes - _size(ours) - 100
    if len(key) + _size(original) > budget:
        original = [(HEADERS_DROPPED, b"true")]
        key = key[: budget // 10]
    room = budget - len(key) - _size(original)
    if len(value) > room:
        original += [(VALUE_TRUNCATED, b"true"), (ORIGINAL_VALUE_SIZE, str(len(value)).encode())]
        value = value[: max(room, 0)]
    return Record(dlq_topic, key, value, original + ours)


def _size(headers: Headers) -> int:
    return sum(len(name) + len(value or b"") for name, value in headers)


def original_headers(headers: ReceivedHeaders | None) -> Headers:
    """The headers as the record first had them: without the dead-letter ones."""
    return [(name, value) for name, value in header_pairs(headers) if not name.startswith(PREFIX)]
