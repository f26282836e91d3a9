"""Arbitrary and malformed input: the rules never crash, the RPC never answers UNKNOWN."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.contract.fields import MAX_EMAIL_LENGTH, MAX_NAME_LENGTH, normalize
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.grpc_support import error_details, serving
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.model import InvalidRequestError, validate_new_user
from users_svc.servicer import user_service as servicer_of
from users_svc.sqlite_store import SqliteUserStore

KNOWN_REASONS = {"INVALID_NAME", "INVALID_EMAIL", "INVALID_REQUEST_ID"}
emails = st.one_of(st.text(), st.emails(), st.builds("{}@{}".format, st.text(), st.text()))


@given(name=st.text(), email=emails, request_id=st.one_of(st.text(), st.uuids().map(str)))
def test_validation_accepts_or_names_the_bad_fields_and_nothing_else(
    name: str, email: str, request_id: str
) -> None:
    try:
        new = validate_new_user(name, email, request_id)
    except InvalidRequestError as error:
        violations = error.violations
    else:
        violations = []
    if violations:
        assert {v.reason for v in violations} <= KNOWN_REASONS
        return
    # What is accepted is stored trimmed and normalised, within the limits, and stable.
    assert new.name == normalize(name)
    assert 0 < len(new.name) <= MAX_NAME_LENGTH
    assert 0 < len(new.email) <= MAX_EMAIL_LENGTH
    assert validate_new_user(new.name, new.email) == validate_new_user(new.name, new.email, "")


@contextmanager
def user_service() -> Iterator[tuple[users_pb2_grpc.UserServiceStub, grpc.Channel]]:
    with tempfile.TemporaryDirectory() as folder:
        users = UserApplication(
            SqliteUserStore(Path(folder) / "users.sqlite3"), EventRecordFactory("e", "/t")
        )
        with serving(servicer_of(users)) as channel:
            yield users_pb2_grpc.UserServiceStub(channel), channel


ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
}


def test_arbitrary_strings_through_the_rpc_get_a_clear_status() -> None:
    with user_service() as (stub, _):

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(name=st.text(), email=emails, request_id=st.text(max_size=40))
        def check(name: str, email: str, request_id: str) -> None:
            request = users_pb2.CreateUserRequest(name=name, email=email, request_id=request_id)
            code = grpc.StatusCode.OK
            try:
                stub.CreateUser(request, timeout=5)
            except grpc.RpcError as error:
                code = error.code()
            assert code in ANSWERS

        check()
        # And the server still serves.
        stub.CreateUser(users_pb2.CreateUserRequest(name="Ada", email="ada@example.com"), timeout=5)


def test_invalid_utf8_on_the_wire_is_refused_and_the_server_carries_on() -> None:
    with user_service() as (stub, channel):
        # Field 1 (name), wire type 2, three bytes that are not UTF-8: protobuf refuses to
        # parse it, so the call is refused before reaching the servicer, in its domain.
        raw = channel.unary_unary(
            "/herald.users.v1.UserService/CreateUser",
            request_serializer=lambda body: body,
            response_deserializer=lambda body: body,
        )
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\x0a\x03\xff\xfe\xfd", timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_details(caught.value)["ErrorInfo"]
        assert isinstance(info, error_details_pb2.ErrorInfo)
        assert (info.domain, info.reason) == ("users.herald", "MALFORMED_REQUEST")
        stub.CreateUser(users_pb2.CreateUserRequest(name="Ada", email="ada@example.com"), timeout=5)
