"""No name or email reaches a log line: both services at DEBUG see a user's whole life (create,
update, read, the account applied) and calls that fail while carrying personal data; then every
line either process wrote is searched for canary values that appear nowhere but in that data."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Producer
from google.protobuf import field_mask_pb2

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.contract.events import USERS_SVC_SOURCE
from herald.kafka.topics import EVENTS_TOPIC
from herald.tools.processes import ServiceProcess
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.support import eventually, unique
from users_svc.events import EventRecordFactory
from users_svc.model import User


def canary(label: str) -> str:
    # Mixed case, so a log line that case-folds (the email lookup key does) is caught too.
    return f"Canary{label}{secrets.token_hex(8).upper()}"


def failure(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def said(error: grpc.RpcError) -> str:
    """All the client was told: message and the encoded details trailer."""
    trailers = b"".join(
        item.value if isinstance(item.value, bytes) else item.value.encode()
        for item in error.trailing_metadata() or ()
    )
    details = error.details() or ""
    return details + trailers.decode(errors="replace")


def exercise(users_target: str, auth_target: str, values: dict[str, str]) -> list[str]:
    """Every call the canary covers; what the client heard about the *other* user's data."""
    with grpc.insecure_channel(users_target) as u, grpc.insecure_channel(auth_target) as a:
        users = users_pb2_grpc.UserServiceStub(u)
        auth = auth_pb2_grpc.AuthServiceStub(a)
        created = users.CreateUser(
            users_pb2.CreateUserRequest(
                name=values["name"], email=f"{values['email']}@example.com"
            ),
            timeout=15,
        ).user
        # Someone else asks for the same address: told it is taken, never whose it is.
        taken = failure(
            lambda: users.CreateUser(
                users_pb2.CreateUserRequest(
                    name=values["rival"], email=f"{values['email']}@example.com"
                ),
                timeout=15,
            )
        )
        assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
        invalid_email = failure(
            lambda: users.CreateUser(
                users_pb2.CreateUserRequest(name="Someone", email=f"no-at-{values['bad_email']}"),
                timeout=15,
            )
        )
        assert invalid_email.code() == grpc.StatusCode.INVALID_ARGUMENT
        users.UpdateUser(
            users_pb2.UpdateUserRequest(
                user=users_pb2.User(
                    id=created.id,
                    name=values["new_name"],
                    email=f"{values['new_email']}@example.com",
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["name", "email"]),
            ),
            timeout=15,
        )
        invalid_name = failure(
            lambda: users.UpdateUser(
                users_pb2.UpdateUserRequest(
                    user=users_pb2.User(id=created.id, name=f"line\n{values['bad_name']}\x07"),
                    update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                ),
                timeout=15,
            )
        )
        assert invalid_name.code() == grpc.StatusCode.INVALID_ARGUMENT
        fetched = users.GetUser(users_pb2.GetUserRequest(id=created.id), timeout=5).user
        assert fetched.name == values["new_name"]

        def applied() -> auth_pb2.Account | None:
            try:
                account = auth.GetAccount(
                    auth_pb2.GetAccountRequest(user_id=created.id), timeout=5
                ).account
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return account if account.name == values["new_name"] else None

        eventually(applied, timeout_s=30)
    return [said(taken)]


def publish_poison(bootstrap_servers: str, values: dict[str, str]) -> str:
    """An event auth_svc must dead-letter (a bell in its name) that carries personal data:
    where it landed, as auth_svc's dead-letter warning names it."""
    now = datetime.now(UTC)
    user = User(
        str(uuid.uuid4()),
        f"bell\x07{values['poison_name']}",
        f"{values['poison_email']}@example.com",
        now,
        now,
        1,
    )
    record = EventRecordFactory(EVENTS_TOPIC, USERS_SVC_SOURCE).user_created(user)
    landed = []
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(
        record.topic,
        record.value,
        record.key,
        headers=record.headers,
        on_delivery=lambda error, message: landed.append((error, message)),
    )
    producer.flush(15)
    [(error, message)] = landed
    assert error is None
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


def leaks(text: str, values: dict[str, str]) -> list[str]:
    folded = text.casefold()
    return [label for label, value in values.items() if value.casefold() in folded]


def test_no_name_or_email_reaches_a_log_line(kafka_bootstrap: str, tmp_path: Path) -> None:
    labels = ["name", "email", "rival", "new_name", "new_email", "bad_email", "bad_name"]
    values = {label: canary(label) for label in [*labels, "poison_name", "poison_email"]}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "USERS_DATA_DIR": str(tmp_path / "users-data"),
        "AUTH_DATA_DIR": str(tmp_path / "auth-data"),
        "AUTH_CONSUMER_GROUP": unique("auth-svc-canary"),
        "LOG_LEVEL": "DEBUG",
    }
    # Output and errors both go to the log file (stderr=STDOUT), so one file is all it wrote.
    services = [
        ServiceProcess(module, env, tmp_path / f"{module}.log")
        for module in ("users_svc", "auth_svc")
    ]
    try:
        for service in services:
            service.start()
        heard = exercise(services[0].target, services[1].target, values)
        where = publish_poison(kafka_bootstrap, values)
        auth_log = services[1].log
        assert auth_log is not None
        eventually(
            lambda: f"dead-lettered {where}" in auth_log.read_text(errors="replace") or None,
            timeout_s=30,
        )
    finally:
        exits = [service.stop() for service in services]
    assert exits == [0, 0]

    # The one who asked for a taken address hears nothing of its owner.
    assert leaks("\n".join(heard), {k: values[k] for k in ("name", "email")}) == []
    logs = sorted(tmp_path.glob("*.log"))
    assert [log.name for log in logs] == ["auth_svc.log", "users_svc.log"]
    assert "DEBUG" in logs[1].read_text(errors="replace")  # it really logged at DEBUG
    for log in logs:
        text = log.read_text(errors="replace")
        assert leaks(text, values) == [], f"{log.name} leaks personal data:\n{text}"
