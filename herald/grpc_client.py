"""Client-side helpers: asking a server's standard health service, and waiting for SERVING."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_status(target: str, service: str = "", timeout_s: float = 1.0) -> int | None:
    """The server's answer to Health/Check, or None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        # A plain unary call: the typing stubs of HealthStub do not declare its methods.
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return None
        return int(reply.status)


def wait_until_serving(target: str, timeout_s: float = 30.0, service: str = "") -> float:
    """Poll the standard health service until it answers SERVING; return the seconds waited."""
    began = time.monotonic()
    while health_status(target, service) != SERVING:
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"{target} did not report SERVING within {timeout_s:g} s")
        time.sleep(0.05)
    return time.monotonic() - began
