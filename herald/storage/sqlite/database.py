"""A migrated SQLite file: one writer connection, a reader connection per thread, group commit
for the writes, and WAL checkpoints off the writers' path. Coroutines get both off their event
loop: reads on a few threads of the database's own, writes through group commit's writer."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from herald.lifecycle import name_os_thread
from herald.storage.group_commit import MAX_GROUP, GroupCommit
from herald.storage.sqlite.connection import BUSY_TIMEOUT_S, connect, unavailable_on_error
from herald.storage.sqlite.migrations import migrate

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Threads that run coroutines' reads, each with its reader connection. WAL lets them read in
# parallel, but the GIL leaves little to gain past a few; a busy database makes reads queue
# here, never on an event loop.
READ_THREADS = 4


class Database:
    """A migrated database file: one writer connection and a reader connection per thread,
    which WAL lets run during writes.

    SQLite has one writer at a time anyway, so writes take turns behind a lock. Most writes go
    through `group_write`, which commits concurrent callers' work together: one transaction
    and one fsync for the lot (group commit), the fsync being what a write mostly waits for.
    """

    def __init__(
        self,
        path: Path,
        migrations: Sequence[str],
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        *,
        max_group: int = MAX_GROUP,
        read_threads: int = READ_THREADS,
        secure_delete: bool = False,
    ) -> None:
        """`secure_delete`: writes overwrite what they delete or replace with zeros (SQLite's
        `PRAGMA secure_delete`), free pages included, for data that must leave the file."""
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        with unavailable_on_error():
            self._writer = connect(path, busy_timeout_s)
            if secure_delete:
                self._writer.execute("PRAGMA secure_delete=ON")
            migrate(self._writer, migrations)
        # Held for the whole of every write transaction, grouped or not.
        self._write_lock = threading.Lock()
        self._readers = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._group = GroupCommit[sqlite3.Connection](
            lock=self._write_lock,
            transaction=self._transaction,
            translate_errors=unavailable_on_error,
            max_group=max_group,
        )
        self._read_pool = ThreadPoolExecutor(
            read_threads, thread_name_prefix="sqlite-read", initializer=name_os_thread
        )
        # By default the commit that fills the WAL past 1,000 pages copies it back into the
        # database file, with an fsync, while its callers wait: that made CreateUser's p99
        # 67 ms instead of 9.5 ms at half its max rate (`make bench`). A thread does it instead.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(path, busy_timeout_s)

    def group_write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in a write transaction, shared with other callers' work, and return its
        result once that has committed: see GroupCommit.submit."""
        return self._group.submit(work)

    async def group_write_async(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`group_write` for a coroutine: see GroupCommit.submit_async."""
        return await self._group.submit_async(work)

    async def read_async(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on a reader connection of one of the database's read threads, awaited."""

        def run() -> T:
            with self.read() as connection:
                return work(connection)

        return await asyncio.get_running_loop().run_in_executor(self._read_pool, run)

    def queued_writes(self) -> int:
        """Units waiting to be taken into a group transaction (for monitoring, and tests)."""
        return self._group.queued()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction of its own: committed when the block ends, rolled back if it
        raises. Group transactions wait for it, and it for them."""
        with self._write_lock, self._transaction() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's reader connection (autocommit: each query sees the latest commit)."""
        with unavailable_on_error():
            reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
            if reader is None:
                reader = connect(self.path, self._busy_timeout_s)
                self._readers.connection = reader
                with self._write_lock:
                    self._all_readers.append(reader)
            yield reader

    def empty_wal(self) -> bool:
        """Copy the WAL into the database file and truncate it; False if a reader holding an
        older snapshot (another process on the file) kept it from finishing in time. Until
        then the WAL's older page images still hold what a write removed: stores call this
        after an erasure."""
        with self.read() as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def ping(self) -> None:
        """Raise StoreUnavailableError unless a write could start now."""
        with self.write():
            pass

    def close(self) -> None:
        self._read_pool.shutdown(wait=True)
        self._group.close()
        self._checkpointer.stop()
        with self._write_lock:
            for reader in self._all_readers:
                reader.close()
            self._writer.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE, then COMMIT, or ROLLBACK if the block raises. Hold _write_lock."""
        with unavailable_on_error():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
                self._writer.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a full disk, say), which can leave it open.
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise


class _Checkpointer:
    """Copies committed WAL pages back into the database file every `interval_s`, off the
    writers' path.

    PASSIVE checkpoints never wait for readers or writers: they copy what they can and
    leave the rest for the next round. Once a round has copied everything, the next write
    starts the WAL file over, so it stays a few seconds' worth of writes long.
    """

    def __init__(self, path: Path, busy_timeout_s: float, interval_s: float = 1.0) -> None:
        self._connection = connect(path, busy_timeout_s)
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._connection.close()

    def _run(self) -> None:
        name_os_thread()
        while not self._stopping.wait(self._interval_s):
            try:
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.DatabaseError as error:
                # The next round tries again; the WAL only grows meanwhile.
                logger.warning("WAL checkpoint failed: %s", error)
