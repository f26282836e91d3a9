"""The baselines: what confluent-kafka alone does on the same broker, in the same run.

Each one uses Herald's own client settings (herald.kafka.config), so the ratio to it is
the cost of Herald's work, not of different safety settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from bench.stats import Latencies
from herald.kafka.config import consumer_config, producer_config
from herald.kafka.records import Record
from herald.users.v1 import events_pb2


def produce_all(producer: Producer, records: Sequence[Record], topic: str | None = None) -> None:
    """Queue every record, waiting for room when librdkafka's queue is full."""
    for record in records:
        while True:
            try:
                producer.produce(
                    topic or record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)


@dataclass(frozen=True)
class Throughput:
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds

    def summary(self) -> dict[str, float]:
        return {"count": self.count, "seconds": round(self.seconds, 3), "per_s": round(self.per_s)}


def produce_throughput(
    bootstrap: str, records: Sequence[Record], topic: str, *, warm: bool = False
) -> Throughput:
    """A bare idempotent producer sending `records` to `topic`: from the first produce to
    the last acknowledgement. With `warm`, connected, its producer id acquired and the
    topic's leaders known before the clock starts, as the relay's long-lived producer is
    (50 copies of the first record go first)."""
    producer = Producer(producer_config(bootstrap, "bench-bare-producer"))
    if warm:
        _warm_up(producer, records[0], topic)
    began = time.perf_counter()
    produce_all(producer, records, topic)
    left = producer.flush(120)
    seconds = time.perf_counter() - began
    if left:
        raise RuntimeError(f"bare producer: {left} records unacknowledged")
    return Throughput(len(records), seconds)


def consume_throughput(bootstrap: str, topic: str, expected: int, group: str) -> Throughput:
    """A bare consume-and-decode loop over `topic` from the start: from the first record
    received to the `expected`-th.

    The floor for auth_svc's consumer: librdkafka's batch call at the size auth_svc asks for
    (1,000), one protobuf decode per record, nothing else; no header read, no offsets stored.
    """
    consumer = Consumer(consumer_config(bootstrap, group, "bench-bare-consumer"))
    consumer.subscribe([topic])
    seen, began = 0, 0.0
    decode = events_pb2.UserCreated.FromString
    deadline = time.monotonic() + 300
    try:
        while seen < expected and time.monotonic() < deadline:
            batch = consumer.consume(1000, 1.0)
            if batch and not seen:
                began = time.perf_counter()
            for message in batch:
                if message.error() is None:
                    decode(message.value() or b"")
                    seen += 1
        seconds = time.perf_counter() - began
    finally:
        consumer.close()
    if seen < expected:
        raise RuntimeError(f"bare consumer: {seen} of {expected} records in 300 s")
    return Throughput(seen, seconds)


def produce_cpu_per_record(
    bootstrap: str, records: Sequence[Record], topic: str, rate: int
) -> dict[str, float]:
    """A bare idempotent producer sending `records` at `rate` per second: the CPU this
    process (its Python and librdkafka's threads) spent per acknowledged record, in µs."""
    producer = Producer(producer_config(bootstrap, "bench-bare-paced"))
    _warm_up(producer, records[0], topic)
    cpu_before, began = time.process_time(), time.perf_counter()
    interval = 1 / rate
    for n, record in enumerate(records):
        due = began + n * interval
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        producer.produce(topic, value=record.value, key=record.key, headers=record.headers)
        producer.poll(0)
    left = producer.flush(30)
    cpu = time.process_time() - cpu_before
    if left:
        raise RuntimeError(f"paced producer: {left} records unacknowledged")
    return {"records": len(records), "rate": rate, "cpu_us_per_record": cpu / len(records) * 1e6}


def round_trip(
    bootstrap: str, topic: str, record: Record, *, partitions: int, rate: int, seconds: float
) -> Latencies:
    """Produce `record` (its key made unique) at `rate` per second for `seconds` while a
    consumer in the same process reads the topic: the latency from each produce call to
    the consumer holding the record."""
    # linger.ms 0: Herald's relay flushes every batch, and a flush sends at once whatever
    # linger.ms says (librdkafka >= 1.8), so a lingering baseline would flatter Herald.
    producer = Producer(producer_config(bootstrap, "bench-rt-producer", **{"linger.ms": 0}))
    consumer = Consumer(consumer_config(bootstrap, f"bench-rt-{time.time_ns()}", "bench-rt"))
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
    sent: dict[bytes, int] = {}
    latencies: list[float] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or len(latencies) < len(sent):
            # poll, not consume(n): consume waits for n records or its whole timeout.
            message = consumer.poll(0.05)
            if message is not None and not message.error():
                began = sent.get(message.key() or b"")
                if began is not None:
                    latencies.append((time.perf_counter_ns() - began) / 1e6)
            if done.is_set() and time.monotonic() > drain_deadline:
                break

    drain_deadline = float("inf")
    reader = threading.Thread(target=consume, name="bench-rt-consumer")
    reader.start()
    try:
        _warm_up(producer, record, topic)
        # Records before this point are the warm-up: they are not in `sent`.
        interval = 1 / rate
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) < start + seconds:
            due = start + n * interval
            if now < due:
                time.sleep(due - now)
            key = b"rt-%d" % n
            sent[key] = time.perf_counter_ns()
            producer.produce(topic, value=record.value, key=key, headers=record.headers)
            producer.poll(0)
            n += 1
        producer.flush(30)
        drain_deadline = time.monotonic() + 10
    finally:
        done.set()
        reader.join()
        consumer.close()
    return Latencies(latencies)


def _warm_up(producer: Producer, record: Record, topic: str) -> None:
    """Connections up and partition leaders known before anything is timed."""
    for n in range(50):
        producer.produce(topic, value=record.value, key=b"warm-%d" % n, headers=record.headers)
    producer.flush(30)
    time.sleep(0.5)  # let the consumer's fetches settle on the new end offsets
