"""CloudEvents 1.0 in Kafka binary mode: the event's attributes travel as record headers.

The record value is the protobuf-encoded event and the headers say what it is, so a
consumer can route on `ce_type` without decoding the value first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"

# The shapes confluent-kafka accepts and returns for record headers.
Headers = list[tuple[str, str | bytes | None]]
ReceivedHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


@dataclass(frozen=True)
class EventAttributes:
    """The CloudEvents attributes Herald sets on every event."""

    id: str
    source: str
    type: str
    time: datetime

    def to_headers(self) -> Headers:
        return [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", format_time(self.time).encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as CloudEvents' `time` attribute asks."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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
