"""The reliability oracle: from what a scenario saw, count every way Herald broke its promise.

Pure logic over plain values, so unit tests can hand it doctored histories and watch each
check fail (tests/unit/test_oracle.py). `tests.reliability.observe` gathers the real inputs
through the services' store read methods and from the topics, never with SQL, so the same
check holds on any storage backend.

The promise: every (user, version) a client was told about, and every version users_svc
committed even if a kill swallowed the answer, reaches auth_svc, is applied exactly once, in
version order, and ends in the same state as users_svc; nothing is dead-lettered but the
poison a scenario injects; and the scenario's fault really happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from herald.contract.ids import event_id


class Ack(NamedTuple):
    """One answer a client was given: CreateUser or UpdateUser returned OK with this user, or
    DeleteUser with its id and version (`deleted`, no name or email)."""

    user_id: str
    version: int
    name: str
    email: str
    deleted: bool = False


class UserState(NamedTuple):
    """A user as users_svc holds it at the end; an erased one as its tombstone (`deleted`,
    its version, no name or email)."""

    version: int
    name: str
    email: str
    deleted: bool = False


class AccountState(NamedTuple):
    """An account as auth_svc holds it at the end, with its count of events applied; a
    tombstone is `deleted`, with the version of the delete and no name or email."""

    version: int
    name: str
    email: str
    applied_events: int
    deleted: bool = False

    @property
    def state(self) -> UserState:
        return UserState(self.version, self.name, self.email, self.deleted)


class TopicRecord(NamedTuple):
    """A record read back from the events topic; version is None when it is no Herald event."""

    partition: int
    offset: int
    key: bytes
    version: int | None


@dataclass(frozen=True)
class History:
    """Everything the oracle judges a scenario by."""

    scenario: str
    acks: Sequence[Ack]
    users: Mapping[str, UserState]  # every user users_svc holds
    accounts: Mapping[str, AccountState]  # auth's account of each user above or acknowledged
    inbox: Collection[str]  # the event ids, of those the oracle asks about, in auth's inbox
    topic: Sequence[TopicRecord]
    dead_letters: int  # records on the dead-letter topic
    injected: Collection[bytes] = ()  # keys of records the scenario wrote to the topic itself
    expected_dead_letters: int = 0  # the poison among them
    fault: Mapping[str, object] = field(default_factory=dict)


def wanted(history: History) -> set[tuple[str, int]]:
    """The (user, version) pairs that must reach auth_svc: every acknowledged one, and each
    user's final version in users_svc (committed, though a kill may have eaten the answer)."""
    pairs = {(ack.user_id, ack.version) for ack in history.acks}
    pairs |= {(user_id, user.version) for user_id, user in history.users.items()}
    return pairs


def wanted_event_ids(history: History) -> set[str]:
    return {event_id(user_id, version) for user_id, version in wanted(history)}


@dataclass(frozen=True)
class Rule:
    """Evidence a scenario's fault took effect, read from its `fault` object."""

    claim: str
    holds: Callable[[Mapping[str, object]], bool]


def _positive(name: str) -> Callable[[Mapping[str, object]], bool]:
    def holds(fault: Mapping[str, object]) -> bool:
        value = fault.get(name)
        return isinstance(value, int) and value > 0

    return holds


def _over(name: str, limit: float) -> Callable[[Mapping[str, object]], bool]:
    def holds(fault: Mapping[str, object]) -> bool:
        value = fault.get(name)
        return isinstance(value, int | float) and value > limit

    return holds


def _under(name: str, limit: float) -> Callable[[Mapping[str, object]], bool]:
    def holds(fault: Mapping[str, object]) -> bool:
        value = fault.get(name)
        return isinstance(value, int | float) and value < limit

    return holds


def _equals(name: str, value: object) -> Callable[[Mapping[str, object]], bool]:
    return lambda fault: name in fault and fault[name] == value


def _leader_moved(fault: Mapping[str, object]) -> bool:
    moves = fault.get("leaders")
    return (
        isinstance(moves, list)
        and len(moves) > 0
        and all(isinstance(m, dict) and m["before"] != m["after"] for m in moves)
    )


