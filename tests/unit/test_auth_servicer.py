"""AuthService through a real gRPC server on a free port, over an in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from auth_svc.accounts import Account, RecordPosition
from auth_svc.servicer import auth_service
from auth_svc.sqlite_store import SqliteAccountStore
from auth_svc.status import ConsumerStatus, PartitionLag
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.grpc_support import error_details, serving

STATUS = ConsumerStatus(
    group_id="auth-svc",
    partitions=(PartitionLag("events", 0, 5, 8), PartitionLag("events", 1, -1, 2)),
    applied=7,
    duplicates=2,
    stale=1,
    dead_lettered=3,
    retries=4,
)

U1 = "01900000-0000-7000-8000-000000000001"
NOBODY = "01900000-0000-7000-8000-000000000099"


@pytest.fixture
def store(tmp_path: Path) -> SqliteAccountStore:
    return SqliteAccountStore(tmp_path / "auth.sqlite3")


@pytest.fixture
def stub(store: SqliteAccountStore) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    with serving(auth_service(store, lambda: STATUS)) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


def test_returns_the_account(
    stub: auth_pb2_grpc.AuthServiceStub, store: SqliteAccountStore
) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    stored = Account(U1, "Ada", "ada@example.com", created, 1, "e1", created)
    store.apply(stored, "herald.users.v1.UserCreated", RecordPosition("events", 0, 0))
    account = stub.GetAccount(auth_pb2.GetAccountRequest(user_id=U1), timeout=5).account
    assert (account.user_id, account.name, account.email, account.last_event_id) == (
        U1,
        "Ada",
        "ada@example.com",
        "e1",
    )
    assert account.state == auth_pb2.ACCOUNT_STATE_ACTIVE
    assert account.create_time.ToDatetime(tzinfo=UTC) == created


def test_unknown_user_is_not_found(stub: auth_pb2_grpc.AuthServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAccount(auth_pb2.GetAccountRequest(user_id=NOBODY), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("bad", ["", "nobody", "x" * 20_000])
def test_a_user_id_that_is_no_uuid_is_invalid_argument(
    stub: auth_pb2_grpc.AuthServiceStub, bad: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAccount(auth_pb2.GetAccountRequest(user_id=bad), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(caught.value.details() or "") < 100
    info = error_details(caught.value)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.domain, info.reason) == ("auth.herald", "INVALID_USER_ID")


def test_consumer_status_reports_partitions_lag_and_counters(
    stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    status = stub.GetConsumerStatus(auth_pb2.GetConsumerStatusRequest(), timeout=5)
    assert status.group_id == "auth-svc"
    assert [
        (p.partition, p.committed_offset, p.high_watermark, p.lag) for p in status.partitions
    ] == [
        (0, 5, 8, 3),
        (1, -1, 2, 2),
    ]
    assert (status.total_lag, status.events_applied, status.duplicates_skipped) == (5, 7, 2)
    assert (status.stale_skipped, status.dead_lettered, status.retries) == (1, 3, 4)
