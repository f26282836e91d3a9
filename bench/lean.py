"""The lean apply loop: auth_svc's durable work with nothing of Herald's around it.

It is the baseline of `consumer_vs_lean_apply`: what a hand-written loop on the same
libraries needs to turn a topic into durable rows. Batched consume, protobuf decode, one
upsert statement per batch that keeps a row's newest version, a commit synced to disk as
auth_svc's is (WAL, `synchronous=FULL`), and the offsets stored only after it. No inbox, no
routing by header, no dead letters, no status: what is left between it and auth_svc is the
cost of those.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicPartition

from bench.bare import Throughput
from herald.kafka.config import consumer_config
from herald.users.v1 import events_pb2

_UPSERT = (
    "INSERT INTO accounts (user_id, name, email, version, event_id) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, email = excluded.email,"
    " version = excluded.version, event_id = excluded.event_id"
    " WHERE excluded.version > accounts.version"
)


def lean_apply_throughput(
    bootstrap: str, topic: str, expected: int, group: str, database: Path
) -> Throughput:
    """Apply `expected` records of `topic` from the start: from the first record received to
    the commit that holds the last, its offsets stored."""
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS accounts (user_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
        " email TEXT NOT NULL, version INTEGER NOT NULL, event_id TEXT NOT NULL)"
    )
    consumer = Consumer(consumer_config(bootstrap, group, "bench-lean-apply"))
    consumer.subscribe([topic])
    decode = events_pb2.UserCreated.FromString
    applied, began = 0, 0.0
    deadline = time.monotonic() + 300
    try:
        while applied < expected and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
            if not batch:
                continue
            if not applied:
                began = time.perf_counter()
            rows = []
            for message in batch:
                event = decode(message.value() or b"")
                rows.append((event.user_id, event.name, event.email, event.version, event.event_id))
            db.execute("BEGIN")
            db.executemany(_UPSERT, rows)
            db.execute("COMMIT")
            consumer.store_offsets(offsets=_next_offsets(batch))
            applied += len(batch)
        seconds = time.perf_counter() - began
    finally:
        consumer.close()
        db.close()
    if applied < expected:
        raise RuntimeError(f"lean apply: {applied} of {expected} records in 300 s")
    return Throughput(applied, seconds)


def _next_offsets(batch: list[Message]) -> list[TopicPartition]:
    """Each partition's offset after the last of its records in `batch`."""
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        last[(message.topic() or "", message.partition() or 0)] = message.offset() or 0
    return [TopicPartition(topic, p, offset + 1) for (topic, p), offset in last.items()]
