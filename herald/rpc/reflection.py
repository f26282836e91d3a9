"""Server reflection that resolves every symbol a client can name and serves the .proto comments,
so `grpcurl describe` works on methods and fields too and documents the API.

The answers come from a `SymbolIndex` (see reflection_index.py). Only the v1alpha service is
served: grpcio-reflection 1.85.1 ships no `grpc.reflection.v1` protos, and grpcurl falls back
to v1alpha when v1 is unimplemented.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
import grpc.aio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from herald.rpc.reflection_index import SymbolIndex, documented_index

Request = reflection_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse

SERVICE_NAME = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name

# An error message quotes at most this much of a name, so a huge name does not come back.
ECHOED_CHARS = 64
# A request bigger than this is echoed (as `original_request`) with its names cut to
# ECHOED_CHARS: a 1 MB name sent back whole would make the answer as big, past the server's
# send limit, which would end the stream instead of answering it. No real name is this long.
ECHOED_REQUEST_BYTES = 1024


def _quote(name: str) -> str:
    # repr, so control characters in a hostile name reach logs and terminals escaped.
    return repr(name[:ECHOED_CHARS]) + ("…" if len(name) > ECHOED_CHARS else "")


def _error(code: grpc.StatusCode, message: str) -> Response:
    number: int = code.value[0]
    return Response(
        error_response=reflection_pb2.ErrorResponse(error_code=number, error_message=message)
    )


def _not_found(asked: str) -> Response:
    return _error(grpc.StatusCode.NOT_FOUND, f"not found: {asked}")


def _echo(request: Request) -> Request:
    """The request to put back in the answer: itself, unless it is too big to send back."""
    if request.ByteSize() <= ECHOED_REQUEST_BYTES:
        return request
    short = Request(host=request.host[:ECHOED_CHARS])
    kind = request.WhichOneof("message_request")
    if kind == "file_containing_extension":
        asked = request.file_containing_extension
        short.file_containing_extension.containing_type = asked.containing_type[:ECHOED_CHARS]
        short.file_containing_extension.extension_number = asked.extension_number
    elif kind is not None:
        setattr(short, kind, getattr(request, kind)[:ECHOED_CHARS])
    return short


class ReflectionSession:
    """The answers on one stream. It remembers which files the stream has been sent, so a
    dependency goes out once per stream, as the protocol allows; that set is bounded by the
    number of files in the index, however many requests the stream makes."""

    def __init__(self, index: SymbolIndex, service_names: Sequence[str]) -> None:
        self._index = index
        self._service_names = service_names
        self._sent: set[str] = set()

    def answer(self, request: Request) -> Response:
        response = self._respond(request)
        response.original_request.CopyFrom(_echo(request))
        return response

    def _respond(self, request: Request) -> Response:
        index = self._index
        kind = request.WhichOneof("message_request")
        if kind == "file_by_filename":
            name = request.file_by_filename
            return self._files(name if name in index.files else None, f"file {_quote(name)}")
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol
            return self._files(index.symbols.get(symbol), f"symbol {_quote(symbol)}")
        if kind == "file_containing_extension":
            asked = request.file_containing_extension
            file_name = index.extensions.get((asked.containing_type, asked.extension_number))
            extension = f"extension {asked.extension_number} of {_quote(asked.containing_type)}"
            return self._files(file_name, extension)
        if kind == "all_extension_numbers_of_type":
            return self._extension_numbers(request.all_extension_numbers_of_type)
        if kind == "list_services":
            return Response(
                list_services_response=reflection_pb2.ListServiceResponse(
                    service=[reflection_pb2.ServiceResponse(name=n) for n in self._service_names]
                )
            )
        # No question set, or one from a newer protocol that this server does not know.
        return _error(grpc.StatusCode.INVALID_ARGUMENT, "the request asks no known question")

    def _extension_numbers(self, type_name: str) -> Response:
        if type_name not in self._index.messages:
            return _not_found(f"message type {_quote(type_name)}")
        return Response(
            all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                base_type_name=type_name,
                extension_number=self._index.extension_numbers.get(type_name, []),
            )
        )

    def _files(self, root: str | None, asked: str) -> Response:
        """`root` and its imports not yet sent on this stream, root first (clients take the
        first file as the answer). The root goes even if sent before: a client asking again
        wants an answer, not an empty list."""
        if root is None:
            return _not_found(asked)
        self._sent.add(root)
        names = [root]
        pending = list(self._index.dependencies[root])
        while pending:
            name = pending.pop()
            # A file already sent went out with its imports, so there is no need to look past it.
            if name not in self._sent:
                self._sent.add(name)
                names.append(name)
                pending.extend(self._index.dependencies[name])
        return Response(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=[self._index.files[n] for n in names]
            )
        )


class AsyncReflectionServicer(reflection_pb2_grpc.ServerReflectionServicer):
    """Reflection for a `grpc.aio` server. Each answer is a few dictionary look-ups on
    descriptors serialized in advance, so it runs on the event loop without blocking it; each
    read and each write awaits, so a stream of many requests leaves room for other calls, and
    a client that does not read its answers is slowed by flow control."""

    def __init__(self, index: SymbolIndex, service_names: Sequence[str]) -> None:
        self._index = index
        self._service_names = service_names

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterator[Request],
        context: grpc.aio.ServicerContext[Request, Response],
    ) -> AsyncIterator[Response]:
        session = ReflectionSession(self._index, self._service_names)
        async for request in request_iterator:
            yield session.answer(request)


def enable_documented_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    """Serve reflection on `server` for `service_names` (reflection itself is added)."""
    names = tuple(dict.fromkeys((*service_names, SERVICE_NAME)))
    servicer = AsyncReflectionServicer(documented_index(names), names)
    # The stubs leave this generated function untyped; it takes a sync or an aio server.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
