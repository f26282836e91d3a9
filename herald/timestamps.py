"""Moments as Herald reads, stores and exchanges them: the clock, UTC datetimes, integer
microseconds, RFC 3339 text and protobuf Timestamp parts. One definition of each, for every
module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

# A Timestamp may hold 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z: the range a
# datetime covers, so every valid one converts.
_MIN_SECONDS = (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(seconds=1)
_MAX_SECONDS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(seconds=1)
_NANOS_PER_SECOND = 1_000_000_000


def utc_now() -> datetime:
    """Now, in UTC: the clock of every component that a test does not give another."""
    return datetime.now(UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch; integer arithmetic, as a float would round some away."""
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as CloudEvents' `time` attribute asks."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def from_timestamp(seconds: int, nanos: int) -> datetime:
    """A Timestamp's moment, to the microsecond (truncated, as Timestamp.ToDatetime does).

    Done by hand because ToDatetime's checks and time-zone conversion cost more than the rest
    of decoding an event; the range check here is the one it makes. Raises ValueError when
    the parts are out of range.
    """
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS or not 0 <= nanos < _NANOS_PER_SECOND:
        raise ValueError(f"{seconds} s, {nanos} ns is out of range")
    return EPOCH + timedelta(microseconds=seconds * 1_000_000 + nanos // 1000)
