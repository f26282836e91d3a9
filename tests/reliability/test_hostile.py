"""Hostile gRPC input against both running services: clear statuses, no crash, no partial user,
bounded memory."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.rpc.client import SERVING, health_status
from herald.tools.localkafka import LocalKafka
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.h2_support import RawConnection
from tests.reliability.harness import Result, scenario
from tests.reliability.load import Ledger

Report = Callable[[Result], None]
CLEAR = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def code_of(call: Callable[[], object], ledger: Ledger | None = None) -> grpc.StatusCode:
    """The call's status; an answer that names a user goes in the ledger the oracle checks."""
    try:
        answer = call()
    except grpc.RpcError as error:
        return error.code()
    user = getattr(answer, "user", None)
    if ledger is not None and isinstance(user, users_pb2.User):
        ledger.record(user)
    return grpc.StatusCode.OK


def test_hostile_grpc(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    codes: list[grpc.StatusCode] = []
    with scenario("hostile_grpc", single_node.bootstrap_servers, tmp_path, report) as run:
        stack = run.stack

        def answered(call: Callable[[], object]) -> grpc.StatusCode:
            return code_of(call, run.ledger)

        assert stack.users is not None
        assert stack.auth is not None
        assert stack.users.process is not None
        users_rss_before = rss_mb(stack.users.process.pid)
        with (
            grpc.insecure_channel(stack.users.target) as users_channel,
            grpc.insecure_channel(stack.auth.target) as auth_channel,
        ):
            users = users_pb2_grpc.UserServiceStub(users_channel)
            auth = auth_pb2_grpc.AuthServiceStub(auth_channel)

            # Hand-picked: over the size limit, absurd lengths, invalid UTF-8 on the wire.
            huge = "x" * (2 * 1024 * 1024)
            assert (
                answered(
                    lambda: users.CreateUser(
                        users_pb2.CreateUserRequest(name=huge, email="a@b.io"), timeout=10
                    )
                )
                == grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            assert (
                answered(
                    lambda: users.CreateUser(
                        users_pb2.CreateUserRequest(name="n" * 100_000, email="a@b.io"), timeout=10
                    )
                )
                == grpc.StatusCode.INVALID_ARGUMENT
            )
            assert (
                answered(
                    lambda: auth.GetAccount(auth_pb2.GetAccountRequest(user_id=huge), timeout=10)
                )
                == grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            raw = users_channel.unary_unary(
                "/herald.users.v1.UserService/CreateUser",
                request_serializer=lambda body: body,
                response_deserializer=lambda body: body,
            )
            assert answered(lambda: raw(b"\x0a\x03\xff\xfe\xfd\x12\x06a@b.io", timeout=10)) in {
                grpc.StatusCode.INTERNAL,
                grpc.StatusCode.INVALID_ARGUMENT,
            }

            # Property-based: arbitrary text into every field of every RPC.
            @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
            @given(st.text(), st.text(), st.text(max_size=40), st.lists(st.text(max_size=10)))
            def arbitrary(name: str, email: str, other: str, paths: list[str]) -> None:
                codes.append(
                    answered(
                        lambda: users.CreateUser(
                            users_pb2.CreateUserRequest(name=name, email=email, request_id=other),
                            timeout=10,
                        )
                    )
                )
                codes.append(
                    answered(lambda: users.GetUser(users_pb2.GetUserRequest(id=other), timeout=10))
                )
                codes.append(
                    answered(
                        lambda: users.UpdateUser(
                            users_pb2.UpdateUserRequest(
                                user=users_pb2.User(id=other, name=name, email=email)
                            ),
                            timeout=10,
                        )
                    )
                )
                codes.append(
                    answered(
                        lambda: auth.GetAccount(
                            auth_pb2.GetAccountRequest(user_id=other), timeout=10
                        )
                    )
                )

            arbitrary()

            # Many concurrent calls, past the server's limit of 128 in progress. One connection
            # carries at most 100 at once (USERS_MAX_STREAMS_PER_CONNECTION), so the crowd
            # comes over six, each of its own (a local subchannel pool per channel).
            crowd = [
                grpc.insecure_channel(
                    stack.users.target, options=[("grpc.use_local_subchannel_pool", 1)]
                )
                for _ in range(6)
            ]
            try:
                futures = [
                    users_pb2_grpc.UserServiceStub(crowd[n % len(crowd)]).CreateUser.future(
                        users_pb2.CreateUserRequest(
                            name="Crowd", email=f"{uuid.uuid4().hex}@example.com"
                        ),
                        timeout=30,
                    )
                    for n in range(600)
                ]
                for future in futures:
                    codes.append(answered(future.result))
            finally:
                for channel in crowd:
                    channel.close()

        assert set(codes) <= CLEAR, set(codes) - CLEAR
        # Nobody crashed, both still serve, and memory stayed bounded.
        assert stack.users.process.poll() is None
        assert health_status(stack.users.target) == SERVING
        assert health_status(stack.auth.target) == SERVING
        users_rss_after = rss_mb(stack.users.process.pid)
        assert users_rss_after < users_rss_before + 150, (users_rss_before, users_rss_after)
        # The fault's evidence; that no partial user was left (every stored user has its event
        # applied in auth) is the scenario's closing check.
        run.fault["refused"] = len(codes) - codes.count(grpc.StatusCode.OK)


def test_stalled_streams(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    """200 streams over 8 connections send their headers and never a message, while the
    stream of real calls goes on against the same users_svc."""
    with scenario("stalled_streams", single_node.bootstrap_servers, tmp_path, report) as run:
        users = run.stack.users
        assert users is not None
        load = run.stream()
        load.progress(100)
        stalled = [RawConnection(users.port, stalled=25) for _ in range(8)]
        try:
            for connection in stalled:
                connection.read(for_s=0.05)
            run.fault["stalled_streams"] = 25 * len(stalled)
            slowest = 0.0
            for _ in range(10):
                began = time.monotonic()
                answered = health_status(users.target, timeout_s=2.0) == SERVING
                slowest = max(slowest, time.monotonic() - began if answered else float("inf"))
                load.progress(50)  # real calls are answered meanwhile, or this times out
            for connection in stalled:
                connection.read(for_s=0.05)
            run.fault["still_open"] = all(c.ended_streams() == [] for c in stalled)
            run.fault["slowest_check_s"] = round(slowest, 3)
        finally:
            for connection in stalled:
                connection.socket.close()
        run.end_of_fault()
        load.progress(100)
