"""Where users_svc keeps its users and its outbox: SQLite by default, behind two Protocols.

`UserStore` is what the application needs: a unit of work whose changes and outgoing events
commit together, and reads. `Outbox` is what the relay needs. A server database would be one
more class implementing both; nothing above this module would change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from herald import sqlite
from herald.producer import Record
from users_svc.model import EmailTakenError, User, email_key

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

MIGRATIONS = (
    # 1: users, the requests that created them (for idempotent retries), and the outbox.
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        create_time_us INTEGER NOT NULL,
        update_time_us INTEGER NOT NULL
    );
    CREATE TABLE create_requests (
        request_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        headers TEXT NOT NULL,
        created_at_us INTEGER NOT NULL,
        published_at_us INTEGER
    );
    CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at_us IS NULL;
    CREATE INDEX outbox_published ON outbox (published_at_us) WHERE published_at_us IS NOT NULL;
    """,
)


class StoreUnavailableError(RuntimeError):
    """The database could not be used (locked past the busy timeout, disk full, I/O error)."""


@dataclass(frozen=True)
class CreateRequest:
    request_id: str
    fingerprint: str
    user_id: str


@dataclass(frozen=True)
class OutboxRow:
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

    def append_event(self, record: Record) -> None: ...


class UserStore(Protocol):
    def transaction(self) -> AbstractContextManager[UnitOfWork]: ...

    def get_user(self, user_id: str) -> User | None: ...

    def ping(self) -> None:
        """Raise StoreUnavailableError unless a write could start now."""
        ...


class Outbox(Protocol):
    def pending(self, limit: int) -> list[OutboxRow]:
        """The oldest unpublished events, in commit order."""
        ...

    def mark_published(self, seqs: Sequence[int], at: datetime) -> None: ...

    def prune(self, published_before: datetime) -> int: ...

    def pending_count(self) -> int: ...


class SqliteUserStore:
    """One writer connection behind a lock (SQLite has one writer at a time anyway) and a
    reader connection per thread; WAL lets the readers run while a write commits."""

    def __init__(self, path: Path, busy_timeout_s: float = sqlite.BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._writer = sqlite.connect(path, busy_timeout_s)
        sqlite.migrate(self._writer, MIGRATIONS)
        self._write_lock = threading.Lock()
        self._readers = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """Everything done through the yielded unit of work commits together, or not at all."""
        with self._write_lock, _translated_errors():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteUnitOfWork(self._writer)
                self._writer.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a full disk, say), which can leave it open.
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise

    def get_user(self, user_id: str) -> User | None:
        with _translated_errors():
            return _get_user(self._reader(), user_id)

    def ping(self) -> None:
        with self._write_lock, _translated_errors():
            self._writer.execute("BEGIN IMMEDIATE")
            self._writer.execute("ROLLBACK")

    def pending(self, limit: int) -> list[OutboxRow]:
        with _translated_errors():
            rows = self._reader().execute(
                "SELECT seq, topic, key, value, headers FROM outbox"
                " WHERE published_at_us IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            return [
                OutboxRow(seq, Record(topic, key, value, _decode_headers(headers)))
                for seq, topic, key, value, headers in rows
            ]

    def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        with self.transaction():
            self._writer.executemany(
                "UPDATE outbox SET published_at_us = ? WHERE seq = ?",
                [(_micros(at), seq) for seq in seqs],
            )

    def prune(self, published_before: datetime) -> int:
        with self._write_lock, _translated_errors():
            cursor = self._writer.execute(
                "DELETE FROM outbox WHERE published_at_us < ?", (_micros(published_before),)
            )
            return cursor.rowcount

    def pending_count(self) -> int:
        with _translated_errors():
            row = (
                self._reader()
                .execute("SELECT count(*) FROM outbox WHERE published_at_us IS NULL")
                .fetchone()
            )
            return int(row[0])

    def close(self) -> None:
        self._writer.close()

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if reader is None:
            reader = sqlite.connect(self.path, self._busy_timeout_s)
            self._readers.connection = reader
        return reader


class _SqliteUnitOfWork:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def get_user(self, user_id: str) -> User | None:
        return _get_user(self._connection, user_id)

    def find_request(self, request_id: str) -> CreateRequest | None:
        row = self._connection.execute(
            "SELECT request_id, fingerprint, user_id FROM create_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else CreateRequest(*row)

    def add_user(self, user: User, request: CreateRequest | None) -> None:
        with _email_uniqueness():
            self._connection.execute(
                "INSERT INTO users (id, name, email, email_key, version, create_time_us,"
                " update_time_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    user.name,
                    user.email,
                    email_key(user.email),
                    user.version,
                    _micros(user.create_time),
                    _micros(user.update_time),
                ),
            )
        if request is not None:
            self._connection.execute(
                "INSERT INTO create_requests (request_id, fingerprint, user_id) VALUES (?, ?, ?)",
                (request.request_id, request.fingerprint, request.user_id),
            )

    def save_user(self, user: User) -> None:
        with _email_uniqueness():
            self._connection.execute(
                "UPDATE users SET name = ?, email = ?, email_key = ?, version = ?,"
                " update_time_us = ? WHERE id = ?",
                (
                    user.name,
                    user.email,
                    email_key(user.email),
                    user.version,
                    _micros(user.update_time),
                    user.id,
                ),
            )

    def append_event(self, record: Record) -> None:
        headers = dict(record.headers)
        self._connection.execute(
            "INSERT INTO outbox (event_id, topic, key, value, headers, created_at_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                _text(headers.get("ce_id")),
                record.topic,
                record.key,
                record.value,
                _encode_headers(record.headers),
                _micros(datetime.now(UTC)),
            ),
        )


def _get_user(connection: sqlite3.Connection, user_id: str) -> User | None:
    row = connection.execute(
        "SELECT id, name, email, create_time_us, update_time_us, version FROM users WHERE id = ?",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    id_, name, email, created, updated, version = row
    return User(id_, name, email, _from_micros(created), _from_micros(updated), version)


@contextmanager
def _email_uniqueness() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        if "users.email_key" in str(error):
            raise EmailTakenError("another user has this email") from None
        raise


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Database trouble the caller cannot fix becomes one typed error with the cause kept."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.DatabaseError as error:
        logger.exception("user store unavailable")
        raise StoreUnavailableError(str(error)) from error


def _encode_headers(headers: Sequence[tuple[str, str | bytes | None]]) -> str:
    # Header values Herald writes are UTF-8 text (CloudEvents attributes), so JSON text keeps
    # the outbox readable with the sqlite3 shell.
    return json.dumps([[name, _text(value)] for name, value in headers])


def _decode_headers(encoded: str) -> list[tuple[str, str | bytes | None]]:
    return [(name, value.encode()) for name, value in json.loads(encoded)]


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return value or ""


def _micros(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp would round some microseconds away.
    return (moment - EPOCH) // MICROSECOND


def _from_micros(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND
