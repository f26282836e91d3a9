"""What any storage backend reports when it cannot do its job, whatever the database is."""

from __future__ import annotations


class StoreUnavailableError(RuntimeError):
    """The database could not be used (locked past the busy timeout, disk full, I/O error)."""
