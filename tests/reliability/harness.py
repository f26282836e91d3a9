"""The reliability suite's tools: a stack per scenario, a load of real calls, and the check of
the whole history (every acknowledged call, every event on the topic, every account)."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2

from herald.kafka.topics import TOPICS
from herald.tools.processes import ServiceProcess
from herald.tools.topic_admin import ensure_topics
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.support import end_offsets, unique

POLL_S = 0.05  # how often waits look at their condition


@dataclass
class Result:
    """One row of the report. lost, applied_twice and state_mismatch must be 0."""

    name: str
    acknowledged: int = 0
    published: int = 0
    applied: int = 0
    lost: int = 0
    applied_twice: int = 0
    state_mismatch: int = 0
    dead_lettered: int = 0
    recovery_s: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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

    def start(self, relay_timeout_s: float = 3.0) -> None:
        # Herald's own topics under this scenario's names: same partitions and replication.
        events, dead_letters = TOPICS
        ensure_topics(
            self.bootstrap,
            (replace(events, name=self.topic), replace(dead_letters, name=self.dlq)),
        )
        self.env = env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HERALD_EVENTS_TOPIC": self.topic,
            "HERALD_DLQ_TOPIC": self.dlq,
            "AUTH_CONSUMER_GROUP": f"group-{self.topic}",
            "USERS_DATA_DIR": str(self.folder / "users"),
            "AUTH_DATA_DIR": str(self.folder / "auth"),
            "USERS_RELAY_TIMEOUT_S": str(relay_timeout_s),
            "LOG_LEVEL": "WARNING",
        }
        self.users = ServiceProcess("users_svc", env, self.folder / "users_svc.log")
        self.auth = ServiceProcess("auth_svc", env, self.folder / "auth_svc.log")
        self.users.start()
        self.auth.start(timeout_s=60)

    def another_auth(self, name: str) -> ServiceProcess:
        """One more auth_svc in the same group, sharing the database."""
        return ServiceProcess("auth_svc", self.env, self.folder / f"{name}.log")

    def stop(self) -> None:
        for service in (self.users, self.auth):
            if (
                service is not None
                and service.process is not None
                and service.process.poll() is None
            ):
                service.stop()


class Load:
    """Client threads that each create users and rename them, remembering what was acknowledged.

    A CreateUser that fails is retried with the same request_id (so it is safe) until it
    succeeds or the load stops; an UpdateUser that fails may or may not have happened, so the
    check compares auth with users_svc's own state rather than with the client's guesses.
    """

    def __init__(
        self,
        target: str,
        workers: int,
        users_per_worker: int,
        updates_per_user: int,
        pause_s: float = 0.0,
    ) -> None:
        self._target = target
        # A pause after each call makes a steady stream that outlasts slow faults (a broker
        # restart takes ~10 s); `stop()` ends it.
        self._pause_s = pause_s
        self._workers = workers
        self._users = users_per_worker
        self._updates = updates_per_user
        self._lock = threading.Lock()
        self.acknowledged = 0
        self.user_ids: list[str] = []
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._work) for _ in range(workers)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def progress(self, calls: int, timeout_s: float = 60.0) -> None:
        """Wait until `calls` more calls have been acknowledged: pace faults by progress, not
        by the clock, so a slow machine still has the fault land mid-stream."""
        target = self.acknowledged + calls
        deadline = time.monotonic() + timeout_s
        while self.acknowledged < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"load stalled at {self.acknowledged} of {target} calls")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """End an open-ended stream now; each client finishes the call in hand."""
        self.join(timeout_s=0)

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.stopping.set()
        for thread in self._threads:
            thread.join(30)

    def _work(self) -> None:
        with grpc.insecure_channel(self._target) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)
            for _ in range(self._users):
                user_id = self._create(stub)
                if user_id is None:
                    return
                for n in range(self._updates):
                    if self.stopping.is_set():
                        return
                    self._call(
                        lambda n=n, user_id=user_id: stub.UpdateUser(
                            users_pb2.UpdateUserRequest(
                                user=users_pb2.User(id=user_id, name=f"Name {n}"),
                                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                            ),
                            timeout=5,
                        )
                    )

    def _create(self, stub: users_pb2_grpc.UserServiceStub) -> str | None:
        request = users_pb2.CreateUserRequest(
            name="Reliable", email=f"{uuid.uuid4().hex}@example.com", request_id=str(uuid.uuid4())
        )
        while not self.stopping.is_set():
            response = self._call(lambda: stub.CreateUser(request, timeout=5))
            if response is not None:
                user_id = str(response.user.id)
                with self._lock:
                    self.user_ids.append(user_id)
                return user_id
            self.stopping.wait(0.2)
        return None

    def _call(self, call: object) -> users_pb2.CreateUserResponse | None:
        if self._pause_s:
            self.stopping.wait(self._pause_s)
        try:
            response = call()  # type: ignore[operator]
        except grpc.RpcError:
            return None
        with self._lock:
            self.acknowledged += 1
        return response  # type: ignore[no-any-return]


def check(stack: Stack, result: Result, timeout_s: float = 120.0) -> Result:
    """Wait until auth has caught up with users_svc (or the time is up), then count."""
    users_db = stack.folder / "users" / "users.sqlite3"
    auth_db = stack.folder / "auth" / "auth.sqlite3"
    began = time.monotonic()
    while True:
        mismatched = _mismatches(users_db, auth_db)
        if not mismatched or time.monotonic() - began > timeout_s:
            break
        time.sleep(POLL_S)
    result.recovery_s = round(result.recovery_s or time.monotonic() - began, 2)
    with sqlite3.connect(users_db) as users:
        expected = dict(users.execute("SELECT id, version FROM users").fetchall())
    with sqlite3.connect(auth_db) as auth:
        accounts = dict(auth.execute("SELECT user_id, version FROM accounts").fetchall())
        result.applied = auth.execute(
            "SELECT count(*) FROM processed_events WHERE outcome = 'applied'"
        ).fetchone()[0]
        # The inbox's key makes a second application impossible; this checks it still does.
        result.applied_twice = auth.execute(
            "SELECT count(*) - count(DISTINCT event_id) FROM processed_events"
            " WHERE outcome = 'applied'"
        ).fetchone()[0]
    result.lost = sum(1 for user_id in expected if user_id not in accounts)
    result.state_mismatch = len(mismatched)
    result.published = sum(end_offsets(stack.bootstrap, stack.topic).values())
    result.dead_lettered = sum(end_offsets(stack.bootstrap, stack.dlq).values())
    return result


def _mismatches(users_db: Path, auth_db: Path) -> list[str]:
    """Users whose name, email or version in auth differ from users_svc's."""
    with sqlite3.connect(users_db) as users:
        truth = {
            row[0]: row[1:] for row in users.execute("SELECT id, name, email, version FROM users")
        }
    if not auth_db.exists():
        return list(truth)
    with sqlite3.connect(auth_db) as auth:
        seen = {
            row[0]: row[1:]
            for row in auth.execute("SELECT user_id, name, email, version FROM accounts")
        }
    return [user_id for user_id, state in truth.items() if seen.get(user_id) != state]


