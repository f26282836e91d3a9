"""The herald CLI against the running stack: tail shows a user just created, decoded."""

from __future__ import annotations

import json

import grpc
import pytest

from herald.tools.cli import main
from herald.tools.processes import free_ports
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.e2e.conftest import Stack
from tests.support import eventually, unique


def test_events_tail_shows_a_user_just_created_decoded(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"{unique('tail')}@example.com"
    with grpc.insecure_channel(stack.users) as channel:
        user = (
            users_pb2_grpc.UserServiceStub(channel)
            .CreateUser(users_pb2.CreateUserRequest(name="Tailed", email=email), timeout=10)
            .user
        )

    def tailed() -> dict[str, object] | None:
        capsys.readouterr()
        assert (
            main(
                [
                    "events",
                    "tail",
                    "--from-beginning",
                    "--bootstrap-servers",
                    stack.bootstrap_servers,
                ]
            )
            == 0
        )
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return next((line for line in lines if line["key"] == user.id), None)

    record = eventually(tailed, timeout_s=30, every_s=0.5)
    assert record["headers"]["ce_type"] == "herald.users.v1.UserCreated"  # type: ignore[index]
    assert record["payload"] == {
        "eventId": record["headers"]["ce_id"],  # type: ignore[index]
        "userId": user.id,
        "name": "Tailed",
        "email": email,
        "createTime": record["payload"]["createTime"],  # type: ignore[index]
        "version": "1",
    }


def test_an_unreachable_kafka_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    [closed] = free_ports(1)
    assert (
        main(["topics", "ensure", "--bootstrap-servers", f"127.0.0.1:{closed}", "--timeout", "2"])
        == 1
    )
    assert "cannot talk to Kafka" in capsys.readouterr().err


def test_health_command_exits_zero_for_a_serving_server(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", stack.users]) == 0
    assert main(["health", stack.auth, "--service", "herald.auth.v1.AuthService"]) == 0
    [closed] = free_ports(1)
    assert main(["health", f"127.0.0.1:{closed}"]) == 1
    assert capsys.readouterr().out.split() == ["SERVING", "SERVING", "no", "answer"]
