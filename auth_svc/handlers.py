"""What each event type does to the accounts. Handlers are idempotent: a replay changes nothing.

Events carry the user's whole state and its version, so applying one means keeping it if it
is newer than what the account has. Duplicates and late copies are older or equal: ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from auth_svc.accounts import Account, AccountStore
from herald.users.v1 import events_pb2

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class InvalidEventError(ValueError):
    """The event decoded but its content is unusable (a required field is empty)."""


def _now() -> datetime:
    return datetime.now(UTC)


def handle_user_created(payload: bytes, store: AccountStore, now: Clock = _now) -> bool:
    """Create the user's account; True if this call changed the store.

    Raises google.protobuf.message.DecodeError for bytes that are not a UserCreated, and
    InvalidEventError for one without an event id or user id.
    """
    event = events_pb2.UserCreated.FromString(payload)
    # Events from before versions existed count as the first version.
    return _apply(store, _account(event, event.version or 1, now))


def handle_user_updated(payload: bytes, store: AccountStore, now: Clock = _now) -> bool:
    """Bring the account to the event's state if it is newer; True if this call changed it."""
    event = events_pb2.UserUpdated.FromString(payload)
    if event.version < 2:
        raise InvalidEventError(f"UserUpdated with version {event.version}; updates start at 2")
    return _apply(store, _account(event, event.version, now))


def _account(
    event: events_pb2.UserCreated | events_pb2.UserUpdated, version: int, now: Clock
) -> Account:
    """The account as the event describes it: every event carries the user's whole state."""
    if not event.event_id or not event.user_id:
        raise InvalidEventError("event without event_id or user_id")
    return Account(
        user_id=event.user_id,
        name=event.name,
        email=event.email,
        create_time=event.create_time.ToDatetime(tzinfo=UTC),
        version=version,
        last_event_id=event.event_id,
        update_time=now(),
    )


def _apply(store: AccountStore, account: Account) -> bool:
    applied = store.put_if_newer(account)
    if applied:
        logger.info(
            "account of user %s now at version %d (event %s)",
            account.user_id,
            account.version,
            account.last_event_id,
        )
    else:
        logger.info(
            "event %s for user %s is not newer; skipped", account.last_event_id, account.user_id
        )
    return applied


Handler = Callable[[bytes, AccountStore], bool]

# The one place that knows event types: `ce_type` header → handler.
HANDLERS: dict[str, Handler] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: handle_user_created,
    events_pb2.UserUpdated.DESCRIPTOR.full_name: handle_user_updated,
}
