"""Erasure in the SQLite store and the application: what a delete removes, what stays (the
tombstone), the outbox rows it empties at once or once published, and migration 2 over a
database made by migration 1."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald.kafka.records import Record, header_values
from herald.storage import sqlite
from herald.timestamps import to_micros
from tests.support import ce_id
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.model import (
    NewUser,
    RequestIdReusedError,
    Tombstone,
    User,
    UserNotFoundError,
    validate_deletion,
)
from users_svc.sqlite_store import MIGRATIONS, SqliteUserStore
from users_svc.store import CreateRequest, DeleteRequest, UnitOfWork

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"
OTHER_REQUEST_ID = "123e4567-e89b-12d3-a456-426614174001"


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def user(n: int, version: int = 1) -> User:
    return User(uid(n), f"Name{n}", f"user{n}@example.com", T0, T0, version)


def event(n: int, version: int) -> Record:
    """An event of user n carrying its name, as the real ones do."""
    value = f"user{n}@example.com v{version}".encode()
    headers: list[tuple[str, str | bytes | None]] = [
        ("ce_id", f"e{n}-{version}".encode()),
        ("ce_type", b"t"),
        ("ce_source", b"/s"),
    ]
    return Record("events", uid(n).encode(), value, headers)


@pytest.fixture
def store(tmp_path: Path) -> SqliteUserStore:
    return SqliteUserStore(tmp_path / "users.sqlite3")


def add(store: SqliteUserStore, *numbers: int, request: bool = False) -> None:
    def work(unit: UnitOfWork) -> None:
        for n in numbers:
            made = CreateRequest(f"r{n}", "fingerprint", uid(n)) if request else None
            unit.add_user(user(n), made)
            unit.append_event(event(n, 1), ce_id(event(n, 1)))

    store.atomically(work)


def erase(store: SqliteUserStore, n: int, version: int = 2, request_id: str = "") -> None:
    tombstone = Tombstone(uid(n), version, T1)
    request = DeleteRequest(request_id, uid(n)) if request_id else None
    store.atomically(lambda unit: unit.delete_user(tombstone, request))


class TestDeleteUser:
    def test_the_user_leaves_and_its_tombstone_stays(self, store: SqliteUserStore) -> None:
        add(store, 1, 2, 3, request=True)
        erase(store, 2, request_id="d2")
        assert store.get_user(uid(2)) is None
        assert [u.id for u in store.list_users("", 10)] == [uid(1), uid(3)]
        assert store.get_tombstone(uid(2)) == Tombstone(uid(2), 2, T1)
        assert store.get_tombstone(uid(1)) is None
        assert store.get_tombstone(uid(9)) is None
        assert store.list_tombstones("", 10) == [Tombstone(uid(2), 2, T1)]
        assert store.list_tombstones(uid(2), 10) == []
        found = store.atomically(lambda unit: unit.find_request("r2"))
        assert found == CreateRequest("r2", None, uid(2))  # the fingerprint goes
        assert store.atomically(lambda unit: unit.find_request("r1")) == CreateRequest(
            "r1", "fingerprint", uid(1)
        )
        assert store.atomically(lambda unit: unit.find_delete_request("d2")) == DeleteRequest(
            "d2", uid(2)
        )
        assert store.atomically(lambda unit: unit.get_tombstone(uid(2))) == Tombstone(uid(2), 2, T1)

    def test_the_email_is_free_at_once_whatever_its_case(self, store: SqliteUserStore) -> None:
        add(store, 1)
        erase(store, 1)
        again = User(uid(7), "New", "USER1@example.com", T1, T1, 1)
        store.atomically(lambda unit: unit.add_user(again, None))
        assert store.get_user(uid(7)) == again

    def test_tombstones_list_a_page_at_a_time(self, store: SqliteUserStore) -> None:
        add(store, 1, 2, 3)
        for n in (3, 1, 2):
            erase(store, n)
        first = store.list_tombstones("", 2)
        assert [t.id for t in first] == [uid(1), uid(2)]
        assert [t.id for t in store.list_tombstones(first[-1].id, 2)] == [uid(3)]

    def test_published_rows_are_emptied_at_once_pending_ones_once_published(
        self, store: SqliteUserStore
    ) -> None:
        add(store, 1, 2)
        [first, other] = store.pending(10)
        store.mark_published([first.seq, other.seq], T0)
        store.atomically(
            lambda unit: unit.append_event(event(1, 2), ce_id(event(1, 2)))
        )  # still pending
        erase(store, 1, version=3)
        rows = {row.seq: row.record for row in store.newest(10)}
        assert rows[first.seq].value == b""
        assert rows[first.seq].key == uid(1).encode()
        assert header_values(rows[first.seq].headers) == {"ce_id": "e1-1"}
        assert rows[other.seq] == other.record  # another user's row is left alone
        [pending] = store.pending(10)
        assert pending.record == event(1, 2)  # sent as it was committed
        store.mark_published([pending.seq], T1)
        [emptied] = [row for row in store.newest(10) if row.seq == pending.seq]
        assert (emptied.record.value, header_values(emptied.record.headers)) == (
            b"",
            {"ce_id": "e1-2"},
        )
        assert store.newest(10)[1].record == other.record

    def test_a_failed_unit_erases_nothing(self, store: SqliteUserStore) -> None:
        add(store, 1)
        [row] = store.pending(10)
        store.mark_published([row.seq], T0)

        def fails(unit: UnitOfWork) -> None:
            unit.delete_user(Tombstone(uid(1), 2, T1), None)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            store.atomically(fails)
        assert store.get_user(uid(1)) == user(1)
        assert store.get_tombstone(uid(1)) is None
        assert store.newest(10)[0].record == event(1, 1)


def test_migration_2_keeps_what_migration_1_stored(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    old = sqlite.Database(path, MIGRATIONS[:1])
    with old.write() as connection:
        connection.execute(
            "INSERT INTO users VALUES (?, 'Ada', 'ada@x.org', 'ada@x.org', 1, ?, ?)",
            (uid(1), to_micros(T0), to_micros(T0)),
        )
        connection.execute("INSERT INTO create_requests VALUES ('r1', 'f1', ?)", (uid(1),))
    old.close()
    store = SqliteUserStore(path)
    assert sqlite.schema_version(sqlite.connect(path)) == len(MIGRATIONS) == 2
    assert store.atomically(lambda unit: unit.find_request("r1")) == CreateRequest(
        "r1", "f1", uid(1)
    )
    erase(store, 1)
    assert store.get_user(uid(1)) is None
    # The create request outlives its user now: the foreign key that cascaded is gone.
    assert store.atomically(lambda unit: unit.find_request("r1")) == CreateRequest(
        "r1", None, uid(1)
    )
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []


class TestApplication:
    @pytest.fixture
    def woken(self) -> list[int]:
        return []

    @pytest.fixture
    def users(self, store: SqliteUserStore, woken: list[int]) -> UserApplication:
        return UserApplication(
            store,
            EventRecordFactory("events", "/test"),
            on_event=lambda: woken.append(1),
            clock=lambda: T1,
            new_id=lambda: uid(1),
        )

    def test_delete_is_one_version_more_with_its_event_and_retries_change_nothing(
        self, users: UserApplication, store: SqliteUserStore, woken: list[int]
    ) -> None:
        asyncio.run(users.create(NewUser("Ada", "ada@example.com", REQUEST_ID)))
        deletion = validate_deletion(uid(1), REQUEST_ID)
        assert asyncio.run(users.delete(deletion)) == Tombstone(uid(1), 2, T1)
        assert asyncio.run(users.delete(deletion)) == Tombstone(uid(1), 2, T1)
        assert len(woken) == 2  # the creation and the delete; the retry records nothing
        assert store.pending_count() == 2
        with pytest.raises(UserNotFoundError):
            asyncio.run(users.delete(validate_deletion(uid(1), OTHER_REQUEST_ID)))
        with pytest.raises(UserNotFoundError):
            asyncio.run(users.delete(validate_deletion(uid(1))))
        with pytest.raises(RequestIdReusedError):
            asyncio.run(users.delete(validate_deletion(uid(2), REQUEST_ID)))
        with pytest.raises(UserNotFoundError):
            asyncio.run(users.get(uid(1)))

    def test_a_create_retry_after_the_delete_does_not_make_the_user_again(
        self, users: UserApplication, store: SqliteUserStore
    ) -> None:
        asyncio.run(users.create(NewUser("Ada", "ada@example.com", REQUEST_ID)))
        asyncio.run(users.delete(validate_deletion(uid(1))))
        for retry in (
            NewUser("Ada", "ada@example.com", REQUEST_ID),
            NewUser("Eve", "e@x.io", REQUEST_ID),
        ):
            with pytest.raises(UserNotFoundError):
                asyncio.run(users.create(retry))
        assert store.list_users("", 10) == []
        assert store.pending_count() == 2
