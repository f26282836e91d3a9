"""users_svc's users and outbox in SQLite: the UserStore and Outbox of users_svc.store."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from herald.kafka.records import Record
from herald.storage import sqlite
from herald.timestamps import to_micros
from users_svc.model import Tombstone, User
from users_svc.outbox_marks import DeferredMarks
from users_svc.sqlite_schema import MIGRATIONS, decode_headers
from users_svc.sqlite_unit import (
    ERASED,
    SELECT_TOMBSTONE,
    SELECT_USER,
    SqliteUnitOfWork,
    get_tombstone_row,
    get_user_row,
    tombstone_from_row,
    user_from_row,
)
from users_svc.store import OutboxRow, UnitOfWork

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["MIGRATIONS", "SqliteUserStore"]


class SqliteUserStore:
    def __init__(
        self,
        path: Path,
        busy_timeout_s: float = sqlite.BUSY_TIMEOUT_S,
        *,
        deferred_marks: bool = False,
    ) -> None:
        """With `deferred_marks` (users_svc's relay), mark_published returns before its commit:
        see users_svc.outbox_marks. Without (tools, tests), a mark has committed when
        mark_published returns."""
        self.path = path
        # secure_delete: what a write removes (an erased user's row, index entries, outbox
        # values) is overwritten with zeros, not left in the file's free space.
        self._db = sqlite.Database(path, MIGRATIONS, busy_timeout_s, secure_delete=True)
        self._erased = threading.Event()  # a delete committed; its WAL not yet emptied
        self._marks = DeferredMarks(self._mark_now) if deferred_marks else None

    def atomically(self, work: Callable[[UnitOfWork], T]) -> T:
        # Group-committed with concurrent calls' work: one fsync for the lot.
        return self._db.group_write(lambda connection: work(self._unit(connection)))

    async def atomically_async(self, work: Callable[[UnitOfWork], T]) -> T:
        return await self._db.group_write_async(lambda connection: work(self._unit(connection)))

    def _unit(self, connection: sqlite3.Connection) -> SqliteUnitOfWork:
        return SqliteUnitOfWork(connection, self._erased)

    def get_user(self, user_id: str) -> User | None:
        with self._db.read() as connection:
            return get_user_row(connection, user_id)

    async def get_user_async(self, user_id: str) -> User | None:
        return await self._db.read_async(lambda connection: get_user_row(connection, user_id))

    def list_users(self, after_id: str, limit: int) -> list[User]:
        with self._db.read() as connection:
            rows = connection.execute(
                f"{SELECT_USER} WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [user_from_row(row) for row in rows]

    def get_tombstone(self, user_id: str) -> Tombstone | None:
        with self._db.read() as connection:
            return get_tombstone_row(connection, user_id)

    def list_tombstones(self, after_id: str, limit: int) -> list[Tombstone]:
        with self._db.read() as connection:
            rows = connection.execute(
                f"{SELECT_TOMBSTONE} WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [tombstone_from_row(row) for row in rows]

    def ping(self) -> None:
        self._db.ping()

    def pending(self, limit: int) -> list[OutboxRow]:
        if self._marks is None:
            return self._outbox_rows(f"{_PENDING} AND seq > ? ORDER BY seq LIMIT ?", 0, limit)
        floor, marked = self._marks.snapshot()
        rows = self._outbox_rows(
            f"{_PENDING} AND seq > ? ORDER BY seq LIMIT ?", floor, limit + len(marked)
        )
        rows = [row for row in rows if row.seq not in marked][:limit]
        self._marks.offered([row.seq for row in rows])
        return rows

    def newest(self, limit: int) -> list[OutboxRow]:
        self._flush_marks()
        rows = self._outbox_rows(
            "SELECT seq, topic, key, value, headers FROM outbox ORDER BY seq DESC LIMIT ?", limit
        )
        return rows[::-1]

    def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        if self._marks is None:
            self._mark_now(seqs, at)
        else:
            self._marks.mark(seqs, at)

    def _mark_now(self, seqs: Sequence[int], at: datetime) -> None:
        # One UPDATE per run of consecutive seqs, usually one per batch: a statement per row
        # cost the relay more than reading the rows did. Group-committed, so the mark shares
        # its fsync with the CreateUser calls being committed meanwhile.
        at_us = to_micros(at)
        runs = [(at_us, first, last) for first, last in _runs(seqs)]

        def mark(connection: sqlite3.Connection) -> int:
            connection.executemany(
                "UPDATE outbox SET published_at_us = ? WHERE seq BETWEEN ? AND ?", runs
            )
            # Rows pending when their user was erased, now sent: erased. The partial index
            # outbox_to_erase holds only those, so this costs nothing when there are none (left
            # to itself, the planner would scan every published row instead).
            return connection.execute(
                f"UPDATE outbox INDEXED BY outbox_to_erase SET {ERASED}"  # noqa: S608 - constant
                " WHERE erase_when_published = 1 AND published_at_us IS NOT NULL"
            ).rowcount

        if self._db.group_write(mark) or self._erased.is_set():
            self._empty_wal()

    def _empty_wal(self) -> None:
        """After an erasure, empty the WAL, whose older page images still hold what it removed
        (the marking thread does it, off the calls' path). Kept pending if a reader holds it."""
        self._erased.clear()
        if not self._db.empty_wal():
            self._erased.set()
            logger.warning("WAL not emptied after an erasure: a reader holds it; retried later")

    def prune(self, published_before: datetime) -> int:
        self._flush_marks()
        with self._db.write() as connection:
            cursor = connection.execute(
                "DELETE FROM outbox WHERE published_at_us < ?", (to_micros(published_before),)
            )
            return cursor.rowcount

    def pending_count(self) -> int:
        self._flush_marks()
        with self._db.read() as connection:
            return int(
                connection.execute(
                    "SELECT count(*) FROM outbox WHERE published_at_us IS NULL"
                ).fetchone()[0]
            )

    def _flush_marks(self) -> None:
        """Wait for deferred marks, for the reads that count or show what was published."""
        if self._marks is not None:
            self._marks.flush()

    def close(self) -> None:
        if self._marks is not None:
            self._marks.close()
        self._db.close()

    def _outbox_rows(self, query: str, *parameters: int) -> list[OutboxRow]:
        with self._db.read() as connection:
            rows = connection.execute(query, parameters).fetchall()
        return [
            OutboxRow(seq, Record(topic, key, value, decode_headers(headers)))
            for seq, topic, key, value, headers in rows
        ]


_PENDING = "SELECT seq, topic, key, value, headers FROM outbox WHERE published_at_us IS NULL"


def _runs(seqs: Sequence[int]) -> Iterator[tuple[int, int]]:
    """The seqs as runs of consecutive numbers, ascending: [7, 1, 2, 3] -> (1, 3), (7, 7)."""
    ordered = sorted(seqs)
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            yield ordered[start], ordered[index - 1]
            start = index
