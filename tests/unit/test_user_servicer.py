"""UserService through a real gRPC server on a free port, over a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2

from herald.contract.ids import event_id
from herald.kafka.records import header_values
from herald.storage import sqlite
from herald.users.v1 import events_pb2, users_pb2, users_pb2_grpc
from tests.grpc_support import error_details, serving
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import user_service
from users_svc.sqlite_store import SqliteUserStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"


def user_id(n: int) -> str:
    """The n-th id Ids issues: canonical UUIDs, as users_svc's own ids are."""
    return f"00000000-0000-4000-8000-{n:012d}"


USER_1 = user_id(1)


class Ids:
    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return user_id(self.issued)


class ExplodingUsers(UserApplication):
    async def get(self, user_id: str) -> users_pb2.User:  # type: ignore[override]
        raise RuntimeError("secret internal detail")


@pytest.fixture
def store(tmp_path: Path) -> SqliteUserStore:
    return SqliteUserStore(tmp_path / "users.sqlite3", busy_timeout_s=0.1)


def start(users: UserApplication) -> Iterator[users_pb2_grpc.UserServiceStub]:
    with serving(user_service(users)) as channel:
        yield users_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def stub(store: SqliteUserStore) -> Iterator[users_pb2_grpc.UserServiceStub]:
    users = UserApplication(
        store, EventRecordFactory("events", "/test"), clock=lambda: NOW, new_id=Ids()
    )
    yield from start(users)


def create(
    stub: users_pb2_grpc.UserServiceStub, name: str, email: str, request_id: str = ""
) -> users_pb2.User:
    request = users_pb2.CreateUserRequest(name=name, email=email, request_id=request_id)
    response: users_pb2.CreateUserResponse = stub.CreateUser(request, timeout=5)
    return response.user


def update(
    stub: users_pb2_grpc.UserServiceStub, user: users_pb2.User, *paths: str
) -> users_pb2.User:
    request = users_pb2.UpdateUserRequest(
        user=user, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
    )
    response: users_pb2.UpdateUserResponse = stub.UpdateUser(request, timeout=5)
    return response.user


def failure(call: object) -> tuple[grpc.StatusCode, str, dict[str, object]]:
    """Run a call expected to fail: (code, ErrorInfo reason, all details by type)."""
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    details = error_details(caught.value)
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.domain == "users.herald"
    return caught.value.code(), info.reason, details


