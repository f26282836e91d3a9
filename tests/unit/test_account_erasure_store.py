"""Applying UserDeleted: the account becomes a tombstone that keeps the version and nothing of
the user's personal data, anywhere in auth's database file; GetAccount cannot tell it from an
account never seen; and no older event, redelivered or replayed, brings the account back."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from auth_svc.accounts import DecodedEvent, Outcome, RecordPosition
from auth_svc.decoders import DECODERS, Router
from auth_svc.servicer import auth_service
from auth_svc.sqlite_store import MIGRATIONS, SqliteAccountStore
from auth_svc.status import ConsumerStatus
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.contract.events import USERS_SVC_SOURCE
from herald.storage import sqlite
from tests.erasure_support import (
    CANARY_EMAIL,
    CANARY_NAME,
    Event,
    created,
    deleted,
    files_holding,
    message,
    updated,
)
from tests.grpc_support import error_details, serving
from tests.support import uid

U1, NOBODY = uid("erased"), uid("never-seen")
ROUTER = Router(DECODERS, {USERS_SVC_SOURCE})
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def decoded(event: Event, offset: int = 0) -> DecodedEvent:
    """The event as the consumer hands it to the store: through the router's checks."""
    return ROUTER.decode(message(event, offset=offset), RecordPosition("events", 0, offset), NOW)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "auth"


@pytest.fixture
def store(folder: Path) -> Iterator[SqliteAccountStore]:
    store = SqliteAccountStore(folder / "auth.sqlite3", busy_timeout_s=0.5)
    yield store
    store.close()


def erase_u1(store: SqliteAccountStore) -> list[Outcome]:
    """Create, update and delete U1, one event per transaction, as a slow consumer would."""
    events: list[Event] = [
        created(U1),
        updated(U1, 2, name="Zebulon C. Canaryfield"),
        deleted(U1, 3),
    ]
    return [store.apply(*decoded(event, n)) for n, event in enumerate(events)]


def test_create_update_delete_leaves_a_tombstone_counted_once(store: SqliteAccountStore) -> None:
    assert erase_u1(store) == [Outcome.APPLIED] * 3
    assert store.get(U1) is None
    assert store.tombstone_version(U1) == 3
    # The delete is one application: applied_events == version still holds.
    assert store.applied_events(U1) == 3
    # Redelivered, the delete is a duplicate and counts nothing more.
    assert store.apply(*decoded(deleted(U1, 3))) is Outcome.DUPLICATE
    assert store.applied_events(U1) == 3


def test_a_live_account_and_an_unknown_one_have_no_tombstone(store: SqliteAccountStore) -> None:
    store.apply(*decoded(created(U1)))
    assert store.tombstone_version(U1) is None
    assert store.tombstone_version(NOBODY) is None


def others(first: int, count: int) -> list[DecodedEvent]:
    """Other users' creations: rows that share the erased account's pages."""
    return [
        decoded(created(uid(f"other-{n}"), f"Other {n}", f"o{n}@example.com"), 100 + n)
        for n in range(first, first + count)
    ]


def test_no_byte_of_the_database_holds_the_erased_name_or_email(
    store: SqliteAccountStore, folder: Path
) -> None:
    store.apply_batch(others(0, 20))
    erase_u1(store)
    store.apply_batch(others(20, 20))
    # Every file the database keeps, as the store left them: no checkpoint by the test.
    assert files_holding(folder, CANARY_NAME, CANARY_EMAIL, "Canaryfield") == []
    with sqlite3.connect(store.path) as connection:
        assert connection.execute(
            "SELECT name, email FROM accounts WHERE user_id = ?", (U1,)
        ).fetchall() == [("", "")]
        rows = connection.execute("SELECT * FROM processed_events").fetchall()
    assert "Canaryfield" not in repr(rows)
    store.close()
    assert files_holding(folder, CANARY_NAME, CANARY_EMAIL, "Canaryfield") == []


def test_the_canary_is_found_while_the_account_lives(
    store: SqliteAccountStore, folder: Path
) -> None:
    # The check above can see the data: before the delete, it is there.
    store.apply(*decoded(created(U1)))
    assert files_holding(folder, CANARY_NAME, CANARY_EMAIL) != []


