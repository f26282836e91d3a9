"""KafkaBatchSender against librdkafka's built-in mock cluster: fast, no JVM."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from herald.kafka.config import producer_config
from herald.kafka.records import Record
from herald.kafka.sender import KafkaBatchSender
from herald.tools.processes import free_ports


def record(key: bytes, value: bytes = b"v") -> Record:
    return Record(topic="mock-events", key=key, value=value, headers=[("ce_id", b"1")])


@pytest.fixture
def sender() -> Iterator[KafkaBatchSender]:
    # `test.mock.num.brokers` makes librdkafka start an in-process mock cluster and point
    # the client at it; topics are created on first use.
    config = producer_config("unused:1", "test", **{"test.mock.num.brokers": 1})
    sender = KafkaBatchSender(config, timeout_s=5)
    yield sender
    assert sender.close(5) == 0


def test_every_record_of_a_batch_is_acknowledged(sender: KafkaBatchSender) -> None:
    assert sender.send([record(b"k", b"%d" % n) for n in range(500)]) == [True] * 500


def test_an_unreachable_broker_fails_every_record_within_the_message_timeout() -> None:
    [closed_port] = free_ports(1)
    sender = KafkaBatchSender(producer_config(f"127.0.0.1:{closed_port}", "test"), timeout_s=0.3)
    began = time.monotonic()
    assert sender.send([record(b"a"), record(b"b")]) == [False, False]
    assert time.monotonic() - began < 5
    # Nothing is left queued to be delivered behind the caller's back.
    assert sender.close(0.1) == 0
