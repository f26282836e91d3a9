"""The gRPC server both services run: grpc.aio on an event loop of its own, the limits, health,
reflection and a graceful stop.

A sync grpc server waits for each call's request on one of its worker threads, so a client
opening streams that send headers and never a message ties up every worker, and every other
call (health checks too) waits behind them. On grpc.aio a call waiting for its request is a
coroutine, not a thread; the handlers hand blocking work (SQLite) to threads of the store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from herald.lifecycle import name_os_thread
from herald.rpc.errors import ServiceErrors
from herald.rpc.handlers import CallGate, method_handlers
from herald.rpc.health import NOT_SERVING, SERVING, HealthService, Status
from herald.rpc.health import SERVICE_NAME as HEALTH_SERVICE
from herald.rpc.limits import ServerLimits
from herald.rpc.policy import PolicyInterceptor, Rule
from herald.rpc.reflection import enable_documented_reflection
from herald.rpc.tls import ServerTls, check_listen
from herald.rpc.tokens import TokenVerifier

logger = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")

DEFAULT_LIMITS = ServerLimits()


@dataclass(frozen=True)
class ServiceBinding(Generic[S]):
    """A servicer, the full name of the service it implements (its descriptor lists the
    methods to serve; health and reflection know the service by it), and the service's typed
    errors (a call refused by the server itself is refused in the service's domain)."""

    name: str
    servicer: S
    errors: ServiceErrors
    # Method name -> who may call it, once tokens are required (herald.rpc.policy).
    rules: Mapping[str, Rule] = field(default_factory=dict)


class GrpcServer:
    """A server on its event loop's thread. Every method may be called from any other thread:
    the composition root's, the health watch's, a consumer's."""

    def __init__(
        self, loop: _LoopThread, server: grpc.aio.Server, port: int, health: HealthService
    ) -> None:
        self._loop = loop
        self._server = server
        self.port = port
        self.health = health

    def start(self, serving: bool = True) -> None:
        """Start listening; health turns SERVING now, or later by `set_status` if not `serving`."""

        async def start() -> None:
            await self._server.start()
            if serving:
                self.health.set_all(SERVING)

        self._loop.run(start())
        logger.info("gRPC server listening on port %d", self.port)

    def set_status(self, status: Status) -> None:
        """Set the health of the server as a whole ("") and of each of its services."""
        self._loop.call(self.health.set_all, status)

    def watch(
        self, healthy: Callable[[], bool], stopping: threading.Event, interval_s: float = 2.0
    ) -> threading.Thread:
        """Re-check `healthy` every interval, on a thread of its own (it may block: a store's
        ping, say), and report SERVING or NOT_SERVING to match."""

        def loop() -> None:
            was_healthy: bool | None = None
            while not stopping.wait(interval_s):
                now_healthy = healthy()
                if now_healthy != was_healthy:
                    self.set_status(SERVING if now_healthy else NOT_SERVING)
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

        async def stop() -> None:
            # Health first, so load balancers and clients watching health stop sending here.
            self.health.enter_graceful_shutdown()
            await self._server.stop(grace_s)

        self._loop.run(stop())
        self._loop.close()
        logger.info("gRPC server stopped")


def create_server(
    *,
    address: str,
    services: Sequence[ServiceBinding[Any]],
    limits: ServerLimits = DEFAULT_LIMITS,
    tls: ServerTls | None = None,
    insecure_listen: bool = False,
    tokens: TokenVerifier | None = None,
    reflection: bool = True,
) -> GrpcServer:
    """Build a server with `services`, plus health and reflection, under `limits`.

    Health starts as NOT_SERVING, so a client that asks early is told to wait rather than
    sent to a server that cannot do its job yet. Past `limits.max_concurrent_rpcs` calls of
    the services in progress, new ones get RESOURCE_EXHAUSTED at once; health and reflection
    stay outside that count, so a full server still answers its health checks.

    With `tls`, the port speaks TLS only. Without, `address` must be loopback unless
    `insecure_listen`: else InsecureListenError, before anything is bound.
    """
    check_listen(address.rpartition(":")[0], tls, insecure_listen)
    loop = _LoopThread()
    try:
        server, port, health_service = loop.run(
            _build(address, services, limits, tls=tls, tokens=tokens, reflection=reflection)
        )
    except BaseException:
        loop.close()
        raise
    return GrpcServer(loop, server, port, health_service)


async def _build(
    address: str,
    services: Sequence[ServiceBinding[Any]],
    limits: ServerLimits,
    *,
    tls: ServerTls | None,
    tokens: TokenVerifier | None,
    reflection: bool,
) -> tuple[grpc.aio.Server, int, HealthService]:
    interceptors = []
    if tokens is not None:
        rules = {f"/{s.name}/{method}": rule for s in services for method, rule in s.rules.items()}
        errors = {s.name: s.errors for s in services}
        interceptors.append(PolicyInterceptor(tokens, rules, errors))
    # Built on the loop it will run on: grpc.aio binds a server to the running loop.
    server = grpc.aio.server(options=limits.options(), interceptors=interceptors)
    # One gate for all the services: the limit is the server's.
    gate = CallGate(limits.max_concurrent_rpcs)
    for service in services:
        handlers = method_handlers(service.name, service.servicer, service.errors, gate)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.name, handlers),)
        )
        server.add_registered_method_handlers(service.name, handlers)
    service_names = [service.name for service in services]
    health_service = HealthService(["", *service_names, HEALTH_SERVICE])
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    if reflection:
        enable_documented_reflection((*service_names, HEALTH_SERVICE), server)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, tls.credentials())
    if port == 0:
        raise OSError(f"could not bind gRPC server to {address}")
    return server, port, health_service


class _LoopThread:
    """An asyncio event loop running on a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="grpc-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def call(self, function: Callable[..., object], *args: object) -> None:
        """Have the loop call `function` soon; nothing, once the loop is closed."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(function, *args)

    def close(self) -> None:
        """Stop the loop, finishing what is left on it, and wait for its thread."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()

    def _run(self) -> None:
        name_os_thread()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # As asyncio.run ends a loop: cancel what is left, then close.
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
