"""Tokens and the policy on a real in-process server: every way a token can be wrong, who may
call what, a rotated key, and health and reflection left open."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from auth_svc.servicer import auth_service
from auth_svc.sqlite_store import SqliteAccountStore
from auth_svc.status import ConsumerStatus
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.rpc.client import SERVING, health_status
from herald.rpc.server import create_server
from herald.rpc.tokens import TokenError, TokenVerifier
from herald.tools.certs import mint_token, write_dev_certs
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.grpc_support import error_details
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.servicer import user_service
from users_svc.sqlite_store import SqliteUserStore

ISS, AUD = "herald-test", "herald"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """The development signing key, and tokens made with it (or made wrongly)."""

    def __init__(self, folder: Path) -> None:
        write_dev_certs(folder)
        self.key_file = folder / "jwt" / "signing.key"
        self.jwks_file = folder / "jwt" / "jwks.json"
        self.kid = json.loads(self.jwks_file.read_text())["keys"][0]["kid"]

    def token(self, sub: str, scope: str = "", **claims: Any) -> str:
        if not claims:
            return mint_token(sub, scope, issuer=ISS, audience=AUD, key_file=self.key_file)
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        now = int(time.time())
        body = {"iss": ISS, "aud": AUD, "sub": sub, "scope": scope, "exp": now + 600, **claims}
        return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": self.kid})  # type: ignore[arg-type]

    def unsigned(self, alg: str, secret: bytes = b"") -> str:
        """A token with `alg` in its header, signed with HMAC `secret` (or not at all)."""
        header = b64(json.dumps({"alg": alg, "kid": self.kid, "typ": "JWT"}).encode())
        body = b64(json.dumps({"iss": ISS, "aud": AUD, "sub": "x", "exp": 2**40}).encode())
        signing_input = f"{header}.{body}".encode()
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest() if secret else b""
        return f"{header}.{body}.{b64(signature)}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("secure"))


@pytest.fixture
def target(keys: Keys, tmp_path: Path) -> Iterator[str]:
    users = UserApplication(SqliteUserStore(tmp_path / "u.sqlite3"), EventRecordFactory("e", "/t"))
    accounts = SqliteAccountStore(tmp_path / "a.sqlite3")
    server = create_server(
        address="127.0.0.1:0",
        services=[user_service(users), auth_service(accounts, lambda: ConsumerStatus("g"))],
        tokens=TokenVerifier(keys.jwks_file, ISS, AUD),
    )
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(0)


def call(target: str, token: str | None, method: str, request: Any) -> tuple[str, str]:
    """(status code name, ErrorInfo reason or "") of one call with `token`."""
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        stub: Any = (
            users_pb2_grpc.UserServiceStub(channel)
            if hasattr(users_pb2_grpc.UserServiceStub(channel), method)
            else auth_pb2_grpc.AuthServiceStub(channel)
        )
        try:
            getattr(stub, method)(request, timeout=5, metadata=metadata)
        except grpc.RpcError as error:
            info = error_details(error).get("ErrorInfo")
            return error.code().name, getattr(info, "reason", "")
    return "OK", ""


def create(target: str, keys: Keys, name: str) -> str:
    request = users_pb2.CreateUserRequest(name=name, email=f"{name}@example.com")
    metadata = (("authorization", f"Bearer {keys.token('provisioner', 'users.create')}"),)
    with grpc.insecure_channel(target) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        return stub.CreateUser(request, timeout=5, metadata=metadata).user.id


def test_every_bad_token_is_unauthenticated_with_its_reason(target: str, keys: Keys) -> None:
    now = int(time.time())
    # The verifier's own public key material, as an attacker would use it for an HMAC secret.
    public = keys.jwks_file.read_bytes()
    good = keys.token("admin", "herald.admin")
    head, _body, signature = good.split(".")
    tampered_body = b64(json.dumps({"iss": ISS, "aud": AUD, "sub": "root", "exp": 2**40}).encode())
    cases = {
        "none": (None, "TOKEN_MISSING"),
        "not bearer": (f"Basic {good}", "TOKEN_INVALID"),
        "expired": (keys.token("a", exp=now - 3600), "TOKEN_EXPIRED"),
        "not yet valid": (keys.token("a", nbf=now + 3600), "TOKEN_INVALID"),
        "wrong aud": (keys.token("a", aud="someone-else"), "TOKEN_INVALID"),
        "wrong iss": (keys.token("a", iss="https://evil.example"), "TOKEN_INVALID"),
        "unknown kid": (good.replace(head, b64(b'{"alg":"EdDSA","kid":"nope"}')), "TOKEN_INVALID"),
        "alg none": (keys.unsigned("none"), "TOKEN_INVALID"),
        "HS256 keyed with the public key": (keys.unsigned("HS256", public), "TOKEN_INVALID"),
        "tampered payload": (f"{head}.{tampered_body}.{signature}", "TOKEN_INVALID"),
        "garbage": ("a.b.c", "TOKEN_INVALID"),
        "huge": ("x" * 10_000, "TOKEN_INVALID"),
    }
    request = users_pb2.GetUserRequest(id="01900000-0000-7000-8000-000000000001")
    for what, (token, reason) in cases.items():
        metadata_token = None if token is None else token.removeprefix("Bearer ")
        if token is not None and token.startswith("Basic "):
            got = _raw_call(target, token, request)
        else:
            got = call(target, metadata_token, "GetUser", request)
        assert got == ("UNAUTHENTICATED", reason), what


def _raw_call(target: str, authorization: str, request: Any) -> tuple[str, str]:
    with grpc.insecure_channel(target) as channel:
        try:
            users_pb2_grpc.UserServiceStub(channel).GetUser(
                request, timeout=5, metadata=(("authorization", authorization),)
            )
        except grpc.RpcError as error:
            info = error_details(error).get("ErrorInfo")
            return error.code().name, getattr(info, "reason", "")
    return "OK", ""


def test_the_policy_lets_each_caller_do_what_is_theirs(target: str, keys: Keys) -> None:
    alice, bob = create(target, keys, "alice"), create(target, keys, "bob")
    as_alice, admin = keys.token(alice), keys.token("root", "herald.admin")
    operator = keys.token("ops", "herald.operator")

    def update(user_id: str) -> users_pb2.UpdateUserRequest:
        return users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=user_id, name="Renamed"), update_mask=FieldMask(paths=["name"])
        )

    assert call(target, as_alice, "GetUser", users_pb2.GetUserRequest(id=alice)) == ("OK", "")
    assert call(target, as_alice, "UpdateUser", update(alice)) == ("OK", "")
    assert call(target, as_alice, "GetUser", users_pb2.GetUserRequest(id=bob)) == (
        "PERMISSION_DENIED",
        "FORBIDDEN",
    )
    assert call(target, as_alice, "UpdateUser", update(bob)) == ("PERMISSION_DENIED", "FORBIDDEN")
    account = auth_pb2.GetAccountRequest(user_id=bob)
    assert call(target, as_alice, "GetAccount", account) == ("PERMISSION_DENIED", "FORBIDDEN")
    # No account yet: the policy let the call through to the store.
    assert call(target, operator, "GetAccount", account) == ("NOT_FOUND", "ACCOUNT_NOT_FOUND")
    assert call(target, admin, "UpdateUser", update(bob)) == ("OK", "")
    new = users_pb2.CreateUserRequest(name="Eve", email="eve@example.com")
    assert call(target, as_alice, "CreateUser", new) == ("PERMISSION_DENIED", "FORBIDDEN")
    status = auth_pb2.GetConsumerStatusRequest()
    assert call(target, as_alice, "GetConsumerStatus", status) == ("PERMISSION_DENIED", "FORBIDDEN")
    assert call(target, operator, "GetConsumerStatus", status) == ("OK", "")


def test_a_rotated_key_is_accepted_once_the_jwks_file_has_it(target: str, keys: Keys) -> None:
    new_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(new_key.public_key()))
    token = jwt.encode(
        {"iss": ISS, "aud": AUD, "sub": "root", "scope": "herald.operator", "exp": 2**40},
        new_key,
        algorithm="ES256",
        headers={"kid": "rotated"},
    )
    status = auth_pb2.GetConsumerStatusRequest()
    assert call(target, token, "GetConsumerStatus", status) == ("UNAUTHENTICATED", "TOKEN_INVALID")
    jwks = json.loads(keys.jwks_file.read_text())
    jwks["keys"].append({**jwk, "kid": "rotated", "alg": "ES256", "use": "sig"})
    keys.jwks_file.write_text(json.dumps(jwks))
    assert call(target, token, "GetConsumerStatus", status) == ("OK", "")
    # The old key still works: both are in the file during a rotation.
    assert call(target, keys.token("o", "herald.operator"), "GetConsumerStatus", status)[0] == "OK"


def test_health_and_reflection_stay_open_streaming_included(target: str) -> None:
    assert health_status(target) == SERVING
    with grpc.insecure_channel(target) as channel:
        watch: Any = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        [first] = [*_take(watch(health_pb2.HealthCheckRequest(), timeout=5), 1)]
        assert health_pb2.HealthCheckResponse.FromString(first).status == SERVING
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
    assert "herald.users.v1.UserService" in {s.name for s in answer.list_services_response.service}


def _take(stream: Any, count: int) -> Iterator[Any]:
    for n, item in enumerate(stream):
        yield item
        if n + 1 == count:
            stream.cancel()
            return


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(keys: Keys) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    verifier = TokenVerifier(keys.jwks_file, ISS, AUD)
    claims = {"iss": ISS, "aud": AUD, "sub": "x", "exp": 2**40}
    forged = jwt.encode(claims, other, "EdDSA", headers={"kid": keys.kid})
    with pytest.raises(TokenError, match="TOKEN_INVALID"):
        verifier.verify(f"Bearer {forged}")