class TestCreateUser:
    def test_returns_the_stored_user(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        user = create(stub, " Ada Lovelace ", "ada@example.com")
        assert (user.id, user.name, user.email) == (USER_1, "Ada Lovelace", "ada@example.com")
        assert user.version == 1
        assert user.create_time.ToDatetime(tzinfo=UTC) == NOW
        assert user.update_time == user.create_time
        assert store.get_user(user.id) is not None

    def test_records_user_created_in_the_outbox_keyed_by_user_id(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        user = create(stub, "Ada", "ada@example.com")
        [row] = store.pending(10)
        assert (row.record.topic, row.record.key) == ("events", user.id.encode())
        event = events_pb2.UserCreated.FromString(row.record.value)
        assert (event.event_id, event.user_id, event.name, event.email, event.version) == (
            event_id(user.id, 1),
            user.id,
            "Ada",
            "ada@example.com",
            1,
        )
        assert event.create_time == user.create_time
        headers = header_values(row.record.headers)
        assert headers["ce_id"] == event.event_id
        assert headers["ce_type"] == "herald.users.v1.UserCreated"
        assert headers["ce_source"] == "/test"

    def test_invalid_input_names_every_field_and_records_nothing(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        code, reason, details = failure(lambda: create(stub, "", "not-an-email", "nope"))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME")
        bad_request = details["BadRequest"]
        assert isinstance(bad_request, error_details_pb2.BadRequest)
        assert [v.field for v in bad_request.field_violations] == ["name", "email", "request_id"]
        assert store.pending(10) == []

    def test_a_retry_with_the_same_request_id_returns_the_original_and_records_nothing_new(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        first = create(stub, "Ada", "ada@example.com", REQUEST_ID)
        renamed = users_pb2.User(id=first.id, name="Ada L.")
        update(stub, renamed, "name")
        again = create(stub, " Ada", "ada@example.com ", REQUEST_ID.upper())
        assert again == first
        assert len(store.pending(10)) == 2  # the creation and the rename, nothing more

    def test_the_same_request_id_with_other_content_is_refused(
        self, stub: users_pb2_grpc.UserServiceStub
    ) -> None:
        create(stub, "Ada", "ada@example.com", REQUEST_ID)
        code, reason, _ = failure(lambda: create(stub, "Eve", "eve@example.com", REQUEST_ID))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")

    def test_a_taken_email_is_already_exists_whatever_its_case(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        create(stub, "Ada", "Ada@Example.com")
        code, reason, _ = failure(lambda: create(stub, "Other", "ada@example.COM"))
        assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")
        assert len(store.pending(10)) == 1

    def test_an_unusable_store_is_unavailable_with_retry_info(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        other = sqlite.connect(store.path)
        other.execute("BEGIN EXCLUSIVE")
        try:
            code, reason, details = failure(lambda: create(stub, "Ada", "ada@example.com"))
        finally:
            other.execute("ROLLBACK")
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
        assert "RetryInfo" in details
        assert store.pending(10) == []

    def test_an_oversized_request_is_resource_exhausted(
        self, stub: users_pb2_grpc.UserServiceStub
    ) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            create(stub, "x" * (2 * 1024 * 1024), "ada@example.com")
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class TestGetUser:
    def test_returns_a_created_user(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        user = create(stub, "Ada", "ada@example.com")
        assert stub.GetUser(users_pb2.GetUserRequest(id=user.id), timeout=5).user == user

    def test_unknown_id_is_not_found(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        request = users_pb2.GetUserRequest(id=user_id(99))
        code, reason, _ = failure(lambda: stub.GetUser(request, timeout=5))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")

    @pytest.mark.parametrize("bad", ["x", "x" * 20_000, user_id(1) + " "])
    def test_an_id_that_is_no_uuid_is_invalid_and_not_echoed(
        self, stub: users_pb2_grpc.UserServiceStub, bad: str
    ) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetUser(users_pb2.GetUserRequest(id=bad), timeout=5)
        details = error_details(caught.value)
        info, bad_request = details["ErrorInfo"], details["BadRequest"]
        assert isinstance(info, error_details_pb2.ErrorInfo)
        assert isinstance(bad_request, error_details_pb2.BadRequest)
        assert (caught.value.code(), info.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_USER_ID",
        )
        assert [v.field for v in bad_request.field_violations] == ["id"]
        message = caught.value.details() or ""
        assert message.startswith("id: must be a UUID")
        assert bad.strip() not in message

    def test_empty_id_is_invalid_argument(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        code, reason, _ = failure(lambda: stub.GetUser(users_pb2.GetUserRequest(), timeout=5))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID")

    def test_an_unexpected_error_is_internal_without_its_details(
        self, store: SqliteUserStore
    ) -> None:
        for stub in start(ExplodingUsers(store, EventRecordFactory("events", "/test"))):
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetUser(users_pb2.GetUserRequest(id=USER_1), timeout=5)
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert "secret" not in (caught.value.details() or "")
            assert "incident" in (caught.value.details() or "")


class TestNoEcho:
    """What a client sent comes back in an error message 64 characters at most."""

    LONG = 20_000

    def assert_not_echoed(self, call: object, *sent: str) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            call()  # type: ignore[operator]
        texts = [caught.value.details() or ""]
        bad_request = error_details(caught.value).get("BadRequest")
        if isinstance(bad_request, error_details_pb2.BadRequest):
            texts += [v.description for v in bad_request.field_violations]
        for text in texts:
            for value in sent:
                assert value[:65] not in text
            assert len(text) < 600

    def test_create_user(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        name, email, request_id = "N" * self.LONG, "E" * self.LONG + "@x.io", "R" * self.LONG
        self.assert_not_echoed(lambda: create(stub, name, email, request_id), name, email)

    def test_update_user_with_a_20_kb_id(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        user = users_pb2.User(id="I" * self.LONG, name="N" * self.LONG)
        code, reason, _ = failure(lambda: update(stub, user, "name"))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID")
        self.assert_not_echoed(lambda: update(stub, user, "name"), user.id, user.name)

    def test_update_user_with_long_unknown_mask_paths(
        self, stub: users_pb2_grpc.UserServiceStub
    ) -> None:
        paths = ["P" * self.LONG, "Q" * self.LONG]
        user = users_pb2.User(id=USER_1, name="Ada")
        code, reason, _ = failure(lambda: update(stub, user, *paths))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPDATE_MASK")
        self.assert_not_echoed(lambda: update(stub, user, *paths), *paths)

    def test_a_reused_request_id(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        create(stub, "Ada", "ada@example.com", REQUEST_ID)
        self.assert_not_echoed(
            lambda: create(stub, "E" * 200, "eve@example.com", REQUEST_ID), REQUEST_ID, "E" * 200
        )


class TestUpdateUser:
    def test_changes_the_masked_field_and_records_user_updated(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        user = create(stub, "Ada", "ada@example.com")
        changed = update(
            stub, users_pb2.User(id=user.id, name="Ada L.", email="ignored@x.io"), "name"
        )
        assert (changed.name, changed.email, changed.version) == ("Ada L.", "ada@example.com", 2)
        assert stub.GetUser(users_pb2.GetUserRequest(id=user.id), timeout=5).user == changed
        _, row = store.pending(10)
        assert header_values(row.record.headers)["ce_type"] == "herald.users.v1.UserUpdated"
        event = events_pb2.UserUpdated.FromString(row.record.value)
        assert (event.event_id, event.name, event.email, event.version) == (
            event_id(user.id, 2),
            "Ada L.",
            "ada@example.com",
            2,
        )
        assert list(event.changed_fields) == ["name"]
        assert event.create_time == user.create_time

    def test_an_update_that_changes_nothing_records_nothing(
        self, stub: users_pb2_grpc.UserServiceStub, store: SqliteUserStore
    ) -> None:
        user = create(stub, "Ada", "ada@example.com")
        assert update(stub, user, "name", "email") == user
        assert len(store.pending(10)) == 1

    @pytest.mark.parametrize(
        ("user", "paths", "code", "reason"),
        [
            (
                users_pb2.User(id=user_id(99), name="X"),
                ["name"],
                grpc.StatusCode.NOT_FOUND,
                "USER_NOT_FOUND",
            ),
            (
                users_pb2.User(id="nobody", name="X"),
                ["name"],
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_USER_ID",
            ),
            (
                users_pb2.User(id="0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", name="X"),
                ["name"],
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_USER_ID",
            ),
            (
                users_pb2.User(name="X"),
                ["name"],
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_USER_ID",
            ),
            (
                users_pb2.User(id=USER_1),
                ["id"],
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_UPDATE_MASK",
            ),
            (
                users_pb2.User(id=USER_1, email="bad"),
                ["email"],
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_EMAIL",
            ),
            (
                users_pb2.User(id=USER_1, email="EVE@example.com"),
                ["email"],
                grpc.StatusCode.ALREADY_EXISTS,
                "EMAIL_TAKEN",
            ),
        ],
    )
    def test_errors(
        self,
        stub: users_pb2_grpc.UserServiceStub,
        user: users_pb2.User,
        paths: list[str],
        code: grpc.StatusCode,
        reason: str,
    ) -> None:
        create(stub, "Ada", "ada@example.com")
        create(stub, "Eve", "eve@example.com")
        assert failure(lambda: update(stub, user, *paths))[:2] == (code, reason)


def test_the_relay_is_woken_after_each_commit_that_recorded_an_event(
    store: SqliteUserStore,
) -> None:
    # What another thread's connection sees when the relay is woken: committed events only.
    seen_when_woken: list[int] = []
    users = UserApplication(
        store,
        EventRecordFactory("events", "/test"),
        on_event=lambda: seen_when_woken.append(store.pending_count()),
        clock=lambda: NOW,
        new_id=Ids(),
    )
    for stub in start(users):
        user = create(stub, "Ada", "ada@example.com", REQUEST_ID)
        create(stub, "Ada", "ada@example.com", REQUEST_ID)  # a retry records nothing
        update(stub, user, "name")  # nor does a change to the same name
        update(stub, users_pb2.User(id=user.id, name="Ada L."), "name")
    assert seen_when_woken == [1, 2]
