"""The reliability suite's tools: a stack per scenario, a load of real calls whose answers go in
a ledger, and the check of the whole history by tests.reliability.oracle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from auth_svc.sqlite_store import SqliteAccountStore
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.kafka.acls import grants
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.kafka.topics import REPLAY_GROUP, TOPICS
from herald.rpc.tls import channel
from herald.tools.devstack import PRINCIPALS
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess
from herald.tools.secure_files import SecureFiles
from herald.tools.topic_admin import ensure_access, ensure_topics
from tests.reliability.load import POLL_S, Ledger, Load
from tests.reliability.observe import Stores, full_history, stored_history
from tests.reliability.oracle import Ack, Counts, judge
from tests.support import unique
from users_svc.sqlite_store import SqliteUserStore


@dataclass
class Result(Counts):
    """One row of the report: the verdict's counts, what led to them, and in `fault` the
    evidence that the scenario's fault happened."""

    name: str = ""
    acknowledged: int = 0
    published: int = 0
    applied: int = 0
    recovery_s: float = 0.0
    wall_s: float = 0.0
    fault: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, **asdict(self)}


@dataclass
class Stack:
    """users_svc and auth_svc on their own topics, data folders and consumer group."""

    bootstrap: str
    folder: Path
    topic: str = field(default_factory=lambda: unique("rel-events"))
    dlq: str = field(default_factory=lambda: unique("rel-dlq"))
    users: ServiceProcess | None = None
    auth: ServiceProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Settings a scenario changes for both services (a shorter poll interval, say).
    overrides: dict[str, str] = field(default_factory=dict)
    # With these, both services serve mTLS and require tokens, and every client uses them.
    secure: SecureFiles | None = None
    # A secure cluster: topics and ACLs made as herald-admin, each service its own principal.
    kafka: LocalKafka | None = None

    @property
    def admin(self) -> KafkaSecurity:
        """How the harness itself reads the topics: as the super user on a secure cluster."""
        return self.kafka.kafka_security() if self.kafka else PLAINTEXT

    def start(self, relay_timeout_s: float = 3.0) -> None:
        # Herald's own topics under this scenario's names: same partitions and replication.
        events, dead_letters = TOPICS
        ensure_topics(
            self.bootstrap,
            (replace(events, name=self.topic), replace(dead_letters, name=self.dlq)),
            security=self.admin,
        )
        if self.kafka is not None:
            wanted = grants(self.topic, self.dlq, f"group-{self.topic}", REPLAY_GROUP)
            ensure_access(self.bootstrap, wanted, security=self.admin)
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HERALD_EVENTS_TOPIC": self.topic,
            "HERALD_DLQ_TOPIC": self.dlq,
            "AUTH_CONSUMER_GROUP": f"group-{self.topic}",  # the ACLs grant it
            "USERS_DATA_DIR": str(self.folder / "users"),
            "AUTH_DATA_DIR": str(self.folder / "auth"),
            "USERS_RELAY_TIMEOUT_S": str(relay_timeout_s),
            "LOG_LEVEL": "WARNING",
            **(self.secure.server_env() if self.secure else {}),
            **self.overrides,
        }
        self.users = self._service("users_svc", "users_svc")
        self.auth = self._service("auth_svc", "auth_svc")
        self.users.start()
        self.auth.start(timeout_s=60)

    def another_auth(self, name: str) -> ServiceProcess:
        """One more auth_svc in the same group, sharing the database."""
        return self._service("auth_svc", name)

    def _service(self, module: str, name: str) -> ServiceProcess:
        tls = self.secure.client_tls() if self.secure else None
        env = dict(self.env)
        if self.kafka is not None:
            env |= self.kafka.client_env(PRINCIPALS[module])
        return ServiceProcess(module, env, self.folder / f"{name}.log", tls=tls)

    @contextmanager
    def stores(self) -> Iterator[Stores]:
        """The services' own store classes on their files: the oracle reads through them."""
        users = SqliteUserStore(self.folder / "users" / "users.sqlite3")
        accounts = SqliteAccountStore(self.folder / "auth" / "auth.sqlite3")
        try:
            yield Stores(users, users, accounts)
        finally:
            users.close()
            accounts.close()

    def stop(self) -> None:
        for service in (self.users, self.auth):
            if service is not None and service.running():
                service.stop()


