"""What each event type does to the accounts. Handlers are idempotent: a replay changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from auth_svc.accounts import Account, AccountStore
from herald.users.v1 import events_pb2

logger = logging.getLogger(__name__)


class InvalidEventError(ValueError):
    """The event decoded but its content is unusable (a required field is empty)."""


def handle_user_created(
    payload: bytes, store: AccountStore, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> bool:
    """Create the user's account unless it exists already; True if this call created it.

    Raises google.protobuf.message.DecodeError for bytes that are not a UserCreated, and
    InvalidEventError for one without an event id or user id.
    """
    event = events_pb2.UserCreated.FromString(payload)
    if not event.event_id or not event.user_id:
        raise InvalidEventError("UserCreated without event_id or user_id")
    account = Account(
        user_id=event.user_id,
        name=event.name,
        email=event.email,
        create_time=event.create_time.ToDatetime(tzinfo=UTC),
        last_event_id=event.event_id,
        update_time=now(),
    )
    created = store.add_if_absent(account)
    if created:
        logger.info("account created for user %s (event %s)", event.user_id, event.event_id)
    else:
        logger.info("account for user %s exists; event %s skipped", event.user_id, event.event_id)
    return created


Handler = Callable[[bytes, AccountStore], bool]

# The one place that knows event types: `ce_type` header → handler.
HANDLERS: dict[str, Handler] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: handle_user_created,
}
