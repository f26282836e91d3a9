"""The shared server bootstrap: health follows a check, and a graceful stop turns it off."""

from __future__ import annotations

import threading

from grpc_health.v1 import health_pb2

from herald.rpc.client import health_status
from herald.rpc.server import ServiceBinding, create_server
from tests.support import eventually


def test_health_follows_the_watched_check_for_the_server_and_each_service() -> None:
    nothing = ServiceBinding("x.v1.S", None, lambda _servicer, _server: None)
    server = create_server(address="127.0.0.1:0", services=[nothing])
    target = f"127.0.0.1:{server.port}"
    server.start(serving=False)
    assert health_status(target) == health_pb2.HealthCheckResponse.NOT_SERVING
    healthy = threading.Event()
    healthy.set()
    stopping = threading.Event()
    server.watch(healthy.is_set, stopping, interval_s=0.01)
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        eventually(lambda: health_status(target) == serving or None, timeout_s=5)
        assert health_status(target, "x.v1.S") == serving
        healthy.clear()
        eventually(lambda: health_status(target, "x.v1.S") == not_serving or None, timeout_s=5)
        healthy.set()
        eventually(lambda: health_status(target) == serving or None, timeout_s=5)
    finally:
        stopping.set()
        server.stop(0)
