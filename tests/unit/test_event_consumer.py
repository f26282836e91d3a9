"""The consumer loop over a scripted Kafka consumer and a real store: batches, dead letters,
retries, and which offsets are stored when. The broker itself is in tests/integration."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from auth_svc.accounts import DecodedEvent
from auth_svc.applying import RetryPolicy
from auth_svc.consumer import EventConsumer, Subscription
from auth_svc.decoders import DECODERS
from auth_svc.settings import Settings
from auth_svc.sqlite_store import SqliteAccountStore
from auth_svc.status import StatusBoard
from herald.contract.events import USERS_SVC_SOURCE
from herald.kafka.records import Headers, Record, header_values
from tests.support import FlakyStore, eventually, uid
from users_svc.events import EventRecordFactory
from users_svc.model import User

TOPIC = "events"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(user_id: str, partition: int, offset: int) -> Message:
    record = EventRecordFactory(TOPIC, USERS_SVC_SOURCE).user_created(
        User(uid(user_id), f"name-{user_id}", f"{user_id}@example.com", T0, T0, 1)
    )
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=record.key,
        value=record.value,
        headers=record.headers,
    )


# The CloudEvents headers every Herald event has, whatever its type.
ENVELOPE: Headers = [("ce_specversion", b"1.0"), ("ce_source", USERS_SVC_SOURCE.encode())]


def poison(partition: int, offset: int, headers: Headers | None = None) -> Message:
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=f"poison-{partition}-{offset}".encode(),
        value=b"\xff garbage",
        headers=headers
        if headers is not None
        else [*ENVELOPE, ("ce_type", b"herald.users.v1.Nope")],
    )


def kafka_error(fatal: bool) -> Message:
    return Message(error=KafkaError(KafkaError._TRANSPORT, "broker down", fatal=fatal))


class ScriptedKafka:
    """Hands out the records it is given like librdkafka's consume(): what is there, up to
    the number asked for. Once it has nothing left, it sets `stopping`."""

    def __init__(self, stopping: threading.Event, *batches: list[Message]) -> None:
        self.stopping = stopping
        self.batches = [list(batch) for batch in batches]
        self.stored: list[list[tuple[str, int, int]]] = []
        self.consumed: list[tuple[int, float]] = []  # (num_messages, timeout) of each call
        self.closed = False
        self.assigned = [TopicPartition(TOPIC, partition) for partition in range(3)]
        self.paused = False
        self.pauses = 0
        self.seeks: list[tuple[int, int]] = []
        # Whether consume() hands out records while paused, as librdkafka may with records
        # it fetched before the pause.
        self.prefetched = False

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        callbacks["on_assign"](self, self.assigned)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        self.consumed.append((num_messages, timeout))
        if self.paused and not self.prefetched:
            return []
        if not self.batches:
            if not self.paused:
                self.stopping.set()
            return []
        taken, self.batches[0] = self.batches[0][:num_messages], self.batches[0][num_messages:]
        if not self.batches[0]:
            self.batches.pop(0)
        return taken

    def store_offsets(self, *, offsets: list[TopicPartition]) -> None:
        owned = {tp.partition for tp in self.assigned}
        if not any(tp.partition in owned for tp in offsets):
            # librdkafka's answer when none of the partitions is assigned any more.
            raise KafkaException(KafkaError(KafkaError._STATE, "not assigned"))
        self.stored.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])

    def assignment(self) -> list[TopicPartition]:
        return self.assigned

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.pauses += not self.paused
        self.paused = True

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused = False

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.partition, partition.offset))

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, cached: bool = False
    ) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None:
        self.closed = True


class Coordinator:
    """The group coordinator as the lag client reaches it: what is committed, per partition
    of TOPIC (nothing, unless told), or an error while it is out of reach."""

    def __init__(self) -> None:
        self.offsets: dict[int, int] = {}
        self.reachable = True
        self.closed = False

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if not self.reachable:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "coordinator away"))
        return [
            TopicPartition(tp.topic, tp.partition, self.offsets.get(tp.partition, -1001))
            for tp in partitions
        ]

    def close(self) -> None:
        self.closed = True


class DeadLetters:
    def __init__(self, refuses: Callable[[], bool]) -> None:
        self.records: list[Record] = []
        self.refuses = refuses

    def send(self, records: Sequence[Record]) -> list[bool]:
        if self.refuses():
            return [False] * len(records)
        self.records.extend(records)
        return [True] * len(records)


@pytest.fixture
def store(tmp_path: Path) -> SqliteAccountStore:
    return SqliteAccountStore(tmp_path / "auth.sqlite3")


def never(events: Sequence[DecodedEvent]) -> bool:
    return False


def run(
    store: SqliteAccountStore,
    *batches: list[Message],
    failing: Callable[[Sequence[DecodedEvent]], bool] = never,
    batch_size: int = 500,
    stopping: threading.Event | None = None,
    dlq_refuses: Callable[[], bool] = lambda: False,
    prefetched: bool = False,
    holder: list[EventConsumer] | None = None,
    kafka_holder: list[ScriptedKafka] | None = None,
    coordinator: Coordinator | None = None,
) -> tuple[EventConsumer, ScriptedKafka, FlakyStore, DeadLetters]:
    """Run the loop until the script is used up (or `stopping` is set by someone else);
    `holder`, if given, gets the consumer before it runs."""
    stopping = stopping or threading.Event()
    kafka = ScriptedKafka(stopping, *batches)
    kafka.prefetched = prefetched
    if kafka_holder is not None:
        kafka_holder.append(kafka)
    flaky = FlakyStore(store, failing)
    dead_letters = DeadLetters(dlq_refuses)
    consumer = EventConsumer(
        cast(Consumer, kafka),
        Subscription(group_id="test", topic=TOPIC, dlq_topic="dlq"),
        store=flaky,
        decoders=DECODERS,
        dead_letters=dead_letters,
        # Waits of a few milliseconds at most, so a long outage takes little of the test's time.
        tuning=replace(
            Settings(batch_size=batch_size).consumer_tuning(), retry=RetryPolicy(3, 0.001, 0.005)
        ),
        lag_client=cast(Consumer, coordinator or Coordinator()),
        clock=lambda: NOW,
    )
    if holder is not None:
        holder.append(consumer)
    consumer.run(stopping)
    assert kafka.closed
    return consumer, kafka, flaky, dead_letters


def counts(consumer: EventConsumer) -> dict[str, int]:
    status = consumer.status()
    return {
        name: value
        for name in ("applied", "duplicates", "stale", "dead_lettered", "retries")
        if (value := getattr(status, name))
    }


def test_a_batch_is_one_store_transaction_and_stores_one_offset_per_partition(
    store: SqliteAccountStore,
) -> None:
    batch = [event("u1", 0, 10), event("u2", 1, 4), event("u1", 0, 11), event("u3", 0, 12)]
    consumer, kafka, flaky, _ = run(store, batch)
    assert flaky.batches == [4]
    assert kafka.stored == [[(TOPIC, 0, 13), (TOPIC, 1, 5)]]
    assert counts(consumer) == {"applied": 3, "duplicates": 1}
    account = store.get(uid("u1"))
    assert account is not None
    assert (account.create_time, account.update_time) == (T0, NOW)


def test_batches_are_capped_at_the_batch_size(store: SqliteAccountStore) -> None:
    consumer, kafka, flaky, _ = run(store, [event(f"u{n}", 0, n) for n in range(5)], batch_size=2)
    assert flaky.batches == [2, 2, 1]
    assert [offsets[0][2] for offsets in kafka.stored] == [2, 4, 5]
    assert counts(consumer) == {"applied": 5}


def test_an_idle_consumer_waits_for_a_record_not_for_a_whole_batch(
    store: SqliteAccountStore,
) -> None:
    # A full batch asked for with a timeout would wait out the timeout for a trickle of events.
    _, kafka, _, _ = run(store, [], [event("u1", 0, 0)], batch_size=100)
    assert all(timeout == 0 or count == 1 for count, timeout in kafka.consumed)
    assert any(timeout > 0 for _, timeout in kafka.consumed)


def test_poison_records_are_dead_lettered_in_order_and_the_rest_applied_together(
    store: SqliteAccountStore,
) -> None:
    batch = [
        event("u1", 0, 0),
        poison(0, 1),
        event("u2", 0, 2),
        poison(1, 0, headers=[]),
        event("u3", 1, 1),
    ]
    consumer, kafka, flaky, dead_letters = run(store, batch)
    assert flaky.batches == [3]
    assert counts(consumer) == {"applied": 3, "dead_lettered": 2}
    assert kafka.stored == [[(TOPIC, 0, 3), (TOPIC, 1, 2)]]
    assert [record.key for record in dead_letters.records] == [b"poison-0-1", b"poison-1-0"]
    why = [header_values(record.headers) for record in dead_letters.records]
    assert [w["herald.dlq.error.message"] for w in why] == [
        "unknown ce_type b'herald.users.v1.Nope'",
        "no ce_specversion 1.0 header",
    ]
    assert [(w["herald.dlq.partition"], w["herald.dlq.offset"]) for w in why] == [
        ("0", "1"),
        ("1", "0"),
    ]


def test_the_last_copy_of_a_header_counts_as_text_or_bytes(store: SqliteAccountStore) -> None:
    record = event("u1", 0, 0)
    headers = cast(Headers, record.headers())
    record.set_headers([*headers, ("ce_type", b"\xff\xfe")])
    text = event("u2", 0, 1)  # headers given as str, not bytes
    text.set_headers([(name, _text(value)) for name, value in cast(Headers, text.headers())])
    consumer, _, _, dead_letters = run(store, [record, text])
    assert counts(consumer) == {"applied": 1, "dead_lettered": 1}
    assert [r.key for r in dead_letters.records] == [uid("u1").encode()]


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def test_a_transient_failure_retries_the_whole_batch(store: SqliteAccountStore) -> None:
    failures = iter([True, True])
    consumer, kafka, flaky, _ = run(
        store,
        [event("u1", 0, 0), event("u2", 0, 1)],
        failing=lambda events: next(failures, False),
    )
    assert flaky.batches == [2, 2, 2]
    assert counts(consumer) == {"applied": 2, "retries": 2}
    assert kafka.stored == [[(TOPIC, 0, 2)]]


def test_a_batch_past_its_retries_is_applied_record_by_record_and_only_what_fails_is_dead_lettered(
    store: SqliteAccountStore,
) -> None:
    def holds_u2(events: Sequence[DecodedEvent]) -> bool:
        return any(d.account.user_id == uid("u2") for d in events)

    consumer, kafka, flaky, dead_letters = run(
        store,
        [event("u1", 0, 0), event("u2", 0, 1), event("u3", 1, 0)],
        failing=holds_u2,
    )
    # Three tries of the batch, then u1 once, u2 three times, u3 once: u2 failed while the
    # store took u1 and u3, then while it answered pings.
    assert flaky.batches == [3, 3, 3, 1, 1, 1, 1, 1]
    assert counts(consumer) == {"applied": 2, "dead_lettered": 1, "retries": 5}
    assert (kafka.pauses, consumer.status().pauses, consumer.status().paused_reason) == (1, 1, "")
    assert [record.key for record in dead_letters.records] == [uid("u2").encode()]
    assert header_values(dead_letters.records[0].headers)["herald.dlq.error.class"] == (
        "StoreUnavailableError"
    )
    assert store.get(uid("u1")) is not None
    assert store.get(uid("u3")) is not None
    assert kafka.stored[-1] == [(TOPIC, 0, 2), (TOPIC, 1, 1)]


def test_a_store_that_is_down_holds_the_batch_paused_and_never_dead_letters_it(
    store: SqliteAccountStore,
) -> None:
    """Down for many more tries than the retry policy allows: the loop keeps polling (so the
    group keeps it), health says why it waits, and every record is applied once it is back."""
    seen: list[tuple[bool, str]] = []
    tries = iter(range(40))
    holder: list[EventConsumer] = []

    def down(events: Sequence[DecodedEvent]) -> bool:
        if holder:
            status = holder[0].status()
            seen.append((holder[0].healthy(lag_grace_s=30), status.paused_reason))
        return next(tries, None) is not None

    batch = [event("u1", 0, 0), event("u2", 1, 0), event("u3", 0, 1)]
    consumer, kafka, _, dead_letters = run(store, batch, failing=down, holder=holder)
    assert not dead_letters.records
    assert counts(consumer)["applied"] == 3
    assert counts(consumer)["retries"] >= 15
    assert consumer.status().pauses == 1
    assert kafka.stored[-1] == [(TOPIC, 0, 2), (TOPIC, 1, 1)]
    # Paused, it kept calling consume() between tries, and was unhealthy with the reason.
    assert sum(timeout > 0 for _, timeout in kafka.consumed) >= 15
    assert seen[5][0] is False
    assert "account store is unavailable" in seen[5][1]
    assert consumer.healthy(lag_grace_s=30)


def test_a_dead_letter_topic_that_refuses_writes_holds_the_partition_until_it_takes_them(
    store: SqliteAccountStore,
) -> None:
    refusals = iter(range(5))
    batch = [event("u1", 0, 0), poison(0, 1), event("u2", 0, 2), event("u3", 1, 0)]
    consumer, kafka, _, dead_letters = run(
        store, batch, dlq_refuses=lambda: next(refusals, None) is not None
    )
    assert [record.key for record in dead_letters.records] == [b"poison-0-1"]
    assert counts(consumer) == {"applied": 3, "dead_lettered": 1}
    assert consumer.status().pauses == 1
    # Partition 0 waited behind its poison record, partition 1 did not.
    assert kafka.stored[0] == [(TOPIC, 0, 1), (TOPIC, 1, 1)]
    assert kafka.stored[-1] == [(TOPIC, 0, 3), (TOPIC, 1, 1)]


def test_records_handed_over_while_paused_are_read_again_after_the_hold(
    store: SqliteAccountStore,
) -> None:
    """librdkafka may return records it fetched before the pause: they are dropped, and the
    partition is sought back to the first of them when it resumes."""
    failures = iter([True, True])
    kafka_batches = [[event("u1", 0, 0)], [event("u2", 0, 1), event("u3", 1, 5)]]
    consumer, kafka, _, _ = run(
        store,
        *kafka_batches,
        failing=lambda events: next(failures, False),
        batch_size=1,
        prefetched=True,
    )
    assert kafka.seeks == [(0, 1), (1, 5)]
    assert counts(consumer) == {"applied": 1, "retries": 2}


def test_offsets_of_partitions_lost_meanwhile_are_refused_and_counted_not_fatal(
    store: SqliteAccountStore,
) -> None:
    kafka_holder: list[ScriptedKafka] = []

    def group_moves_on(events: Sequence[DecodedEvent]) -> bool:
        # While the batch is applied, the group gives its only partition to another member.
        kafka_holder[0].assigned = [TopicPartition(TOPIC, 2)]
        return False

    consumer, kafka, _, _ = run(
        store,
        [event("u1", 0, 0)],
        [event("u2", 2, 0)],
        failing=group_moves_on,
        batch_size=1,
        kafka_holder=kafka_holder,
    )
    assert counts(consumer) == {"applied": 2}
    assert consumer.status().commits_refused == 1
    assert kafka.stored == [[(TOPIC, 2, 1)]]


class SlowCoordinator(Coordinator):
    """A coordinator slow to say what is committed: it answers once `answer` is set, and
    notes which threads asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Event()
        self.answer = threading.Event()
        self.askers: set[int] = set()

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.askers.add(threading.get_ident())
        self.asked.set()
        self.answer.wait(60)  # bounded, so a broken test fails instead of hanging
        return super().committed(partitions, timeout)


