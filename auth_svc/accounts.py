"""Auth accounts, and what applying an event to them can come to."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol


class Account(NamedTuple):
    """A user's account as auth_svc keeps it.

    A named tuple, not a dataclass: one is made for every event consumed, and a tuple is
    several times cheaper to build (and as immutable).
    """

    user_id: str
    name: str
    email: str
    create_time: datetime
    # The user's version this account reflects; events carry it and only a higher one wins.
    version: int
    # The id of the event this state came from (GetAccount's `last_event_id`).
    event_id: str
    update_time: datetime
    # A tombstone: the user was erased (UserDeleted). Name and email are empty, create_time
    # is the epoch, and only the version is kept, so that the user's older events stay stale.
    deleted: bool = False


class Outcome(enum.Enum):
    APPLIED = "applied"  # the account changed
    STALE = "stale"  # recorded, but the account already had this version or a newer one
    DUPLICATE = "duplicate"  # this event id was processed before: nothing happened


class RecordPosition(NamedTuple):
    """Where on Kafka a record was read: kept with the processed event for operators."""

    topic: str
    partition: int
    offset: int


class DecodedEvent(NamedTuple):
    """One event to apply: the account it describes, its type, and where its record was."""

    account: Account
    event_type: str
    position: RecordPosition


class AccountStore(Protocol):
    def apply(self, account: Account, event_type: str, position: RecordPosition) -> Outcome:
        """In one transaction: record the event id as processed (the inbox) and keep the
        account if it is newer. A tombstone (`deleted`) replaces the account and erases its
        name and email; nothing replaces a tombstone, whatever its version (STALE). Raise
        StoreUnavailableError when the database cannot."""
        ...

    def apply_batch(self, events: Sequence[DecodedEvent]) -> list[Outcome]:
        """`apply` for each event in order, all in one transaction: the outcomes are what
        one `apply` call after another would give (a repeated event id is a DUPLICATE, an
        older version after a newer one is STALE), and either all of it is kept or none.
        Raise StoreUnavailableError when the database cannot."""
        ...

    def get(self, user_id: str) -> Account | None:
        """The user's account; None when there is none or it is a tombstone (the user was
        erased), so that nothing tells an erased user from one never seen."""
        ...

    async def get_async(self, user_id: str) -> Account | None:
        """`get` for a coroutine: the query runs off the caller's event loop."""
        ...

    def tombstone_version(self, user_id: str) -> int | None:
        """The version of the UserDeleted that erased this user, or None when the user has a
        live account or none at all. Every event of that user is stale from then on."""
        ...

    def applied_events(self, user_id: str) -> int:
        """How many events have been applied to this account, its tombstone included (0 when
        there is none): one per version when each was applied exactly once, the delete
        counting as one."""
        ...

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        """Those of `event_ids` in the inbox: applied, or found stale, before."""
        ...

    def prune_inbox(self, processed_before: datetime) -> int:
        """Forget processed event ids older than this; return how many."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailableError unless a write could start now."""
        ...
