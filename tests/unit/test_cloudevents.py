from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from herald.kafka.cloudevents import EventAttributes
from herald.kafka.records import header_values
from herald.timestamps import format_time


def test_headers_carry_every_attribute_in_binary_mode() -> None:
    attributes = EventAttributes(
        id="e1",
        source="/herald/test",
        type="herald.users.v1.UserCreated",
        time=datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
    )
    assert header_values(attributes.to_headers()) == {
        "ce_specversion": "1.0",
        "ce_id": "e1",
        "ce_source": "/herald/test",
        "ce_type": "herald.users.v1.UserCreated",
        "ce_time": "2026-01-02T03:04:05.600000Z",
        "content-type": "application/protobuf",
    }


def test_time_is_converted_to_utc() -> None:
    moment = datetime(2026, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-01-02T03:00:00.000000Z"


def test_header_values_skips_missing_and_non_utf8_values() -> None:
    assert header_values([("a", b"1"), ("b", None), ("c", b"\xff"), ("a", b"2")]) == {"a": "2"}
    assert header_values(None) == {}
