"""Faults around the services: Kafka down while users call, users_svc killed mid-load, and
auth_svc's health while its cluster goes away and comes back.

They run real service processes; none may lose an event whose call returned OK.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient, NewTopic
from google.protobuf import field_mask_pb2

from herald.contract.ids import event_id
from herald.kafka.records import header_values
from herald.kafka.topics import EVENTS_TOPIC
from herald.rpc.client import NOT_SERVING, SERVING, health_status
from herald.tools.localkafka import LocalKafka, running_cluster
from herald.tools.processes import ServiceProcess
from herald.tools.topic_admin import ensure_topics
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.conftest import free_port_cluster
from tests.support import eventually, read_all, unique


def events_by_user(bootstrap: str, topic: str, wanted: Mapping[str, int]) -> dict[str, list[str]]:
    """User id → the event ids on the topic for it, in partition order, once each user of
    `wanted` has at least that many distinct events there (the relay may still be catching
    up: it sends a user's changes in rounds, so its first events arrive before its last)."""

    def grouped(messages: list[Message]) -> dict[str, list[str]]:
        ordered: dict[str, list[str]] = {}
        for message in sorted(messages, key=lambda m: (m.partition() or 0, m.offset() or 0)):
            key = (message.key() or b"").decode()
            ordered.setdefault(key, []).append(header_values(message.headers())["ce_id"])
        return ordered

    def all_there() -> dict[str, list[str]] | None:
        seen = grouped(read_all(bootstrap, topic))
        enough = all(len(set(seen.get(user, []))) >= n for user, n in wanted.items())
        return seen if enough else None

    return eventually(all_there, timeout_s=90, every_s=0.5)


def first_copies(event_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(event_ids))


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this module's own, since these tests stop it."""
    with running_cluster(free_port_cluster(tmp_path_factory.mktemp("kafka-faults"))) as cluster:
        ensure_topics(cluster.bootstrap_servers)
        yield cluster


def rename(stub: users_pb2_grpc.UserServiceStub, user_id: str, name: str) -> users_pb2.User:
    request = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=user_id, name=name),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )
    response: users_pb2.UpdateUserResponse = stub.UpdateUser(request, timeout=10)
    return response.user


def test_calls_succeed_while_kafka_is_down_and_every_event_arrives_in_order(
    own_cluster: LocalKafka, tmp_path: Path
) -> None:
    users = ServiceProcess(
        "users_svc",
        {
            "KAFKA_BOOTSTRAP_SERVERS": own_cluster.bootstrap_servers,
            "USERS_DATA_DIR": str(tmp_path / "data"),
            # Short sends, so the relay notices the outage and backs off quickly.
            "USERS_RELAY_TIMEOUT_S": "2",
        },
        tmp_path / "users_svc.log",
    )
    users.start()
    try:
        own_cluster.stop_node(1)
        expected: dict[str, list[str]] = {}
        with grpc.insecure_channel(users.target) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)
            # 10 users, then 40 renames spread over them: 50 calls, all while Kafka is down.
            for n in range(10):
                request = users_pb2.CreateUserRequest(
                    name=f"User {n}", email=f"{unique('u')}@example.com"
                )
                user = stub.CreateUser(request, timeout=10).user
                expected[user.id] = [event_id(user.id, 1)]
            for n in range(40):
                user_id = list(expected)[n % 10]
                renamed = rename(stub, user_id, f"Name {n}")
                expected[user_id].append(event_id(user_id, len(expected[user_id]) + 1))
                assert renamed.name == f"Name {n}"
        own_cluster.start_node(1)

        wanted = {user: len(ids) for user, ids in expected.items()}
        seen = events_by_user(own_cluster.bootstrap_servers, EVENTS_TOPIC, wanted)
        assert {user: first_copies(ids) for user, ids in seen.items()} == expected
    finally:
        assert users.stop() == 0, users.log_text()
        if not own_cluster.is_running(1):
            own_cluster.start_node(1)


def test_a_killed_users_svc_loses_no_acknowledged_event(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique("kill-test-events")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(30)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "USERS_DATA_DIR": str(tmp_path / "data"),
        "HERALD_EVENTS_TOPIC": topic,
    }
    users = ServiceProcess("users_svc", env, tmp_path / "users_svc.log")
    users.start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client(worker: int) -> None:
        with grpc.insecure_channel(users.target) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)
            for n in range(200):
                request = users_pb2.CreateUserRequest(
                    name=f"Load {worker}-{n}", email=f"{unique('load')}@example.com"
                )
                try:
                    user = stub.CreateUser(request, timeout=5).user
                except grpc.RpcError:
                    if killed.is_set():
                        return
                    raise
                with lock:
                    acknowledged.append(user.id)
                    if len(acknowledged) == 300:
                        killed.set()  # first, so the calls the kill breaks are expected
                        users.kill()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client, range(4)))
    assert killed.is_set()

    users.start()  # same data folder: the relay resumes where the killed one stopped
    try:
        seen = events_by_user(kafka_bootstrap, topic, dict.fromkeys(acknowledged, 1))
        # Copies published twice (ack received, row not yet marked) carry the same event id.
        for user_id in acknowledged:
            assert set(seen[user_id]) == {event_id(user_id, 1)}
    finally:
        assert users.stop() == 0, users.log_text()


def test_auth_health_follows_the_cluster(own_cluster: LocalKafka, tmp_path: Path) -> None:
    auth = ServiceProcess(
        "auth_svc",
        {
            "KAFKA_BOOTSTRAP_SERVERS": own_cluster.bootstrap_servers,
            "AUTH_DATA_DIR": str(tmp_path / "auth"),
            "AUTH_CONSUMER_GROUP": unique("health"),
        },
        tmp_path / "auth_svc.log",
    )
    auth.start()
    try:
        own_cluster.stop_node(1)
        eventually(lambda: health_status(auth.target) == NOT_SERVING or None, timeout_s=30)
        own_cluster.start_node(1)
        eventually(lambda: health_status(auth.target) == SERVING or None, timeout_s=60)
    finally:
        assert auth.stop() == 0, auth.log_text()
        if not own_cluster.is_running(1):
            own_cluster.start_node(1)
