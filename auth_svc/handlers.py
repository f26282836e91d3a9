"""What each event type means for an account. The registry is the one place that knows types.

Every event carries the user's whole state and its version, so each handler only turns the
payload into the account it describes; the store keeps it if it is newer. Adding an event
type is one function here and one line in HANDLERS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from auth_svc.accounts import Account
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
    if not event.event_id or not event.user_id:
        raise InvalidEventError("event without event_id or user_id")
    try:
        create_time = event.create_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:  # seconds or nanos out of Timestamp's range
        raise InvalidEventError(f"invalid create_time: {error}") from error
    return Account(
        user_id=event.user_id,
        name=event.name,
        email=event.email,
        create_time=create_time,
        version=version,
        last_event_id=event.event_id,
        update_time=now,
    )


Handler = Callable[[bytes, datetime], Account]

# `ce_type` header → handler.
HANDLERS: dict[str, Handler] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: user_created,
    events_pb2.UserUpdated.DESCRIPTOR.full_name: user_updated,
}
