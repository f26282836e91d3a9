"""Herald's health service over a real server: Check and Watch for known and unknown names,
watches ended by a graceful stop, and nothing a Watch leaves behind once its stream is over."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2

from herald.rpc.health import HealthService
from herald.rpc.server import GrpcServer, create_server
from tests.support import eventually
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import SERVICE_NAME, user_service
from users_svc.sqlite_store import SqliteUserStore

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GrpcServer]:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(address="127.0.0.1:0", services=[user_service(users)])
    server.start()
    yield server
    server.stop(0)


@pytest.fixture
def channel(server: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


def check(channel: grpc.Channel, service: str) -> int:
    call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    return int(call(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


class Updates(Protocol):
    """A Watch stream as the sync client gives it: iterate it for the statuses, cancel it
    to leave."""

    def __iter__(self) -> Iterator[health_pb2.HealthCheckResponse]: ...

    def __next__(self) -> health_pb2.HealthCheckResponse: ...

    def cancel(self) -> bool: ...


def watch(channel: grpc.Channel, service: str, timeout_s: float = 5) -> Updates:
    call = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    return call(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)


def test_check_knows_the_server_its_services_and_health_itself(channel: grpc.Channel) -> None:
    for name in ("", SERVICE_NAME, "grpc.health.v1.Health"):
        assert check(channel, name) == SERVING


def test_check_of_a_name_not_served_is_not_found_without_repeating_it(
    channel: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        check(channel, "no.such.Service" + "x" * 10_000)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "xxxx" not in (caught.value.details() or "")


def test_watch_of_an_unknown_name_says_service_unknown_and_stays_open(
    channel: grpc.Channel,
) -> None:
    stream = watch(channel, "no.such.Service", timeout_s=1)
    assert next(stream).status == SERVICE_UNKNOWN
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    # Nothing more to say, so the stream was still open when the deadline ended it.
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_watched_name_that_becomes_known_is_streamed_from_then_on() -> None:
    async def scenario() -> list[int]:
        health = HealthService([""])
        request = health_pb2.HealthCheckRequest(service="later.v1.S")
        updates = health.Watch(request, None)  # type: ignore[arg-type]  # it reads no context
        seen = [(await anext(updates)).status]
        health.set("later.v1.S", SERVING)
        seen.append((await anext(updates)).status)
        await updates.aclose()
        assert health.watching == 0
        return seen

    assert asyncio.run(scenario()) == [SERVICE_UNKNOWN, SERVING]


def test_watch_streams_the_status_then_each_change_set_from_another_thread(
    server: GrpcServer, channel: grpc.Channel
) -> None:
    stream = watch(channel, SERVICE_NAME)
    assert next(stream).status == SERVING
    server.set_status(NOT_SERVING)
    assert next(stream).status == NOT_SERVING
    server.set_status(NOT_SERVING)  # no change, nothing sent
    server.set_status(SERVING)
    assert next(stream).status == SERVING
    stream.cancel()


def test_a_graceful_stop_turns_everything_not_serving_and_ends_the_watches(
    tmp_path: Path,
) -> None:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(address="127.0.0.1:0", services=[user_service(users)])
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        streams = [watch(channel, name) for name in ("", SERVICE_NAME)]
        for stream in streams:
            assert next(stream).status == SERVING
        stopper = threading.Thread(target=server.stop, args=(10,))
        stopper.start()
        # Each watch hears NOT_SERVING and then ends cleanly, long before the grace is over.
        for stream in streams:
            assert [update.status for update in stream] == [NOT_SERVING]
        stopper.join(timeout=5)
        assert not stopper.is_alive()
    assert server.health.watching == 0


def test_watches_of_unknown_names_leave_nothing_behind(
    server: GrpcServer, channel: grpc.Channel
) -> None:
    # 1,000 names of 32 KiB: were the server to keep an entry per name watched (grpc_health's
    # servicers do), it would hold 32 MiB more once the streams are gone.
    filler = "x" * (32 * 1024)

    def watch_and_leave(n: int) -> None:
        stream = watch(channel, f"unknown.{n:06d}.{filler}")
        assert next(stream).status == SERVICE_UNKNOWN
        stream.cancel()

    process = psutil.Process()
    for n in range(100):  # warm up: channel, arenas, the server's first allocations
        watch_and_leave(n)
    gc.collect()
    before = process.memory_info().rss
    for n in range(100, 1_100):
        watch_and_leave(n)
    eventually(lambda: server.health.watching == 0 or None, timeout_s=10)
    gc.collect()
    grown = process.memory_info().rss - before
    assert grown < 20 * MIB, f"RSS grew by {grown / MIB:.1f} MiB"