def test_created_and_deleted_in_one_batch_never_write_the_name(
    store: SqliteAccountStore, folder: Path
) -> None:
    outcomes = store.apply_batch([decoded(created(U1)), decoded(deleted(U1, 2), 1)])
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 2, 2)
    assert files_holding(folder, CANARY_NAME, CANARY_EMAIL) == []


@pytest.mark.parametrize("prune", [False, True], ids=["inbox kept", "inbox pruned"])
def test_older_events_redelivered_after_the_delete_leave_it_deleted(
    store: SqliteAccountStore, folder: Path, prune: bool
) -> None:
    erase_u1(store)
    if prune:  # the inbox no longer knows them: only the tombstone's version stops them
        store.prune_inbox(datetime.now(UTC) + timedelta(days=1))
    older = [decoded(created(U1), 7), decoded(updated(U1, 2), 8)]
    expected = Outcome.STALE if prune else Outcome.DUPLICATE
    assert store.apply_batch(older) == [expected, expected]
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 3, 3)
    assert files_holding(folder, CANARY_NAME, CANARY_EMAIL) == []


def test_a_delete_of_an_account_never_seen_makes_a_tombstone(store: SqliteAccountStore) -> None:
    assert store.apply(*decoded(deleted(U1, 4))) is Outcome.APPLIED
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 4, 1)
    # Its creation, arriving late (or replayed from the DLQ), is stale.
    assert store.apply(*decoded(created(U1), 1)) is Outcome.STALE
    assert store.apply(*decoded(updated(U1, 3), 2)) is Outcome.STALE
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 4, 1)


def test_an_event_past_the_tombstone_does_not_resurrect_the_account(
    store: SqliteAccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    erase_u1(store)
    caplog.set_level(logging.WARNING)
    # users_svc never publishes past a delete: these are no real change, and are refused.
    outcomes = store.apply_batch([decoded(updated(U1, 4), 5), decoded(deleted(U1, 5), 6)])
    assert outcomes == [Outcome.STALE] * 2
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 3, 3)
    assert "version 4 is past the tombstone's 3" in caplog.text
    assert U1 in caplog.text
    assert "Canaryfield" not in caplog.text  # ids only


def test_an_update_after_a_delete_in_the_same_batch_is_stale(store: SqliteAccountStore) -> None:
    events = [decoded(created(U1)), decoded(deleted(U1, 2), 1), decoded(updated(U1, 3), 2)]
    assert store.apply_batch(events) == [Outcome.APPLIED, Outcome.APPLIED, Outcome.STALE]
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 2, 2)


def test_accounts_from_before_migration_3_are_live(folder: Path) -> None:
    path = folder / "old.sqlite3"
    old = sqlite.Database(path, MIGRATIONS[:2])
    with old.write() as connection:
        connection.execute(
            "INSERT INTO accounts VALUES ('u1', 'Ada', 'a@b.io', 0, 4, 'u1-e4', 0, 4)"
        )
    old.close()
    store = SqliteAccountStore(path)
    try:
        account = store.get("u1")
        assert account is not None
        assert (account.name, account.deleted, store.tombstone_version("u1")) == (
            "Ada",
            False,
            None,
        )
    finally:
        store.close()


def test_get_account_of_an_erased_user_is_not_found_like_one_never_seen(
    store: SqliteAccountStore,
) -> None:
    erase_u1(store)
    answers = []
    with serving(auth_service(store, lambda: ConsumerStatus("auth-svc"))) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for user_id in (U1, NOBODY):
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetAccount(auth_pb2.GetAccountRequest(user_id=user_id), timeout=5)
            info = error_details(caught.value)["ErrorInfo"]
            assert isinstance(info, error_details_pb2.ErrorInfo)
            details = (caught.value.details() or "").replace(user_id, "<id>")
            answers.append((caught.value.code(), info.reason, details))
    assert answers[0] == answers[1]
    assert answers[0][:2] == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