SIGKILLED = -9  # subprocess's return code for a process ended by SIGKILL
OUTBOX_HELD = Rule("the outbox held rows during the fault", _positive("outbox_peak"))
FAULT_RULES: dict[str, tuple[Rule, ...]] = {
    "baseline": (),
    "baseline_secure": (
        Rule("a plaintext client got no answer", _equals("plaintext_health", None)),
        Rule("a call without a token was refused", _equals("no_token", "UNAUTHENTICATED")),
        Rule("a call as another user was refused", _equals("other_user", "PERMISSION_DENIED")),
        Rule(
            "auth-svc could not write the events topic",
            _equals("auth_svc_writes_events", "TOPIC_AUTHORIZATION_FAILED"),
        ),
    ),
    "kafka_down": (Rule("the broker was down", _equals("broker_running", False)), OUTBOX_HELD),
    "broker_kill": (Rule("the broker was gone", _equals("broker_running", False)), OUTBOX_HELD),
    "delete_during_stream": (
        Rule("the broker was down", _equals("broker_running", False)),
        OUTBOX_HELD,
        Rule("users were erased while it was down", _positive("deleted_while_down")),
        Rule("no account is left for an erased user", _equals("accounts_left_for_deleted", 0)),
    ),
    "leader_kill_3node": (Rule("the partition leader changed at each kill", _leader_moved),),
    "too_few_replicas": (
        Rule("two of three brokers were down", _equals("brokers_running", 1)),
        OUTBOX_HELD,
    ),
    "service_kill_rebalance": (
        Rule("users_svc was killed", _equals("users_svc_exit", SIGKILLED)),
        Rule("auth_svc was killed", _equals("auth_svc_exit", SIGKILLED)),
        Rule("a second auth_svc took partitions", _positive("second_member_partitions")),
    ),
    "poison_records": (Rule("poison was injected", _positive("injected")),),
    "hostile_grpc": (Rule("hostile calls were refused", _positive("refused")),),
    "oversized_record": (
        Rule("a record over the dead-letter limit was injected", _over("injected_bytes", 990_000)),
        Rule("its dead letter says it was cut to fit", _equals("letter_truncated", True)),
        Rule("auth_svc kept running", _equals("auth_svc_running", True)),
    ),
    "forged_events": (
        Rule("forged events were injected", _positive("forged")),
        Rule(
            "each forgery was refused for a reason of its own",
            lambda fault: fault.get("distinct_reasons") == fault.get("forged"),
        ),
    ),
    "auth_db_outage": (
        Rule("auth_svc's database was locked", _over("lock_s", 0)),
        Rule("auth_svc paused its partitions meanwhile", _equals("paused_during", True)),
        Rule("and resumed by itself", _equals("paused_after", False)),
        Rule("without leaving its group", _equals("rebalances", 0)),
    ),
    "stalled_streams": (
        Rule("streams were stalled", _positive("stalled_streams")),
        Rule("and stayed open the whole time", _equals("still_open", True)),
        Rule("while health checks answered within 2 s", _under("slowest_check_s", 2.0)),
    ),
    "auth_paused": (
        Rule("the other member took every partition", _equals("second_took_all", True)),
        Rule("the frozen member saw the group move on", _positive("first_rebalances")),
    ),
}


@dataclass
class Counts:
    """The figures a verdict reports: all 0 when every promise was kept, but dead_lettered."""

    lost: int = 0
    applied_twice: int = 0
    skipped: int = 0
    state_mismatch: int = 0
    order_violations: int = 0
    dead_lettered: int = 0

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(Counts)}