@dataclass
class Run:
    """What a scenario's body hands back: its load, and when its fault ended."""

    stack: Stack
    load: Load | None = None
    acknowledged: int | None = None  # when the calls were counted without a Load
    fault_ended: float | None = None
    result: Result | None = None

    def stream(self, pause_s: float = 0.01) -> Load:
        """A steady stream of creates and renames, about 4 x 100 calls/s, until stopped."""
        assert self.stack.users is not None
        self.load = Load(
            self.stack.users.target,
            workers=4,
            users_per_worker=10**6,
            updates_per_user=4,
            pause_s=pause_s,
        ).start()
        return self.load

    def end_of_fault(self) -> None:
        self.fault_ended = time.monotonic()


@contextmanager
def scenario(
    name: str, bootstrap: str, folder: Path, report: Callable[[Result], None]
) -> Iterator[Run]:
    """Start a stack, run the body, check the whole history, report, and require that nothing
    was lost, applied twice or left different."""
    began = time.monotonic()
    run = Run(Stack(bootstrap, folder))
    run.stack.start()
    try:
        yield run
        acknowledged = run.acknowledged if run.acknowledged is not None else 0
        if run.load is not None:
            run.load.stop()
            acknowledged = run.load.acknowledged
        result = check(run.stack, Result(name, acknowledged=acknowledged))
        if run.fault_ended is not None:
            result.recovery_s = round(time.monotonic() - run.fault_ended, 2)
    finally:
        run.stack.stop()
    result.wall_s = round(time.monotonic() - began, 1)
    run.result = result
    report(result)
    assert (result.lost, result.applied_twice, result.state_mismatch) == (0, 0, 0), result
