"""Scenarios of records and stalls auth_svc must ride out while a stream runs: a record too large
to dead-letter whole, forged events among the real ones, its database locked for longer than
the poll interval, and the process frozen past its session timeout."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer
from google.protobuf.message import Message

from herald.contract.events import USERS_SVC_SOURCE
from herald.contract.ids import event_id
from herald.kafka import deadletter
from herald.kafka.config import producer_config
from herald.kafka.records import Headers, header_values
from herald.tools.localkafka import LocalKafka
from herald.users.v1 import events_pb2
from tests.reliability.harness import Result, Run, consumer_status, scenario
from tests.support import end_offsets, eventually, read_topic, within

Report = Callable[[Result], None]
CREATED = "herald.users.v1.UserCreated"
UPDATED = "herald.users.v1.UserUpdated"


def inject(run: Run, records: list[tuple[bytes, bytes, Headers]], **config: str | int) -> None:
    """Write records to the scenario's events topic beside users_svc's, and tell the oracle
    to expect each in the DLQ."""
    kafka = Producer(producer_config(run.stack.bootstrap, "injector", **config))
    for key, value, headers in records:
        kafka.produce(run.stack.topic, key=key, value=value, headers=headers)
    assert kafka.flush(30) == 0
    run.injected |= {key for key, _, _ in records}
    run.expected_dead_letters += len(records)


def dead_letters(run: Run, count: int, timeout_s: float = 60.0) -> list[dict[str, str]]:
    """The headers of the DLQ's records, once it holds `count` or the time is up: fewer is
    not an error here, the oracle judges the dead letters against what was injected."""

    def held() -> int:
        return sum(end_offsets(run.stack.bootstrap, run.stack.dlq).values())

    within(lambda: held() >= count or None, timeout_s, every_s=0.5)
    now = held()
    letters = read_topic(run.stack.bootstrap, run.stack.dlq, now) if now else []
    return [header_values(letter.headers()) for letter in letters]


def test_oversized_record(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("oversized_record", single_node.bootstrap_servers, tmp_path, report) as run:
        load = run.stream()
        load.progress(100)
        # It fits on the topic, not once the dead-letter headers are added.
        value = b"\x0a" * 1_040_000
        headers: Headers = [("ce_type", CREATED.encode()), ("ce_specversion", b"1.0")]
        inject(run, [(b"oversized-1", value, headers)], **{"message.max.bytes": 2_000_000})
        run.fault["injected_bytes"] = len(value)
        load.progress(100)  # the stream goes on behind it
        letters = dead_letters(run, 1)
        run.fault["letter_truncated"] = any(
            letter.get(deadletter.VALUE_TRUNCATED) == "true" for letter in letters
        )
        assert run.stack.auth is not None
        run.fault["auth_svc_running"] = run.stack.auth.running()
        run.end_of_fault()
        load.progress(100)


def forged(
    user_id: str, version: int, kind: str, **changes: object
) -> tuple[bytes, bytes, Headers]:
    """An event about a real user, as a forger would write it: consistent but for `changes`
    (`ce_id`, `ce_source` and `ce_specversion` change headers, anything else the event)."""
    fields: dict[str, object] = {
        "event_id": event_id(user_id, version),
        "user_id": user_id,
        "name": "Forged Name",
        "email": "forged@example.com",
        "version": version,
    }
    fields.update({k: v for k, v in changes.items() if not k.startswith("ce_")})
    event: Message = (events_pb2.UserCreated if kind == CREATED else events_pb2.UserUpdated)(
        **fields  # type: ignore[arg-type]
    )
    values = {
        "ce_specversion": "1.0",
        "ce_id": str(fields["event_id"]),
        "ce_source": USERS_SVC_SOURCE,
        "ce_type": kind,
        **{k: v for k, v in changes.items() if k.startswith("ce_")},
    }
    headers: Headers = [(k, str(v).encode()) for k, v in values.items() if v is not None]
    return user_id.encode(), event.SerializeToString(), headers


def test_forged_events(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("forged_events", single_node.bootstrap_servers, tmp_path, report) as run:
        load = run.stream()
        load.progress(200)
        # Real users, still being renamed by the stream: a forgery that got through would
        # freeze them (2^63-1), make their next change a duplicate, or change their state.
        victims = list(dict.fromkeys(ack.user_id for ack in run.ledger.acks))[:4]
        first, second, third, fourth = victims
        records = [
            forged(first, 2**63 - 1, UPDATED),
            forged(second, 2, UPDATED, event_id=event_id(second, 3)),
            forged(third, -5, CREATED),
            forged(third, 2, UPDATED, name="n" * 900_000),
            forged(fourth, 2, UPDATED, email="not an email"),
            forged(fourth, 3, UPDATED, ce_source="/somebody/else"),
            forged(first, 2, UPDATED, ce_id=event_id(first, 9)),
            forged(second, 2, UPDATED, ce_specversion=None),
        ]
        for record in records:
            inject(run, [record])
            load.progress(20)
        run.fault["forged"] = len(records)
        reasons = {why[deadletter.ERROR_MESSAGE] for why in dead_letters(run, 8)}
        run.fault["distinct_reasons"] = len(reasons)
        run.end_of_fault()
        load.progress(200)  # the victims keep changing after the forgeries


def lock_database(path: Path, seconds: float, locked: threading.Event) -> None:
    """Hold an exclusive lock on a SQLite file: every write waits, then fails as busy."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def paused_within(target: str, timeout_s: float) -> bool:
    """Whether the auth_svc at `target` says it is paused, at some point within the time."""
    paused = within(lambda: consumer_status(target).paused_reason or None, timeout_s, 0.5)
    return paused is not None


