"""Client-side helpers: waiting for a server's health to say SERVING."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2


def wait_until_serving(target: str, timeout_s: float = 30.0, service: str = "") -> float:
    """Poll the standard health service until it answers SERVING; return the seconds waited."""
    began = time.monotonic()
    deadline = began + timeout_s
    with grpc.insecure_channel(target) as channel:
        # A plain unary call: the typing stubs of HealthStub do not declare its methods.
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        while True:
            try:
                reply = check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - began
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} did not report SERVING within {timeout_s:g} s")
            time.sleep(0.05)