@dataclass
class Verdict(Counts):
    expected_dead_letters: int = 0
    fault_missing: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What went wrong, in words; empty when the scenario kept every promise."""
        found = [
            f"{name} = {value}"
            for name, value in (
                ("lost", self.lost),
                ("applied_twice", self.applied_twice),
                ("skipped", self.skipped),
                ("state_mismatch", self.state_mismatch),
                ("order_violations", self.order_violations),
            )
            if value
        ]
        if self.dead_lettered != self.expected_dead_letters:
            found.append(
                f"dead_lettered = {self.dead_lettered}, expected {self.expected_dead_letters}"
            )
        found += [f"fault not shown: {claim}" for claim in self.fault_missing]
        return found


def judge(history: History) -> Verdict:
    counts = _count_errors(history).values()
    return Verdict(
        lost=len(lost(history)),
        applied_twice=sum(n for n in counts if n > 0),
        skipped=sum(-n for n in counts if n < 0),
        state_mismatch=len(state_mismatches(history)),
        order_violations=order_violations(history.topic, history.injected),
        dead_lettered=history.dead_letters,
        expected_dead_letters=history.expected_dead_letters,
        fault_missing=fault_missing(history.scenario, history.fault),
    )


def lost(history: History) -> list[tuple[str, int]]:
    """Wanted pairs auth_svc never applied: the event id is not in its inbox, and the account
    is not at that version or later (the inbox forgets old ids; the version does not)."""
    missing = []
    for user_id, version in sorted(wanted(history)):
        account = history.accounts.get(user_id)
        reached = account is not None and account.version >= version
        if not reached and event_id(user_id, version) not in history.inbox:
            missing.append((user_id, version))
    return missing


def state_mismatches(history: History) -> list[str]:
    """Users whose account differs from users_svc's final state, whose account is behind what a
    client was told, whose state in users_svc differs from what it last acknowledged, or one
    of whose versions was acknowledged with two different states."""
    latest: dict[str, Ack] = {}
    told: dict[tuple[str, int], Ack] = {}
    conflicting: set[str] = set()
    for ack in history.acks:
        if ack.user_id not in latest or ack.version > latest[ack.user_id].version:
            latest[ack.user_id] = ack
        if told.setdefault((ack.user_id, ack.version), ack) != ack:
            conflicting.add(ack.user_id)
    mismatched = sorted(conflicting)
    for user_id in sorted((set(history.users) | set(latest)) - conflicting):
        if not _agree(
            history.users.get(user_id), history.accounts.get(user_id), latest.get(user_id)
        ):
            mismatched.append(user_id)
    return mismatched


def _agree(truth: UserState | None, account: AccountState | None, last: Ack | None) -> bool:
    """users_svc and auth_svc hold the same state (for an erased user: both a tombstone at the
    delete's version, so no account is left), and it is no older than the last answer."""
    if truth is None or account is None or account.state != truth:
        return False
    if last is None:
        return True  # created, but the answer was lost: users_svc is the only witness
    if account.version < last.version:
        return False
    return truth.version > last.version or (truth.name, truth.email, truth.deleted) == last[2:]


def _count_errors(history: History) -> dict[str, int]:
    """Per account, events applied minus its version: above 0, one was applied twice; below,
    one was skipped (versions start at 1 and each is applied once, in order)."""
    return {
        user_id: account.applied_events - account.version
        for user_id, account in history.accounts.items()
        if account.applied_events != account.version
    }


def order_violations(topic: Sequence[TopicRecord], injected: Collection[bytes] = ()) -> int:
    """Records that break a key's order: a version first seen after a higher one, a record that
    is no Herald event, or a key spread over more than one partition. A copy of a version
    already seen (a resend after a crash) is fine; records the scenario injected don't count."""
    by_key: defaultdict[bytes, list[TopicRecord]] = defaultdict(list)
    for record in topic:
        if record.key not in injected:
            by_key[record.key].append(record)
    violations = 0
    for records in by_key.values():
        violations += len({r.partition for r in records}) - 1
        seen: set[int] = set()
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            if record.version is None:
                violations += 1
            elif record.version not in seen:
                if seen and record.version < max(seen):
                    violations += 1
                seen.add(record.version)
    return violations


def fault_missing(scenario: str, fault: Mapping[str, object]) -> list[str]:
    """The claims of the scenario's rules its evidence does not support."""
    rules = FAULT_RULES.get(scenario)
    if rules is None:
        return [f"no fault rules for scenario {scenario!r}"]
    if rules and not fault:
        return ["no fault evidence recorded"]
    return [rule.claim for rule in rules if not rule.holds(fault)]
