"""Group commit: concurrent callers' writes share one transaction and one commit.

A commit costs a sync to disk, and that sync is what a small write mostly waits for. Queued
writes committed together pay for one. Nothing here knows which database it drives: a backend
hands in its write lock, a way to open a write transaction and a way to turn its errors into
StoreUnavailableError; the savepoints are plain SQL that SQLite and PostgreSQL both speak.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar, cast

from herald.lifecycle import name_os_thread
from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The most units one group transaction takes. The bound keeps a group's transaction (and the
# wait of its first caller) short under a flood; 256 small units run in a few milliseconds.
MAX_GROUP = 256


class Connection(Protocol):
    """What group commit needs of a connection: to run a statement."""

    def execute(self, sql: str, /) -> object: ...


C = TypeVar("C", bound=Connection)


class GroupCommit(Generic[C]):
    """Runs units of work in shared write transactions.

    Threads (`submit`) lead and follow: the caller that finds no one writing leads,
    committing what is queued; the others wait on their unit's event. A dedicated writer
    thread would add a hand-off to every call; this way an uncontended write costs little
    more than a plain transaction (a savepoint).

    Coroutines (`submit_async`) must not block their event loop, and have no thread to lead
    with: their units go in the same queue, and when no one is writing, one writer job starts
    on a single thread of this object's own, which commits the queue group by group. A call
    costs that thread one job per group, not one per call.
    """

    def __init__(
        self,
        *,
        lock: AbstractContextManager[Any],
        transaction: Callable[[], AbstractContextManager[C]],
        translate_errors: Callable[[], AbstractContextManager[None]],
        max_group: int = MAX_GROUP,
    ) -> None:
        # `lock` is held for the whole of every write transaction, grouped or not;
        # `transaction` begins one (the lock held), commits when its block ends and rolls
        # back if it raises.
        self._lock = lock
        self._transaction = transaction
        self._translate_errors = translate_errors
        self._max_group = max_group
        # Units waiting for a group, oldest first, and whether some caller or the writer job
        # is leading: both guarded by _queue_lock. Whenever the queue is not empty, a leader
        # is active.
        self._queue_lock = threading.Lock()
        self._queue: list[_QueuedWork[Any]] = []
        self._leading = False
        # One thread, so writer jobs never overlap; it starts with the first async unit.
        self._writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="group-commit", initializer=name_os_thread
        )

    def submit(self, work: Callable[[C], T]) -> T:
        """Run `work` in a write transaction and return its result once that has committed.

        The transaction may be shared with work others submitted meanwhile, and `work` may run
        on one of their threads or on the writer thread. Each unit of work runs in its own
        savepoint: if it raises, its changes alone are undone and its exception is raised
        here, as it was (database trouble as StoreUnavailableError). If the shared transaction
        cannot begin or commit, every unit of it gets StoreUnavailableError and none of it is
        stored. Deferred constraints are checked at COMMIT, so one unit breaking one fails its
        group. `work` must not submit work itself: it would wait for itself.
        """
        unit = _QueuedWork(work)
        if not self._enqueue(unit):
            unit.wait()
        # A follower is woken either with its outcome, or to lead the next group itself.
        if not unit.settled:
            self._lead()
        return unit.outcome()

    async def submit_async(self, work: Callable[[C], T]) -> T:
        """`submit` for a coroutine: the same transaction, savepoint and errors, while the
        event loop goes on with other calls. `work` runs on another thread (the writer's or a
        leading caller's); its outcome comes back to this loop.

        A caller cancelled while it waits does not withdraw its work: it may still commit.
        """
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._enqueue(_QueuedWork(work, done)):
            self._start_writer()
        return await done

    def queued(self) -> int:
        """Units waiting to be taken into a group transaction (for monitoring, and tests)."""
        with self._queue_lock:
            return len(self._queue)

    def close(self) -> None:
        """Let a writer job in progress finish; submit_async fails from now on."""
        self._writer.shutdown(wait=True)

    def _enqueue(self, unit: _QueuedWork[Any]) -> bool:
        """Queue `unit`; True if no one was leading, so its caller must see to it."""
        with self._queue_lock:
            self._queue.append(unit)
            leads = not self._leading
            self._leading = True
        return leads

    def _lead(self) -> None:
        """Commit one group, then pass the lead on.

        Passing it on, rather than leading group after group, answers this caller as soon as
        its own group is committed.
        """
        try:
            self._commit_group()
        finally:
            self._pass_lead()

    def _pass_lead(self) -> None:
        """Hand the lead to the oldest waiting unit: its thread if it has one waiting, else
        the writer job."""
        with self._queue_lock:
            successor = self._queue[0] if self._queue else None
            self._leading = successor is not None
        if successor is None:
            return
        if successor.done is None:
            successor.wake()
        else:
            self._start_writer()

    def _start_writer(self) -> None:
        try:
            self._writer.submit(self._lead)
        except RuntimeError as error:  # closed: no group will run, so none may wait for one
            with self._queue_lock:
                stranded = self._queue[:]
                self._queue.clear()
                self._leading = False
            _fail_all(stranded, error)

    def _commit_group(self) -> None:
        with self._lock:
            # Taken once the writer is ours, so what queued while we waited for it joins in.
            group = self._take(self._max_group)
            try:
                with self._transaction() as connection:
                    self._run_units(connection, group)
            except BaseException as error:
                _fail_all(group, error)
                if isinstance(error, Exception):
                    return
                raise
        for unit in group:
            unit.settle()

    def _run_units(self, connection: C, group: list[_QueuedWork[Any]]) -> None:
        """Run the group's units in order. Units queued meanwhile are added to `group` and run
        too, up to the cap: otherwise they would wait for this COMMIT, then need their own."""
        index = 0
        while index < len(group):
            self._run_in_savepoint(connection, group[index])
            index += 1
            if index == len(group):
                group.extend(self._take(self._max_group - len(group)))

    def _run_in_savepoint(self, connection: C, unit: _QueuedWork[Any]) -> None:
        """Run one unit's work; if it raises, undo its changes alone and keep its error for it."""
        connection.execute("SAVEPOINT group_unit")
        try:
            with self._translate_errors():
                unit.value = unit.work(connection)
        except Exception as error:
            unit.error = error
            # This raises, failing the whole group, if the database has already rolled the
            # transaction back itself, as SQLite may after an I/O error or a full disk.
            connection.execute("ROLLBACK TO SAVEPOINT group_unit")
        connection.execute("RELEASE SAVEPOINT group_unit")

    def _take(self, limit: int) -> list[_QueuedWork[Any]]:
        with self._queue_lock:
            taken = self._queue[:limit]
            del self._queue[:limit]
        return taken


class _QueuedWork(Generic[T]):
    """One caller's work in a group transaction, and its outcome once the group is over.

    A thread's unit wakes its caller with an event; a coroutine's resolves a future on the
    caller's event loop, from whichever thread settles it.
    """

    def __init__(self, work: Callable[[Any], T], done: asyncio.Future[T] | None = None) -> None:
        self.work = work
        self.value: T | None = None
        self.error: BaseException | None = None
        self.settled = False
        # A coroutine's unit: the future its caller awaits.
        self.done = done
        # A thread's unit: set when the unit is settled, or when its caller is to lead the
        # next group. A coroutine's unit has none: an Event per call cost the event loop
        # ~4 µs of a CreateUser's ~90 (cProfile, in-process).
        self._woken = threading.Event() if done is None else None

    def wait(self) -> None:
        self._event().wait()

    def wake(self) -> None:
        self._event().set()

    def _event(self) -> threading.Event:
        if self._woken is None:
            raise RuntimeError("a coroutine's unit has no thread to wait or wake")
        return self._woken

    def settle(self) -> None:
        self.settled = True
        if self.done is None:
            self.wake()
            return
        # A RuntimeError means the caller's loop is closed: no one is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.done.get_loop().call_soon_threadsafe(self._resolve, self.done)

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)

    def _resolve(self, done: asyncio.Future[T]) -> None:
        """On the caller's loop: hand it the outcome, unless it stopped waiting."""
        if done.cancelled():
            return
        if self.error is not None:
            done.set_exception(self.error)
        else:
            done.set_result(cast(T, self.value))


def _fail_all(group: list[_QueuedWork[Any]], error: BaseException) -> None:
    """Settle every unit of a group that was not committed with StoreUnavailableError.

    Units whose work raised get it too: their answer may rest on an earlier unit's write that
    is now gone (a second user with the email a first one took in the same group, say).
    """
    if not isinstance(error, StoreUnavailableError):  # which was logged where it was raised
        logger.error("group of %d writes not committed: %r", len(group), error)
    for unit in group:
        failure = StoreUnavailableError(f"not committed: {error}")
        failure.__cause__ = error
        unit.error = failure
        unit.settle()
