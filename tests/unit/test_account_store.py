"""The auth store: the inbox makes applying idempotent, versions make it order-proof."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from auth_svc.accounts import Account, EventSource, Outcome
from auth_svc.store import SqliteAccountStore
from herald import sqlite
from herald.sqlite import StoreUnavailableError

T0 = datetime(2026, 1, 1, 0, 0, 0, 654321, tzinfo=UTC)
HERE = EventSource("events", 0, 0)


def account(version: int, name: str = "Ada", user_id: str = "u1") -> Account:
    return Account(user_id, name, "ada@example.com", T0, version, f"{user_id}-e{version}", T0)


@pytest.fixture
def store(tmp_path: Path) -> SqliteAccountStore:
    return SqliteAccountStore(tmp_path / "auth.sqlite3", busy_timeout_s=0.1)


def test_applies_and_round_trips_an_account(store: SqliteAccountStore) -> None:
    assert store.apply(account(1), "created", HERE) is Outcome.APPLIED
    assert store.get("u1") == account(1)
    assert store.get("nobody") is None


def test_the_same_event_twice_is_applied_once(store: SqliteAccountStore) -> None:
    assert store.apply(account(1), "created", HERE) is Outcome.APPLIED
    assert store.apply(account(1), "created", HERE) is Outcome.DUPLICATE
    assert store.processed_count() == 1


def test_an_older_version_is_recorded_without_effect(store: SqliteAccountStore) -> None:
    assert store.apply(account(3, "Ada K."), "updated", HERE) is Outcome.APPLIED
    assert store.apply(account(2, "Ada L."), "updated", HERE) is Outcome.STALE
    assert store.apply(account(2, "Ada L."), "updated", HERE) is Outcome.DUPLICATE
    stored = store.get("u1")
    assert stored is not None
    assert (stored.name, stored.version) == ("Ada K.", 3)


def test_two_stores_on_one_file_share_the_inbox(tmp_path: Path) -> None:
    first = SqliteAccountStore(tmp_path / "auth.sqlite3")
    second = SqliteAccountStore(tmp_path / "auth.sqlite3")
    assert first.apply(account(1), "created", HERE) is Outcome.APPLIED
    assert second.apply(account(1), "created", HERE) is Outcome.DUPLICATE


def test_a_locked_database_is_unavailable_and_changes_nothing(store: SqliteAccountStore) -> None:
    other = sqlite.connect(store.path)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError):
            store.apply(account(1), "created", HERE)
    finally:
        other.execute("ROLLBACK")
    assert store.apply(account(1), "created", HERE) is Outcome.APPLIED


def test_old_event_ids_are_pruned_from_the_inbox(store: SqliteAccountStore) -> None:
    store.apply(account(1), "created", HERE)
    assert store.prune_inbox(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    assert store.prune_inbox(datetime(2100, 1, 1, tzinfo=UTC)) == 1
    assert store.processed_count() == 0
    assert store.get("u1") == account(1)  # accounts stay
