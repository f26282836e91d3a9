"""Client-side helpers: asking a server's standard health service, and waiting for SERVING."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2

from herald.rpc.tls import ClientTls, channel

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_status(
    target: str, service: str = "", timeout_s: float = 1.0, tls: ClientTls | None = None
) -> int | None:
    """The server's answer to Health/Check, or None when it does not answer."""
    with channel(target, tls) as connection:
        # A plain unary call: the typing stubs of HealthStub do not declare its methods.
        check = connection.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return None
        return int(reply.status)


# Retry a connection to a server that is still starting every few milliseconds, instead of
# grpc's default backoff of a second or more.
_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 20),
]


def wait_until_serving(
    target: str, timeout_s: float = 30.0, service: str = "", tls: ClientTls | None = None
) -> float:
    """Wait until the server's health says SERVING; return the seconds waited.

    It watches the health stream (Health/Watch) rather than polling Check, so it returns as
    soon as the status changes: `make bench` times service start-up with it.
    """
    began = time.monotonic()
    deadline = began + timeout_s
    with channel(target, tls, options=_FAST_RECONNECT) as connection:
        # A plain stream call: the typing stubs of HealthStub do not declare its methods.
        watch = connection.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        while (left := deadline - time.monotonic()) > 0:
            updates = watch(
                health_pb2.HealthCheckRequest(service=service), timeout=left, wait_for_ready=True
            )
            try:
                for update in updates:
                    if update.status == SERVING:
                        updates.cancel()
                        return time.monotonic() - began
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
                # The server went away or is shutting down: watch again while time is left.
                time.sleep(0.05)
    raise TimeoutError(f"{target} did not report SERVING within {timeout_s:g} s")
