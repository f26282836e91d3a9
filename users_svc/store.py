"""What users_svc needs of a database, whatever it is: two Protocols and the rows they pass.

`UserStore` is what the application needs: units of work whose changes and outgoing events
commit together, and reads. `Outbox` is what the relay needs, and what tools that check or
measure what was sent read. SQLite implements both
(users_svc.sqlite_store); a server database would be one more class implementing them, and
nothing above this module would change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar

from herald.kafka.records import Record
from users_svc.model import Tombstone, User

T = TypeVar("T")


class CreateRequest(NamedTuple):
    """The CreateUser request that made a user, kept so a retry gets the same answer.

    `fingerprint` is None once the user is erased: it is derived from the name and email, so
    it goes with them; the request id stays, so a retry cannot make the user again.
    """

    request_id: str
    fingerprint: str | None
    user_id: str


class DeleteRequest(NamedTuple):
    """The DeleteUser request that erased a user, kept so a retry gets the same answer."""

    request_id: str
    user_id: str


class OutboxRow(NamedTuple):
    """An event in the outbox, by its commit order (`seq`)."""

    seq: int
    record: Record


class UnitOfWork(Protocol):
    def get_user(self, user_id: str) -> User | None: ...

    def find_request(self, request_id: str) -> CreateRequest | None: ...

    def add_user(self, user: User, request: CreateRequest | None) -> None:
        """Raise EmailTakenError when another user has the same email."""
        ...

    def save_user(self, user: User) -> None:
        """Store a changed user; raise EmailTakenError when another user has its email."""
        ...

    def append_event(self, record: Record, event_id: str) -> None:
        """Add `record`, the event `event_id` (its `ce_id` header), to the outbox."""
        ...

    def get_tombstone(self, user_id: str) -> Tombstone | None: ...

    def find_delete_request(self, request_id: str) -> DeleteRequest | None: ...

    def delete_user(self, tombstone: Tombstone, request: DeleteRequest | None) -> None:
        """Erase the user `tombstone` names, which exists: its row goes (name and email with
        it, so its email is free at once) and `tombstone` stays in its place; its CreateUser
        request loses its fingerprint; its outbox rows already published lose their value and
        every header but `ce_id`, and those still pending are marked to lose them once
        published (`Outbox.mark_published`). `request`, if any, is kept for retries."""
        ...


class UserStore(Protocol):
    def atomically(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run `work` on a unit of work; return its result once its changes are committed.

        Everything `work` does through the unit commits together, or not at all: if it
        raises, its changes are undone and its exception reaches the caller as it was.
        `work` may share its transaction with other callers' work, and run on another
        caller's thread or the store's writer thread: keep it short, and leave anything that
        must follow the commit (waking the relay, say) until `atomically` has returned.
        Raises StoreUnavailableError when the transaction cannot commit.
        """
        ...

    async def atomically_async(self, work: Callable[[UnitOfWork], T]) -> T:
        """`atomically` for a coroutine, with the same guarantees: `work` runs on another
        thread (never the caller's event loop, which goes on with other calls meanwhile) and
        the result comes back once its changes are committed. If the caller is cancelled
        while it waits, `work` may still run and commit.
        """
        ...

    def get_user(self, user_id: str) -> User | None: ...

    async def get_user_async(self, user_id: str) -> User | None:
        """`get_user` for a coroutine: the query runs off the caller's event loop."""
        ...

    def list_users(self, after_id: str, limit: int) -> list[User]:
        """Up to `limit` users whose id sorts after `after_id`, in id order: a page, and the
        last id is where the next one starts. Erased users are not users: they are never
        listed (nor returned by `get_user`), only their tombstones are (below)."""
        ...

    def get_tombstone(self, user_id: str) -> Tombstone | None:
        """What stays of the user `user_id` if it was erased; None if it exists or never did.
        With `get_user`, tells an erased user from a lost one."""
        ...

    def list_tombstones(self, after_id: str, limit: int) -> list[Tombstone]:
        """Up to `limit` tombstones whose user id sorts after `after_id`, in id order: pages,
        as `list_users` gives them."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailableError unless a write could start now."""
        ...


class Outbox(Protocol):
    def pending(self, limit: int) -> list[OutboxRow]:
        """The oldest unpublished events, in commit order."""
        ...

    def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        """Mark the rows `seqs` published at `at`, and store that with every mark waiting
        (`mark_published_later`); in the same transaction, every published row of an erased
        user loses its value and every header but `ce_id` (a row pending when its user was
        erased is sent as it was committed, then erased)."""
        ...

    def mark_published_later(self, seqs: Sequence[int], at: datetime) -> None:
        """`mark_published`, but the mark may wait for the next `store_marks`: `pending` and
        `pending_count` leave the rows out at once. A crash before the mark is stored
        publishes them again (users_svc.outbox_marks)."""
        ...

    def store_marks(self) -> None:
        """Store the marks waiting; if it cannot (StoreUnavailableError), they wait on."""
        ...

    def prune(self, published_before: datetime) -> int: ...

    def pending_count(self) -> int: ...

    def newest(self, limit: int) -> list[OutboxRow]:
        """The newest events, published or not, in commit order: what was (or is to be) sent,
        for tools that check or measure it; an erased user's published rows come with an empty
        value and only their `ce_id` header."""
        ...
