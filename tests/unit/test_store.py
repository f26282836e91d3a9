"""The SQLite store: migrations, transactions, uniqueness, and the outbox's order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.kafka.records import Record
from herald.storage import sqlite
from herald.storage.errors import StoreUnavailableError
from tests.support import ce_id
from users_svc.model import EmailTakenError, User
from users_svc.sqlite_schema import decode_headers, encode_headers
from users_svc.sqlite_store import MIGRATIONS, SqliteUserStore
from users_svc.store import CreateRequest, UnitOfWork

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def user(user_id: str = "u1", email: str = "ada@example.com", version: int = 1) -> User:
    return User(user_id, "Ada", email, T0, T0 + timedelta(seconds=version - 1), version)


def record(n: int, key: bytes = b"u1") -> Record:
    return Record("events", key, b"value-%d" % n, [("ce_id", f"e{n}".encode()), ("ce_type", b"t")])


def add(store: SqliteUserStore, *users: User) -> None:
    def add_all(unit: UnitOfWork) -> None:
        for each in users:
            unit.add_user(each, None)

    store.atomically(add_all)


def append(store: SqliteUserStore, event: Record) -> None:
    store.atomically(lambda unit: unit.append_event(event, ce_id(event)))


@pytest.fixture
def store(tmp_path: Path) -> SqliteUserStore:
    return SqliteUserStore(tmp_path / "users.sqlite3")


class TestMigrations:
    def test_a_new_database_reaches_the_latest_version(self, store: SqliteUserStore) -> None:
        connection = sqlite.connect(store.path)
        assert sqlite.schema_version(connection) == len(MIGRATIONS)

    def test_running_them_again_changes_nothing(self, store: SqliteUserStore) -> None:
        add(store, user())
        again = SqliteUserStore(store.path)
        assert again.get_user("u1") == user()

    def test_a_broken_migration_leaves_the_database_as_it_was(self, tmp_path: Path) -> None:
        connection = sqlite.connect(tmp_path / "db.sqlite3")
        with pytest.raises(sqlite3.OperationalError):
            sqlite.migrate(connection, ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (;"])
        assert sqlite.schema_version(connection) == 1
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert "a" in tables
        assert "b" not in tables

    def test_wal_mode_and_full_sync(self, store: SqliteUserStore) -> None:
        connection = sqlite.connect(store.path)
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


class TestUsers:
    def test_round_trips_a_user_to_the_microsecond(self, store: SqliteUserStore) -> None:
        store.atomically(lambda unit: unit.add_user(user(), CreateRequest("r1", "f1", "u1")))
        assert store.get_user("u1") == user()
        assert store.atomically(lambda unit: unit.find_request("r1")) == CreateRequest(
            "r1", "f1", "u1"
        )
        assert store.atomically(lambda unit: unit.find_request("r2")) is None

    def test_the_async_siblings_write_and_read_the_same_rows(self, store: SqliteUserStore) -> None:
        async def round_trip() -> tuple[User | None, User | None]:
            await store.atomically_async(lambda unit: unit.add_user(user(), None))
            return await store.get_user_async("u1"), await store.get_user_async("u2")

        assert asyncio.run(round_trip()) == (user(), None)
        assert store.get_user("u1") == user()
        with pytest.raises(EmailTakenError):
            asyncio.run(
                store.atomically_async(
                    lambda unit: unit.add_user(user("u2", "ADA@example.com"), None)
                )
            )

    def test_emails_are_unique_whatever_their_case(self, store: SqliteUserStore) -> None:
        add(store, user("u1", "Ada@Example.com"))
        with pytest.raises(EmailTakenError):
            add(store, user("u2", "ada@example.COM"))
        assert store.get_user("u2") is None

    def test_changing_to_a_taken_email_is_refused(self, store: SqliteUserStore) -> None:
        add(store, user("u1", "a@example.com"), user("u2", "b@example.com"))
        with pytest.raises(EmailTakenError):
            store.atomically(lambda unit: unit.save_user(user("u2", "A@example.com", version=2)))
        assert store.get_user("u2") == user("u2", "b@example.com")

    def test_a_failed_transaction_leaves_no_user_and_no_event(self, store: SqliteUserStore) -> None:
        crash = RuntimeError("crash before commit")

        def crash_before_commit(unit: UnitOfWork) -> None:
            unit.add_user(user(), None)
            unit.append_event(record(1), ce_id(record(1)))
            raise crash

        with pytest.raises(RuntimeError) as caught:
            store.atomically(crash_before_commit)
        assert caught.value is crash
        assert store.get_user("u1") is None
        assert store.pending(10) == []


class TestOutbox:
    def test_pending_rows_come_in_commit_order_with_their_headers(
        self, store: SqliteUserStore
    ) -> None:
        for n in range(5):
            append(store, record(n, key=b"u%d" % (n % 2)))
        rows = store.pending(10)
        assert [row.record.value for row in rows] == [b"value-%d" % n for n in range(5)]
        assert rows[0].record == Record(
            "events", b"u0", b"value-0", [("ce_id", b"e0"), ("ce_type", b"t")]
        )
        assert store.pending(2) == rows[:2]

    def test_marked_rows_stop_being_pending_and_are_pruned_later(
        self, store: SqliteUserStore
    ) -> None:
        for n in range(3):
            append(store, record(n))
        rows = store.pending(10)
        store.mark_published([rows[0].seq, rows[1].seq], at=T0)
        assert store.pending(10) == rows[2:]
        assert store.pending_count() == 1
        assert store.prune(published_before=T0) == 0
        assert store.prune(published_before=T0 + timedelta(seconds=1)) == 2
        assert store.pending(10) == rows[2:]

    def test_marking_leaves_the_rows_between_marked_ones_pending(
        self, store: SqliteUserStore
    ) -> None:
        for n in range(6):
            append(store, record(n))
        rows = store.pending(10)
        store.mark_published([rows[i].seq for i in (4, 0, 1, 3)], at=T0)
        assert store.pending(10) == [rows[2], rows[5]]

    def test_the_newest_rows_come_published_or_not_in_commit_order(
        self, store: SqliteUserStore
    ) -> None:
        for n in range(4):
            append(store, record(n))
        rows = store.pending(10)
        store.mark_published([rows[1].seq, rows[2].seq], at=T0)
        assert store.newest(3) == rows[1:]
        assert store.newest(10) == rows

    def test_ping_passes_on_a_usable_store(self, store: SqliteUserStore) -> None:
        store.ping()


def test_a_locked_database_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    store = SqliteUserStore(tmp_path / "users.sqlite3", busy_timeout_s=0.1)
    other = sqlite.connect(store.path)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError):
            store.ping()
        with pytest.raises(StoreUnavailableError):
            add(store, user())
    finally:
        other.execute("ROLLBACK")
    store.ping()
    assert store.get_user("u1") is None


class TestConcurrentUnits:
    def test_all_commit_and_a_raced_email_goes_to_exactly_one(self, store: SqliteUserStore) -> None:
        # Sixteen callers at once, most likely group-committed together: eight with emails of
        # their own, eight racing for the same one.
        emails = [f"own-{n}@example.com" for n in range(8)] + ["raced@example.com"] * 8
        outcomes: dict[str, str] = {}
        start = threading.Barrier(len(emails))

        def caller(n: int) -> None:
            created = user(f"u{n}", emails[n])

            def work(unit: UnitOfWork) -> User | None:
                unit.add_user(created, None)
                event = record(n, key=created.id.encode())
                unit.append_event(event, ce_id(event))
                return unit.get_user(created.id)

            start.wait()
            try:
                assert store.atomically(work) == created
            except EmailTakenError:
                outcomes[created.id] = "taken"
                return
            # Committed by the time the call returns: this thread's reader sees it.
            outcomes[created.id] = "stored" if store.get_user(created.id) == created else "lost"

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(len(emails))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [outcomes[f"u{n}"] for n in range(8)] == ["stored"] * 8
        raced = sorted(outcomes[f"u{n}"] for n in range(8, 16))
        assert raced == ["stored"] + ["taken"] * 7
        assert store.pending_count() == 9


def test_lists_users_a_page_at_a_time_in_id_order(store: SqliteUserStore) -> None:
    add(store, *(user(f"u{n}", f"u{n}@example.com") for n in (3, 1, 2)))
    first = store.list_users("", limit=2)
    assert [u.id for u in first] == ["u1", "u2"]
    assert store.list_users(first[-1].id, limit=2) == [user("u3", "u3@example.com")]
    assert store.list_users("u3", limit=2) == []


@given(st.lists(st.tuples(st.text(min_size=1, max_size=40), st.binary(max_size=300)), max_size=8))
def test_outbox_headers_come_back_as_they_went_in(headers: list[tuple[str, bytes]]) -> None:
    assert decode_headers(encode_headers(headers)) == headers


def test_outbox_headers_stored_as_json_text_still_decode() -> None:
    # Rows written before the binary form, and erased rows, hold JSON text.
    assert decode_headers('[["ce_id", "e1"], ["ce_type", "t"]]') == [
        ("ce_id", b"e1"),
        ("ce_type", b"t"),
    ]
