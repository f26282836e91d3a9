"""Both services on a local 3-broker cluster: one broker down, writes still acknowledged."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import grpc
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka.topics import EVENTS_TOPIC
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess
from herald.tools.topic_admin import ensure_topics
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.conftest import free_port_cluster
from tests.support import eventually, unique


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    cluster = free_port_cluster(tmp_path_factory.mktemp("three"), 3)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_both_services_serve_on_three_brokers_and_survive_one_down(
    cluster: LocalKafka, tmp_path: Path
) -> None:
    began = time.monotonic()
    cluster.start()
    ensure_topics(cluster.bootstrap_servers)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    # The broker that answers may not have the new topic in its metadata yet: ask again.
    topic = eventually(lambda: admin.list_topics(timeout=10).topics.get(EVENTS_TOPIC))
    partitions = topic.partitions
    assert all(len(p.replicas) == 3 for p in partitions.values())
    resource = ConfigResource(ConfigResource.Type.TOPIC, EVENTS_TOPIC)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["min.insync.replicas"].value == "2"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "USERS_DATA_DIR": str(tmp_path / "users"),
        "AUTH_DATA_DIR": str(tmp_path / "auth"),
    }
    users = ServiceProcess("users_svc", env, tmp_path / "users_svc.log")
    auth = ServiceProcess("auth_svc", env, tmp_path / "auth_svc.log")
    users.start()
    auth.start(timeout_s=60)
    logging.getLogger(__name__).warning(
        "3-broker cluster and both services up in %.1f s", time.monotonic() - began
    )
    try:
        with (
            grpc.insecure_channel(users.target) as users_channel,
            grpc.insecure_channel(auth.target) as auth_channel,
        ):
            user_stub = users_pb2_grpc.UserServiceStub(users_channel)
            auth_stub = auth_pb2_grpc.AuthServiceStub(auth_channel)

            def create() -> str:
                request = users_pb2.CreateUserRequest(
                    name="Ada", email=f"{unique('a')}@example.com"
                )
                return str(user_stub.CreateUser(request, timeout=10).user.id)

            def arrived(user_id: str) -> bool | None:
                try:
                    auth_stub.GetAccount(auth_pb2.GetAccountRequest(user_id=user_id), timeout=5)
                except grpc.RpcError:
                    return None
                return True

            for user_id in [create() for _ in range(5)]:
                eventually(partial(arrived, user_id), timeout_s=60)

            # With two of three replicas left, acks=all writes still meet min.insync.replicas.
            cluster.stop_node(2)
            for user_id in [create() for _ in range(20)]:
                eventually(partial(arrived, user_id), timeout_s=90)
    finally:
        assert users.stop() == 0, users.log_text()
        assert auth.stop() == 0, auth.log_text()
