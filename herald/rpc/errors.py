"""Typed gRPC errors: a status code plus google.rpc details a client can act on.

Every error carries one ErrorInfo whose `domain` names the service and whose `reason` is a
stable UPPER_SNAKE word, so clients branch on it rather than on the message text.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")


class FieldViolation(Protocol):
    @property
    def field(self) -> str: ...

    @property
    def description(self) -> str: ...


def abort(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    *,
    domain: str,
    reason: str,
    message: str,
    details: Sequence[Message] = (),
) -> NoReturn:
    """End the call with `code`, an ErrorInfo(domain, reason) and any further details."""
    packed = []
    for detail in (error_details_pb2.ErrorInfo(reason=reason, domain=domain), *details):
        container = any_pb2.Any()
        container.Pack(detail)
        packed.append(container)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises


def bad_request(violations: Iterable[FieldViolation]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )


def retry_info(seconds: int) -> error_details_pb2.RetryInfo:
    info = error_details_pb2.RetryInfo()
    info.retry_delay.seconds = seconds
    return info


def unexpected_errors_as_internal(
    domain: str,
) -> Callable[
    [Callable[[Servicer, Request, grpc.ServicerContext], Response]],
    Callable[[Servicer, Request, grpc.ServicerContext], Response],
]:
    """Turn an unexpected exception in an RPC into INTERNAL with an incident id.

    grpc would otherwise answer UNKNOWN with the exception's text. The log line carries
    the same id and the traceback, so an operator can find what the client saw.
    """

    def decorate(
        method: Callable[[Servicer, Request, grpc.ServicerContext], Response],
    ) -> Callable[[Servicer, Request, grpc.ServicerContext], Response]:
        @functools.wraps(method)
        def as_internal(
            self: Servicer, request: Request, context: grpc.ServicerContext
        ) -> Response:
            try:
                return method(self, request, context)
            except Exception:
                if context.code() is not None:  # type: ignore[attr-defined]  # aborted on purpose
                    raise
                incident = uuid.uuid4().hex[:12]
                logger.exception("%s failed unexpectedly (incident %s)", method.__name__, incident)
                abort(
                    context,
                    grpc.StatusCode.INTERNAL,
                    domain=domain,
                    reason="INTERNAL",
                    message=f"internal error (incident {incident})",
                )

        return as_internal

    return decorate
