"""Single-node scenarios with real service processes, each ending in a whole-history check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Producer

from herald.kafka.config import producer_config
from herald.kafka.records import Headers
from herald.rpc.client import health_status
from herald.rpc.tls import channel
from herald.tools.localkafka import LocalKafka
from herald.tools.secure_files import SecureFiles
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.reliability.harness import Result, consumer_status, scenario
from tests.secure_kafka import produce_as
from tests.support import end_offsets, eventually, uid

Report = Callable[[Result], None]


@pytest.fixture(autouse=True)
def broker_running(single_node: LocalKafka) -> Iterator[None]:
    """Whatever a scenario did to the broker, the next one starts with it running."""
    yield
    if not single_node.is_running(1):
        single_node.start_node(1)


def test_baseline(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("baseline", single_node.bootstrap_servers, tmp_path, report) as run:
        # 8 clients x 25 users x (1 create + 24 renames) = 5,000 calls.
        run.loaded(workers=8, users_per_worker=25, updates_per_user=24).start().join(180)
    assert run.result is not None
    assert run.result.acknowledged == 5000


def test_baseline_secure(secure_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    """The baseline's load with everything on: Kafka SASL_SSL with Herald's ACLs, each
    service its own principal; gRPC mTLS with tokens, each client creating with a
    `users.create` token and renaming each user with that user's own token."""
    assert secure_node.security is not None
    secure = SecureFiles(secure_node.security.folder)  # the cluster's CA signs both sides
    bootstrap = secure_node.bootstrap_servers
    with scenario(
        "baseline_secure", bootstrap, tmp_path, report, secure=secure, kafka=secure_node
    ) as run:
        run.loaded(workers=8, users_per_worker=25, updates_per_user=24).start().join(180)
        assert run.stack.users is not None
        run.fault.update(security_evidence(run.stack.users.target, secure))
        run.fault["auth_svc_writes_events"] = write_as(secure_node, "auth-svc", run.stack.topic)
    assert run.result is not None
    assert run.result.acknowledged == 5000


def write_as(cluster: LocalKafka, principal: str, topic: str) -> str:
    """What the broker says to `principal` producing one record to `topic`."""
    error = produce_as(cluster, principal, topic, b"forged")
    return "OK" if error is None else str(error.name())


def security_evidence(target: str, secure: SecureFiles) -> dict[str, object]:
    """What the users_svc at `target` told callers who lacked something the load had."""

    def code_of(metadata: tuple[tuple[str, str], ...]) -> str:
        request = users_pb2.GetUserRequest(id=uid("someone"))
        with channel(target, secure.client_tls()) as connection:
            try:
                users_pb2_grpc.UserServiceStub(connection).GetUser(
                    request, timeout=5, metadata=metadata
                )
            except grpc.RpcError as error:
                return str(error.code().name)
        return "OK"

    return {
        "plaintext_health": health_status(target, timeout_s=2),
        "no_token": code_of(()),
        "other_user": code_of(secure.bearer(uid("somebody else"))),
    }


def test_kafka_down(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("kafka_down", single_node.bootstrap_servers, tmp_path, report) as run:
        load = run.stream()
        load.progress(100)  # the stream is flowing
        with run.watch_outbox() as outbox:
            single_node.stop_node(1)
            run.fault["broker_running"] = single_node.is_running(1)
            load.progress(200)  # calls keep succeeding while Kafka is down
        run.fault["outbox_peak"] = outbox.peak
        single_node.start_node(1)
        run.end_of_fault()
        load.progress(100)


def test_delete_during_stream(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    """kafka_down's fault with every third user of the stream erased after its renames: the
    deletes committed while Kafka is down reach auth_svc after it, in order, once each."""
    with scenario("delete_during_stream", single_node.bootstrap_servers, tmp_path, report) as run:
        load = run.stream(delete_every=3)
        load.progress(100)
        with run.watch_outbox() as outbox:
            single_node.stop_node(1)
            run.fault["broker_running"] = single_node.is_running(1)
            before = load.deleted
            load.progress(300)  # creates, renames and deletes keep succeeding
            run.fault["deleted_while_down"] = load.deleted - before
        run.fault["outbox_peak"] = outbox.peak
        single_node.start_node(1)
        run.end_of_fault()
        load.progress(100)
    assert run.result is not None


def test_broker_kill(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("broker_kill", single_node.bootstrap_servers, tmp_path, report) as run:
        load = run.stream()
        load.progress(100)
        with run.watch_outbox() as outbox:
            single_node.kill_node(1)  # SIGKILL: no controlled shutdown
            run.fault["broker_running"] = single_node.is_running(1)
            load.progress(100)
        run.fault["outbox_peak"] = outbox.peak
        single_node.start_node(1)
        run.end_of_fault()
        load.progress(100)


def test_service_kill(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    """users_svc SIGKILLed mid-load and restarted; auth_svc SIGKILLed mid-stream, restarted;
    a second auth_svc joins the group and leaves it while the stream goes on."""
    with scenario("service_kill_rebalance", single_node.bootstrap_servers, tmp_path, report) as run:
        users, auth = run.stack.users, run.stack.auth
        assert users is not None
        assert auth is not None
        load = run.stream()
        load.progress(100)
        run.fault["users_svc_exit"] = users.kill()
        users.start()  # same port and data: the relay resumes; clients retry creates
        load.progress(100)
        run.fault["auth_svc_exit"] = auth.kill()
        auth.start(timeout_s=60)
        second = run.stack.another_auth("auth_svc_2")
        second.start(timeout_s=60)  # SERVING once the group has taken it in
        run.fault["second_member_partitions"] = eventually(
            lambda: assigned_partitions(second.target) or None, timeout_s=60
        )
        load.progress(100)
        run.fault["second_member_exit"] = second.stop()
        run.end_of_fault()
        load.progress(100)


def assigned_partitions(target: str) -> int:
    """How many partitions the auth_svc at `target` says it holds (GetConsumerStatus)."""
    return len(consumer_status(target).partitions)


POISON: list[tuple[bytes, bytes, Headers]] = [
    (b"poison-1", b"\xff\xfe not protobuf", [("ce_type", b"herald.users.v1.UserCreated")]),
    (b"poison-2", b"", [("ce_type", b"herald.users.v1.NoSuchEvent")]),
    (b"poison-3", b"no headers", []),
    (b"poison-4", b"\x0a" + b"\xff" * 64, [("ce_type", b"herald.users.v1.UserUpdated")]),
    (b"poison-5", b"x" * 500_000, [("ce_type", b"herald.users.v1.UserCreated")]),
]


def test_poison_records(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("poison_records", single_node.bootstrap_servers, tmp_path, report) as run:
        load = run.stream()
        kafka = Producer(producer_config(single_node.bootstrap_servers, "poisoner"))
        for key, value, headers in POISON:
            load.progress(40)  # spread among the valid events
            kafka.produce(run.stack.topic, key=key, value=value, headers=headers)
            kafka.poll(0)
        assert kafka.flush(10) == 0
        run.injected = {key for key, _, _ in POISON}
        run.expected_dead_letters = run.fault["injected"] = len(POISON)
        load.progress(40)
        load.stop()
        # Dead letters are written as auth reaches them; wait for the last one.
        eventually(
            lambda: (
                sum(end_offsets(single_node.bootstrap_servers, run.stack.dlq).values())
                == len(POISON)
                or None
            ),
            timeout_s=60,
        )
