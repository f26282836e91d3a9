"""The users application: create, change, erase and read users, each change with its event.

It owns the rules that span several rows (idempotent retries, one event per change) and
leaves storage to a UserStore and encoding to EventRecordFactory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from herald.contract.ids import new_user_id
from herald.timestamps import utc_now
from users_svc.events import EventRecordFactory
from users_svc.model import (
    NewUser,
    RequestIdReusedError,
    Tombstone,
    User,
    UserChange,
    UserDeletion,
    UserNotFoundError,
)
from users_svc.store import CreateRequest, DeleteRequest, UnitOfWork, UserStore


class UserApplication:
    def __init__(
        self,
        store: UserStore,
        events: EventRecordFactory,
        *,
        on_event: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_user_id,
    ) -> None:
        self._store = store
        self._events = events
        # Called after a commit that added an event, so the relay publishes it at once; on the
        # caller's event loop, so it must not block (OutboxRelay.wake sets an event).
        self._on_event = on_event
        self._clock = clock
        self._new_id = new_id

    async def create(self, new: NewUser) -> tuple[User, bool]:
        """The created user and True; or, for a retry of an earlier request, its user and False.

        Raises EmailTakenError, RequestIdReusedError, StoreUnavailableError; and
        UserNotFoundError for a retry whose user was erased since (a retry never makes it again).
        """
        user, created = await self._store.atomically_async(lambda unit: self._create(unit, new))
        if created:
            self._on_event()
        return user, created

    async def update(self, change: UserChange) -> User:
        """The user after the change. Raises UserNotFoundError, EmailTakenError, and
        StoreUnavailableError."""
        user, changed = await self._store.atomically_async(lambda unit: self._update(unit, change))
        if changed:
            self._on_event()
        return user

    async def delete(self, deletion: UserDeletion) -> Tombstone:
        """What stays of the erased user; for a retry of an earlier request, the same.
        Raises UserNotFoundError (no such user, or no longer), RequestIdReusedError, and
        StoreUnavailableError."""
        tombstone, deleted = await self._store.atomically_async(
            lambda unit: self._delete(unit, deletion)
        )
        if deleted:
            self._on_event()
        return tombstone

    async def get(self, user_id: str) -> User:
        user = await self._store.get_user_async(user_id)
        if user is None:
            raise UserNotFoundError(user_id)
        return user

    # The units of work below run on a thread of the store's, never the event loop's, in a
    # transaction shared with other calls' units (see UserStore.atomically_async); each
    # returns its user and whether it recorded an event.

    def _create(self, unit: UnitOfWork, new: NewUser) -> tuple[User, bool]:
        if new.request_id is not None:
            earlier = unit.find_request(new.request_id)
            if earlier is not None:
                if earlier.fingerprint is None:  # its user was erased: nothing to compare
                    raise UserNotFoundError(earlier.user_id)
                if earlier.fingerprint != new.fingerprint:
                    raise RequestIdReusedError(
                        "request_id was already used for a different request"
                    )
                original = unit.get_user(earlier.user_id)
                if original is None:  # pragma: no cover - the foreign key forbids it
                    raise UserNotFoundError(earlier.user_id)
                return _as_created(original, new), False
        now = self._clock()
        user = User(self._new_id(), new.name, new.email, now, now, version=1)
        request = (
            None
            if new.request_id is None
            else CreateRequest(new.request_id, new.fingerprint, user.id)
        )
        unit.add_user(user, request)
        unit.append_event(self._events.user_created(user), user.event_id)
        return user, True

    def _update(self, unit: UnitOfWork, change: UserChange) -> tuple[User, bool]:
        user = unit.get_user(change.user_id)
        if user is None:
            raise UserNotFoundError(change.user_id)
        updated, changed = change.apply(user, self._clock())
        if not changed:
            return user, False
        unit.save_user(updated)
        unit.append_event(self._events.user_updated(updated, changed), updated.event_id)
        return updated, True

    def _delete(self, unit: UnitOfWork, deletion: UserDeletion) -> tuple[Tombstone, bool]:
        if deletion.request_id is not None:
            earlier = unit.find_delete_request(deletion.request_id)
            if earlier is not None:
                if earlier.user_id != deletion.user_id:
                    raise RequestIdReusedError("request_id was already used for another user")
                tombstone = unit.get_tombstone(earlier.user_id)
                if tombstone is None:  # pragma: no cover - the foreign key forbids it
                    raise UserNotFoundError(earlier.user_id)
                return tombstone, False
        user = unit.get_user(deletion.user_id)
        if user is None:
            raise UserNotFoundError(deletion.user_id)
        tombstone = deletion.tombstone(user, self._clock())
        request = (
            None
            if deletion.request_id is None
            else DeleteRequest(deletion.request_id, deletion.user_id)
        )
        unit.delete_user(tombstone, request)
        unit.append_event(self._events.user_deleted(tombstone), tombstone.event_id)
        return tombstone, True


def _as_created(user: User, request: NewUser) -> User:
    """The user as the original CreateUser returned it, even if it has changed since.

    A matching fingerprint means the request's name and email are the ones it was created
    with, so version 1 of the user can be rebuilt without storing the whole response.
    """
    return User(user.id, request.name, request.email, user.create_time, user.create_time, version=1)
