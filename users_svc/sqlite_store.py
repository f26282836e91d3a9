"""users_svc's users and outbox in SQLite: the UserStore and Outbox of users_svc.store."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from herald.kafka.records import Record
from herald.storage import sqlite
from herald.timestamps import from_micros, to_micros
from users_svc.model import EmailTakenError, Tombstone, User, email_key
from users_svc.outbox_marks import ERASED, WaitingMarks, excluding, store_runs
from users_svc.sqlite_schema import MIGRATIONS, decode_headers, encode_headers
from users_svc.store import CreateRequest, DeleteRequest, OutboxRow, UnitOfWork

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["MIGRATIONS", "SqliteUserStore"]


class SqliteUserStore:
    def __init__(self, path: Path, busy_timeout_s: float = sqlite.BUSY_TIMEOUT_S) -> None:
        self.path = path
        # secure_delete: what a write removes (an erased user's row, index entries, outbox
        # values) is overwritten with zeros, not left in the file's free space.
        self._db = sqlite.Database(path, MIGRATIONS, busy_timeout_s, secure_delete=True)
        self._erased = threading.Event()  # a delete committed; its WAL not yet emptied
        self._waiting = WaitingMarks()  # the relay's marks not yet stored (outbox_marks)

    def atomically(self, work: Callable[[UnitOfWork], T]) -> T:
        # Group-committed with concurrent calls' work: one fsync for the lot.
        return self._db.group_write(lambda connection: work(self._unit(connection)))

    async def atomically_async(self, work: Callable[[UnitOfWork], T]) -> T:
        return await self._db.group_write_async(lambda connection: work(self._unit(connection)))

    def _unit(self, connection: sqlite3.Connection) -> _SqliteUnitOfWork:
        return _SqliteUnitOfWork(connection, self._erased, self._waiting)

    def get_user(self, user_id: str) -> User | None:
        with self._db.read() as connection:
            return _get_user(connection, user_id)

    async def get_user_async(self, user_id: str) -> User | None:
        return await self._db.read_async(lambda connection: _get_user(connection, user_id))

    def list_users(self, after_id: str, limit: int) -> list[User]:
        with self._db.read() as connection:
            rows = connection.execute(
                f"{_SELECT_USER} WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [_user(row) for row in rows]

    def get_tombstone(self, user_id: str) -> Tombstone | None:
        with self._db.read() as connection:
            return _get_tombstone(connection, user_id)

    def list_tombstones(self, after_id: str, limit: int) -> list[Tombstone]:
        with self._db.read() as connection:
            rows = connection.execute(
                f"{_SELECT_TOMBSTONE} WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [_tombstone(row) for row in rows]

    def ping(self) -> None:
        self._db.ping()

    def pending(self, limit: int) -> list[OutboxRow]:
        waiting, parameters = excluding(self._waiting.ranges())
        return self._outbox_rows(
            "SELECT seq, topic, key, value, headers FROM outbox"  # noqa: S608 - placeholders
            f" WHERE published_at_us IS NULL{waiting} ORDER BY seq LIMIT ?",
            *parameters,
            limit,
        )

    def newest(self, limit: int) -> list[OutboxRow]:
        rows = self._outbox_rows(
            "SELECT seq, topic, key, value, headers FROM outbox ORDER BY seq DESC LIMIT ?", limit
        )
        return rows[::-1]

    def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        self._waiting.add(seqs, to_micros(at))
        self.store_marks()

    def mark_published_later(self, seqs: Sequence[int], at: datetime) -> None:
        self._waiting.add(seqs, to_micros(at))
        if self._erased.is_set():
            # An erased user's rows may be among them: they lose their data when the mark is
            # stored, so that is not left waiting.
            self.store_marks()

    def store_marks(self) -> None:
        # Group-committed, so the marks share their fsync with CreateUser calls' commits.
        runs = self._waiting.taken()
        if not runs:
            return
        erased = self._db.group_write(lambda connection: store_runs(connection, runs))
        self._waiting.stored(runs)
        if erased or self._erased.is_set():
            self._empty_wal()

    def _empty_wal(self) -> None:
        """After an erasure, empty the WAL, whose older page images still hold what it removed
        (the relay's thread does it, off the calls' path). Kept pending if a reader holds it."""
        self._erased.clear()
        if not self._db.empty_wal():
            self._erased.set()
            logger.warning("WAL not emptied after an erasure: a reader holds it; retried later")

    def prune(self, published_before: datetime) -> int:
        with self._db.write() as connection:
            cursor = connection.execute(
                "DELETE FROM outbox WHERE published_at_us < ?", (to_micros(published_before),)
            )
            return cursor.rowcount

    def pending_count(self) -> int:
        waiting, parameters = excluding(self._waiting.ranges())
        with self._db.read() as connection:
            return int(
                connection.execute(
                    f"SELECT count(*) FROM outbox WHERE published_at_us IS NULL{waiting}",  # noqa: S608
                    parameters,
                ).fetchone()[0]
            )

    def close(self) -> None:
        self._db.close()

    def _outbox_rows(self, query: str, *parameters: int) -> list[OutboxRow]:
        with self._db.read() as connection:
            rows = connection.execute(query, parameters).fetchall()
        return [
            OutboxRow(seq, Record(topic, key, value, decode_headers(headers)))
            for seq, topic, key, value, headers in rows
        ]


class _SqliteUnitOfWork:
    def __init__(
        self, connection: sqlite3.Connection, erased: threading.Event, waiting: WaitingMarks
    ) -> None:
        self._connection = connection
        self._erased = erased  # set by a delete: the WAL holds what it removed
        self._waiting = waiting

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
                    to_micros(user.create_time),
                    to_micros(user.update_time),
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
                    to_micros(user.update_time),
                    user.id,
                ),
            )

    def get_tombstone(self, user_id: str) -> Tombstone | None:
        return _get_tombstone(self._connection, user_id)

    def find_delete_request(self, request_id: str) -> DeleteRequest | None:
        row = self._connection.execute(
            "SELECT request_id, user_id FROM delete_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else DeleteRequest(*row)

    def delete_user(self, tombstone: Tombstone, request: DeleteRequest | None) -> None:
        self._erased.set()  # before the commit: a mark_published after it must see it
        execute, user_id, key = self._connection.execute, tombstone.id, tombstone.id.encode()
        # Rows already sent are erased now, with those whose marks wait (stored again later).
        store_runs(self._connection, self._waiting.taken())
        execute("DELETE FROM users WHERE id = ?", (user_id,))
        execute(
            "INSERT INTO deleted_users (id, version, delete_time_us) VALUES (?, ?, ?)",
            (user_id, tombstone.version, to_micros(tombstone.delete_time)),
        )
        execute("UPDATE create_requests SET fingerprint = NULL WHERE user_id = ?", (user_id,))
        if request is not None:
            execute(
                "INSERT INTO delete_requests (request_id, user_id) VALUES (?, ?)",
                (request.request_id, request.user_id),
            )
        execute(
            f"UPDATE outbox SET {ERASED}"  # noqa: S608 - a constant
            " WHERE key = ? AND published_at_us IS NOT NULL",
            (key,),
        )
        # Still to be sent as committed, in order: erased by mark_published once sent.
        execute(
            "UPDATE outbox SET erase_when_published = 1 WHERE key = ? AND published_at_us IS NULL",
            (key,),
        )

    def append_event(self, record: Record, event_id: str) -> None:
        self._connection.execute(
            "INSERT INTO outbox (event_id, topic, key, value, headers, created_at_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event_id,
                record.topic,
                record.key,
                record.value,
                encode_headers(record.headers),
                to_micros(datetime.now(UTC)),
            ),
        )


_SELECT_USER = "SELECT id, name, email, create_time_us, update_time_us, version FROM users"


def _get_user(connection: sqlite3.Connection, user_id: str) -> User | None:
    row = connection.execute(f"{_SELECT_USER} WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else _user(row)


def _user(row: tuple[Any, ...]) -> User:
    id_, name, email, created, updated, version = row
    return User(id_, name, email, from_micros(created), from_micros(updated), version)


_SELECT_TOMBSTONE = "SELECT id, version, delete_time_us FROM deleted_users"


def _get_tombstone(connection: sqlite3.Connection, user_id: str) -> Tombstone | None:
    row = connection.execute(f"{_SELECT_TOMBSTONE} WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else _tombstone(row)


def _tombstone(row: tuple[Any, ...]) -> Tombstone:
    id_, version, deleted = row
    return Tombstone(id_, version, from_micros(deleted))


@contextmanager
def _email_uniqueness() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        if "users.email_key" in str(error):
            raise EmailTakenError("another user has this email") from None
        raise
