"""Server reflection that serves the .proto comments too, so `grpcurl describe` documents the API.

Python's generated modules embed descriptors without comments (protoc strips source info
for them). `make protos` also writes `herald/descriptors.binpb`, a descriptor set that keeps
them; this pool answers reflection from it and falls back to the default pool for anything
else (grpc's own health and reflection services).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection

DESCRIPTOR_SET = "descriptors.binpb"


@cache
def documented_files() -> Mapping[str, descriptor_pb2.FileDescriptorProto]:
    """File name → its descriptor with comments, from the committed descriptor set."""
    raw = resources.files("herald").joinpath(DESCRIPTOR_SET).read_bytes()
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(raw)
    return {file.name: file for file in descriptor_set.file}


class _DocumentedFile:
    """A FileDescriptor stand-in whose proto form carries the source comments."""

    def __init__(self, descriptor: FileDescriptor) -> None:
        self._descriptor = descriptor
        self.name = descriptor.name

    @property
    def dependencies(self) -> list[_DocumentedFile]:
        return [_DocumentedFile(dependency) for dependency in self._descriptor.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        documented = documented_files().get(self.name)
        if documented is None:
            self._descriptor.CopyToProto(proto)
        else:
            proto.CopyFrom(documented)


class DocumentedPool:
    """The default descriptor pool, with file look-ups answered in their documented form."""

    def __init__(self) -> None:
        self._pool = descriptor_pool.Default()

    def FindFileByName(self, name: str) -> _DocumentedFile:
        return _DocumentedFile(self._pool.FindFileByName(name))

    def FindFileContainingSymbol(self, symbol: str) -> _DocumentedFile:
        return _DocumentedFile(self._pool.FindFileContainingSymbol(symbol))

    def __getattr__(self, name: str) -> Any:
        # Message and extension look-ups need no comments: the real pool answers them.
        return getattr(self._pool, name)


def enable_documented_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    reflection.enable_server_reflection(
        (*service_names, reflection.SERVICE_NAME),
        server,
        pool=DocumentedPool(),  # type: ignore[arg-type]  # duck-typed: the look-ups reflection makes
    )
