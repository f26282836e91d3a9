"""SQLite as the services' embedded database: connections, migrations, and the Database
whose writes are group-committed."""

from herald.storage.sqlite.connection import BUSY_TIMEOUT_S, connect, unavailable_on_error
from herald.storage.sqlite.database import Database
from herald.storage.sqlite.migrations import migrate, schema_version

__all__ = [
    "BUSY_TIMEOUT_S",
    "Database",
    "connect",
    "migrate",
    "schema_version",
    "unavailable_on_error",
]
