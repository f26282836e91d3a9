"""Typed gRPC errors: a status code plus google.rpc details a client can act on.

Every error carries one ErrorInfo whose `domain` names the service and whose `reason` is a
stable UPPER_SNAKE word, so clients branch on it rather than on the message text. Each
service makes one ServiceErrors for its domain; its handlers raise CallError through it, and
`ServiceErrors.as_status` ends the call with that status.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, NoReturn, Protocol, TypeVar

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
Context = grpc.aio.ServicerContext[Any, Any]
Method = Callable[[Servicer, Request, Context], Awaitable[Response]]


class FieldViolation(Protocol):
    @property
    def field(self) -> str: ...

    @property
    def description(self) -> str: ...


class CallError(Exception):
    """The typed status a call is to end with: raised anywhere in a handler, sent by
    `ServiceErrors.as_status` (or `ServiceErrors.end`)."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class ServiceErrors:
    """The errors one service answers with, all in its ErrorInfo `domain`; `store` names what
    its database holds, for the message of STORE_UNAVAILABLE."""

    def __init__(self, domain: str, store: str) -> None:
        self.domain = domain
        self.store = store

    def error(
        self,
        code: grpc.StatusCode,
        *,
        reason: str,
        message: str,
        details: Sequence[Message] = (),
    ) -> CallError:
        """A CallError with `code`, an ErrorInfo(domain, reason) and any further details."""
        packed = []
        for detail in (error_details_pb2.ErrorInfo(reason=reason, domain=self.domain), *details):
            container = any_pb2.Any()
            container.Pack(detail)
            packed.append(container)
        return CallError(status_pb2.Status(code=code.value[0], message=message, details=packed))

    def abort(
        self,
        code: grpc.StatusCode,
        *,
        reason: str,
        message: str,
        details: Sequence[Message] = (),
    ) -> NoReturn:
        """End the call with `code`, an ErrorInfo(domain, reason) and any further details."""
        raise self.error(code, reason=reason, message=message, details=details)

    def invalid(
        self, *, reason: str, message: str, violations: Iterable[FieldViolation] = ()
    ) -> NoReturn:
        """INVALID_ARGUMENT, with a BadRequest naming each bad field when there are any."""
        listed = list(violations)
        details = [bad_request(listed)] if listed else []
        self.abort(
            grpc.StatusCode.INVALID_ARGUMENT, reason=reason, message=message, details=details
        )

    def user_id(self, value: str, *, field: str) -> str:
        """`value`, if it is a user id (a canonical UUID); else INVALID_ARGUMENT with reason
        INVALID_USER_ID, saying what is wrong without repeating what was sent."""
        problem = uuid_problem(value) if value else "is required"
        if problem is not None:
            self.invalid(
                reason="INVALID_USER_ID",
                message=f"{field}: {problem}",
                violations=[_Violation(field, problem)],
            )
        return value

    def not_found(self, *, reason: str, message: str) -> NoReturn:
        self.abort(grpc.StatusCode.NOT_FOUND, reason=reason, message=message)

    def too_many_calls(self) -> CallError:
        """RESOURCE_EXHAUSTED for a call past the server's limit, with a RetryInfo."""
        return self.error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            reason="TOO_MANY_CALLS",
            message="the server has as many calls in progress as it takes; retry with backoff",
            details=[retry_info(1)],
        )

    def malformed(self, type_name: str) -> CallError:
        """INVALID_ARGUMENT for a request that is no valid `type_name` message (bad UTF-8 in a
        string field, say)."""
        return self.error(
            grpc.StatusCode.INVALID_ARGUMENT,
            reason="MALFORMED_REQUEST",
            message=f"the request is not a valid {type_name}",
        )

    @staticmethod
    async def end(context: Context, error: CallError) -> NoReturn:
        """End the call with `error`'s status: code and message, and the whole google.rpc
        Status in the `grpc-status-details-bin` trailer, where clients read the details."""
        status = rpc_status.to_status(error.status)
        await context.abort(status.code, status.details, status.trailing_metadata)

    def as_status(
        self, method: Method[Servicer, Request, Response]
    ) -> Method[Servicer, Request, Response]:
        """End an RPC that raised with a typed status.

        A CallError is sent as it is. A store that cannot be used is UNAVAILABLE
        (STORE_UNAVAILABLE) with a RetryInfo: the client may try again soon. Anything else is
        a bug: INTERNAL with an incident id, where grpc would answer UNKNOWN with the
        exception's text. The log line carries the same id and the traceback, so an operator
        can find what the client saw.
        """

        @functools.wraps(method)
        async def answered(self_: Servicer, request: Request, context: Context) -> Response:
            try:
                return await method(self_, request, context)
            except CallError as error:
                await self.end(context, error)
            except StoreUnavailableError:
                await self.end(
                    context,
                    self.error(
                        grpc.StatusCode.UNAVAILABLE,
                        reason="STORE_UNAVAILABLE",
                        message=f"the {self.store} store is unavailable; retry with backoff",
                        details=[retry_info(1)],
                    ),
                )
            except grpc.aio.AbortError:  # the handler ended the call itself
                raise
            except Exception:
                incident = uuid.uuid4().hex[:12]
                logger.exception("%s failed unexpectedly (incident %s)", method.__name__, incident)
                await self.end(
                    context,
                    self.error(
                        grpc.StatusCode.INTERNAL,
                        reason="INTERNAL",
                        message=f"internal error (incident {incident})",
                    ),
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
