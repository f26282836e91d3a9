"""UserService through a real gRPC server on a free port, with a fake publisher behind it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2

from herald.cloudevents import header_values
from herald.users.v1 import events_pb2, users_pb2, users_pb2_grpc
from tests.fakes import FakeEventPublisher
from tests.grpc_support import error_details, serving
from users_svc.repository import InMemoryUserRepository
from users_svc.servicer import UserServicer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Ids:
    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return f"id-{self.issued}"


@pytest.fixture
def publisher() -> FakeEventPublisher:
    return FakeEventPublisher()


@pytest.fixture
def users() -> InMemoryUserRepository:
    return InMemoryUserRepository()


@pytest.fixture
def stub(
    publisher: FakeEventPublisher, users: InMemoryUserRepository
) -> Iterator[users_pb2_grpc.UserServiceStub]:
    servicer = UserServicer(
        users=users,
        publisher=publisher,
        events_topic="events",
        event_source="/test",
        clock=lambda: NOW,
        new_id=Ids(),
    )
    with serving(
        lambda server: users_pb2_grpc.add_UserServiceServicer_to_server(servicer, server),
        "herald.users.v1.UserService",
    ) as channel:
        yield users_pb2_grpc.UserServiceStub(channel)


def create(stub: users_pb2_grpc.UserServiceStub, name: str, email: str) -> users_pb2.User:
    request = users_pb2.CreateUserRequest(name=name, email=email)
    response: users_pb2.CreateUserResponse = stub.CreateUser(request, timeout=5)
    return response.user


class TestCreateUser:
    def test_returns_the_stored_user(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        user = create(stub, " Ada Lovelace ", "ada@example.com")
        assert (user.id, user.name, user.email) == ("id-1", "Ada Lovelace", "ada@example.com")
        assert user.create_time.ToDatetime(tzinfo=UTC) == NOW

    def test_publishes_user_created_keyed_by_user_id(
        self, stub: users_pb2_grpc.UserServiceStub, publisher: FakeEventPublisher
    ) -> None:
        user = create(stub, "Ada", "ada@example.com")
        [record] = publisher.published
        assert (record.topic, record.key) == ("events", user.id.encode())
        event = events_pb2.UserCreated.FromString(record.value)
        assert (event.event_id, event.user_id, event.name, event.email) == (
            "id-2",
            user.id,
            "Ada",
            "ada@example.com",
        )
        assert event.create_time == user.create_time
        headers = header_values(record.headers)
        assert headers["ce_id"] == event.event_id
        assert headers["ce_type"] == "herald.users.v1.UserCreated"
        assert headers["ce_source"] == "/test"

    def test_invalid_input_is_invalid_argument_with_field_details(
        self, stub: users_pb2_grpc.UserServiceStub, publisher: FakeEventPublisher
    ) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            create(stub, "", "not-an-email")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = error_details(caught.value)
        bad_request = details["BadRequest"]
        assert isinstance(bad_request, error_details_pb2.BadRequest)
        assert {v.field for v in bad_request.field_violations} == {"name", "email"}
        info = details["ErrorInfo"]
        assert isinstance(info, error_details_pb2.ErrorInfo)
        assert info.reason == "INVALID_USER"
        assert publisher.published == []

    def test_unpublished_event_is_unavailable_and_keeps_no_user(
        self,
        stub: users_pb2_grpc.UserServiceStub,
        publisher: FakeEventPublisher,
        users: InMemoryUserRepository,
    ) -> None:
        publisher.failure = "broker down"
        with pytest.raises(grpc.RpcError) as caught:
            create(stub, "Ada", "ada@example.com")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "RetryInfo" in error_details(caught.value)
        assert users.get("id-1") is None


class TestGetUser:
    def test_returns_a_created_user(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        user = create(stub, "Ada", "ada@example.com")
        response = stub.GetUser(users_pb2.GetUserRequest(id=user.id), timeout=5)
        assert response.user == user

    def test_unknown_id_is_not_found(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetUser(users_pb2.GetUserRequest(id="nope"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    def test_empty_id_is_invalid_argument(self, stub: users_pb2_grpc.UserServiceStub) -> None:
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetUser(users_pb2.GetUserRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
