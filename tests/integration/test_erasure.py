"""Erasure against the real broker: auth_svc's consumer applies a UserDeleted users_svc would
publish, dead-letters a forged one, and `herald dlq replay` of the user's old UserCreated
(dead-lettered while the database refused it) does not bring the erased account back."""

from __future__ import annotations

from collections.abc import Sequence

from auth_svc.accounts import DecodedEvent
from auth_svc.sqlite_store import SqliteAccountStore
from herald.kafka.records import header_values
from herald.tools.replay import Summary, replay
from tests.erasure_support import created, deleted, raw_record
from tests.integration.consuming import consuming, produce
from tests.support import FlakyStore, eventually, read_topic, uid

U1, U2 = uid("erased-on-kafka"), uid("kept-on-kafka")


def test_a_delete_is_applied_a_forged_one_dead_lettered_and_a_replay_stays_stale(
    kafka_bootstrap: str, topic: str, dlq_topic: str, store: SqliteAccountStore
) -> None:
    def refusing_u1_until_erased(events: Sequence[DecodedEvent]) -> bool:
        # U1's creation meets a database that refuses it, until U1 is erased.
        live = any(d.account.user_id == U1 and not d.account.deleted for d in events)
        return live and store.tombstone_version(U1) is None

    produce(
        kafka_bootstrap,
        topic,
        [
            raw_record(created(U1)),
            raw_record(created(U2)),
            # A forged delete of U2: at version 1, which no real delete has.
            raw_record(deleted(U2, 1)),
        ],
    )
    flaky = FlakyStore(store, refusing_u1_until_erased)
    with consuming(kafka_bootstrap, topic, dlq_topic, flaky) as consumer:
        eventually(lambda: consumer.status().dead_lettered == 2 or None)
        produce(kafka_bootstrap, topic, [raw_record(deleted(U1, 2))])
        eventually(lambda: consumer.status().applied == 2 or None)
        assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (
            None,
            2,
            1,
        )

        letters = read_topic(kafka_bootstrap, dlq_topic, count=2)
        why = {m.key(): header_values(m.headers()) for m in letters}
        assert why[U1.encode()]["herald.dlq.error.class"] == "StoreUnavailableError"
        assert "UserDeleted has version 1" in why[U2.encode()]["herald.dlq.error.message"]

        # The operator replays what a retry can fix: U1's creation, now older than its
        # tombstone. The forged delete is poison and stays out.
        assert replay(kafka_bootstrap, dlq_topic, to_topic=topic) == Summary(replayed=1, poison=1)
        eventually(lambda: consumer.status().stale == 1 or None)

    assert (consumer.status().applied, consumer.status().dead_lettered) == (2, 2)
    assert (store.get(U1), store.tombstone_version(U1), store.applied_events(U1)) == (None, 2, 1)
    kept = store.get(U2)
    assert kept is not None
    assert (kept.deleted, kept.version, store.tombstone_version(U2)) == (False, 1, None)
