"""A user's erasure end to end, both services as processes on their own data folders: create,
update, delete; the user and the account are gone; the email is free; a replayed old event
does not bring the account back; a delete racing an update keeps the user's order; and once
both services have stopped, no byte of either data folder, and no line of either log, holds
the canary name or email."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Producer
from google.protobuf import field_mask_pb2

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka.config import producer_config
from herald.kafka.records import ReceivedHeaders, header_values
from herald.kafka.topics import TOPICS
from herald.tools.processes import ServiceProcess
from herald.tools.topic_admin import ensure_topics
from herald.users.v1 import events_pb2, users_pb2, users_pb2_grpc
from tests.support import eventually, read_all, unique


class Erasable:
    """users_svc and auth_svc on a topic and folders of their own, with stubs to call them."""

    def __init__(self, bootstrap: str, folder: Path) -> None:
        self.folder = folder
        self.topic = unique("erasure-events")
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HERALD_EVENTS_TOPIC": self.topic,
            "HERALD_DLQ_TOPIC": unique("erasure-dlq"),
            "AUTH_CONSUMER_GROUP": unique("erasure-auth"),
            "USERS_DATA_DIR": str(folder / "users"),
            "AUTH_DATA_DIR": str(folder / "auth"),
            "LOG_LEVEL": "DEBUG",
        }
        self.users = ServiceProcess("users_svc", env, folder / "users_svc.log")
        self.auth = ServiceProcess("auth_svc", env, folder / "auth_svc.log")

    def account(self, user_id: str) -> auth_pb2.Account | grpc.StatusCode:
        with grpc.insecure_channel(self.auth.target) as channel:
            try:
                request = auth_pb2.GetAccountRequest(user_id=user_id)
                return auth_pb2_grpc.AuthServiceStub(channel).GetAccount(request, timeout=5).account
            except grpc.RpcError as error:
                return error.code()


@pytest.fixture
def erasable(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Erasable]:
    stack = Erasable(kafka_bootstrap, tmp_path)
    events, _dead_letters = TOPICS
    ensure_topics(kafka_bootstrap, (replace(events, name=stack.topic),))
    stack.users.start()
    stack.auth.start(timeout_s=60)
    try:
        yield stack
    finally:
        for service in (stack.users, stack.auth):
            if service.running():
                service.stop()


def canary(label: str) -> str:
    return f"Erased{label}{secrets.token_hex(8).upper()}"


def test_a_deleted_user_leaves_no_trace_and_its_email_is_free(
    erasable: Erasable, kafka_bootstrap: str
) -> None:
    name, local = canary("Name"), canary("mail")
    email = f"{local}@example.com"
    with grpc.insecure_channel(erasable.users.target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        user = users.CreateUser(
            users_pb2.CreateUserRequest(name=name, email=email), timeout=15
        ).user
        renamed = f"{name}Second"
        users.UpdateUser(
            users_pb2.UpdateUserRequest(
                user=users_pb2.User(id=user.id, name=renamed),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            timeout=15,
        )
        eventually(lambda: getattr(erasable.account(user.id), "name", None) == renamed or None)

        request_id = str(uuid.uuid4())
        delete = users_pb2.DeleteUserRequest(id=user.id, request_id=request_id)
        deleted = users.DeleteUser(delete, timeout=15)
        assert (deleted.id, deleted.version) == (user.id, 3)
        assert users.DeleteUser(delete, timeout=15) == deleted  # a retry: the first answer
        began = time.monotonic()
        eventually(lambda: erasable.account(user.id) == grpc.StatusCode.NOT_FOUND or None)
        print(f"\naccount gone {time.monotonic() - began:.2f} s after DeleteUser answered")
        with pytest.raises(grpc.RpcError) as caught:
            users.GetUser(users_pb2.GetUserRequest(id=user.id), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        # The email is free at once, for someone else.
        other = users.CreateUser(
            users_pb2.CreateUserRequest(name="Someone Else", email=email), timeout=15
        ).user
        assert other.id != user.id
        # Erased too, so that no store may hold the address any more.
        users.DeleteUser(users_pb2.DeleteUserRequest(id=other.id), timeout=15)
        eventually(lambda: erasable.account(other.id) == grpc.StatusCode.NOT_FOUND or None)

        # A replayed old event (the creation, as `herald dlq replay` would send it back):
        # stale against the tombstone, so the account stays gone.
        replay_old_creation(kafka_bootstrap, erasable.topic, user)
        marker = users.CreateUser(
            users_pb2.CreateUserRequest(name="After Replay", email=f"{unique('m')}@example.com"),
            timeout=15,
        ).user
        eventually(lambda: getattr(erasable.account(marker.id), "user_id", None) or None)
        assert erasable.account(user.id) == grpc.StatusCode.NOT_FOUND

    for service in (erasable.users, erasable.auth):
        assert service.stop() == 0
    leaks = [
        path
        for path in erasable.folder.rglob("*")
        if path.is_file()
        for value in (name, renamed, local, local.casefold())
        if value.encode() in path.read_bytes()
    ]
    assert leaks == [], leaks  # the stores, their WALs, and both logs at DEBUG


def replay_old_creation(bootstrap: str, topic: str, user: users_pb2.User) -> None:
    """Send the user's UserCreated again, as it was first published."""
    [first] = [m for m in read_all(bootstrap, topic) if m.key() == user.id.encode()][:1]
    kafka = Producer(producer_config(bootstrap, "replayer"))
    kafka.produce(topic, key=first.key(), value=first.value(), headers=first.headers())
    assert kafka.flush(10) == 0


def test_a_delete_racing_updates_keeps_the_users_order(
    erasable: Erasable, kafka_bootstrap: str
) -> None:
    with grpc.insecure_channel(erasable.users.target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        user = users.CreateUser(
            users_pb2.CreateUserRequest(name="Racer", email=f"{unique('r')}@example.com"),
            timeout=15,
        ).user
        stop = threading.Event()
        refusals: list[grpc.StatusCode] = []
        renamed = threading.Event()  # the renames are under way

        def rename() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    users.UpdateUser(
                        users_pb2.UpdateUserRequest(
                            user=users_pb2.User(id=user.id, name=f"Racer {n}"),
                            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                        ),
                        timeout=5,
                    )
                except grpc.RpcError as error:
                    refusals.append(error.code())  # NOT_FOUND, once deleted
                    return
                if n == 3:
                    renamed.set()

        renamer = threading.Thread(target=rename)
        renamer.start()
        assert renamed.wait(15), refusals
        deleted = users.DeleteUser(users_pb2.DeleteUserRequest(id=user.id), timeout=15)
        stop.set()
        renamer.join(10)
    assert refusals in ([], [grpc.StatusCode.NOT_FOUND])
    eventually(lambda: erasable.account(user.id) == grpc.StatusCode.NOT_FOUND or None)
    versions = [
        version_of(m.value() or b"", m.headers())
        for m in read_all(kafka_bootstrap, erasable.topic)
        if m.key() == user.id.encode()
    ]
    # Every version from the creation to the delete, once each and in order; the delete last.
    assert versions == list(range(1, deleted.version + 1)), versions


def version_of(value: bytes, headers: ReceivedHeaders | None) -> int:
    kind = header_values(headers)["ce_type"].rsplit(".", 1)[-1]
    return int(getattr(events_pb2, kind).FromString(value).version)