def test_the_lag_is_worked_out_off_the_consumer_thread_which_never_waits_for_it(
    store: SqliteAccountStore,
) -> None:
    holder: list[EventConsumer] = []
    kafka_holder: list[ScriptedKafka] = []
    coordinator = SlowCoordinator()
    coordinator.offsets = {1: 1}
    loop = threading.Thread(
        target=run,
        args=(store, [event("u1", 0, 0)], [event("u2", 1, 0)], [event("u3", 2, 0)]),
        kwargs={
            "batch_size": 1,
            "holder": holder,
            "kafka_holder": kafka_holder,
            "coordinator": coordinator,
        },
    )
    loop.start()
    try:
        assert coordinator.asked.wait(10)
        # While the coordinator has not answered, the loop applies every batch and runs out.
        eventually(lambda: counts(holder[0]) == {"applied": 3} or None, timeout_s=10)
        eventually(lambda: kafka_holder[0].stopping.is_set() or None, timeout_s=10)
        assert loop.ident not in coordinator.askers
        # ...but closes neither client while a question is still being asked.
        assert not kafka_holder[0].closed
        assert not coordinator.closed
    finally:
        coordinator.answer.set()
        loop.join(30)
    assert not loop.is_alive()
    assert kafka_holder[0].closed
    assert coordinator.closed
    # The answer that came late still made it into the status.
    assert [(p.partition, p.committed) for p in holder[0].status().partitions] == [
        (0, -1),
        (1, 1),
        (2, -1),
    ]


