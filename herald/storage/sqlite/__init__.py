"""SQLite as the services' embedded database (moved here whole; split in the next commit)."""

from herald.storage.sqlite.database import (
    BUSY_TIMEOUT_S,
    Database,
    StoreUnavailableError,
    connect,
    from_micros,
    migrate,
    schema_version,
    to_micros,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "Database",
    "StoreUnavailableError",
    "connect",
    "from_micros",
    "migrate",
    "schema_version",
    "to_micros",
]
