"""Typed gRPC errors: a status code plus google.rpc details a client can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "herald.dev"


def abort_invalid_argument(
    context: grpc.ServicerContext, reason: str, violations: Mapping[str, str]
) -> NoReturn:
    """Abort with INVALID_ARGUMENT, a BadRequest naming each bad field and an ErrorInfo."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations.items()
        ]
    )
    message = "; ".join(f"{field}: {description}" for field, description in violations.items())
    _abort(context, code_pb2.INVALID_ARGUMENT, message, reason, bad_request)


def abort_not_found(context: grpc.ServicerContext, reason: str, message: str) -> NoReturn:
    _abort(context, code_pb2.NOT_FOUND, message, reason)


def abort_unavailable(
    context: grpc.ServicerContext, reason: str, message: str, retry_after_s: int = 1
) -> NoReturn:
    """Abort with UNAVAILABLE: the client may retry after the delay given in RetryInfo."""
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.seconds = retry_after_s
    _abort(context, code_pb2.UNAVAILABLE, message, reason, retry)


def _abort(
    context: grpc.ServicerContext,
    code: int,
    message: str,
    reason: str,
    *details: error_details_pb2.BadRequest | error_details_pb2.RetryInfo,
) -> NoReturn:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)
    packed = []
    for detail in (info, *details):
        container = any_pb2.Any()
        container.Pack(detail)
        packed.append(container)
    status = status_pb2.Status(code=code, message=message, details=packed)
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises
