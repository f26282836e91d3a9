"""AuthService through a real gRPC server on a free port, over an in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from auth_svc.accounts import Account, InMemoryAccountStore
from auth_svc.servicer import AuthServicer
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.grpc_support import serving


@pytest.fixture
def store() -> InMemoryAccountStore:
    return InMemoryAccountStore()


@pytest.fixture
def stub(store: InMemoryAccountStore) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    servicer = AuthServicer(store)
    with serving(
        lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server),
        "herald.auth.v1.AuthService",
    ) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


def test_returns_the_account(
    stub: auth_pb2_grpc.AuthServiceStub, store: InMemoryAccountStore
) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    store.put_if_newer(Account("u1", "Ada", "ada@example.com", created, 1, "e1", created))
    account = stub.GetAccount(auth_pb2.GetAccountRequest(user_id="u1"), timeout=5).account
    assert (account.user_id, account.name, account.email, account.last_event_id) == (
        "u1",
        "Ada",
        "ada@example.com",
        "e1",
    )
    assert account.state == auth_pb2.ACCOUNT_STATE_ACTIVE
    assert account.create_time.ToDatetime(tzinfo=UTC) == created


def test_unknown_user_is_not_found(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAccount(auth_pb2.GetAccountRequest(user_id="nobody"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_empty_user_id_is_invalid_argument(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAccount(auth_pb2.GetAccountRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
