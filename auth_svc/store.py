"""The accounts in SQLite, with the inbox of processed event ids that makes applying idempotent.

Several auth_svc processes on one host may share the file: SQLite serialises their writes,
and the inbox's primary key lets only one of them apply a given event.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from auth_svc.accounts import Account, EventSource, Outcome
from herald import sqlite
from herald.sqlite import from_micros, to_micros

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
)


class SqliteAccountStore:
    def __init__(self, path: Path, busy_timeout_s: float = sqlite.BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._db = sqlite.Database(path, MIGRATIONS, busy_timeout_s)

    def apply(self, account: Account, event_type: str, source: EventSource) -> Outcome:
        with self._db.write() as connection:
            return _apply(connection, account, event_type, source)

    def get(self, user_id: str) -> Account | None:
        with self._db.read() as connection:
            row = connection.execute(
                "SELECT user_id, name, email, create_time_us, version, last_event_id,"
                " update_time_us FROM accounts WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        if row is None:
            return None
        user_id, name, email, created, version, event_id, updated = row
        return Account(
            user_id, name, email, from_micros(created), version, event_id, from_micros(updated)
        )

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

    def close(self) -> None:
        self._db.close()


def _apply(
    connection: sqlite3.Connection, account: Account, event_type: str, source: EventSource
) -> Outcome:
    seen = connection.execute(
        "SELECT 1 FROM processed_events WHERE event_id = ?", (account.last_event_id,)
    ).fetchone()
    if seen is not None:
        return Outcome.DUPLICATE
    current = connection.execute(
        "SELECT version FROM accounts WHERE user_id = ?", (account.user_id,)
    ).fetchone()
    outcome = (
        Outcome.STALE if current is not None and current[0] >= account.version else Outcome.APPLIED
    )
    if outcome is Outcome.APPLIED:
        connection.execute(
            "INSERT INTO accounts (user_id, name, email, create_time_us, version,"
            " last_event_id, update_time_us) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,"
            " email = excluded.email, create_time_us = excluded.create_time_us,"
            " version = excluded.version, last_event_id = excluded.last_event_id,"
            " update_time_us = excluded.update_time_us",
            (
                account.user_id,
                account.name,
                account.email,
                to_micros(account.create_time),
                account.version,
                account.last_event_id,
                to_micros(account.update_time),
            ),
        )
    connection.execute(
        'INSERT INTO processed_events (event_id, event_type, topic, partition, "offset",'
        " outcome, processed_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            account.last_event_id,
            event_type,
            source.topic,
            source.partition,
            source.offset,
            outcome.value,
            to_micros(datetime.now(UTC)),
        ),
    )
    return outcome
