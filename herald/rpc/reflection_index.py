"""Every name a reflection client can ask about, mapped to the .proto file that declares it.

The Python descriptor pool cannot answer all of them (grpc/grpc#34743: no methods, no
packages), while the C++ and Go servers can, so grpcurl's `describe` of a method fails
against a Python server that asks the pool. This index is built once from the files
themselves and resolves what C++'s `DescriptorPool::FindFileContainingSymbol` does:
packages and their parent packages, messages (nested too), fields, oneofs, enums, enum
values, services, methods and extensions.

Herald's own files come from `herald/descriptors.binpb` (written by `make protos`), which
keeps the .proto comments; the rest (grpc's health and reflection files, and anything a
file imports that the set lacks) come from the default pool, which has no comments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2

# Imported for their side effect: it puts health's and reflection's own files in the
# default pool, so those services resolve even if nothing else imported them yet.
from grpc_health.v1 import health_pb2  # noqa: F401
from grpc_reflection.v1alpha import reflection_pb2  # noqa: F401

DESCRIPTOR_SET = "descriptors.binpb"


@cache
def documented_files() -> Mapping[str, descriptor_pb2.FileDescriptorProto]:
    """File name → its descriptor with comments, from the committed descriptor set."""
    raw = resources.files("herald").joinpath(DESCRIPTOR_SET).read_bytes()
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(raw)
    return {file.name: file for file in descriptor_set.file}


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


@dataclass
class SymbolIndex:
    """The files a server can send, each serialized once, and what each one declares."""

    # File name → the serialized FileDescriptorProto, as reflection sends it.
    files: dict[str, bytes] = field(default_factory=dict)
    # File name → the names of the files it imports.
    dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Fully-qualified symbol (no leading dot) → the file that declares it.
    symbols: dict[str, str] = field(default_factory=dict)
    # Full names of message types: only these may be asked for their extension numbers.
    messages: set[str] = field(default_factory=set)
    # (extended message, field number) → the file that declares the extension.
    extensions: dict[tuple[str, int], str] = field(default_factory=dict)
    # Extended message → the numbers of its known extensions, sorted.
    extension_numbers: dict[str, list[int]] = field(default_factory=dict)

    def add(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        """Index one file. The first file to declare a name keeps it: protobuf forbids two
        declarations of one symbol, so only packages, which many files share, ever meet an
        earlier claim, and C++ also answers a package with the first file that declared it."""
        self.files[file.name] = file.SerializeToString()
        self.dependencies[file.name] = tuple(file.dependency)
        if file.package:
            parts = file.package.split(".")
            # A package's parents are names too (`herald` for `herald.users.v1`).
            for end in range(1, len(parts) + 1):
                self._claim(".".join(parts[:end]), file.name)
        for message in file.message_type:
            self._add_message(file.package, message, file.name)
        for enum in file.enum_type:
            self._add_enum(file.package, enum, file.name)
        for extension in file.extension:
            self._add_extension(file.package, extension, file.name)
        for service in file.service:
            service_name = _join(file.package, service.name)
            self._claim(service_name, file.name)
            for method in service.method:
                self._claim(_join(service_name, method.name), file.name)

    def _claim(self, symbol: str, file_name: str) -> None:
        self.symbols.setdefault(symbol, file_name)

    def _add_message(
        self, scope: str, message: descriptor_pb2.DescriptorProto, file_name: str
    ) -> None:
        full_name = _join(scope, message.name)
        self._claim(full_name, file_name)
        self.messages.add(full_name)
        for message_field in message.field:
            self._claim(_join(full_name, message_field.name), file_name)
        for oneof in message.oneof_decl:
            self._claim(_join(full_name, oneof.name), file_name)
        for nested in message.nested_type:
            self._add_message(full_name, nested, file_name)
        for enum in message.enum_type:
            self._add_enum(full_name, enum, file_name)
        for extension in message.extension:
            self._add_extension(full_name, extension, file_name)

    def _add_enum(
        self, scope: str, enum: descriptor_pb2.EnumDescriptorProto, file_name: str
    ) -> None:
        self._claim(_join(scope, enum.name), file_name)
        # Enum values are siblings of their enum, as in C++: `herald.auth.v1.ACCOUNT_STATE_ACTIVE`,
        # not `herald.auth.v1.AccountState.ACCOUNT_STATE_ACTIVE`. That is the name protobuf
        # gives them and the one grpcurl then looks for in the file it is sent.
        for value in enum.value:
            self._claim(_join(scope, value.name), file_name)

    def _add_extension(
        self, scope: str, extension: descriptor_pb2.FieldDescriptorProto, file_name: str
    ) -> None:
        self._claim(_join(scope, extension.name), file_name)
        # protoc and the pool both write the extended type fully qualified, with a leading dot.
        extended = extension.extendee.lstrip(".")
        if self.extensions.setdefault((extended, extension.number), file_name) == file_name:
            numbers = self.extension_numbers.setdefault(extended, [])
            if extension.number not in numbers:
                numbers.append(extension.number)
                numbers.sort()


def _from_default_pool(name: str) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor_pool.Default().FindFileByName(name).CopyToProto(proto)
    return proto


def gather_files(
    roots: Iterable[str], documented: Mapping[str, descriptor_pb2.FileDescriptorProto]
) -> list[descriptor_pb2.FileDescriptorProto]:
    """`roots` and every file they import, each once: the documented form when there is one,
    else the default pool's. A missing import raises KeyError: better at start-up than a file
    that no client could build."""
    gathered: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    pending = list(reversed(list(roots)))
    while pending:
        name = pending.pop()
        if name in gathered:
            continue
        file = documented[name] if name in documented else _from_default_pool(name)
        gathered[name] = file
        pending.extend(reversed(file.dependency))
    return list(gathered.values())


def build_index(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> SymbolIndex:
    index = SymbolIndex()
    for file in files:
        index.add(file)
    return index


@cache
def documented_index(service_names: tuple[str, ...]) -> SymbolIndex:
    """The index a server with these services answers from: all of Herald's documented files,
    the files of the services named, and their imports. Cached: built once per set of names."""
    pool = descriptor_pool.Default()
    service_files = []
    for service_name in service_names:
        try:
            service_files.append(pool.FindFileContainingSymbol(service_name).name)
        except KeyError:
            # A service with no descriptor in this process is still listed; it only
            # cannot be described, as with the stock servicer.
            continue
    documented = documented_files()
    # The error details Herald's statuses carry: a client that reads them through reflection
    # (grpcurl does) shows ErrorInfo, BadRequest and RetryInfo decoded, not as raw bytes.
    details = error_details_pb2.DESCRIPTOR.name
    return build_index(gather_files([*documented, *service_files, details], documented))
