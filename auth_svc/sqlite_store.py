"""The accounts in SQLite, with the inbox of processed event ids that makes applying idempotent.

Several auth_svc processes on one host may share the file: SQLite serialises their writes,
and the inbox's primary key lets only one of them apply a given event.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from auth_svc.accounts import Account, DecodedEvent, Outcome, RecordPosition
from herald.storage import sqlite
from herald.timestamps import from_micros, to_micros

logger = logging.getLogger(__name__)

MIGRATIONS = (
    # 1: accounts, and the inbox of every event applied (or found stale) once.
    """
    CREATE TABLE accounts (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        create_time_us INTEGER NOT NULL,
        version INTEGER NOT NULL,
        last_event_id TEXT NOT NULL,
        update_time_us INTEGER NOT NULL
    );
    CREATE TABLE processed_events (
        event_id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        "offset" INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        processed_at_us INTEGER NOT NULL
    );
    """,
    # 2: how many events each account has had applied, counted in the transaction that
    # applies them. A user's versions go 1, 2, 3..., so the count equals the version unless
    # an event was applied twice or skipped: a check that does not rest on the inbox's key.
    # Accounts from before the count existed are taken to have had each version once.
    """
    ALTER TABLE accounts ADD COLUMN applied_events INTEGER NOT NULL DEFAULT 0;
    UPDATE accounts SET applied_events = version;
    """,
    # 3: tombstones. A UserDeleted leaves the row with name and email empty, create_time 0,
    # and deleted = 1: its version keeps the user's older events stale for good, and its
    # applied_events still counts every version (the delete is one).
    """
    ALTER TABLE accounts ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    """,
)


class SqliteAccountStore:
    def __init__(self, path: Path, busy_timeout_s: float = sqlite.BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._db = sqlite.Database(path, MIGRATIONS, busy_timeout_s)
        # Erased names and emails must not linger in the file's free space: SQLite then zeroes
        # what a write frees. A setting of the connection, and every write goes through the
        # database's one writer connection (the default depends on how SQLite was built).
        with self._db.write() as connection:
            connection.execute("PRAGMA secure_delete=ON")

    def apply(self, account: Account, event_type: str, position: RecordPosition) -> Outcome:
        [outcome] = self.apply_batch([DecodedEvent(account, event_type, position)])
        return outcome

    def apply_batch(self, events: Sequence[DecodedEvent]) -> list[Outcome]:
        if not events:
            return []
        with self._db.write() as connection:
            outcomes = _apply_batch(connection, events, to_micros(datetime.now(UTC)))
        if any(d.account.deleted for d in events):
            self._erase_wal()
        return outcomes

    def get(self, user_id: str) -> Account | None:
        with self._db.read() as connection:
            return _get_account(connection, user_id)

    async def get_async(self, user_id: str) -> Account | None:
        return await self._db.read_async(lambda connection: _get_account(connection, user_id))

    def tombstone_version(self, user_id: str) -> int | None:
        with self._db.read() as connection:
            row = connection.execute(
                "SELECT version FROM accounts WHERE user_id = ? AND deleted = 1", (user_id,)
            ).fetchone()
        return None if row is None else int(row[0])

    def applied_events(self, user_id: str) -> int:
        with self._db.read() as connection:
            row = connection.execute(
                "SELECT applied_events FROM accounts WHERE user_id = ?", (user_id,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def processed(self, event_ids: Iterable[str]) -> set[str]:
        with self._db.read() as connection:
            return _processed_ids(connection, event_ids)

    def processed_count(self) -> int:
        with self._db.read() as connection:
            return int(connection.execute("SELECT count(*) FROM processed_events").fetchone()[0])

    def prune_inbox(self, processed_before: datetime) -> int:
        with self._db.write() as connection:
            cursor = connection.execute(
                "DELETE FROM processed_events WHERE processed_at_us < ?",
                (to_micros(processed_before),),
            )
            return cursor.rowcount

    def ping(self) -> None:
        self._db.ping()

    def _erase_wal(self) -> None:
        """Copy the WAL into the file and empty it: until then its older page images hold
        what a delete erased. Best effort: a reader that keeps its snapshot (another process
        on the file) makes it give up after the busy timeout, and the WAL is emptied later."""
        if not self._db.empty_wal():
            logger.warning("WAL not emptied after an erasure: a reader holds it; retried later")

    def close(self) -> None:
        self._db.close()


_UPSERT_ACCOUNT = (
    "INSERT INTO accounts (user_id, name, email, create_time_us, version,"
    " last_event_id, update_time_us, applied_events, deleted)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,"
    " email = excluded.email, create_time_us = excluded.create_time_us,"
    " version = excluded.version, last_event_id = excluded.last_event_id,"
    " update_time_us = excluded.update_time_us,"
    " applied_events = accounts.applied_events + excluded.applied_events,"
    " deleted = excluded.deleted"
)
_INSERT_PROCESSED = (
    'INSERT INTO processed_events (event_id, event_type, topic, partition, "offset",'
    " outcome, processed_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# SQLite refuses a statement with more bound parameters than this (its default limit).
MAX_PARAMETERS = 32766


def _get_account(connection: sqlite3.Connection, user_id: str) -> Account | None:
    row = connection.execute(
        "SELECT user_id, name, email, create_time_us, version, last_event_id,"
        " update_time_us FROM accounts WHERE user_id = ? AND deleted = 0",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    user_id, name, email, created, version, event_id, updated = row
    return Account(
        user_id, name, email, from_micros(created), version, event_id, from_micros(updated)
    )


def _apply_batch(
    connection: sqlite3.Connection, events: Sequence[DecodedEvent], processed_at_us: int
) -> list[Outcome]:
    """Decide every event's outcome from two set-based reads, then write with executemany.

    Deciding in Python, in event order, against what the database held plus what this
    batch has decided so far, gives exactly the outcomes of one `apply` after another.
    """
    seen = _processed_ids(connection, {d.account.event_id for d in events})
    versions, erased = _versions(connection, {d.account.user_id for d in events})
    newest: dict[str, Account] = {}  # user id -> the account this batch leaves behind
    applied: Counter[str] = Counter()  # user id -> events of this batch applied to it
    processed: list[tuple[str, str, str, int, int, str, int]] = []
    outcomes: list[Outcome] = []
    for account, event_type, position in events:
        event_id = account.event_id
        if event_id in seen:
            outcomes.append(Outcome.DUPLICATE)
            continue
        seen.add(event_id)
        user_id = account.user_id
        current = versions.get(user_id)
        if user_id in erased:
            outcome = Outcome.STALE  # a tombstone is for good: see _stale_after_erasure
            _stale_after_erasure(account, current)
        elif current is not None and current >= account.version:
            outcome = Outcome.STALE
        else:
            outcome = Outcome.APPLIED
            versions[user_id] = account.version
            newest[user_id] = account
            applied[user_id] += 1
            if account.deleted:
                erased.add(user_id)
        outcomes.append(outcome)
        topic, partition, offset = position
        processed.append(
            (event_id, event_type, topic, partition, offset, outcome.value, processed_at_us)
        )
    # A user updated twice in one batch is written once, at the version it ends at.
    connection.executemany(_UPSERT_ACCOUNT, _account_rows(newest.values(), applied))
    connection.executemany(_INSERT_PROCESSED, processed)
    return outcomes


def _processed_ids(connection: sqlite3.Connection, event_ids: Iterable[str]) -> set[str]:
    query = "SELECT event_id FROM processed_events WHERE event_id IN ({})"
    return {event_id for (event_id,) in _rows_in(connection, query, event_ids)}


def _versions(
    connection: sqlite3.Connection, user_ids: Iterable[str]
) -> tuple[dict[str, int], set[str]]:
    """Each known user's version, and which of them are tombstones."""
    query = "SELECT user_id, version, deleted FROM accounts WHERE user_id IN ({})"
    versions, erased = {}, set()
    for user_id, version, deleted in _rows_in(connection, query, user_ids):
        versions[user_id] = version
        if deleted:
            erased.add(user_id)
    return versions, erased


