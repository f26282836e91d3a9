"""DeliveringProducer against librdkafka's built-in mock cluster: fast, no JVM."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from herald.kafka_config import producer_config
from herald.localkafka import free_ports
from herald.producer import DeliveringProducer, DeliveryError, Record


def record(key: bytes, value: bytes = b"v") -> Record:
    return Record(topic="mock-events", key=key, value=value, headers=[("ce_id", b"1")])


@pytest.fixture
def producer() -> Iterator[DeliveringProducer]:
    # `test.mock.num.brokers` makes librdkafka start an in-process mock cluster and point
    # the client at it; topics are created on first use.
    config = producer_config("unused:1", "test", **{"test.mock.num.brokers": 1})
    producer = DeliveringProducer(config)
    yield producer
    producer.close(5)


def test_send_returns_where_the_record_landed(producer: DeliveringProducer) -> None:
    first = producer.send(record(b"user-1"), timeout_s=10)
    second = producer.send(record(b"user-1"), timeout_s=10)
    assert second.partition == first.partition
    assert second.offset == first.offset + 1


def test_concurrent_senders_each_get_their_own_acknowledgement(
    producer: DeliveringProducer,
) -> None:
    with ThreadPoolExecutor(8) as pool:
        delivered = list(pool.map(lambda i: producer.send(record(b"k", b"%d" % i), 10), range(200)))
    assert sorted(d.offset for d in delivered) == list(range(200))


def test_unreachable_broker_is_a_delivery_error_not_a_hang() -> None:
    [closed_port] = free_ports(1)
    producer = DeliveringProducer(
        producer_config(f"127.0.0.1:{closed_port}", "test", **{"message.timeout.ms": 300})
    )
    try:
        with pytest.raises(DeliveryError):
            producer.send(record(b"user-1"), timeout_s=10)
    finally:
        assert producer.close(1) == 0


def test_waiting_past_the_timeout_is_a_delivery_error() -> None:
    [closed_port] = free_ports(1)
    producer = DeliveringProducer(producer_config(f"127.0.0.1:{closed_port}", "test"))
    try:
        with pytest.raises(DeliveryError, match="not acknowledged within"):
            producer.send(record(b"user-1"), timeout_s=0.2)
    finally:
        # The record is still queued: close reports it instead of dropping it silently.
        assert producer.close(0.1) == 1
