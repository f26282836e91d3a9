"""DeleteUser through a real gRPC server over a real SQLite store and the outbox relay: the
answers (AIP-135), the UserDeleted event, the policy, and canary PII gone from the database's
files once the relay has sent what was pending."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, timedelta
from pathlib import Path

import grpc
import pytest

from herald.contract.events import deleted_problem
from herald.contract.ids import event_id
from herald.kafka.records import Record, header_values
from herald.rpc.server import create_server
from herald.rpc.tokens import TokenVerifier
from herald.users.v1 import events_pb2, users_pb2, users_pb2_grpc
from tests.unit.test_tokens import AUD, ISS, Keys, call
from tests.unit.test_tokens import create as create_with_token
from tests.unit.test_user_servicer import NOW, REQUEST_ID, Ids, create, failure, start, update
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.model import NewUser
from users_svc.relay import OutboxRelay
from users_svc.servicer import user_service
from users_svc.sqlite_store import SqliteUserStore

OTHER_REQUEST_ID = "123e4567-e89b-12d3-a456-426614174001"


class Sender:
    """Acknowledges every record, and keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[Record] = []

    def send(self, records: Sequence[Record]) -> list[bool]:
        self.sent += records
        return [True] * len(records)


@pytest.fixture
def store(tmp_path: Path) -> SqliteUserStore:
    return SqliteUserStore(tmp_path / "data" / "users.sqlite3", busy_timeout_s=0.1)


@pytest.fixture
def stub(store: SqliteUserStore) -> Iterator[users_pb2_grpc.UserServiceStub]:
    users = UserApplication(
        store, EventRecordFactory("events", "/test"), clock=lambda: NOW, new_id=Ids()
    )
    yield from start(users)


def delete(
    stub: users_pb2_grpc.UserServiceStub, user_id: str, request_id: str = ""
) -> tuple[str, int]:
    request = users_pb2.DeleteUserRequest(id=user_id, request_id=request_id)
    response: users_pb2.DeleteUserResponse = stub.DeleteUser(request, timeout=5)
    return response.id, response.version


def get(stub: users_pb2_grpc.UserServiceStub, user_id: str) -> users_pb2.User:
    return stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=5).user


NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


