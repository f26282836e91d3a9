"""What each event type means for an account. The registry is the one place that knows types.

Every event carries the user's whole state and its version, so each handler only turns the
payload into the account it describes; the store keeps it if it is newer. Adding an event
type is one function here and one line in DECODERS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from auth_svc.accounts import Account
from herald.timestamps import from_timestamp
from herald.users.v1 import events_pb2


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
    try:
        return from_timestamp(seconds, nanos)
    except ValueError as error:
        raise InvalidEventError(f"invalid create_time: {error}") from None


Decoder = Callable[[bytes, datetime], Account]

# `ce_type` header → handler.
DECODERS: dict[str, Decoder] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: user_created,
    events_pb2.UserUpdated.DESCRIPTOR.full_name: user_updated,
}
