"""Versioned schema migrations for SQLite.

Each service keeps its schema as an ordered list of SQL scripts; `migrate` applies the ones a
database has not seen yet, recording each in `schema_migrations`, so a database created by an
older release is brought up to date at start-up. No ORM: the SQL is the schema.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence

logger = logging.getLogger(__name__)


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
