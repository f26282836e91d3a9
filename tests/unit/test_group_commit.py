"""Group commit on herald.storage.sqlite.Database: concurrent writers share one transaction and one
COMMIT, each unit of work in its own savepoint, and every caller gets its own answer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from herald.storage import sqlite
from herald.storage.errors import StoreUnavailableError
from herald.storage.sqlite import Database
from tests.support import eventually

SCHEMA = (
    """
    CREATE TABLE items (name TEXT PRIMARY KEY);
    CREATE TABLE parents (id INTEGER PRIMARY KEY);
    CREATE TABLE children (
        id INTEGER PRIMARY KEY,
        parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
    );
    """,
)

Work = Callable[[sqlite3.Connection], Any]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "db.sqlite3", SCHEMA, busy_timeout_s=0.1)
    yield database
    database.close()


def insert(name: str) -> Work:
    def work(connection: sqlite3.Connection) -> str:
        connection.execute("INSERT INTO items (name) VALUES (?)", (name,))
        return name

    return work


def names(db: Database) -> set[str]:
    with db.read() as connection:
        return {row[0] for row in connection.execute("SELECT name FROM items")}


def from_threads(db: Database, works: Sequence[Work], queued: int = 0) -> list[Any]:
    """Submit each work from a thread of its own; what each returned or raised, in order.

    With `queued`, the writer is held until that many units wait in the queue, so the next
    leader takes them all at once.
    """
    outcomes: list[Any] = [None] * len(works)
    start = threading.Barrier(len(works))

    def submit(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = db.group_write(works[index])
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(works))]
    if queued:
        with db.write():
            for thread in threads:
                thread.start()
            eventually(lambda: db.queued_writes() == queued or None, timeout_s=10, every_s=0.01)
    else:
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_every_caller_gets_its_own_result_and_finds_its_write_committed_on_return(
    db: Database,
) -> None:
    wanted = [f"item-{n}" for n in range(32)]
    results: dict[str, str] = {}
    found_on_return: dict[str, bool] = {}
    start = threading.Barrier(len(wanted))

    def caller(name: str) -> None:
        start.wait()
        results[name] = db.group_write(insert(name))
        # Looked up on a reader connection of this thread's own: only committed rows show.
        found_on_return[name] = name in names(db)

    threads = [threading.Thread(target=caller, args=(name,)) for name in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {name: name for name in wanted}
    assert found_on_return == dict.fromkeys(wanted, True)
    assert names(db) == set(wanted)


def insert_and_count_from(outside: sqlite3.Connection, name: str) -> Work:
    """Insert `name`, then count the rows another connection sees (only committed ones)."""

    def work(connection: sqlite3.Connection) -> int:
        insert(name)(connection)
        return int(outside.execute("SELECT count(*) FROM items").fetchone()[0])

    return work


def test_queued_units_share_one_transaction(db: Database, tmp_path: Path) -> None:
    outside = sqlite.connect(tmp_path / "db.sqlite3")
    works = [insert_and_count_from(outside, f"item-{n}") for n in range(8)]
    outcomes = from_threads(db, works, queued=8)
    # Nothing was visible outside while the units ran: they were one uncommitted transaction.
    assert outcomes == [0] * 8
    assert len(names(db)) == 8


def test_a_group_takes_at_most_max_group_units(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3", SCHEMA, max_group=2)
    outside = sqlite.connect(tmp_path / "db.sqlite3")
    works = [insert_and_count_from(outside, f"item-{n}") for n in range(5)]
    outcomes = from_threads(db, works, queued=5)
    # Groups of 2, 2 and 1: each sees from outside what the groups before it committed.
    assert sorted(outcomes) == [0, 0, 2, 2, 4]
    db.close()


def test_a_unit_that_raises_is_undone_alone_and_its_caller_gets_its_exception(
    db: Database,
) -> None:
    mine = ValueError("this unit's own error")

    def insert_then_raise(connection: sqlite3.Connection) -> None:
        insert("undone")(connection)
        raise mine

    works = [insert("a"), insert("a"), insert_then_raise, insert("b")]
    outcomes = from_threads(db, works, queued=4)
    assert names(db) == {"a", "b"}
    assert outcomes[2] is mine
    # Whichever "a" unit ran first stored it; the other hit the UNIQUE constraint.
    assert {type(outcome) for outcome in outcomes[:2]} == {str, sqlite3.IntegrityError}
    assert outcomes[3] == "b"


def test_a_failed_commit_fails_every_unit_of_the_group_and_stores_nothing(
    db: Database,
) -> None:
    def orphan(connection: sqlite3.Connection) -> None:
        # A deferred foreign key is checked at COMMIT, which therefore fails.
        connection.execute("INSERT INTO children (id, parent) VALUES (1, 42)")

    def refused(connection: sqlite3.Connection) -> None:
        raise LookupError("refused")

    works = [insert("a"), orphan, refused, insert("b")]
    outcomes = from_threads(db, works, queued=4)
    assert [type(outcome) for outcome in outcomes] == [StoreUnavailableError] * 4
    assert names(db) == set()
    with db.read() as connection:
        assert connection.execute("SELECT count(*) FROM children").fetchone()[0] == 0
    # The writer is usable again.
    assert db.group_write(insert("c")) == "c"


def test_a_failed_begin_fails_every_unit_and_stores_nothing(db: Database, tmp_path: Path) -> None:
    other = sqlite.connect(tmp_path / "db.sqlite3")
    other.execute("BEGIN EXCLUSIVE")
    try:
        outcomes = from_threads(db, [insert(f"item-{n}") for n in range(8)])
    finally:
        other.execute("ROLLBACK")
    assert [type(outcome) for outcome in outcomes] == [StoreUnavailableError] * 8
    assert names(db) == set()
    assert db.group_write(insert("after")) == "after"


def test_a_write_block_and_group_writes_take_turns(db: Database) -> None:
    outcomes = from_threads(db, [insert("a"), insert("b")], queued=2)
    with db.write() as connection:
        connection.execute("INSERT INTO items (name) VALUES ('c')")
    assert outcomes == ["a", "b"]
    assert names(db) == {"a", "b", "c"}


def test_commits_leave_checkpoints_to_a_background_thread(db: Database) -> None:
    # A commit never copies the WAL into the database file itself (that stalled every caller
    # of the group); the checkpointer thread does, so the file grows without anyone asking.
    with db.write() as connection:
        assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    main_file = db.path.stat().st_size
    with db.write() as connection:
        connection.executemany(
            "INSERT INTO items (name) VALUES (?)", [(f"{n:04d}" + "x" * 1000,) for n in range(2000)]
        )
    eventually(lambda: db.path.stat().st_size > main_file + 1_000_000 or None, timeout_s=10)
    assert len(names(db)) == 2000


# --- coroutines: submit_async ---


def on_thread(name: str, threads: dict[str, str]) -> Work:
    """Insert `name`, noting the thread the work ran on."""

    def work(connection: sqlite3.Connection) -> str:
        threads[name] = threading.current_thread().name
        return str(insert(name)(connection))

    return work


async def queue_behind_held_writer(db: Database, works: Sequence[Work]) -> list[Any]:
    """Submit every work from coroutines while the writer is held, so they all queue; then
    let it go. What each returned or raised, in order."""
    with db.write():
        tasks = [asyncio.ensure_future(db.group_write_async(work)) for work in works]
        while db.queued_writes() < len(works):
            await asyncio.sleep(0.005)
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_coroutines_queued_together_commit_as_one_group_on_the_writer_thread(
    db: Database, tmp_path: Path
) -> None:
    outside = sqlite.connect(tmp_path / "db.sqlite3")
    threads: dict[str, str] = {}

    def counted(name: str) -> Work:
        def work(connection: sqlite3.Connection) -> int:
            on_thread(name, threads)(connection)
            return int(outside.execute("SELECT count(*) FROM items").fetchone()[0])

        return work

    loop_thread = threading.current_thread().name
    outcomes = asyncio.run(queue_behind_held_writer(db, [counted(f"i-{n}") for n in range(32)]))
    # One uncommitted transaction for all 32: none saw another's row from outside.
    assert outcomes == [0] * 32
    assert len(names(db)) == 32
    # No thread per call: every unit ran on the one writer thread, none on the loop's.
    assert {name.rsplit("_", 1)[0] for name in threads.values()} == {"group-commit"}
    assert loop_thread not in threads.values()


def test_threads_and_coroutines_share_one_queue(db: Database) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        threaded: list[Any] = []
        with db.write():
            tasks = [
                asyncio.ensure_future(db.group_write_async(insert(f"a-{n}"))) for n in range(8)
            ]
            workers = [
                threading.Thread(
                    target=lambda n=n: threaded.append(db.group_write(insert(f"t-{n}")))
                )
                for n in range(8)
            ]
            for worker in workers:
                worker.start()
            while db.queued_writes() < 16:
                await asyncio.sleep(0.005)
        awaited = await asyncio.gather(*tasks)
        for worker in workers:
            await asyncio.to_thread(worker.join)
        return awaited, threaded

    awaited, threaded = asyncio.run(both())
    assert awaited == [f"a-{n}" for n in range(8)]
    assert sorted(threaded) == [f"t-{n}" for n in range(8)]
    assert len(names(db)) == 16


def test_a_coroutine_gets_its_own_units_error_and_a_failed_commit_fails_them_all(
    db: Database,
) -> None:
    mine = ValueError("this unit's own error")

    def raises(connection: sqlite3.Connection) -> None:
        raise mine

    def orphan(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO children (id, parent) VALUES (1, 42)")

    outcomes = asyncio.run(queue_behind_held_writer(db, [insert("a"), raises, insert("b")]))
    assert outcomes == ["a", mine, "b"]
    outcomes = asyncio.run(queue_behind_held_writer(db, [insert("c"), orphan]))
    assert [type(outcome) for outcome in outcomes] == [StoreUnavailableError] * 2
    assert names(db) == {"a", "b"}


def test_a_cancelled_caller_leaves_the_others_alone_and_its_work_may_still_commit(
    db: Database,
) -> None:
    async def cancel_one() -> list[Any]:
        with db.write():
            tasks = [
                asyncio.ensure_future(db.group_write_async(insert(f"i-{n}"))) for n in range(4)
            ]
            while db.queued_writes() < 4:
                await asyncio.sleep(0.005)
            tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(cancel_one())
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert [outcomes[0], *outcomes[2:]] == ["i-0", "i-2", "i-3"]
    assert names(db) == {"i-0", "i-1", "i-2", "i-3"}


def test_reads_from_a_coroutine_run_on_the_database_s_read_threads(db: Database) -> None:
    db.group_write(insert("a"))

    def read(connection: sqlite3.Connection) -> tuple[str, list[str]]:
        rows = [row[0] for row in connection.execute("SELECT name FROM items")]
        return threading.current_thread().name, rows

    async def many() -> list[tuple[str, list[str]]]:
        return await asyncio.gather(*(db.read_async(read) for _ in range(20)))

    answers = asyncio.run(many())
    assert {rows[0] for _, rows in answers} == {"a"}
    assert {thread.rsplit("_", 1)[0] for thread, _ in answers} == {"sqlite-read"}
    assert len({thread for thread, _ in answers}) <= sqlite.database.READ_THREADS


def test_after_close_a_coroutine_s_write_is_store_unavailable(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3", SCHEMA)
    db.close()
    with pytest.raises(StoreUnavailableError):
        asyncio.run(db.group_write_async(insert("late")))
