"""SQLite as the services' embedded database: durable settings and versioned migrations.

Each service keeps its schema as an ordered list of SQL scripts; `migrate` applies the ones a
database has not seen yet, recording each in `schema_migrations`, so a database created by an
older release is brought up to date at start-up. No ORM: the SQL is the schema.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

T = TypeVar("T")


class StoreUnavailableError(RuntimeError):
    """The database could not be used (locked past the busy timeout, disk full, I/O error)."""


@contextmanager
def unavailable_on_error() -> Iterator[None]:
    """Database trouble the caller cannot fix becomes StoreUnavailableError, cause kept.

    Constraint violations (IntegrityError) pass through: they are answers, not trouble.
    """
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.DatabaseError as error:
        logger.exception("database unavailable")
        raise StoreUnavailableError(str(error)) from error


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch; integer arithmetic, as a float would round some away."""
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND


# A writer waiting on another's lock gives up after this long, with SQLITE_BUSY.
BUSY_TIMEOUT_S = 5.0


def connect(path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (creating if needed) a database file tuned for many readers and one writer.

    WAL lets readers work while a write is in progress, and `synchronous=FULL` syncs the
    WAL on every commit: an acknowledged write survives a crash of the machine, not just
    of the process. Transactions are explicit (`autocommit=True` leaves BEGIN to us).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def migrate(connection: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Apply the migrations this database lacks, each in its own transaction.

    Migration N (1-based) is `migrations[N - 1]`; never edit or reorder a released one,
    only append. Returns the schema version reached.
    """
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL)"
    )
    for version, script in enumerate(migrations, start=1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            done = connection.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone()
            if done is None:
                # executescript would commit on its own; run statement by statement instead.
                for statement in _statements(script):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_migrations (version, applied_at_us) VALUES (?, ?)",
                    (version, time.time_ns() // 1000),
                )
                logger.info("applied schema migration %d", version)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return len(migrations)


def schema_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _statements(script: str) -> list[str]:
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]}")
    return statements


# The most units one group transaction takes. The bound keeps a group's transaction (and the
# wait of its first caller) short under a flood; 256 small units run in a few milliseconds.
MAX_GROUP = 256


class Database:
    """A migrated database file: one writer connection and a reader connection per thread,
    which WAL lets run during writes.

    SQLite has one writer at a time anyway, so writes take turns behind a lock. Most writes go
    through `group_write`, which commits concurrent callers' work together: one transaction
    and one fsync for the lot (group commit), the fsync being what a write mostly waits for.
    """

    def __init__(
        self,
        path: Path,
        migrations: Sequence[str],
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        *,
        max_group: int = MAX_GROUP,
    ) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        with unavailable_on_error():
            self._writer = connect(path, busy_timeout_s)
            migrate(self._writer, migrations)
        # Held for the whole of every write transaction, grouped or not.
        self._write_lock = threading.Lock()
        self._readers = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._max_group = max_group
        # Units waiting for a group, oldest first, and whether some caller is leading: both
        # guarded by _queue_lock. Whenever the queue is not empty, a leader is active.
        self._queue_lock = threading.Lock()
        self._queue: list[_Unit[Any]] = []
        self._leading = False
        # By default the commit that fills the WAL past 1,000 pages copies it back into the
        # database file, with an fsync, while its callers wait: that made CreateUser's p99
        # 67 ms instead of 9.5 ms at half its max rate (`make bench`). A thread does it instead.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(path, busy_timeout_s)

    def group_write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in a write transaction and return its result once that has committed.

        The transaction may be shared with work other threads submitted meanwhile, and `work`
        may run on one of their threads. Each unit of work runs in its own savepoint: if it
        raises, its changes alone are undone and its exception is raised here, as it was
        (database trouble as StoreUnavailableError). If the shared transaction cannot begin
        or commit, every unit of it gets StoreUnavailableError and none of it is stored.
        Deferred constraints are checked at COMMIT, so one unit breaking one fails its group.
        `work` must not write through this Database itself: it would wait for itself.

        Leader/follower, with no writer thread of its own: the caller that finds no one
        writing leads, committing what is queued; the others wait on their unit's event. A
        dedicated thread would add a hand-off to every call, and a thread to supervise; this
        way an uncontended write costs little more than a plain transaction (a savepoint).
        """
        unit = _Unit(work)
        with self._queue_lock:
            self._queue.append(unit)
            leads = not self._leading
            self._leading = True
        if not leads:
            unit.woken.wait()
        # A follower is woken either with its outcome, or to lead the next group itself.
        if not unit.settled:
            self._lead()
        return unit.outcome()

    def queued_writes(self) -> int:
        """Units waiting to be taken into a group transaction (for monitoring, and tests)."""
        with self._queue_lock:
            return len(self._queue)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction of its own: committed when the block ends, rolled back if it
        raises. Group transactions wait for it, and it for them."""
        with self._write_lock, self._transaction() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's reader connection (autocommit: each query sees the latest commit)."""
        with unavailable_on_error():
            reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
            if reader is None:
                reader = connect(self.path, self._busy_timeout_s)
                self._readers.connection = reader
                with self._write_lock:
                    self._all_readers.append(reader)
            yield reader

    def ping(self) -> None:
        """Raise StoreUnavailableError unless a write could start now."""
        with self.write():
            pass

    def close(self) -> None:
        self._checkpointer.stop()
        with self._write_lock:
            for reader in self._all_readers:
                reader.close()
            self._writer.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE, then COMMIT, or ROLLBACK if the block raises. Hold _write_lock."""
        with unavailable_on_error():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
                self._writer.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a full disk, say), which can leave it open.
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise

    def _lead(self) -> None:
        """Commit one group, then hand the lead to the oldest waiting unit's caller, if any.

        Handing it on, rather than leading group after group, answers this caller as soon as
        its own group is committed.
        """
        try:
            self._commit_group()
        finally:
            with self._queue_lock:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
            if successor is not None:
                successor.woken.set()

    def _commit_group(self) -> None:
        with self._write_lock:
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

    def _run_units(self, connection: sqlite3.Connection, group: list[_Unit[Any]]) -> None:
        """Run the group's units in order. Units queued meanwhile are added to `group` and run
        too, up to the cap: otherwise they would wait for this COMMIT, then need their own."""
        index = 0
        while index < len(group):
            _run_in_savepoint(connection, group[index])
            index += 1
            if index == len(group):
                group.extend(self._take(self._max_group - len(group)))

    def _take(self, limit: int) -> list[_Unit[Any]]:
        with self._queue_lock:
            taken = self._queue[:limit]
            del self._queue[:limit]
        return taken


class _Checkpointer:
    """Copies committed WAL pages back into the database file every `interval_s`, off the
    writers' path.

    PASSIVE checkpoints never wait for readers or writers: they copy what they can and
    leave the rest for the next round. Once a round has copied everything, the next write
    starts the WAL file over, so it stays a few seconds' worth of writes long.
    """

    def __init__(self, path: Path, busy_timeout_s: float, interval_s: float = 1.0) -> None:
        self._connection = connect(path, busy_timeout_s)
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._connection.close()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.DatabaseError as error:
                # The next round tries again; the WAL only grows meanwhile.
                logger.warning("WAL checkpoint failed: %s", error)


class _Unit(Generic[T]):
    """One caller's work in a group transaction, and its outcome once the group is over."""

    def __init__(self, work: Callable[[sqlite3.Connection], T]) -> None:
        self.work = work
        self.value: T | None = None
        self.error: BaseException | None = None
        self.settled = False
        # Set when the unit is settled, or when its caller is to lead the next group.
        self.woken = threading.Event()

    def settle(self) -> None:
        self.settled = True
        self.woken.set()

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


def _run_in_savepoint(connection: sqlite3.Connection, unit: _Unit[Any]) -> None:
    """Run one unit's work; if it raises, undo its changes alone and keep its error for it."""
    connection.execute("SAVEPOINT group_unit")
    try:
        with unavailable_on_error():
            unit.value = unit.work(connection)
    except Exception as error:
        unit.error = error
        # This raises, failing the whole group, if SQLite has already rolled the transaction
        # back itself, as it may after an I/O error or a full disk.
        connection.execute("ROLLBACK TO group_unit")
    connection.execute("RELEASE group_unit")


def _fail_all(group: list[_Unit[Any]], error: BaseException) -> None:
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
