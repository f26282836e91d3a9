"""Both services refuse calls past their limit with RESOURCE_EXHAUSTED (TOO_MANY_CALLS, with
RetryInfo), still answer health checks while full, and take calls again once there is room.

Calls are held in progress by an application or store that waits for the test's word."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2

from auth_svc.accounts import Account
from auth_svc.servicer import auth_service
from auth_svc.settings import Settings as AuthSettings
from auth_svc.sqlite_store import SqliteAccountStore
from auth_svc.status import ConsumerStatus
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.rpc.limits import ServerLimits
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.grpc_support import error_details, serving
from tests.support import eventually
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.model import User
from users_svc.servicer import user_service
from users_svc.settings import Settings as UserSettings
from users_svc.sqlite_store import SqliteUserStore

LIMIT = 3
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
NOBODY = "01900000-0000-7000-8000-000000000099"


class Hold:
    """Calls that enter wait here until `release`; `waiting` counts them."""

    def __init__(self) -> None:
        self.waiting = 0
        self.released = threading.Event()

    async def wait(self) -> None:
        self.waiting += 1
        # A thread waits, not the loop: the server goes on taking (and refusing) calls.
        await asyncio.to_thread(self.released.wait, 10)


class HeldUsers(UserApplication):
    def __init__(self, store: SqliteUserStore, hold: Hold) -> None:
        super().__init__(store, EventRecordFactory("e", "/t"))
        self.hold = hold

    async def get(self, user_id: str) -> User:
        await self.hold.wait()
        return await super().get(user_id)


class HeldAccounts(SqliteAccountStore):
    def __init__(self, path: Path, hold: Hold) -> None:
        super().__init__(path)
        self.hold = hold

    async def get_async(self, user_id: str) -> Account | None:
        await self.hold.wait()
        return await super().get_async(user_id)


def refused_past_the_limit_then_recovered(
    channel: grpc.Channel,
    hold: Hold,
    call: Callable[[float], grpc.Future[Any]],
    domain: str,
    service: str,
) -> None:
    """Hold LIMIT calls; the next is refused, health still answers; release; calls work."""
    held = [call(10) for _ in range(LIMIT)]
    eventually(lambda: hold.waiting == LIMIT or None, timeout_s=5)
    with pytest.raises(grpc.RpcError) as caught:
        call(5).result()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(caught.value)
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.domain, info.reason) == (domain, "TOO_MANY_CALLS")
    assert isinstance(details["RetryInfo"], error_details_pb2.RetryInfo)
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    for name in ("", service):
        reply = check(health_pb2.HealthCheckRequest(service=name), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    hold.released.set()
    for future in held:
        with pytest.raises(grpc.RpcError) as caught:
            future.result()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # answered, not refused
    # Room again: as many calls as the limit at once all get through.
    for future in [call(5) for _ in range(LIMIT)]:
        with pytest.raises(grpc.RpcError) as caught:
            future.result()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_users_refuses_calls_past_its_limit_and_recovers(tmp_path: Path) -> None:
    hold = Hold()
    users = HeldUsers(SqliteUserStore(tmp_path / "u.sqlite3"), hold)
    limits = ServerLimits(max_concurrent_rpcs=LIMIT)
    with serving(user_service(users), limits=limits) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        refused_past_the_limit_then_recovered(
            channel,
            hold,
            lambda timeout: stub.GetUser.future(
                users_pb2.GetUserRequest(id=NOBODY), timeout=timeout
            ),
            "users.herald",
            "herald.users.v1.UserService",
        )


def test_auth_refuses_calls_past_its_limit_and_recovers(tmp_path: Path) -> None:
    hold = Hold()
    store = HeldAccounts(tmp_path / "a.sqlite3", hold)
    limits = ServerLimits(max_concurrent_rpcs=LIMIT)
    with serving(auth_service(store, lambda: ConsumerStatus("g")), limits=limits) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        refused_past_the_limit_then_recovered(
            channel,
            hold,
            lambda timeout: stub.GetAccount.future(
                auth_pb2.GetAccountRequest(user_id=NOBODY), timeout=timeout
            ),
            "auth.herald",
            "herald.auth.v1.AuthService",
        )


def test_calls_refused_for_a_bad_request_do_not_take_a_place(tmp_path: Path) -> None:
    # An invalid id is answered before the store is reached: the gate's count goes back down.
    hold = Hold()
    users = HeldUsers(SqliteUserStore(tmp_path / "u.sqlite3"), hold)
    with serving(user_service(users), limits=ServerLimits(max_concurrent_rpcs=1)) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetUser(users_pb2.GetUserRequest(id="nope"), timeout=5)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        hold.released.set()
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetUser(users_pb2.GetUserRequest(id=NOBODY), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_both_services_read_every_limit_from_their_own_variables() -> None:
    names = [each.name for each in fields(ServerLimits)]
    env = {f"USERS_{name.upper()}": "7" for name in names}
    env |= {f"AUTH_{name.upper()}": "9" for name in names}
    assert UserSettings.from_env(env).server_limits() == ServerLimits(**dict.fromkeys(names, 7))
    assert AuthSettings.from_env(env).server_limits() == ServerLimits(**dict.fromkeys(names, 9))
    assert UserSettings.from_env({}).server_limits() == ServerLimits()
    assert AuthSettings.from_env({}).server_limits().max_concurrent_rpcs == 128


def test_the_limits_become_the_server_options() -> None:
    options = dict(ServerLimits(max_streams_per_connection=5, keepalive_time_s=1.5).options())
    assert options["grpc.max_concurrent_streams"] == 5
    assert options["grpc.keepalive_time_ms"] == 1500
    assert options["grpc.max_receive_message_length"] == 1024 * 1024
    assert options["grpc.max_send_message_length"] == 1024 * 1024
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"]
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 10_000


def test_metadata_over_the_limit_is_refused(tmp_path: Path) -> None:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    limits = ServerLimits(max_metadata_bytes=4096)
    with serving(user_service(users), limits=limits) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        request = users_pb2.GetUserRequest(id=NOBODY)
        for size, code in ((3000, grpc.StatusCode.NOT_FOUND), (5000, RESOURCE_EXHAUSTED)):
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetUser(request, metadata=(("x-filler", "a" * size),), timeout=5)
            assert caught.value.code() == code
