"""Who may call what: every service method needs a verified token whose caller the method's
rule allows. Health and reflection stay open (load balancers and grpcurl need them).

The rules read the request, since "only the user itself" means comparing the token's subject
with the id the request names; so they run once the request has arrived, wrapped around each
method's handler by a server interceptor. A method without a rule is refused: a method added
to a .proto is closed until someone decides who may call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from herald.rpc.errors import Context, ServiceErrors
from herald.rpc.tokens import Caller, TokenError, TokenVerifier

ADMIN = "herald.admin"
OPERATOR = "herald.operator"
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class Rule:
    """A caller is allowed when it has one of `scopes`, or when `subject_of` the request is
    the caller's own subject."""

    scopes: frozenset[str]
    subject_of: Callable[[Any], str] | None = None

    def allows(self, caller: Caller, request: Any) -> bool:
        if caller.scopes & self.scopes:
            return True
        return self.subject_of is not None and self.subject_of(request) == caller.subject


def scopes(*names: str) -> frozenset[str]:
    return frozenset(names)


class PolicyInterceptor(grpc.aio.ServerInterceptor):
    """Verifies the `authorization` token of each call to a service method and applies the
    method's rule, answering in the service's own error domain."""

    def __init__(
        self,
        verifier: TokenVerifier,
        rules: Mapping[str, Rule],
        errors: Mapping[str, ServiceErrors],
    ) -> None:
        self._verifier = verifier
        self._rules = rules  # "/package.Service/Method" -> rule
        self._errors = errors  # "package.Service" -> its errors

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        errors = self._errors.get(method.split("/")[1], ServiceErrors("herald", store="data"))
        inner = handler.unary_unary
        if inner is None:  # Herald serves unary methods only; a streaming one stays closed
            return grpc.unary_stream_rpc_method_handler(_closed(errors))
        rule = self._rules.get(method)
        verifier = self._verifier

        async def guarded(request: Any, context: Context) -> Any:
            try:
                caller = verifier.verify(_authorization(context))
            except TokenError as error:
                await errors.end(context, unauthenticated(errors, error.reason))
            if rule is None or not rule.allows(caller, request):
                await errors.end(context, forbidden(errors))
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def unauthenticated(errors: ServiceErrors, reason: str) -> Any:
    # No hint of what exactly failed: a forger learns nothing from the answer.
    return errors.error(
        grpc.StatusCode.UNAUTHENTICATED, reason=reason, message="a valid bearer token is required"
    )


def forbidden(errors: ServiceErrors) -> Any:
    return errors.error(
        grpc.StatusCode.PERMISSION_DENIED, reason="FORBIDDEN", message="not allowed for this caller"
    )


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


def _closed(errors: ServiceErrors) -> Callable[[Any, Context], Any]:
    async def closed(request: Any, context: Context) -> Any:
        await errors.end(context, forbidden(errors))
        yield  # pragma: no cover - a generator, as a streaming handler must be

    return closed