def _stale_after_erasure(account: Account, tombstone: int | None) -> None:
    """An erased user stays erased. users_svc never publishes past a delete, so an event newer
    than the tombstone is no real change: it is recorded STALE like an older one, never
    applied (that would bring the account back), and logged by ids only."""
    if tombstone is not None and account.version > tombstone:
        logger.warning(
            "ignored event %s of erased user %s: version %d is past the tombstone's %d",
            account.event_id,
            account.user_id,
            account.version,
            tombstone,
        )


def _rows_in(
    connection: sqlite3.Connection, query: str, keys: Iterable[str]
) -> Iterator[tuple[Any, ...]]:
    """The rows `query` selects for `keys`: its `{}` becomes one ? per key, and the keys go
    in chunks small enough for SQLite's parameter limit."""
    for chunk in _chunks(keys, MAX_PARAMETERS):
        yield from connection.execute(query.format(_marks(len(chunk))), chunk)


def _account_rows(
    accounts: Iterable[Account], applied: Mapping[str, int]
) -> list[tuple[str, str, str, int, int, str, int, int, bool]]:
    rows = []
    update_micros: dict[datetime, int] = {}  # a batch's accounts share one update time
    for account in accounts:
        updated = update_micros.get(account.update_time)
        if updated is None:
            updated = update_micros[account.update_time] = to_micros(account.update_time)
        rows.append(
            (
                account.user_id,
                account.name,
                account.email,
                to_micros(account.create_time),
                account.version,
                account.event_id,
                updated,
                applied[account.user_id],
                account.deleted,
            )
        )
    return rows


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _marks(count: int) -> str:
    return ",".join("?" * count)
