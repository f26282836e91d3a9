"""Reflection on a real grpc.aio server, asked over a real channel with the generated stub:
every kind of symbol resolves to its file, Herald's files come with their comments, imports go
once per stream, and unknown or hostile questions get short NOT_FOUND answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2_grpc

from herald.rpc.reflection import SERVICE_NAME
from herald.rpc.server import create_server
from tests.reflection_support import (
    SERVICES,
    Request,
    ask,
    comments,
    files_of,
    reflection_stub,
    run,
    symbol,
)
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import user_service
from users_svc.sqlite_store import SqliteUserStore

USERS = "herald/users/v1/users.proto"
AUTH = "herald/auth/v1/auth.proto"


def test_every_kind_of_symbol_resolves_to_its_file_with_comments() -> None:
    asked = {
        "herald.users.v1.UserService": USERS,
        "herald.users.v1.UserService.CreateUser": USERS,  # a method
        "herald.users.v1.User.email": USERS,  # a field
        "herald.auth.v1.AccountState": AUTH,  # an enum
        "herald.auth.v1.ACCOUNT_STATE_ACTIVE": AUTH,  # an enum value, in the enum's scope
        "herald.auth.v1.PartitionStatus": AUTH,
        "herald.auth.v1": AUTH,  # a package
        "google.protobuf.Timestamp.seconds": "google/protobuf/timestamp.proto",
        "grpc.health.v1.Health.Check": "grpc_health/v1/health.proto",
        "google.rpc.ErrorInfo": "google/rpc/error_details.proto",
        "google.rpc.BadRequest.FieldViolation": "google/rpc/error_details.proto",
        "grpc.health.v1.HealthCheckResponse.ServingStatus": "grpc_health/v1/health.proto",
        "grpc.health.v1.HealthCheckResponse.SERVING": "grpc_health/v1/health.proto",
        SERVICE_NAME: "grpc_reflection/v1alpha/reflection.proto",
        # a oneof
        "grpc.reflection.v1alpha.ServerReflectionRequest.message_request": (
            "grpc_reflection/v1alpha/reflection.proto"
        ),
    }

    async def test() -> None:
        async with reflection_stub() as stub:
            answers = await ask(stub, map(symbol, asked))
        for (name, expected), answer in zip(asked.items(), answers, strict=True):
            root = files_of(answer)[0]
            assert root.name == expected, name
            assert answer.original_request.file_containing_symbol == name
            # Files of the descriptor set carry comments; error_details comes from the pool.
            if root.name.startswith(("herald/", "google/protobuf/")):
                assert comments(root), f"{root.name} came without its comments"

    run(test)


def test_the_parents_of_a_package_resolve_to_a_file_of_theirs() -> None:
    async def test() -> None:
        async with reflection_stub() as stub:
            answers = await ask(stub, map(symbol, ["herald", "herald.users", "herald.users.v1"]))
        for answer in answers:
            assert files_of(answer)[0].package.startswith("herald.")

    run(test)


def test_a_documented_message_comes_with_its_comments() -> None:
    async def test() -> None:
        async with reflection_stub() as stub:
            [answer] = await ask(stub, [symbol("herald.users.v1.CreateUserRequest")])
        users = files_of(answer)[0]
        assert "idempotency key" in comments(users)
        assert "Creates a user and records its UserCreated event." in comments(users)

    run(test)


def test_imports_go_once_per_stream_and_the_answer_builds_in_a_pool() -> None:
    async def test() -> None:
        async with reflection_stub() as stub:
            first, again, timestamp = await ask(
                stub,
                [
                    symbol("herald.users.v1.User"),
                    symbol("herald.users.v1.UserService.GetUser"),
                    Request(file_by_filename="google/protobuf/timestamp.proto"),
                ],
            )
            [fresh] = await ask(stub, [symbol("herald.users.v1.User")])
        sent = [file.name for file in files_of(first)]
        assert sent[0] == USERS
        assert sorted(sent[1:]) == [
            "google/protobuf/field_mask.proto",
            "google/protobuf/timestamp.proto",
        ]
        # Asked again on the same stream: the file itself, but not its imports a second time.
        assert [file.name for file in files_of(again)] == [USERS]
        assert [file.name for file in files_of(timestamp)] == ["google/protobuf/timestamp.proto"]
        # A new stream starts afresh.
        assert [file.name for file in files_of(fresh)] == sent
        # What one answer holds is enough for a client to build the types.
        pool = descriptor_pool.DescriptorPool()
        pending = files_of(first)
        while pending:
            ready = [f for f in pending if all(pool_has(pool, d) for d in f.dependency)]
            assert ready, "an import is missing from the answer"
            for file in ready:
                pool.Add(file)
                pending.remove(file)
        assert pool.FindMethodByName("herald.users.v1.UserService.CreateUser").name == "CreateUser"

    run(test)


def pool_has(pool: descriptor_pool.DescriptorPool, name: str) -> bool:
    try:
        pool.FindFileByName(name)
    except KeyError:
        return False
    return True


def test_list_services_names_the_given_services_and_reflection() -> None:
    async def test() -> None:
        async with reflection_stub() as stub:
            [answer] = await ask(stub, [Request(list_services="")])
        names = [service.name for service in answer.list_services_response.service]
        assert names == [*SERVICES, SERVICE_NAME]

    run(test)


def test_unknown_names_are_not_found_and_quoted_short() -> None:
    huge = "x" * 1_000_000
    unknown = [
        symbol("herald.users.v1.Nope"),
        symbol("herald.auth.v1.AccountState.ACCOUNT_STATE_ACTIVE"),  # not protobuf's scope
        symbol(huge),
        Request(file_by_filename="herald/nope.proto"),
        Request(file_containing_extension={"containing_type": huge, "extension_number": 7}),
        Request(all_extension_numbers_of_type="herald.users.v1.Nope"),
    ]

    async def test() -> None:
        async with reflection_stub() as stub:
            answers = await ask(stub, [*unknown, Request(), symbol("herald.users.v1.User")])
        *missing, empty, found = answers
        for answer in missing:
            assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
            assert answer.error_response.error_message.startswith("not found: ")
            assert len(answer.error_response.error_message) < 120
            assert answer.ByteSize() < 2048, "a huge name came back"
        assert "herald.users.v1.Nope" in missing[0].error_response.error_message
        assert missing[2].original_request.file_containing_symbol == "x" * 64
        assert empty.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        # The stream goes on answering after all that.
        assert files_of(found)[0].name == USERS

    run(test)


def test_thousands_of_requests_on_one_stream_are_all_answered() -> None:
    count = 5000

    def requests() -> Iterable[Request]:
        for number in range(count):
            yield symbol("herald.users.v1.User" if number % 2 else f"no.such.Symbol{number}")

    async def test() -> None:
        async with reflection_stub() as stub:
            flood = asyncio.ensure_future(ask(stub, requests()))
            # Other calls are answered while the flood is in progress.
            [listed] = await ask(stub, [Request(list_services="")])
            answers = await flood
        assert listed.list_services_response.service
        assert len(answers) == count
        assert [a.WhichOneof("message_response") for a in answers[:2]] == [
            "error_response",
            "file_descriptor_response",
        ]
        assert all(
            len(a.file_descriptor_response.file_descriptor_proto) == 1 for a in answers[3::2]
        )

    run(test)


def test_the_services_server_answers_through_it(tmp_path: Path) -> None:
    """create_server, as both services start it, serves this reflection."""
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(address="127.0.0.1:0", services=[user_service(users)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            # The stubs leave the stub's method untyped ("Incomplete").
            stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
            listed, method = stub.ServerReflectionInfo(
                iter([Request(list_services=""), symbol("herald.users.v1.UserService.CreateUser")])
            )
    finally:
        server.stop(0)
    names = [service.name for service in listed.list_services_response.service]
    assert names == ["herald.users.v1.UserService", "grpc.health.v1.Health", SERVICE_NAME]
    assert "Creates a user" in comments(files_of(method)[0])


def test_reflection_can_be_turned_off(tmp_path: Path) -> None:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    server = create_server(address="127.0.0.1:0", services=[user_service(users)], reflection=False)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.ServerReflectionInfo(iter([Request(list_services="")]), timeout=5))
    finally:
        server.stop(0)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
