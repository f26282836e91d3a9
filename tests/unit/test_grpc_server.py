"""The shared server bootstrap: health follows a check, and a graceful stop turns it off."""

from __future__ import annotations

import threading
from pathlib import Path

from grpc_health.v1 import health_pb2

from herald.rpc.client import health_status
from herald.rpc.server import create_server
from tests.support import eventually
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import SERVICE_NAME, user_service
from users_svc.sqlite_store import SqliteUserStore

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_follows_the_watched_check_for_the_server_and_each_service(tmp_path: Path) -> None:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(address="127.0.0.1:0", services=[user_service(users)])
    target = f"127.0.0.1:{server.port}"
    server.start(serving=False)
    assert health_status(target) == NOT_SERVING
    healthy = threading.Event()
    healthy.set()
    stopping = threading.Event()
    server.watch(healthy.is_set, stopping, interval_s=0.01)
    try:
        eventually(lambda: health_status(target) == SERVING or None, timeout_s=5)
        assert health_status(target, SERVICE_NAME) == SERVING
        healthy.clear()
        eventually(lambda: health_status(target, SERVICE_NAME) == NOT_SERVING or None, timeout_s=5)
        healthy.set()
        eventually(lambda: health_status(target) == SERVING or None, timeout_s=5)
    finally:
        stopping.set()
        server.stop(0)
