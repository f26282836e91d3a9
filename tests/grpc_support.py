"""Running servicers on a real in-process gRPC server, and reading typed error details.

The server is Herald's own (grpc.aio, on its event loop's thread); the tests call it with
sync grpc clients from the test's thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from herald.rpc.limits import ServerLimits
from herald.rpc.server import DEFAULT_LIMITS, ServiceBinding, create_server


@contextmanager
def serving(
    service: ServiceBinding[Any], limits: ServerLimits = DEFAULT_LIMITS
) -> Iterator[grpc.Channel]:
    """Start the real server stack on a free port and yield a channel to it."""
    server = create_server(address="127.0.0.1:0", services=[service], limits=limits)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        server.stop(0)


def error_details(error: grpc.RpcError) -> dict[str, object]:
    """The google.rpc details of a failed call, by type name."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status"
    details: dict[str, object] = {}
    for packed in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
        ):
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                details[kind.DESCRIPTOR.name] = detail
    return details
