"""The standard health service (grpc.health.v1.Health) on the asyncio server.

grpc_health's own servicers keep an entry for every service name anyone ever watched, known
or not, for as long as the server runs: a client sending Watch calls with long made-up names
grows the server's memory without bound. Here a Watch keeps nothing beyond its own stream:
each one waits on the one event every change sets, and reads its service's status again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

# A HealthCheckResponse.ServingStatus value; the typing stubs know them as plain ints.
Status: TypeAlias = int
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthService(health_pb2_grpc.HealthServicer):
    """The status of each service name the server knows ("" is the server as a whole).

    Every method runs on the server's event loop; other threads change a status through the
    loop (GrpcServer.set_status does).
    """

    def __init__(self, names: Iterable[str], status: Status = NOT_SERVING) -> None:
        self._statuses: dict[str, Status] = dict.fromkeys(names, status)
        # Set, and replaced by a fresh one, at every change: each watch waits on the one
        # current when it last looked.
        self._changed = asyncio.Event()
        self._shutting_down = False
        self.watching = 0  # Watch streams open now (for tests and monitoring)

    def set(self, name: str, status: Status) -> None:
        """Set one service's status; a name not known before becomes known."""
        if self._shutting_down or self._statuses.get(name) == status:
            return
        self._statuses[name] = status
        self._announce()

    def set_all(self, status: Status) -> None:
        """Set the status of every known name."""
        for name in list(self._statuses):
            self.set(name, status)

    def enter_graceful_shutdown(self) -> None:
        """Everything NOT_SERVING from now on, for good; open watches say so and end."""
        self.set_all(NOT_SERVING)
        self._shutting_down = True
        self._announce()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            # The name is not repeated: it is the client's own text, of any length.
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such service")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncGenerator[health_pb2.HealthCheckResponse, None]:
        """The status now, then each change, until the client leaves or the server stops.

        An unknown name is SERVICE_UNKNOWN, and the stream stays open in case it becomes
        known, as the health protocol asks; but nothing of it is kept past the stream.
        """
        self.watching += 1
        try:
            sent: Status | None = None
            while True:
                changed = self._changed
                status = self._statuses.get(request.service, SERVICE_UNKNOWN)
                if status != sent:
                    yield health_pb2.HealthCheckResponse(status=status)
                    sent = status
                if self._shutting_down:
                    return
                await changed.wait()
        finally:
            self.watching -= 1

    def _announce(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