class Fetching:
    """The consumer as polled() reads it: one partition, its high watermark from the cache."""

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def get_watermark_offsets(
        self, partition: TopicPartition, cached: bool = False
    ) -> tuple[int, int]:
        assert cached  # on the consumer thread: no round trip to the broker
        return (0, 50)


def test_a_cluster_out_of_reach_keeps_the_last_lag_and_reads_disconnected() -> None:
    board = StatusBoard("g", max_lag=10, refresh_every_s=0)
    coordinator = Coordinator()
    coordinator.offsets = {0: 30}
    consumer = cast(Consumer, Fetching())
    with board.refreshing(cast(Consumer, coordinator)):
        board.polled(consumer)
        first = eventually(lambda: board.snapshot() if board.snapshot().partitions else None)
        assert (first.connected, first.total_lag) == (True, 20)
        assert first.lagging_since is not None
        coordinator.reachable = False
        board.polled(consumer)
        away = eventually(lambda: board.snapshot() if not board.snapshot().connected else None)
        assert (away.partitions, away.lagging_since) == (first.partitions, first.lagging_since)
        assert not board.healthy(lag_grace_s=30)
        coordinator.reachable = True
        board.polled(consumer)
        eventually(lambda: board.snapshot().connected or None)
    # Lagging, but not yet for longer than the grace.
    assert board.healthy(lag_grace_s=30)


