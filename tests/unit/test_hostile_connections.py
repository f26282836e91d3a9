"""Connections a hostile client makes by hand, with h2 on raw sockets.

Streams that send headers and never a message cost the server no worker and no share of its
call limit: real calls and health checks still answer at once. A client that pings without
pause is sent away.
"""

from __future__ import annotations

import socket
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
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import user_service
from users_svc.sqlite_store import SqliteUserStore

CONNECTIONS = 8
STREAMS = 200
ANSWER_WITHIN_S = 2.0


class RawConnection:
    """One HTTP/2 connection, driven frame by frame; with `stalled` streams that each sent
    HEADERS for GetUser, and no DATA."""

    def __init__(self, port: int, stalled: int = 0) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        # The preface and SETTINGS.
        self.h2.initiate_connection()
        for _ in range(stalled):
            self.h2.send_headers(
                self.h2.get_next_available_stream_id(),
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/herald.users.v1.UserService/GetUser"),
                    (":authority", f"127.0.0.1:{port}"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ],
                end_stream=False,
            )
        self.socket.sendall(self.h2.data_to_send())
        self.events: list[h2.events.Event] = []
        self.closed = False

    def read(self, for_s: float) -> None:
        """Take what the server sent for a while, acknowledging its SETTINGS and pings."""
        deadline = time.monotonic() + for_s
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(65536)
                received = self.h2.receive_data(data)
                self.events.extend(received)
                if any(isinstance(e, h2.events.ConnectionTerminated) for e in received):
                    data = b""  # GOAWAY: h2 takes no more frames
                else:
                    self.socket.sendall(self.h2.data_to_send())
            except TimeoutError:
                break
            except OSError:  # reset by the server
                data = b""
            if not data:
                self.closed = True
                break

    def ended_streams(self) -> list[object]:
        """What the server did to end a stream or the connection: nothing, if all stalled."""
        ending = (h2.events.StreamReset, h2.events.StreamEnded, h2.events.ConnectionTerminated)
        ended: list[object] = [event for event in self.events if isinstance(event, ending)]
        return [*ended, "closed"] if self.closed else ended


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
