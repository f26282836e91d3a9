"""auth_svc's consumer against the real broker: apply once, dead-letter poison, retry, commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from auth_svc.accounts import DecodedEvent
from auth_svc.sqlite_store import SqliteAccountStore
from herald.contract.ids import event_id
from herald.kafka.records import Headers, header_values
from herald.users.v1 import events_pb2
from tests.integration.consuming import (
    USER_CREATED,
    committed_total,
    consuming,
    produce,
    user_created,
)
from tests.support import FlakyStore, end_offsets, eventually, read_topic, uid, unique


def test_same_event_delivered_twice_makes_one_account(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, u) for u in ("u1", "u1", "u2")])
    with consuming(kafka_bootstrap, topic, dlq_topic, store) as consumer:
        eventually(lambda: consumer.status().applied + consumer.status().duplicates == 3 or None)
    status = consumer.status()
    assert (status.applied, status.duplicates, status.dead_lettered) == (2, 1, 0)
    account = store.get(uid("u1"))
    assert account is not None
    assert account.event_id == event_id(uid("u1"), 1)


def _far_future_user() -> bytes:
    event = events_pb2.UserCreated(event_id="e-far", user_id="u-far", version=1)
    event.create_time.seconds = 2**62  # beyond what a Timestamp may hold
    return event.SerializeToString()


POISON: dict[str, tuple[bytes | None, Headers]] = {
    "undecodable": (b"\xff\x00\xff garbage", [("ce_type", USER_CREATED.encode())]),
    "truncated": (None, [("ce_type", USER_CREATED.encode())]),  # value filled in below
    "unknown type": (b"", [("ce_type", b"herald.users.v1.UserRenamed")]),
    "no headers": (b"no headers at all", []),
    "invalid": (
        events_pb2.UserCreated(user_id="u-x").SerializeToString(),
        [("ce_type", USER_CREATED.encode())],
    ),
    "bad timestamp": (_far_future_user(), [("ce_type", USER_CREATED.encode())]),
}


def test_poison_records_go_to_the_dead_letter_topic_and_valid_ones_are_all_applied(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    valid = [user_created(topic, f"user-{n}") for n in range(100)]
    truncated = valid[0][1][:-7]
    records = []
    for n, record in enumerate(valid):
        records.append(record)
        if n % 16 == 8:  # six poison records spread among the valid ones
            kind = list(POISON)[n // 16]
            value, headers = POISON[kind]
            records.append(
                (f"poison-{kind}".encode(), value if value is not None else truncated, headers)
            )
    produce(kafka_bootstrap, topic, records)
    group = unique("group")

    with consuming(kafka_bootstrap, topic, dlq_topic, store, group) as consumer:
        eventually(lambda: consumer.status().applied == 100 or None)
        eventually(lambda: consumer.status().dead_lettered == len(POISON) or None)
        eventually(
            lambda: (consumer.status().partitions and consumer.status().total_lag == 0) or None
        )

    assert all(store.get(uid(f"user-{n}")) is not None for n in range(100))
    dead = read_topic(kafka_bootstrap, dlq_topic, count=len(POISON))
    by_key = {(m.key() or b"").decode(): m for m in dead}
    assert set(by_key) == {f"poison-{kind}" for kind in POISON}
    for kind, message in by_key.items():
        why = header_values(message.headers())
        assert why["herald.dlq.topic"] == topic
        assert int(why["herald.dlq.offset"]) >= 0
        assert why["herald.dlq.partition"].isdigit()
        assert why["herald.dlq.time"].endswith("Z")
        assert why["herald.dlq.error.class"] in {
            "DecodeError",
            "PoisonRecordError",
            "InvalidEventError",
        }
        assert why["herald.dlq.error.message"]
        original = POISON[kind.removeprefix("poison-")]
        assert message.value() == (original[0] if original[0] is not None else truncated)
    assert committed_total(kafka_bootstrap, topic, group) == sum(
        end_offsets(kafka_bootstrap, topic).values()
    )


def busy(
    failures: int, stuck: frozenset[str] = frozenset()
) -> Callable[[Sequence[DecodedEvent]], bool]:
    """A database busy for the first `failures` attempts, and always for a batch that holds
    one of the `stuck` users."""
    left = [failures]

    def failing(events: Sequence[DecodedEvent]) -> bool:
        if left[0] > 0 or any(d.account.user_id in stuck for d in events):
            left[0] -= 1
            return True
        return False

    return failing


def test_a_transient_failure_is_retried_with_backoff_then_applied(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, "u1")])
    with consuming(
        kafka_bootstrap, topic, dlq_topic, FlakyStore(store, busy(failures=2))
    ) as consumer:
        eventually(lambda: consumer.status().applied == 1 or None)
    assert (consumer.status().retries, consumer.status().dead_lettered) == (2, 0)


def test_a_batch_past_the_retry_bound_is_applied_one_by_one_and_no_record_is_lost(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, f"u{n}") for n in range(20)])
    # The 3 attempts of the first batch fail; its records, alone, then go in.
    flaky = FlakyStore(store, busy(failures=3))
    with consuming(kafka_bootstrap, topic, dlq_topic, flaky) as consumer:
        eventually(lambda: consumer.status().applied == 20 or None)
    assert consumer.status().dead_lettered == 0
    assert all(store.get(uid(f"u{n}")) is not None for n in range(20))


def test_a_record_failing_past_the_retry_bound_is_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    produce(kafka_bootstrap, topic, [user_created(topic, "u1"), user_created(topic, "u1b")])
    group = unique("group")
    flaky = FlakyStore(store, busy(failures=0, stuck=frozenset({uid("u1")})))
    with consuming(kafka_bootstrap, topic, dlq_topic, flaky, group) as consumer:
        eventually(lambda: consumer.status().dead_lettered == 1 or None)
        eventually(lambda: consumer.status().applied == 1 or None)
        eventually(
            lambda: (consumer.status().partitions and consumer.status().total_lag == 0) or None
        )
    [dead] = read_topic(kafka_bootstrap, dlq_topic, count=1)
    assert dead.key() == uid("u1").encode()
    assert header_values(dead.headers())["herald.dlq.error.class"] == "StoreUnavailableError"
    assert store.get(uid("u1b")) is not None
    assert committed_total(kafka_bootstrap, topic, group) == 2
