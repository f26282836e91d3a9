"""How a service's methods are put on the server: from the service's descriptor, each request
parsed without letting a malformed one become UNKNOWN, and each call counted by the gate.

The generated `add_*Servicer_to_server` functions would register the servicer's methods as
they are; going through the descriptor instead lets every method get the same wrapping, and
a method added to a .proto gets it without anyone remembering to.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from herald.rpc.errors import Context, ServiceErrors

Handler = Callable[[Any, Context], Awaitable[Any]]


class CallGate:
    """Counts the calls in progress and refuses those past the limit.

    grpc's own `maximum_concurrent_rpcs`, and server interceptors, count a call as soon as
    its headers arrive, so streams that send headers and never a message would fill the
    limit and lock every real call out. The gate counts inside the handler, which grpc runs
    only once the request message is in: a stalled stream costs a little memory, and no share
    of the limit. Every handler runs on the server's event loop, so a plain counter does.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_progress = 0

    def admit(self, handler: Handler, errors: ServiceErrors) -> Handler:
        """`handler`, refusing with errors.too_many_calls() while the gate is full."""

        @functools.wraps(handler)
        async def admitted(request: Any, context: Context) -> Any:
            if self.in_progress >= self.limit:
                await errors.end(context, errors.too_many_calls())
            self.in_progress += 1
            try:
                return await handler(request, context)
            finally:
                self.in_progress -= 1

        return admitted


def method_handlers(
    service_name: str, servicer: object, errors: ServiceErrors, gate: CallGate
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """Method name → handler, for every method of the service `service_name` names.

    Only unary methods: a streaming request's handler starts before any message arrives,
    so the gate would count stalled streams again.
    """
    service = descriptor_pool.Default().FindServiceByName(service_name)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise ValueError(f"{method.full_name}: only unary methods are served")
        behaviour = getattr(servicer, method.name)
        if not inspect.iscoroutinefunction(behaviour):
            raise TypeError(f"{method.full_name}: a handler on grpc.aio must be async")
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _refusing_malformed(gate.admit(behaviour, errors), errors),
            request_deserializer=functools.partial(_parse, request_type),
            response_serializer=response_type.SerializeToString,
        )
    return handlers


class _Malformed:
    """What a request that could not be parsed becomes, so the handler can refuse it."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _parse(message_type: type[Message], data: bytes) -> Message | _Malformed:
    # Raising here would reach grpc.aio, which answers UNKNOWN with the exception's text.
    try:
        return message_type.FromString(data)
    except DecodeError:
        return _Malformed(message_type.DESCRIPTOR.full_name)


def _refusing_malformed(handler: Handler, errors: ServiceErrors) -> Handler:
    @functools.wraps(handler)
    async def parsed(request: Any, context: Context) -> Any:
        if isinstance(request, _Malformed):
            await errors.end(context, errors.malformed(request.type_name))
        return await handler(request, context)

    return parsed
