"""CreateUser on users_svc → UserCreated on Kafka → the account in auth_svc, over real sockets."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka.topics import EVENTS_TOPIC
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.conftest import REPO
from tests.e2e.conftest import Stack
from tests.support import end_offsets, eventually, unique


@pytest.fixture
def users(stack: Stack) -> Iterator[users_pb2_grpc.UserServiceStub]:
    with grpc.insecure_channel(stack.users) as channel:
        yield users_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def auth(stack: Stack) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    with grpc.insecure_channel(stack.auth) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


def account_of(auth: auth_pb2_grpc.AuthServiceStub, user_id: str) -> auth_pb2.Account | None:
    try:
        return auth.GetAccount(auth_pb2.GetAccountRequest(user_id=user_id), timeout=5).account
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def test_created_user_gets_an_account_in_auth(
    users: users_pb2_grpc.UserServiceStub, auth: auth_pb2_grpc.AuthServiceStub
) -> None:
    email = f"{unique('ada')}@example.com"
    created = users.CreateUser(
        users_pb2.CreateUserRequest(name="Ada Lovelace", email=email), timeout=15
    ).user

    account = eventually(lambda: account_of(auth, created.id), timeout_s=30)
    assert (account.name, account.email) == ("Ada Lovelace", email)
    assert account.create_time == created.create_time
    assert account.state == auth_pb2.ACCOUNT_STATE_ACTIVE
    fetched = users.GetUser(users_pb2.GetUserRequest(id=created.id), timeout=5).user
    assert fetched == created


def test_an_update_reaches_auth(
    users: users_pb2_grpc.UserServiceStub, auth: auth_pb2_grpc.AuthServiceStub
) -> None:
    created = users.CreateUser(
        users_pb2.CreateUserRequest(name="Ada", email=f"{unique('ada')}@example.com"), timeout=15
    ).user
    renamed = users.UpdateUser(
        users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=created.id, name="Ada Lovelace"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        timeout=15,
    ).user
    assert renamed.name == "Ada Lovelace"

    def renamed_account() -> auth_pb2.Account | None:
        account = account_of(auth, created.id)
        return account if account is not None and account.name == "Ada Lovelace" else None

    account = eventually(renamed_account, timeout_s=30)
    assert account.email == created.email


def test_invalid_input_is_invalid_argument_and_publishes_nothing(
    stack: Stack, users: users_pb2_grpc.UserServiceStub
) -> None:
    before = sum(end_offsets(stack.bootstrap_servers, EVENTS_TOPIC).values())
    for name, email in [("", "ada@example.com"), ("Ada", "not-an-email"), ("", "")]:
        with pytest.raises(grpc.RpcError) as caught:
            users.CreateUser(users_pb2.CreateUserRequest(name=name, email=email), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # One valid call afterwards: the topic grows by exactly its one event.
    users.CreateUser(
        users_pb2.CreateUserRequest(name="Valid", email=f"{unique('v')}@example.com"), timeout=15
    )

    def growth() -> int | None:
        grown = sum(end_offsets(stack.bootstrap_servers, EVENTS_TOPIC).values()) - before
        return grown or None

    assert eventually(growth, timeout_s=30) == 1


def run_grpcurl(grpcurl: str, *args: str) -> str:
    result = subprocess.run(
        [grpcurl, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_creates_a_user_that_reaches_auth(stack: Stack, grpcurl: str) -> None:
    email = f"{unique('grace')}@example.com"
    body = json.dumps({"name": "Grace Hopper", "email": email})
    created = json.loads(
        run_grpcurl(grpcurl, "-d", body, stack.users, "herald.users.v1.UserService/CreateUser")
    )["user"]

    def account() -> dict[str, str] | None:
        result = subprocess.run(
            [
                grpcurl,
                "-plaintext",
                "-d",
                json.dumps({"user_id": created["id"]}),
                stack.auth,
                "herald.auth.v1.AuthService/GetAccount",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return json.loads(result.stdout)["account"] if result.returncode == 0 else None

    found = eventually(account, timeout_s=30, every_s=0.2)
    assert (found["name"], found["email"], found["createTime"]) == (
        "Grace Hopper",
        email,
        created["createTime"],
    )


def test_reflection_lists_and_describes_both_services(stack: Stack, grpcurl: str) -> None:
    assert "herald.users.v1.UserService" in run_grpcurl(grpcurl, stack.users, "list").split()
    assert "herald.auth.v1.AuthService" in run_grpcurl(grpcurl, stack.auth, "list").split()
    # The .proto comments travel with the descriptors, so `describe` documents the API.
    described = run_grpcurl(grpcurl, stack.users, "describe", "herald.users.v1.CreateUserRequest")
    assert "idempotency key" in described
    assert "Returns the account of one user" in run_grpcurl(
        grpcurl, stack.auth, "describe", "herald.auth.v1.AuthService"
    )


def test_grpcurl_works_without_reflection_from_the_committed_descriptor_set(
    stack: Stack, grpcurl: str
) -> None:
    protoset = str(REPO / "herald" / "descriptors.binpb")
    described = run_grpcurl(
        grpcurl, "-protoset", protoset, "describe", "herald.users.v1.UserService"
    )
    assert "Creates a user" in described
    body = json.dumps({"name": "Protoset", "email": f"{unique('ps')}@example.com"})
    created = json.loads(
        run_grpcurl(
            grpcurl,
            "-protoset",
            protoset,
            "-d",
            body,
            stack.users,
            "herald.users.v1.UserService/CreateUser",
        )
    )["user"]
    assert created["name"] == "Protoset"


def test_the_readme_update_example_works_with_grpcurl(stack: Stack, grpcurl: str) -> None:
    """The README's UpdateUser line, with the id filled in: a field mask as {"paths": [...]}."""
    body = json.dumps({"name": "Ada Lovelace", "email": f"{unique('rd')}@example.com"})
    created = json.loads(
        run_grpcurl(grpcurl, "-d", body, stack.users, "herald.users.v1.UserService/CreateUser")
    )["user"]
    readme = (REPO / "README.md").read_text()
    [template] = [
        line
        for line in readme.splitlines()
        if "UserService/UpdateUser" in line or '"update_mask"' in line
    ][:1]
    request = template[template.index("'") + 1 : template.rindex("'")].replace(
        "4f2505c8-…", created["id"]
    )
    updated = json.loads(
        run_grpcurl(grpcurl, "-d", request, stack.users, "herald.users.v1.UserService/UpdateUser")
    )["user"]
    assert updated["name"] == "Ada King"
