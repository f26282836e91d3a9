"""CloudEvents 1.0 in Kafka binary mode: the event's attributes travel as record headers.

The record value is the protobuf-encoded event and the headers say what it is, so a
consumer can route on `ce_type` without decoding the value first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from herald.kafka.records import Headers
from herald.timestamps import format_time

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"


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
