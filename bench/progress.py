"""Watching the bench's work arrive: records on the events topic, events applied in auth_svc.

A phase waits on these rather than on fixed sleeps, so it times the work itself.
"""

from __future__ import annotations

import time

import grpc
from confluent_kafka import Consumer, KafkaException, TopicPartition

from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka.topics import EVENTS_TOPIC, TOPICS

# The bench's own topics are partitioned as the events topic is.
PARTITIONS = next(spec.partitions for spec in TOPICS if spec.name == EVENTS_TOPIC)


def applied(target: str) -> int:
    """Events auth_svc has applied, as it reports them."""
    with grpc.insecure_channel(target) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        status = stub.GetConsumerStatus(auth_pb2.GetConsumerStatusRequest(), timeout=5)
        return int(status.events_applied)


def wait_applied(target: str, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (done := applied(target)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"auth_svc applied {done} of {count} events in {timeout_s} s")
        time.sleep(0.02)


class TopicSize:
    """Records on a topic (the sum of its end offsets), asked of the broker."""

    def __init__(self, bootstrap: str, topic: str = EVENTS_TOPIC) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
        self._topic = topic

    def __call__(self) -> int:
        """The sum of the end offsets; while the broker is still taking its partitions back
        after a restart (NOT_LEADER_FOR_PARTITION and the like), asked again."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return sum(
                    self._consumer.get_watermark_offsets(
                        TopicPartition(self._topic, p), timeout=10
                    )[1]
                    for p in range(PARTITIONS)
                )
            except KafkaException:
                # librdkafka does not flag NOT_LEADER_FOR_PARTITION retriable here.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self._consumer.close()


def time_drain(bootstrap: str, topic: str, published: int, backlog: int) -> dict[str, float]:
    """From the broker being back to the whole backlog on the topic: the relay's drain."""
    size = TopicSize(bootstrap, topic)
    ready = time.perf_counter()
    first = None
    try:
        while (on_topic := size() - published) < backlog:
            now = time.perf_counter()
            if first is None and on_topic > 0:
                first = now
            if now - ready > 900:
                raise RuntimeError(f"relay: {on_topic} of {backlog} events after 900 s")
            time.sleep(0.005)
    finally:
        size.close()
    done = time.perf_counter()
    first = first or done
    return {
        # The relay's backoff showing through: from the broker back to its first event.
        "resume_s": round(first - ready, 3),
        "drain_s": round(done - first, 3),
        "events_per_s": round(backlog / max(done - first, 1e-6)),
    }