def test_auth_db_outage(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    # A poll interval shorter than the outage: waiting without polling would be evicted.
    env = {"AUTH_MAX_POLL_INTERVAL_MS": "20000"}
    with scenario(
        "auth_db_outage", single_node.bootstrap_servers, tmp_path, report, env=env
    ) as run:
        auth = run.stack.auth
        assert auth is not None
        load = run.stream()
        load.progress(100)
        locked = threading.Event()
        holder = threading.Thread(
            target=lock_database,
            args=(run.stack.folder / "auth" / "auth.sqlite3", 45.0, locked),
        )
        holder.start()
        assert locked.wait(30)
        run.fault["lock_s"] = 45.0
        load.progress(300)  # users_svc goes on; auth holds what it reads
        run.fault["paused_during"] = paused_within(auth.target, timeout_s=30)
        holder.join()
        run.end_of_fault()
        load.progress(100)
        status = consumer_status(auth.target)
        run.fault["rebalances"] = status.rebalances
        run.fault["pauses"] = status.pauses
        run.fault["paused_after"] = bool(status.paused_reason)


def test_auth_paused(single_node: LocalKafka, tmp_path: Path, report: Report) -> None:
    with scenario("auth_paused", single_node.bootstrap_servers, tmp_path, report) as run:
        first = run.stack.auth
        assert first is not None
        load = run.stream()
        load.progress(100)
        second = run.stack.another_auth("auth_svc_2")
        second.start(timeout_s=60)
        load.progress(100)
        before = consumer_status(first.target)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            # Past the 10 s session timeout: the group gives every partition to the other.
            run.fault["second_took_all"] = eventually(
                lambda: len(consumer_status(second.target).partitions) == 6 or None,
                timeout_s=60,
            )
            load.progress(200)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        # The frozen member wakes up believing it still owns its partitions.
        after = eventually(
            lambda: (
                ((s := consumer_status(first.target)).rebalances > before.rebalances and s) or None
            ),
            timeout_s=60,
        )
        run.fault["first_rebalances"] = after.rebalances - before.rebalances
        run.end_of_fault()
        load.progress(100)
        # Stale commits either never leave the frozen member (librdkafka knows its assignment
        # is lost) or are refused by the group, as the other member's are when the group's
        # generation moves under it: whichever, each is counted.
        run.fault["commits_refused"] = (
            consumer_status(first.target).commits_refused
            + consumer_status(second.target).commits_refused
        )
        run.fault["second_exit"] = second.stop()