class OutboxWatch:
    """Samples users_svc's outbox while a fault lasts: its peak is evidence the fault held
    events back (read through the store, as the oracle reads)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.peak = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> OutboxWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _watch(self) -> None:
        with self._stack.stores() as stores:
            while not self._stopping.wait(POLL_S):
                self.peak = max(self.peak, stores.outbox.pending_count())


def consumer_status(
    target: str, secure: SecureFiles | None = None
) -> auth_pb2.GetConsumerStatusResponse:
    """What the auth_svc at `target` says of its consumer (GetConsumerStatus), asked as an
    operator when the stack is secure."""
    tls = secure.client_tls() if secure else None
    metadata = secure.bearer("reliability-operator", "herald.operator") if secure else ()
    with channel(target, tls) as connection:
        return auth_pb2_grpc.AuthServiceStub(connection).GetConsumerStatus(
            auth_pb2.GetConsumerStatusRequest(), timeout=5, metadata=metadata
        )


def settle(stack: Stack, name: str, acks: Sequence[Ack], timeout_s: float) -> float:
    """Wait until the stores agree (auth has every wanted version, applied once, in the same
    state as users_svc) or the time is up; return the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        verdict = judge(stored_history(stack, name, acks))
        if not (verdict.lost or verdict.state_mismatch or verdict.applied_twice or verdict.skipped):
            break
        time.sleep(POLL_S)
    return time.monotonic() - began


def check(stack: Stack, run: Run, name: str, timeout_s: float = 120.0) -> Result:
    """Let auth catch up, then judge the whole history: ledger, stores, topic and DLQ."""
    acks = list(run.ledger.acks)
    waited = settle(stack, name, acks, timeout_s)
    deleted = {ack.user_id for ack in acks if ack.deleted}
    if deleted:
        # Read the way a caller would find it: an account auth_svc would still hand out.
        with stack.stores() as stores:
            left = sum(stores.accounts.get(user_id) is not None for user_id in deleted)
        run.fault["accounts_left_for_deleted"] = left
    history = full_history(
        stack,
        name,
        acks,
        injected=run.injected,
        expected_dead_letters=run.expected_dead_letters,
        fault=run.fault,
    )
    verdict = judge(history)
    run.problems = verdict.problems()
    return Result(
        name=name,
        acknowledged=len(acks),
        published=len(history.topic),
        applied=sum(account.applied_events for account in history.accounts.values()),
        recovery_s=round(waited, 2),
        **verdict.counts(),
        fault=dict(run.fault),
    )


@dataclass
class Run:
    """What a scenario's body leaves for the check: its ledger, what it injected, its fault's
    evidence, and when the fault ended."""

    stack: Stack
    ledger: Ledger = field(default_factory=Ledger)
    load: Load | None = None
    injected: set[bytes] = field(default_factory=set)
    expected_dead_letters: int = 0
    fault: dict[str, object] = field(default_factory=dict)
    fault_ended: float | None = None
    result: Result | None = None
    problems: list[str] = field(default_factory=list)

    def loaded(self, workers: int, users_per_worker: int, updates_per_user: int) -> Load:
        """A fixed load: each client creates its users and renames each of them."""
        assert self.stack.users is not None
        self.load = Load(
            self.stack.users.target,
            workers,
            users_per_worker,
            updates_per_user,
            ledger=self.ledger,
            secure=self.stack.secure,
        )
        return self.load

    def stream(self, pause_s: float = 0.01, delete_every: int = 0) -> Load:
        """A steady stream of creates and renames (and, with `delete_every` N, the erasure of
        every Nth user after its renames), about 4 x 100 calls/s, until stopped."""
        assert self.stack.users is not None
        self.load = Load(
            self.stack.users.target,
            workers=4,
            users_per_worker=10**6,
            updates_per_user=4,
            pause_s=pause_s,
            ledger=self.ledger,
            secure=self.stack.secure,
            delete_every=delete_every,
        ).start()
        return self.load

    def watch_outbox(self) -> OutboxWatch:
        return OutboxWatch(self.stack)

    def end_of_fault(self) -> None:
        self.fault_ended = time.monotonic()


@contextmanager
def scenario(
    name: str,
    bootstrap: str,
    folder: Path,
    report: Callable[[Result], None],
    *,
    env: dict[str, str] | None = None,
    secure: SecureFiles | None = None,
    kafka: LocalKafka | None = None,
) -> Iterator[Run]:
    """Start a stack (with `env` on top of its settings, its gRPC secured by `secure`'s files
    and its Kafka clients logged in to the secure `kafka` when given), run the body, judge the
    whole history, report, and require that every promise was kept (tests.reliability.oracle)
    and the fault shown to have happened."""
    began = time.monotonic()
    stack = Stack(bootstrap, folder, overrides=dict(env or {}), secure=secure, kafka=kafka)
    run = Run(stack)
    run.stack.start()
    try:
        yield run
        if run.load is not None:
            run.load.stop()
        result = check(run.stack, run, name)
        if run.fault_ended is not None:
            result.recovery_s = round(time.monotonic() - run.fault_ended, 2)
    finally:
        run.stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    run.result = result
    report(result)
    assert not run.problems, (run.problems, result)
