"""What each event type means for an account. The registry is the one place that knows types.

Every event carries the user's whole state and its version, so each handler only turns the
payload into the account it describes; the store keeps it if it is newer. Adding an event
type is one function here and one line in HANDLERS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from auth_svc.accounts import Account
from herald.users.v1 import events_pb2

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A Timestamp may hold 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z: the range a
# datetime covers, so every valid one converts.
_MIN_SECONDS = (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(seconds=1)
_MAX_SECONDS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(seconds=1)
_NANOS_PER_SECOND = 1_000_000_000


class InvalidEventError(ValueError):
    """The event decoded but its content is unusable (a required field is empty, say)."""


def user_created(payload: bytes, now: datetime) -> Account:
    """Raises google.protobuf.message.DecodeError or InvalidEventError on a bad payload."""
    event = events_pb2.UserCreated.FromString(payload)
    # Events from before versions existed count as the first version.
    return _account(event, event.version or 1, now)


def user_updated(payload: bytes, now: datetime) -> Account:
    event = events_pb2.UserUpdated.FromString(payload)
    if event.version < 2:
        raise InvalidEventError(f"UserUpdated with version {event.version}; updates start at 2")
    return _account(event, event.version, now)


def _account(
    event: events_pb2.UserCreated | events_pb2.UserUpdated, version: int, now: datetime
) -> Account:
    event_id, user_id = event.event_id, event.user_id
    if not event_id or not user_id:
        raise InvalidEventError("event without event_id or user_id")
    created = event.create_time
    # Positional: keywords make building the tuple measurably slower, once per event.
    return Account(
        user_id,
        event.name,
        event.email,
        _utc_datetime(created.seconds, created.nanos),
        version,
        event_id,
        now,
    )


def _utc_datetime(seconds: int, nanos: int) -> datetime:
    """A Timestamp's moment, to the microsecond (truncated, as Timestamp.ToDatetime does).

    Done by hand because ToDatetime's checks and time-zone conversion cost more than the
    rest of decoding an event; the range check here is the one it makes.
    """
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS or not 0 <= nanos < _NANOS_PER_SECOND:
        raise InvalidEventError(f"invalid create_time: {seconds} s, {nanos} ns is out of range")
    return EPOCH + timedelta(microseconds=seconds * 1_000_000 + nanos // 1000)


Handler = Callable[[bytes, datetime], Account]

# `ce_type` header → handler.
HANDLERS: dict[str, Handler] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: user_created,
    events_pb2.UserUpdated.DESCRIPTOR.full_name: user_updated,
}
