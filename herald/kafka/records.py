"""A Kafka record as Herald hands it around: what the outbox stores, the relay sends and the
dead-letter writer builds, plus the header shapes confluent-kafka gives and takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The shapes confluent-kafka accepts and returns for record headers.
Headers = list[tuple[str, str | bytes | None]]
ReceivedHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


@dataclass(frozen=True)
class Record:
    """One Kafka record to send."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


def header_pairs(headers: ReceivedHeaders | None) -> Headers:
    """Headers as a list of (name, value) pairs, whichever shape the client gave them in."""
    return list(headers.items() if isinstance(headers, Mapping) else headers or ())


def header_values(headers: ReceivedHeaders | None) -> dict[str, str]:
    """Headers as text, last value winning; a header that is not UTF-8 is left out."""
    values: dict[str, str] = {}
    for name, raw in header_pairs(headers):
        if isinstance(raw, str):
            values[name] = raw
        elif raw is not None:
            try:
                values[name] = raw.decode()
            except UnicodeDecodeError:
                continue
    return values
