"""The gRPC server both services run: thread pool, health, reflection and a graceful stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from herald.rpc.reflection import enable_documented_reflection

logger = logging.getLogger(__name__)

S = TypeVar("S")

# Messages above this size are refused with RESOURCE_EXHAUSTED before they reach a servicer.
MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass
class GrpcServer:
    """A started-or-startable server, the port it bound and its health service."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: Sequence[str]

    def start(self, serving: bool = True) -> None:
        """Start listening; health turns SERVING now, or later by `set_status` if not `serving`."""
        self.server.start()
        if serving:
            self.set_status(health_pb2.HealthCheckResponse.SERVING)
        logger.info("gRPC server listening on port %d", self.port)

    def set_status(self, status: int) -> None:
        """Set the health of the server as a whole ("") and of each of its services."""
        for name in ("", *self.service_names):
            self.health.set(name, status)

    def watch(
        self, healthy: Callable[[], bool], stopping: threading.Event, interval_s: float = 2.0
    ) -> threading.Thread:
        """Re-check `healthy` every interval and report SERVING or NOT_SERVING to match."""

        def loop() -> None:
            was_healthy: bool | None = None
            while not stopping.wait(interval_s):
                now_healthy = healthy()
                if now_healthy != was_healthy:
                    self.set_status(
                        health_pb2.HealthCheckResponse.SERVING
                        if now_healthy
                        else health_pb2.HealthCheckResponse.NOT_SERVING
                    )
                    if was_healthy is not None or not now_healthy:
                        logger.warning(
                            "health is now %s", "SERVING" if now_healthy else "NOT_SERVING"
                        )
                    was_healthy = now_healthy

        thread = threading.Thread(target=loop, name="health-watch", daemon=True)
        thread.start()
        return thread

    def stop(self, grace_s: float) -> None:
        """Refuse new calls, give calls in flight `grace_s` to finish, then cancel them."""
        # Health first, so load balancers and clients watching health stop sending here.
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        logger.info("gRPC server stopped")


@dataclass(frozen=True)
class ServiceBinding(Generic[S]):
    """A servicer, the full name of the service it implements (as health and reflection know
    it), and the generated function that adds it to a server."""

    name: str
    servicer: S
    add_to_server: Callable[[S, grpc.Server], None]


def create_server(
    *,
    address: str,
    services: Sequence[ServiceBinding[Any]],
    max_workers: int = 16,
    max_concurrent_rpcs: int | None = None,
) -> GrpcServer:
    """Build a server with `services`, plus health and reflection.

    Health starts as NOT_SERVING, so a client that asks early is told to wait rather than
    sent to a server that cannot do its job yet. Past `max_concurrent_rpcs` calls in
    progress (running or queued for a worker), new ones get RESOURCE_EXHAUSTED at once.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    for service in services:
        service.add_to_server(service.servicer, server)
    service_names = [service.name for service in services]
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_documented_reflection((*service_names, health.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC server to {address}")
    grpc_server = GrpcServer(server, port, health_servicer, service_names)
    grpc_server.set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
    return grpc_server
