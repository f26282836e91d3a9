"""The reliability oracle can fail: doctored histories, each breaking one promise, are reported.

Each test starts from a history that keeps every promise and changes one thing in the
oracle's inputs, the way a bug in Herald would show up in them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from herald.contract.ids import event_id
from tests.reliability.oracle import (
    FAULT_RULES,
    AccountState,
    Ack,
    History,
    TopicRecord,
    UserState,
    judge,
    wanted_event_ids,
)

GOOD_FAULTS: dict[str, dict[str, object]] = {
    "baseline": {},
    "baseline_secure": {
        "plaintext_health": None,
        "no_token": "UNAUTHENTICATED",
        "other_user": "PERMISSION_DENIED",
        "auth_svc_writes_events": "TOPIC_AUTHORIZATION_FAILED",
    },
    "kafka_down": {"broker_running": False, "outbox_peak": 40},
    "broker_kill": {"broker_running": False, "outbox_peak": 12},
    "delete_during_stream": {
        "broker_running": False,
        "outbox_peak": 30,
        "deleted_while_down": 9,
        "accounts_left_for_deleted": 0,
    },
    "leader_kill_3node": {"leaders": [{"before": 1, "after": 2}, {"before": 2, "after": 3}]},
    "too_few_replicas": {"brokers_running": 1, "outbox_peak": 300},
    "service_kill_rebalance": {
        "users_svc_exit": -9,
        "auth_svc_exit": -9,
        "second_member_partitions": 3,
    },
    "poison_records": {"injected": 2},
    "hostile_grpc": {"refused": 150},
    "oversized_record": {
        "injected_bytes": 1_040_000,
        "letter_truncated": True,
        "auth_svc_running": True,
    },
    "forged_events": {"forged": 8, "distinct_reasons": 8},
    "auth_db_outage": {
        "lock_s": 45.0,
        "paused_during": True,
        "rebalances": 0,
        "pauses": 1,
        "paused_after": False,
    },
    "auth_paused": {"second_took_all": True, "first_rebalances": 1, "commits_refused": 0},
    "stalled_streams": {"stalled_streams": 200, "still_open": True, "slowest_check_s": 0.02},
}


def clean(scenario: str = "baseline") -> History:
    """u1 created and renamed twice (v3), u2 created (v1): told, stored, published, applied."""
    acks = [
        Ack("u1", 1, "Ada", "ada@example.com"),
        Ack("u1", 2, "Ada L", "ada@example.com"),
        Ack("u1", 3, "Ada Lovelace", "ada@example.com"),
        Ack("u2", 1, "Bob", "bob@example.com"),
    ]
    history = History(
        scenario,
        acks,
        users={
            "u1": UserState(3, "Ada Lovelace", "ada@example.com"),
            "u2": UserState(1, "Bob", "bob@example.com"),
        },
        accounts={
            "u1": AccountState(3, "Ada Lovelace", "ada@example.com", applied_events=3),
            "u2": AccountState(1, "Bob", "bob@example.com", applied_events=1),
        },
        inbox=(),
        topic=[
            TopicRecord(0, 0, b"u1", 1),
            TopicRecord(1, 0, b"u2", 1),
            TopicRecord(0, 1, b"u1", 2),
            TopicRecord(0, 2, b"u1", 3),
        ],
        dead_letters=0,
        fault=GOOD_FAULTS[scenario],
    )
    return replace(history, inbox=wanted_event_ids(history))


def problems(history: History) -> list[str]:
    return judge(history).problems()


@pytest.mark.parametrize("scenario", sorted(GOOD_FAULTS))
def test_a_history_that_keeps_every_promise_passes(scenario: str) -> None:
    history = clean(scenario)
    if scenario == "poison_records":
        history = replace(history, dead_letters=2, expected_dead_letters=2)
    assert problems(history) == []


def test_every_scenario_has_fault_rules_and_a_good_example() -> None:
    assert set(GOOD_FAULTS) == set(FAULT_RULES)


class TestLost:
    def test_an_acknowledged_version_auth_never_applied(self) -> None:
        history = clean()
        history = replace(
            history,
            accounts={**history.accounts, "u1": AccountState(2, "Ada L", "ada@example.com", 2)},
            inbox=wanted_event_ids(history) - {event_id("u1", 3)},
        )
        verdict = judge(history)
        assert (verdict.lost, verdict.state_mismatch) == (1, 1)

    def test_an_acknowledged_user_auth_never_saw(self) -> None:
        history = clean()
        history = replace(
            history,
            accounts={"u1": history.accounts["u1"]},
            inbox=wanted_event_ids(history) - {event_id("u2", 1)},
        )
        verdict = judge(history)
        assert (verdict.lost, verdict.state_mismatch) == (1, 1)

    def test_a_committed_change_whose_answer_a_kill_swallowed(self) -> None:
        # users_svc holds v4 though no client heard of it; auth stopped at v3.
        history = clean()
        history = replace(
            history, users={**history.users, "u1": UserState(4, "Ada K", "ada@example.com")}
        )
        history = replace(history, inbox=wanted_event_ids(history) - {event_id("u1", 4)})
        verdict = judge(history)
        assert (verdict.lost, verdict.state_mismatch) == (1, 1)

    def test_an_account_at_the_version_needs_no_inbox_entry(self) -> None:
        # The inbox forgets old ids; an account at a later version still proves arrival.
        assert judge(replace(clean(), inbox=set())).lost == 0

    def test_users_svc_losing_an_acknowledged_user(self) -> None:
        history = clean()
        history = replace(history, users={"u1": history.users["u1"]})
        assert judge(history).state_mismatch == 1


class TestState:
    def test_an_account_whose_fields_differ_from_users_svc(self) -> None:
        history = clean()
        history = replace(
            history,
            accounts={**history.accounts, "u2": AccountState(1, "Robert", "bob@example.com", 1)},
        )
        assert judge(history).state_mismatch == 1

    def test_users_svc_holding_other_fields_than_it_acknowledged(self) -> None:
        history = clean()
        users = {**history.users, "u2": UserState(1, "Eve", "bob@example.com")}
        accounts = {**history.accounts, "u2": AccountState(1, "Eve", "bob@example.com", 1)}
        assert judge(replace(history, users=users, accounts=accounts)).state_mismatch == 1

    def test_one_version_acknowledged_with_two_states(self) -> None:
        # An answer for a change that was never stored: the next change reuses its version.
        history = clean()
        acks = [*history.acks, Ack("u1", 3, "Ada Byron", "ada@example.com")]
        assert judge(replace(history, acks=acks)).state_mismatch == 1

    def test_the_same_answer_twice_is_fine(self) -> None:
        # A CreateUser retried with its request_id gets the first answer again.
        history = clean()
        acks = [*history.acks, history.acks[0]]
        assert judge(replace(history, acks=acks)).state_mismatch == 0


class TestApplicationCount:
    def test_an_event_applied_twice(self) -> None:
        history = clean()
        accounts = {**history.accounts, "u1": history.accounts["u1"]._replace(applied_events=4)}
        verdict = judge(replace(history, accounts=accounts))
        assert (verdict.applied_twice, verdict.skipped) == (1, 0)

    def test_an_event_skipped(self) -> None:
        history = clean()
        accounts = {**history.accounts, "u1": history.accounts["u1"]._replace(applied_events=2)}
        verdict = judge(replace(history, accounts=accounts))
        assert (verdict.applied_twice, verdict.skipped) == (0, 1)


class TestOrder:
    def test_two_versions_of_a_key_out_of_order(self) -> None:
        topic = [
            TopicRecord(0, 0, b"u1", 1),
            TopicRecord(0, 1, b"u1", 3),
            TopicRecord(0, 2, b"u1", 2),
            TopicRecord(1, 0, b"u2", 1),
        ]
        assert judge(replace(clean(), topic=topic)).order_violations == 1

    def test_order_is_read_by_offset_not_by_list_position(self) -> None:
        topic = [TopicRecord(0, 2, b"u1", 3), TopicRecord(0, 0, b"u1", 1)]
        topic += [TopicRecord(0, 1, b"u1", 2), TopicRecord(1, 0, b"u2", 1)]
        assert judge(replace(clean(), topic=topic)).order_violations == 0

    def test_copies_of_versions_already_seen_are_allowed(self) -> None:
        versions = [1, 2, 1, 2, 3, 3]
        topic = [TopicRecord(0, n, b"u1", v) for n, v in enumerate(versions)]
        assert judge(replace(clean(), topic=topic)).order_violations == 0

    def test_a_record_that_is_no_heraldevent_id(self) -> None:
        topic = [*clean().topic, TopicRecord(0, 3, b"u1", None)]
        assert judge(replace(clean(), topic=topic)).order_violations == 1

    def test_records_the_scenario_injected_are_not_counted(self) -> None:
        topic = [*clean().topic, TopicRecord(0, 3, b"poison-1", None)]
        history = replace(clean(), topic=topic, injected={b"poison-1"})
        assert judge(history).order_violations == 0

    def test_a_key_on_two_partitions(self) -> None:
        topic = [*clean().topic, TopicRecord(1, 1, b"u1", 3)]
        assert judge(replace(clean(), topic=topic)).order_violations == 1


class TestDeadLetters:
    def test_a_stray_dead_letter(self) -> None:
        assert problems(replace(clean(), dead_letters=1)) == ["dead_lettered = 1, expected 0"]

    def test_poison_not_all_dead_lettered(self) -> None:
        history = replace(clean("poison_records"), dead_letters=1, expected_dead_letters=2)
        assert problems(history) == ["dead_lettered = 1, expected 2"]


class TestFault:
    @pytest.mark.parametrize(
        ("scenario", "evidence", "claim"),
        [
            ("kafka_down", {"broker_running": False, "outbox_peak": 0}, "the outbox held rows"),
            ("kafka_down", {"broker_running": True, "outbox_peak": 9}, "the broker was down"),
            ("broker_kill", {"outbox_peak": 9}, "the broker was gone"),
            ("leader_kill_3node", {"leaders": [{"before": 2, "after": 2}]}, "leader changed"),
            ("leader_kill_3node", {"leaders": []}, "leader changed"),
            ("too_few_replicas", {"brokers_running": 3, "outbox_peak": 9}, "two of three"),
            (
                "service_kill_rebalance",
                {"users_svc_exit": 0, "auth_svc_exit": -9, "second_member_partitions": 3},
                "users_svc was killed",
            ),
            (
                "service_kill_rebalance",
                {"users_svc_exit": -9, "auth_svc_exit": -9, "second_member_partitions": 0},
                "second auth_svc took partitions",
            ),
            ("poison_records", {"injected": 0}, "poison was injected"),
            ("hostile_grpc", {"refused": 0}, "refused"),
            (
                "delete_during_stream",
                {**GOOD_FAULTS["delete_during_stream"], "accounts_left_for_deleted": 2},
                "no account is left",
            ),
            (
                "baseline_secure",
                {**GOOD_FAULTS["baseline_secure"], "plaintext_health": 1},
                "plaintext client",
            ),
            (
                "baseline_secure",
                {**GOOD_FAULTS["baseline_secure"], "auth_svc_writes_events": "OK"},
                "auth-svc could not write",
            ),
        ],
    )
    def test_a_fault_that_did_not_happen(
        self, scenario: str, evidence: dict[str, object], claim: str
    ) -> None:
        [problem] = problems(replace(clean(scenario), fault=evidence))
        assert problem.startswith("fault not shown:")
        assert claim in problem

    def test_a_scenario_that_recorded_no_evidence(self) -> None:
        assert problems(replace(clean("kafka_down"), fault={})) == [
            "fault not shown: no fault evidence recorded"
        ]

    def test_a_scenario_without_rules(self) -> None:
        [problem] = problems(replace(clean(), scenario="new_fault"))
        assert "no fault rules" in problem


def deleted_u2(history: History) -> History:
    """u2 erased at v2: told so, a tombstone in both stores, its delete on the topic."""
    history = replace(
        history,
        acks=[*history.acks, Ack("u2", 2, "", "", deleted=True)],
        users={**history.users, "u2": UserState(2, "", "", deleted=True)},
        accounts={**history.accounts, "u2": AccountState(2, "", "", 2, deleted=True)},
        topic=[*history.topic, TopicRecord(1, 1, b"u2", 2)],
    )
    return replace(history, inbox=wanted_event_ids(history))


class TestDeleted:
    def test_an_erased_user_with_a_tombstone_in_both_stores_passes(self) -> None:
        assert problems(deleted_u2(clean())) == []

    def test_an_account_left_for_a_deleted_user(self) -> None:
        history = deleted_u2(clean())
        # auth never applied the delete: the account is still there, at v1.
        history = replace(
            history,
            accounts={**history.accounts, "u2": AccountState(1, "Bob", "bob@example.com", 1)},
            inbox=wanted_event_ids(history) - {event_id("u2", 2)},
        )
        verdict = judge(history)
        assert (verdict.lost, verdict.state_mismatch) == (1, 1)

    def test_an_account_brought_back_after_its_tombstone(self) -> None:
        # The delete was applied, yet a live account is what auth holds at that version.
        history = deleted_u2(clean())
        history = replace(
            history,
            accounts={**history.accounts, "u2": AccountState(2, "Bob", "bob@example.com", 2)},
        )
        assert judge(history).state_mismatch == 1

    def test_a_delete_users_svc_never_kept(self) -> None:
        # The client was told the user was erased; users_svc still holds it.
        history = deleted_u2(clean())
        history = replace(
            history, users={**history.users, "u2": UserState(2, "Bob", "bob@example.com")}
        )
        assert judge(history).state_mismatch == 1
