"""The auth store: the inbox makes applying idempotent, versions make it order-proof."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_svc import sqlite_store as store_module
from auth_svc.accounts import Account, DecodedEvent, Outcome, RecordPosition
from auth_svc.sqlite_store import SqliteAccountStore
from herald.storage import sqlite
from herald.storage.errors import StoreUnavailableError

T0 = datetime(2026, 1, 1, 0, 0, 0, 654321, tzinfo=UTC)
HERE = RecordPosition("events", 0, 0)


def account(version: int, name: str = "Ada", user_id: str = "u1") -> Account:
    return Account(user_id, name, "ada@example.com", T0, version, f"{user_id}-e{version}", T0)


def event(version: int, name: str = "Ada", user_id: str = "u1", offset: int = 0) -> DecodedEvent:
    return DecodedEvent(
        account(version, name, user_id), "updated", RecordPosition("events", 0, offset)
    )


def inbox(store: SqliteAccountStore) -> list[tuple[Any, ...]]:
    """The inbox rows, without the time each was processed at."""
    with sqlite3.connect(store.path) as connection:
        return connection.execute(
            'SELECT event_id, event_type, topic, partition, "offset", outcome'
            " FROM processed_events ORDER BY event_id"
        ).fetchall()


@pytest.fixture
def store(tmp_path: Path) -> SqliteAccountStore:
    return SqliteAccountStore(tmp_path / "auth.sqlite3", busy_timeout_s=0.1)


def test_applies_and_round_trips_an_account(store: SqliteAccountStore) -> None:
    assert store.apply(account(1), "created", HERE) is Outcome.APPLIED
    assert store.get("u1") == account(1)
    assert store.get("nobody") is None
    assert asyncio.run(store.get_async("u1")) == account(1)
    assert asyncio.run(store.get_async("nobody")) is None


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


# --- batches: one transaction, and the outcomes of applying one event after another ---


def test_a_batch_applies_each_event_and_records_where_it_came_from(
    store: SqliteAccountStore,
) -> None:
    batch = [event(1, user_id="u1", offset=7), event(1, user_id="u2", offset=8)]
    assert store.apply_batch(batch) == [Outcome.APPLIED, Outcome.APPLIED]
    assert store.get("u1") == account(1, user_id="u1")
    assert store.get("u2") == account(1, user_id="u2")
    assert inbox(store) == [
        ("u1-e1", "updated", "events", 0, 7, "applied"),
        ("u2-e1", "updated", "events", 0, 8, "applied"),
    ]


def test_the_same_event_twice_in_one_batch_is_applied_once(store: SqliteAccountStore) -> None:
    assert store.apply_batch([event(1), event(1, offset=1)]) == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
    ]
    assert inbox(store) == [("u1-e1", "updated", "events", 0, 0, "applied")]


def test_an_event_processed_by_an_earlier_batch_is_a_duplicate(store: SqliteAccountStore) -> None:
    assert store.apply_batch([event(2, "Ada L.")]) == [Outcome.APPLIED]
    assert store.apply_batch([event(2, "Ada L."), event(3, "Ada K.")]) == [
        Outcome.DUPLICATE,
        Outcome.APPLIED,
    ]
    stored = store.get("u1")
    assert stored is not None
    assert (stored.name, stored.version) == ("Ada K.", 3)


def test_a_newer_version_then_an_older_one_in_one_batch_leaves_the_newer(
    store: SqliteAccountStore,
) -> None:
    assert store.apply_batch([event(3, "Ada K."), event(2, "Ada L.")]) == [
        Outcome.APPLIED,
        Outcome.STALE,
    ]
    assert store.get("u1") == account(3, "Ada K.")
    assert [row[-1] for row in inbox(store)] == ["stale", "applied"]  # u1-e2, u1-e3


def test_versions_in_order_in_one_batch_are_all_applied_and_the_last_wins(
    store: SqliteAccountStore,
) -> None:
    assert (
        store.apply_batch([event(1), event(2, "Ada L."), event(3, "Ada K.")])
        == [Outcome.APPLIED] * 3
    )
    assert store.get("u1") == account(3, "Ada K.")
    assert store.processed_count() == 3


def test_a_batch_is_stale_against_what_the_database_holds(store: SqliteAccountStore) -> None:
    store.apply(account(5, "Ada K."), "updated", HERE)
    assert store.apply_batch([event(4), event(5), event(6, "Ada B.")]) == [
        Outcome.STALE,
        Outcome.DUPLICATE,
        Outcome.APPLIED,
    ]
    assert store.get("u1") == account(6, "Ada B.")


def test_an_empty_batch_does_nothing(store: SqliteAccountStore) -> None:
    assert store.apply_batch([]) == []
    assert store.processed_count() == 0


def test_a_batch_over_the_parameter_limit_is_read_in_chunks(
    store: SqliteAccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply_batch([event(1, user_id=f"u{n}") for n in range(0, 10, 2)])
    monkeypatch.setattr(store_module, "MAX_PARAMETERS", 3)
    outcomes = store.apply_batch([event(1, user_id=f"u{n}") for n in range(10)])
    assert outcomes == [Outcome.DUPLICATE, Outcome.APPLIED] * 5
    assert store.processed_count() == 10


def test_a_locked_database_fails_the_whole_batch(store: SqliteAccountStore) -> None:
    other = sqlite.connect(store.path)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError):
            store.apply_batch([event(1, user_id="u1"), event(1, user_id="u2")])
    finally:
        other.execute("ROLLBACK")
    assert store.processed_count() == 0
    assert store.apply_batch([event(1)]) == [Outcome.APPLIED]


def test_a_batch_that_fails_part_way_commits_nothing(store: SqliteAccountStore) -> None:
    good = event(1, user_id="u1")
    # Its event type cannot be bound as an SQL value: the inbox insert fails after the
    # accounts have been written, inside the same transaction.
    bad = DecodedEvent(account(1, user_id="u2"), object(), HERE)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError):
        store.apply_batch([good, bad])
    assert store.get("u1") is None
    assert store.get("u2") is None
    assert store.processed_count() == 0
    assert store.apply_batch([good]) == [Outcome.APPLIED]


# A few users and versions, so that batches repeat events and mix up versions.
events = st.builds(event, version=st.integers(1, 4), user_id=st.sampled_from(["u1", "u2"]))


@settings(max_examples=60, deadline=None)
@given(first=st.lists(events, max_size=6), second=st.lists(events, max_size=6))
def test_batches_give_what_applying_one_event_after_another_gives(
    first: list[DecodedEvent], second: list[DecodedEvent]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        batched = SqliteAccountStore(Path(folder) / "batched.sqlite3")
        one_by_one = SqliteAccountStore(Path(folder) / "one-by-one.sqlite3")
        for batch in (first, second):
            assert batched.apply_batch(batch) == [one_by_one.apply(*d) for d in batch]
        for user_id in ("u1", "u2"):
            assert batched.get(user_id) == one_by_one.get(user_id)
            assert batched.applied_events(user_id) == one_by_one.applied_events(user_id)
        assert inbox(batched) == inbox(one_by_one)
        batched.close()
        one_by_one.close()


def test_counts_each_event_applied_and_nothing_else(store: SqliteAccountStore) -> None:
    assert store.applied_events("u1") == 0
    # Two versions in one batch count twice, though the account is written once.
    store.apply_batch([event(1), event(2)])
    assert store.applied_events("u1") == 2
    store.apply(account(2), "updated", HERE)  # a duplicate
    store.apply(Account("u1", "Ada", "a@b.io", T0, 1, "other-id", T0), "updated", HERE)  # stale
    assert store.applied_events("u1") == 2
    store.apply(account(3), "updated", HERE)
    assert (store.get("u1"), store.applied_events("u1")) == (account(3), 3)


def test_an_event_skipped_leaves_the_count_below_the_version(store: SqliteAccountStore) -> None:
    # v3 before v2: v2 is then stale, and the account ends at version 3 after two applications.
    store.apply_batch([event(1), event(3), event(2)])
    assert (store.get("u1").version, store.applied_events("u1")) == (3, 2)  # type: ignore[union-attr]


def test_reads_which_event_ids_are_in_the_inbox(store: SqliteAccountStore) -> None:
    store.apply_batch([event(1), event(2)])
    assert store.processed(["u1-e1", "u1-e2", "u1-e3"]) == {"u1-e1", "u1-e2"}
    assert store.processed([]) == set()


def test_accounts_from_before_the_count_are_counted_once_per_version(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite.Database(path, store_module.MIGRATIONS[:1])
    with old.write() as connection:
        connection.execute("INSERT INTO accounts VALUES ('u1', 'Ada', 'a@b.io', 0, 4, 'u1-e4', 0)")
    old.close()
    assert SqliteAccountStore(path).applied_events("u1") == 4
