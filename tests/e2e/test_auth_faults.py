"""auth_svc processes under faults: killed between apply and commit, and a group whose members
change while events stream in. Neither may lose an event or apply one twice."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.contract.events import USERS_SVC_SOURCE
from herald.kafka.config import producer_config
from herald.tools.processes import ServiceProcess
from tests.support import eventually, uid, unique
from users_svc.events import EventRecordFactory
from users_svc.model import User

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Status = auth_pb2.GetConsumerStatusResponse


@pytest.fixture
def topics(kafka_bootstrap: str) -> tuple[str, str]:
    events, dlq = unique("auth-events"), unique("auth-dlq")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    new = [
        NewTopic(events, num_partitions=6, replication_factor=1),
        NewTopic(dlq, num_partitions=1, replication_factor=1),
    ]
    for future in admin.create_topics(new).values():
        future.result(30)
    return events, dlq


def produce_users(bootstrap: str, topic: str, numbers: range, pause_s: float = 0.0) -> None:
    """One UserCreated per number; with `pause_s`, a pause after every 100 of them."""
    kafka = Producer(producer_config(bootstrap, "test-events"))
    records = EventRecordFactory(topic, USERS_SVC_SOURCE)
    for n in numbers:
        user = User(uid(f"user-{n}"), f"User {n}", f"u{n}@example.com", T0, T0, 1)
        record = records.user_created(user)
        kafka.produce(topic, key=record.key, value=record.value, headers=record.headers)
        if pause_s and n % 100 == 99:
            kafka.poll(0)
            threading.Event().wait(pause_s)
    assert kafka.flush(30) == 0


def auth_process(
    bootstrap: str, topics: tuple[str, str], folder: Path, name: str, **extra: str
) -> ServiceProcess:
    events, dlq = topics
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "HERALD_EVENTS_TOPIC": events,
        "HERALD_DLQ_TOPIC": dlq,
        "AUTH_CONSUMER_GROUP": f"group-{events}",
        # Instances of one group on one host share the database, so the inbox is shared.
        "AUTH_DATA_DIR": str(folder / "auth-data"),
        **extra,
    }
    return ServiceProcess("auth_svc", env, folder / f"{name}.log")


def status(service: ServiceProcess) -> Status:
    with grpc.insecure_channel(service.target) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        reply: Status = stub.GetConsumerStatus(auth_pb2.GetConsumerStatusRequest(), timeout=5)
        return reply


def until(
    service: ServiceProcess, condition: Callable[[Status], bool], timeout_s: float = 60
) -> Status:
    def probe() -> Status | None:
        current = status(service)
        return current if condition(current) else None

    return eventually(probe, timeout_s=timeout_s, every_s=0.2)


def inbox(folder: Path) -> dict[str, int]:
    """Outcome → events recorded in the shared inbox; and the number of accounts."""
    with sqlite3.connect(folder / "auth-data" / "auth.sqlite3") as connection:
        counts = dict(
            connection.execute(
                "SELECT outcome, count(*) FROM processed_events GROUP BY outcome"
            ).fetchall()
        )
        counts["accounts"] = connection.execute("SELECT count(*) FROM accounts").fetchone()[0]
    return counts


def test_killed_after_applying_before_committing_applies_nothing_twice(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    # Offsets are committed only every 10 minutes: a SIGKILL after the events are applied
    # always lands before their commit.
    auth = auth_process(kafka_bootstrap, topics, tmp_path, "auth", AUTH_COMMIT_INTERVAL_MS="600000")
    auth.start()
    produce_users(kafka_bootstrap, topics[0], range(200))
    until(auth, lambda s: s.events_applied == 200)
    auth.kill()

    auth.start()  # same group, same database: Kafka redelivers all 200
    redelivered = until(auth, lambda s: s.duplicates_skipped == 200)
    assert (redelivered.events_applied, redelivered.dead_lettered) == (0, 0)
    assert inbox(tmp_path) == {"applied": 200, "accounts": 200}
    assert auth.stop() == 0, auth.log_text()


def test_a_member_joining_and_one_leaving_mid_stream_lose_nothing_and_apply_nothing_twice(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    first = auth_process(kafka_bootstrap, topics, tmp_path, "first")
    second = auth_process(kafka_bootstrap, topics, tmp_path, "second")
    first.start()
    # 5,000 events over about 15 s, so both group changes happen while events flow.
    stream = threading.Thread(
        target=produce_users, args=(kafka_bootstrap, topics[0], range(5000), 0.3)
    )
    stream.start()
    try:
        until(first, lambda s: s.events_applied >= 300)
        second.start()  # joins: the group rebalances, cooperatively
        until(second, lambda s: s.events_applied > 0)
        assert stream.is_alive(), "the stream ended before the group changed"
        assert first.stop() == 0, first.log_text()  # leaves: its partitions move over
        assert stream.is_alive(), "the stream ended before the group changed"
    finally:
        stream.join(120)

    until(second, lambda s: len(s.partitions) == 6 and s.total_lag == 0, timeout_s=90)
    # The shared inbox saw each event exactly once and every one changed an account.
    assert inbox(tmp_path) == {"applied": 5000, "accounts": 5000}
    assert status(second).dead_lettered == 0
    assert second.stop() == 0, second.log_text()