def test_a_commit_the_group_refuses_is_counted() -> None:
    board = StatusBoard("g", max_lag=10, refresh_every_s=1)
    board.committed(None, [])
    board.committed(KafkaError(KafkaError._NO_OFFSET), [])
    board.committed(KafkaError(KafkaError.ILLEGAL_GENERATION), [TopicPartition(TOPIC, 0, 5)])
    assert board.snapshot().commits_refused == 1


def test_stopping_during_a_retry_stores_only_offsets_whose_records_are_all_finished(
    store: SqliteAccountStore,
) -> None:
    stopping = threading.Event()

    def fails_then_stops(events: Sequence[DecodedEvent]) -> bool:
        stopping.set()  # asked to stop while the batch waits to be retried
        return True

    batch = [
        poison(0, 0),  # dead-lettered: partition 0 may move past it
        event("u1", 0, 1),  # not applied: partition 0 stops here
        poison(0, 2),  # dead-lettered, but behind u1
        event("u2", 1, 0),  # not applied
        poison(2, 7),  # dead-lettered, alone in its partition
    ]
    consumer, kafka, flaky, dead_letters = run(
        store, batch, failing=fails_then_stops, stopping=stopping
    )
    assert flaky.batches == [2]
    assert len(dead_letters.records) == 3
    assert counts(consumer) == {"dead_lettered": 3, "retries": 1}
    assert kafka.stored == [[(TOPIC, 0, 1), (TOPIC, 2, 8)]]
    assert store.processed_count() == 0


def test_a_transient_consumer_error_is_skipped_and_a_fatal_one_ends_the_loop(
    store: SqliteAccountStore,
) -> None:
    consumer, kafka, _, _ = run(store, [event("u1", 0, 0), kafka_error(fatal=False)])
    assert counts(consumer) == {"applied": 1}
    assert kafka.stored == [[(TOPIC, 0, 1)]]
    with pytest.raises(KafkaException):
        run(store, [event("u2", 0, 1), kafka_error(fatal=True)])
    assert store.get(uid("u2")) is None


@pytest.mark.parametrize("batch_size", [0, 1_000_001])
def test_the_batch_size_is_what_one_consume_call_can_ask_for(
    store: SqliteAccountStore, batch_size: int
) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        run(store, batch_size=batch_size)


def test_counts_and_status_are_kept_across_batches(store: SqliteAccountStore) -> None:
    consumer, _, _, _ = run(
        store, [event("u1", 0, 0), event("u1", 0, 1)], [event("u1", 0, 2)], batch_size=1
    )
    assert counts(consumer) == {"applied": 1, "duplicates": 2}
    assert consumer.healthy(lag_grace_s=30)
