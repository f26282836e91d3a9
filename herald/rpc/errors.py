"""Typed gRPC errors: a status code plus google.rpc details a client can act on.

Every error carries one ErrorInfo whose `domain` names the service and whose `reason` is a
stable UPPER_SNAKE word, so clients branch on it rather than on the message text. Each
service makes one ServiceErrors for its domain and ends its failing calls through it.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from herald.contract.ids import uuid_problem
from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Method = Callable[[Servicer, Request, grpc.ServicerContext], Response]


class FieldViolation(Protocol):
    @property
    def field(self) -> str: ...

    @property
    def description(self) -> str: ...


class ServiceErrors:
    """The errors one service answers with, all in its ErrorInfo `domain`; `store` names what
    its database holds, for the message of STORE_UNAVAILABLE."""

    def __init__(self, domain: str, store: str) -> None:
        self.domain = domain
        self.store = store

    def abort(
        self,
        context: grpc.ServicerContext,
        code: grpc.StatusCode,
        *,
        reason: str,
        message: str,
        details: Sequence[Message] = (),
    ) -> NoReturn:
        """End the call with `code`, an ErrorInfo(domain, reason) and any further details."""
        packed = []
        for detail in (error_details_pb2.ErrorInfo(reason=reason, domain=self.domain), *details):
            container = any_pb2.Any()
            container.Pack(detail)
            packed.append(container)
        status = status_pb2.Status(code=code.value[0], message=message, details=packed)
        context.abort_with_status(rpc_status.to_status(status))
        raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises

    def invalid(
        self,
        context: grpc.ServicerContext,
        *,
        reason: str,
        message: str,
        violations: Iterable[FieldViolation] = (),
    ) -> NoReturn:
        """INVALID_ARGUMENT, with a BadRequest naming each bad field when there are any."""
        listed = list(violations)
        details = [bad_request(listed)] if listed else []
        self.abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            reason=reason,
            message=message,
            details=details,
        )

    def user_id(self, context: grpc.ServicerContext, value: str, *, field: str) -> str:
        """`value`, if it is a user id (a canonical UUID); else INVALID_ARGUMENT with reason
        INVALID_USER_ID, saying what is wrong without repeating what was sent."""
        problem = uuid_problem(value) if value else "is required"
        if problem is not None:
            self.invalid(
                context,
                reason="INVALID_USER_ID",
                message=f"{field}: {problem}",
                violations=[_Violation(field, problem)],
            )
        return value

    def not_found(self, context: grpc.ServicerContext, *, reason: str, message: str) -> NoReturn:
        self.abort(context, grpc.StatusCode.NOT_FOUND, reason=reason, message=message)

    def as_status(
        self, method: Method[Servicer, Request, Response]
    ) -> Method[Servicer, Request, Response]:
        """Answer what an RPC raised and did not handle with a typed status.

        A store that cannot be used is UNAVAILABLE (STORE_UNAVAILABLE) with a RetryInfo: the
        client may try again soon. Anything else is a bug: INTERNAL with an incident id, where
        grpc would answer UNKNOWN with the exception's text. The log line carries the same id
        and the traceback, so an operator can find what the client saw.
        """

        @functools.wraps(method)
        def answered(self_: Servicer, request: Request, context: grpc.ServicerContext) -> Response:
            try:
                return method(self_, request, context)
            except StoreUnavailableError:
                self.abort(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    reason="STORE_UNAVAILABLE",
                    message=f"the {self.store} store is unavailable; retry with backoff",
                    details=[retry_info(1)],
                )
            except Exception:
                if context.code() is not None:  # type: ignore[attr-defined]  # aborted on purpose
                    raise
                incident = uuid.uuid4().hex[:12]
                logger.exception("%s failed unexpectedly (incident %s)", method.__name__, incident)
                self.abort(
                    context,
                    grpc.StatusCode.INTERNAL,
                    reason="INTERNAL",
                    message=f"internal error (incident {incident})",
                )

        return answered


class _Violation(NamedTuple):
    field: str
    description: str


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
