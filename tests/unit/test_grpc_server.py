"""The shared server bootstrap: health follows a check, and a graceful stop turns it off."""

from __future__ import annotations

import threading

import grpc
from grpc_health.v1 import health_pb2

from herald.grpc_server import create_server
from tests.support import eventually


def health_of(target: str, service: str = "") -> int | None:
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError:
            return None
        return int(reply.status)


def test_health_follows_the_watched_check_for_the_server_and_each_service() -> None:
    server = create_server(address="127.0.0.1:0", service_names=["x.v1.S"], register=lambda _: None)
    target = f"127.0.0.1:{server.port}"
    server.start(serving=False)
    assert health_of(target) == health_pb2.HealthCheckResponse.NOT_SERVING
    healthy = threading.Event()
    healthy.set()
    stopping = threading.Event()
    server.watch(healthy.is_set, stopping, interval_s=0.01)
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        eventually(lambda: health_of(target) == serving or None, timeout_s=5)
        assert health_of(target, "x.v1.S") == serving
        healthy.clear()
        eventually(lambda: health_of(target, "x.v1.S") == not_serving or None, timeout_s=5)
        healthy.set()
        eventually(lambda: health_of(target) == serving or None, timeout_s=5)
    finally:
        stopping.set()
        server.stop(0)
