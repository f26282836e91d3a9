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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


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


class Database:
    """A migrated database file: one writer connection behind a lock (SQLite has one writer
    at a time anyway) and a reader connection per thread, which WAL lets run during writes."""

    def __init__(
        self, path: Path, migrations: Sequence[str], busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        with unavailable_on_error():
            self._writer = connect(path, busy_timeout_s)
            migrate(self._writer, migrations)
        self._write_lock = threading.Lock()
        self._readers = threading.local()
        self._all_readers: list[sqlite3.Connection] = []

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._write_lock, unavailable_on_error():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
                self._writer.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a full disk, say), which can leave it open.
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise

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
        with self._write_lock:
            for reader in self._all_readers:
                reader.close()
            self._writer.close()
