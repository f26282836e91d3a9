"""Connections a hostile client makes by hand, with h2 on raw sockets.

Streams that send headers and never a message cost the server no worker and no share of its
call limit: real calls and health checks still answer at once. A client that pings without
pause is sent away.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from grpc_health.v1 import health_pb2

from herald.rpc.client import health_status
from herald.rpc.server import create_server
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.h2_support import RawConnection
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import user_service
from users_svc.sqlite_store import SqliteUserStore

CONNECTIONS = 8
STREAMS = 200
ANSWER_WITHIN_S = 2.0


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    """A users_svc server with its default limits, SERVING."""
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(address="127.0.0.1:0", services=[user_service(users)])
    server.start()
    try:
        yield server.port
    finally:
        server.stop(0)


def test_stalled_streams_leave_calls_and_health_checks_answering(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        user = (
            users_pb2_grpc.UserServiceStub(channel)
            .CreateUser(users_pb2.CreateUserRequest(name="Ada", email="ada@example.com"), timeout=5)
            .user
        )
    stalled = [RawConnection(port, stalled=STREAMS // CONNECTIONS) for _ in range(CONNECTIONS)]
    try:
        for connection in stalled:
            connection.read(for_s=0.05)
        began = time.monotonic()
        # A fresh channel, so the calls cannot ride on a connection made before the stall.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            fresh = users_pb2_grpc.UserServiceStub(channel)
            got = fresh.GetUser(users_pb2.GetUserRequest(id=user.id), timeout=ANSWER_WITHIN_S)
        assert got.user == user
        status = health_status(f"127.0.0.1:{port}", timeout_s=ANSWER_WITHIN_S)
        assert status == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - began < 2 * ANSWER_WITHIN_S
        # The stalls were real: every stream is still open, waiting for its message.
        for connection in stalled:
            connection.read(for_s=0.05)
            assert connection.ended_streams() == []
    finally:
        for connection in stalled:
            connection.socket.close()


def test_a_client_that_pings_without_pause_is_sent_away(port: int) -> None:
    connection = RawConnection(port)
    try:
        # Far sooner than min_client_ping_interval_s (10 s), and no data: each is a strike.
        for n in range(6):
            if connection.closed:
                break
            connection.h2.ping(n.to_bytes(8, "big"))
            connection.socket.sendall(connection.h2.data_to_send())
            connection.read(for_s=0.2)
    finally:
        connection.socket.close()
    [goaway] = [e for e in connection.events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway.additional_data == b"too_many_pings"
    assert connection.closed
