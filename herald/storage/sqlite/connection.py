"""Opening a SQLite file the way both services need it, and what its errors mean to them."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

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