class TestDeleteUser:
    def test_create_update_delete_then_the_user_is_not_found(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        user = create(stub, "Ada", "ada@example.com")
        renamed = update(stub, users_pb2.User(id=user.id, name="Ada L."), "name")
        assert delete(stub, user.id) == (user.id, 3)
        assert failure(lambda: get(stub, user.id))[:2] == NOT_FOUND
        assert failure(lambda: update(stub, renamed, "name"))[:2] == NOT_FOUND
        assert failure(lambda: delete(stub, user.id))[:2] == NOT_FOUND
        *_, row = store.pending(10)
        assert (row.record.topic, row.record.key) == ("events", user.id.encode())
        headers = header_values(row.record.headers)
        assert headers["ce_type"] == "herald.users.v1.UserDeleted"
        assert headers["ce_id"] == event_id(user.id, 3)
        event = events_pb2.UserDeleted.FromString(row.record.value)
        assert (event.event_id, event.user_id, event.version) == (event_id(user.id, 3), user.id, 3)
        assert event.delete_time.ToDatetime(tzinfo=UTC) == NOW
        assert deleted_problem(event.event_id, event.user_id, event.version) is None
        assert len(store.pending(10)) == 3  # created, updated, deleted: nothing for the refusals

    def test_a_retry_with_the_request_id_returns_the_first_answer(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        user = create(stub, "Ada", "ada@example.com")
        assert delete(stub, user.id, REQUEST_ID) == (user.id, 2)
        assert delete(stub, user.id, REQUEST_ID.upper()) == (user.id, 2)
        assert len(store.pending(10)) == 2
        # Another request for the same gone user is a delete of a user that no longer exists.
        assert failure(lambda: delete(stub, user.id, OTHER_REQUEST_ID))[:2] == NOT_FOUND

    def test_the_same_request_id_for_another_user_is_refused(
        self, stub: users_pb2_grpc.UserServiceStub
    ) -> None:
        ada, eve = create(stub, "Ada", "ada@example.com"), create(stub, "Eve", "eve@example.com")
        delete(stub, ada.id, REQUEST_ID)
        code, reason, _ = failure(lambda: delete(stub, eve.id, REQUEST_ID))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
        assert get(stub, eve.id) == eve

    @pytest.mark.parametrize(
        ("user_id", "request_id", "reason"),
        [
            ("", "", "INVALID_USER_ID"),
            ("nobody", "", "INVALID_USER_ID"),
            ("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", "", "INVALID_USER_ID"),
            ("00000000-0000-4000-8000-000000000001", "not-a-uuid", "INVALID_REQUEST_ID"),
        ],
    )
    def test_invalid_requests(
        self, stub: users_pb2_grpc.UserServiceStub, user_id: str, request_id: str, reason: str
    ) -> None:
        create(stub, "Ada", "ada@example.com")
        code, got, details = failure(lambda: delete(stub, user_id, request_id))
        assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
        assert "BadRequest" in details
        assert get(stub, "00000000-0000-4000-8000-000000000001").version == 1

    def test_an_unknown_user_is_not_found(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        missing = "00000000-0000-4000-8000-000000000099"
        assert failure(lambda: delete(stub, missing))[:2] == NOT_FOUND

    def test_the_email_is_free_for_a_new_user_at_once(
        self, stub: users_pb2_grpc.UserServiceStub
    ) -> None:
        ada = create(stub, "Ada", "ada@example.com")
        delete(stub, ada.id)
        again = create(stub, "Ada", "ADA@example.com")
        assert again.id != ada.id
        assert get(stub, again.id) == again

    def test_a_create_retry_after_the_delete_does_not_bring_the_user_back(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        ada = create(stub, "Ada", "ada@example.com", REQUEST_ID)
        delete(stub, ada.id)
        assert failure(lambda: create(stub, "Ada", "ada@example.com", REQUEST_ID))[:2] == NOT_FOUND
        assert store.list_users("", 10) == []
        assert len(store.pending(10)) == 2


def test_the_relay_is_woken_after_a_delete_and_not_after_its_retry(
    store: SqliteUserStore,
) -> None:
    woken: list[int] = []
    users = UserApplication(
        store,
        EventRecordFactory("events", "/test"),
        on_event=lambda: woken.append(store.pending_count()),
        clock=lambda: NOW,
        new_id=Ids(),
    )
    for stub in start(users):
        user = create(stub, "Ada", "ada@example.com")
        delete(stub, user.id, REQUEST_ID)
        delete(stub, user.id, REQUEST_ID)
    assert woken == [1, 2]


class TestPiiLeavesTheFiles:
    """Canary values that appear nowhere but in one user's data are searched for in every
    file of the database's folder (the database, its WAL, anything else) as raw bytes."""

    @pytest.fixture
    def canary(self) -> dict[str, str]:
        token = secrets.token_hex(8).upper()
        return {
            "name": f"CanaryName{token}",
            "email": f"CanaryMail{token}@example.com",
            "renamed": f"CanaryRenamed{token}",
        }

    def files(self, store: SqliteUserStore) -> bytes:
        # The WAL is copied into the database and cut to nothing first: old WAL frames keep
        # what later ones replaced until SQLite writes over them (see README, *Erasure*).
        with sqlite3.connect(store.path) as connection:
            busy, *_ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        files = [path for path in store.path.parent.iterdir() if path.is_file()]
        assert store.path in files
        return b"".join(path.read_bytes() for path in files)

    def found(self, store: SqliteUserStore, canary: dict[str, str]) -> list[str]:
        data = self.files(store)
        return sorted(
            f"{label} ({form})"
            for label, value in canary.items()
            for form, text in (("as sent", value), ("case-folded", value.casefold()))
            if text.encode() in data
        )

    def relay(self, store: SqliteUserStore, sender: Sender) -> OutboxRelay:
        return OutboxRelay(store, sender, batch_size=100, retention=timedelta(days=7))

    def test_gone_after_a_delete_once_everything_was_published(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore, canary: dict[str, str]
    ) -> None:
        user = create(stub, canary["name"], canary["email"], REQUEST_ID)
        update(stub, users_pb2.User(id=user.id, name=canary["renamed"]), "name")
        get(stub, user.id)
        sender = Sender()
        assert self.relay(store, sender).publish_once() == (True, 2)
        # The check sees them while they are there, so its silence below means something.
        found = self.found(store, canary)
        assert {f"{label} (as sent)" for label in canary} | {"email (case-folded)"} <= set(found)
        # The CreateUser request's fingerprint is derived from name and email: it goes too.
        fingerprint = NewUser(canary["name"], canary["email"], REQUEST_ID).fingerprint.encode()
        assert fingerprint in self.files(store)
        delete(stub, user.id)
        assert self.found(store, canary) == []
        assert fingerprint not in self.files(store)
        assert self.relay(store, sender).publish_once() == (True, 1)  # the UserDeleted
        assert self.found(store, canary) == []

    def test_the_store_empties_its_wal_itself_once_the_delete_is_published(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore, canary: dict[str, str]
    ) -> None:
        # No checkpoint of the test's own here: what a running users_svc leaves on disk.
        def raw() -> bytes:
            return b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())

        user = create(stub, canary["name"], canary["email"])
        update(stub, users_pb2.User(id=user.id, name=canary["renamed"]), "name")
        relay = self.relay(store, Sender())
        assert relay.publish_once() == (True, 2)
        assert canary["renamed"].encode() in raw()  # seen while it is there
        delete(stub, user.id)
        assert relay.publish_once() == (True, 1)  # the UserDeleted: then the WAL is emptied
        data = raw()
        assert [value for value in canary.values() if value.encode() in data] == []

    def test_a_row_pending_at_the_delete_is_sent_with_its_data_then_emptied(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore, canary: dict[str, str]
    ) -> None:
        user = create(stub, canary["name"], canary["email"])
        sender = Sender()
        relay = self.relay(store, sender)
        assert relay.publish_once() == (True, 1)
        update(stub, users_pb2.User(id=user.id, name=canary["renamed"]), "name")
        delete(stub, user.id)
        # The rename was still pending: consumers must get it, and before the delete.
        assert relay.publish_once() == (True, 2)
        types = [header_values(record.headers)["ce_type"] for record in sender.sent]
        assert types == [
            f"herald.users.v1.User{kind}" for kind in ("Created", "Updated", "Deleted")
        ]
        renamed = events_pb2.UserUpdated.FromString(sender.sent[1].value)
        assert (renamed.name, renamed.version) == (canary["renamed"], 2)
        assert store.pending_count() == 0
        assert self.found(store, canary) == []
        outbox = store.newest(10)
        assert [row.record.value for row in outbox[:2]] == [b"", b""]
        assert [header_values(row.record.headers) for row in outbox[:2]] == [
            {"ce_id": event_id(user.id, version)} for version in (1, 2)
        ]
        assert outbox[2].record == sender.sent[2]  # the UserDeleted itself has nothing to erase


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("secure"))


@pytest.fixture
def target(keys: Keys, tmp_path: Path) -> Iterator[str]:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(
        address="127.0.0.1:0",
        services=[user_service(users)],
        tokens=TokenVerifier(keys.jwks_file, ISS, AUD),
    )
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(0)


def test_the_policy_lets_a_user_delete_itself_and_an_admin_anyone(target: str, keys: Keys) -> None:
    alice, bob = create_with_token(target, keys, "alice"), create_with_token(target, keys, "bob")
    carol = create_with_token(target, keys, "carol")
    as_alice, admin = keys.token(alice), keys.token("root", "herald.admin")
    operator = keys.token("ops", "herald.operator")

    def deleting(user_id: str) -> users_pb2.DeleteUserRequest:
        return users_pb2.DeleteUserRequest(id=user_id)

    forbidden = ("PERMISSION_DENIED", "FORBIDDEN")
    assert call(target, None, "DeleteUser", deleting(bob)) == ("UNAUTHENTICATED", "TOKEN_MISSING")
    assert call(target, as_alice, "DeleteUser", deleting(bob)) == forbidden
    assert call(target, operator, "DeleteUser", deleting(bob)) == forbidden
    creator = keys.token("provisioner", "users.create")
    assert call(target, creator, "DeleteUser", deleting(bob)) == forbidden
    assert call(target, as_alice, "DeleteUser", deleting(alice)) == ("OK", "")
    assert call(target, admin, "DeleteUser", deleting(bob)) == ("OK", "")
    assert call(target, admin, "GetUser", users_pb2.GetUserRequest(id=carol)) == ("OK", "")
    assert call(target, admin, "GetUser", users_pb2.GetUserRequest(id=bob)) == (
        "NOT_FOUND",
        "USER_NOT_FOUND",
    )
