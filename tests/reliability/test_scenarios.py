"""Scenarios with real brokers and real service processes, each ending in a whole-history check."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from herald.cloudevents import Headers
from herald.kafka_config import producer_config
from herald.localkafka import LocalKafka
from tests.reliability.harness import POLL_S, Load, Result, Stack, check

Report = Callable[[Result], None]


def stream(stack: Stack) -> Load:
    """A steady stream of creates and renames, about 4 x 100 calls/s, until stopped."""
    assert stack.users is not None
    return Load(
        stack.users.target, workers=4, users_per_worker=10**6, updates_per_user=4, pause_s=0.01
    ).start()


@pytest.fixture(autouse=True)
def broker_running(single_node: LocalKafka) -> Iterator[None]:
    """Whatever a scenario did to the broker, the next one starts with it running."""
    yield
    if not single_node.is_running(1):
        single_node.start_node(1)


def assert_nothing_lost(result: Result) -> None:
    assert (result.lost, result.applied_twice, result.state_mismatch) == (0, 0, 0), result


def test_baseline(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    began = time.monotonic()
    stack = Stack(single_node.bootstrap_servers, tmp_path)
    stack.start()
    try:
        assert stack.users is not None
        # 8 clients x 25 users x (1 create + 24 renames) = 5,000 calls.
        load = Load(stack.users.target, workers=8, users_per_worker=25, updates_per_user=24).start()
        load.join(timeout_s=180)
        result = check(stack, Result("baseline", acknowledged=load.acknowledged))
    finally:
        stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    report(result)
    assert result.acknowledged == 5000
    assert_nothing_lost(result)


def test_kafka_down(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    began = time.monotonic()
    stack = Stack(single_node.bootstrap_servers, tmp_path)
    stack.start()
    try:
        assert stack.users is not None
        load = stream(stack)
        load.progress(100)  # the stream is flowing
        single_node.stop_node(1)
        load.progress(200)  # calls keep succeeding while Kafka is down
        single_node.start_node(1)
        load.progress(100)
        load.stop()
        back = time.monotonic()
        result = check(stack, Result("kafka_down", acknowledged=load.acknowledged))
        result.recovery_s = round(time.monotonic() - back, 2)
    finally:
        stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    report(result)
    assert_nothing_lost(result)


def test_broker_kill(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    began = time.monotonic()
    stack = Stack(single_node.bootstrap_servers, tmp_path)
    stack.start()
    try:
        assert stack.users is not None
        load = stream(stack)
        load.progress(100)
        single_node.kill_node(1)  # SIGKILL: no controlled shutdown
        load.progress(100)
        single_node.start_node(1)
        load.progress(100)
        load.stop()
        back = time.monotonic()
        result = check(stack, Result("broker_kill", acknowledged=load.acknowledged))
        result.recovery_s = round(time.monotonic() - back, 2)
    finally:
        stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    report(result)
    assert_nothing_lost(result)


def test_service_kill(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    """users_svc SIGKILLed mid-load and restarted; auth_svc SIGKILLed mid-stream, restarted;
    a second auth_svc joins the group and leaves it while the stream goes on."""
    began = time.monotonic()
    stack = Stack(single_node.bootstrap_servers, tmp_path)
    stack.start()
    try:
        assert stack.users is not None
        assert stack.auth is not None
        load = stream(stack)
        load.progress(100)
        stack.users.kill()
        stack.users.start()  # same port and data: the relay resumes; clients retry creates
        load.progress(100)
        stack.auth.kill()
        stack.auth.start(timeout_s=60)
        second = stack.another_auth("auth_svc_2")
        second.start(timeout_s=60)  # SERVING once the group has taken it in
        load.progress(100)
        assert second.terminate() == 0
        load.progress(100)
        load.stop()
        back = time.monotonic()
        result = check(stack, Result("service_kill_rebalance", acknowledged=load.acknowledged))
        result.recovery_s = round(time.monotonic() - back, 2)
    finally:
        stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    report(result)
    assert_nothing_lost(result)


POISON: list[tuple[bytes, bytes, Headers]] = [
    (b"poison-1", b"\xff\xfe not protobuf", [("ce_type", b"herald.users.v1.UserCreated")]),
    (b"poison-2", b"", [("ce_type", b"herald.users.v1.NoSuchEvent")]),
    (b"poison-3", b"no headers", []),
    (b"poison-4", b"\x0a" + b"\xff" * 64, [("ce_type", b"herald.users.v1.UserUpdated")]),
    (b"poison-5", b"x" * 500_000, [("ce_type", b"herald.users.v1.UserCreated")]),
]


def test_poison_records(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    began = time.monotonic()
    stack = Stack(single_node.bootstrap_servers, tmp_path)
    stack.start()
    try:
        assert stack.users is not None
        load = stream(stack)
        kafka = Producer(producer_config(single_node.bootstrap_servers, "poisoner"))
        for key, value, headers in POISON:
            load.progress(40)  # spread among the valid events
            kafka.produce(stack.topic, key=key, value=value, headers=headers)
            kafka.poll(0)
        assert kafka.flush(10) == 0
        load.progress(40)
        load.stop()
        result = check(stack, Result("poison_records", acknowledged=load.acknowledged))
        deadline = time.monotonic() + 30
        while result.dead_lettered < len(POISON) and time.monotonic() < deadline:
            time.sleep(POLL_S)
            result = check(stack, result)
    finally:
        stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    report(result)
    assert result.dead_lettered == len(POISON)
    assert_nothing_lost(result)
