"""Asking a real grpc.aio server for reflection over a real channel, with the generated stub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import grpc.aio
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from herald.rpc.reflection import enable_documented_reflection

Request = reflection_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse
SERVICES = ("herald.users.v1.UserService", "herald.auth.v1.AuthService", health.SERVICE_NAME)


@asynccontextmanager
async def reflection_stub(
    add: Callable[[grpc.aio.Server], None] = lambda server: enable_documented_reflection(
        SERVICES, server
    ),
) -> AsyncIterator[Any]:
    """A grpc.aio server on a free port with reflection added by `add`, and a stub to it."""
    server = grpc.aio.server()
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            # The stubs type the generated stub for sync channels only; it takes an aio one too.
            yield reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    finally:
        await server.stop(0)


async def ask(stub: Any, requests: Iterable[Request]) -> list[Response]:
    """Every answer to `requests`, sent in order on one stream."""
    return [response async for response in stub.ServerReflectionInfo(iter(requests))]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=60))


def files_of(response: Response) -> list[descriptor_pb2.FileDescriptorProto]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    protos = response.file_descriptor_response.file_descriptor_proto
    return [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in protos]


def comments(file: descriptor_pb2.FileDescriptorProto) -> str:
    return "".join(location.leading_comments for location in file.source_code_info.location)


def symbol(name: str) -> Request:
    return Request(file_containing_symbol=name)
