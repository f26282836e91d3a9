"""The reliability suite's clients: threads of real calls, and the ledger of every answer they
were given, which the oracle holds auth_svc to."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

import grpc
from google.protobuf import field_mask_pb2

from herald.rpc.tls import channel
from herald.tools.secure_files import SecureFiles
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.reliability.oracle import Ack

POLL_S = 0.05  # how often waits look at their condition


class Ledger:
    """Every answer the clients were given that named a user: what the oracle holds auth to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acks: list[Ack] = []

    def record(self, user: users_pb2.User) -> None:
        with self._lock:
            self.acks.append(Ack(user.id, user.version, user.name, user.email))

    def record_deleted(self, answer: users_pb2.DeleteUserResponse) -> None:
        with self._lock:
            self.acks.append(Ack(answer.id, answer.version, "", "", deleted=True))

    def __len__(self) -> int:
        return len(self.acks)


class Load:
    """Client threads that each create users and rename them, recording each answer in a ledger.

    A CreateUser that fails is retried with the same request_id (so it is safe) until it
    succeeds or the load stops; an UpdateUser that fails may or may not have happened, which
    is why the oracle takes users_svc's own state as a second witness.
    """

    def __init__(
        self,
        target: str,
        workers: int,
        users_per_worker: int,
        updates_per_user: int,
        *,
        pause_s: float = 0.0,
        ledger: Ledger | None = None,
        secure: SecureFiles | None = None,
        delete_every: int = 0,
    ) -> None:
        self._target = target
        # With `secure`, each client calls over mTLS as a real caller would: it creates with
        # a `users.create` token and renames each user with that user's own token.
        self._secure = secure
        # With `delete_every` N, each client erases every Nth user it made, after its renames.
        self._delete_every = delete_every
        self.deleted = 0
        # A pause after each call makes a steady stream that outlasts slow faults (a broker
        # restart takes ~10 s); `stop()` ends it.
        self._pause_s = pause_s
        self._users = users_per_worker
        self._updates = updates_per_user
        self.ledger = ledger if ledger is not None else Ledger()
        self.created = 0
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._work) for _ in range(workers)]

    @property
    def acknowledged(self) -> int:
        return len(self.ledger)

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
        tls = self._secure.client_tls() if self._secure else None
        with channel(self._target, tls) as connection:
            stub = users_pb2_grpc.UserServiceStub(connection)
            for made in range(1, self._users + 1):
                user_id = self._create(stub)
                if user_id is None:
                    return
                as_user = self._bearer(user_id, "")
                for n in range(self._updates):
                    if self.stopping.is_set():
                        return
                    request = users_pb2.UpdateUserRequest(
                        user=users_pb2.User(id=user_id, name=f"Name {n}"),
                        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                    )
                    self._call(partial(stub.UpdateUser, request, timeout=5, metadata=as_user))
                if self._delete_every and made % self._delete_every == 0:
                    self._delete(stub, user_id, as_user)

    def _create(self, stub: users_pb2_grpc.UserServiceStub) -> str | None:
        request = users_pb2.CreateUserRequest(
            name="Reliable", email=f"{uuid.uuid4().hex}@example.com", request_id=str(uuid.uuid4())
        )
        creator = self._bearer("reliability-load", "users.create")
        while not self.stopping.is_set():
            user = self._call(partial(stub.CreateUser, request, timeout=5, metadata=creator))
            if user is not None:
                self.created += 1
                return str(user.id)
            self.stopping.wait(0.2)
        return None

    def _delete(
        self, stub: users_pb2_grpc.UserServiceStub, user_id: str, as_user: Metadata
    ) -> None:
        """Erase the user, retrying with the same request_id (so a retry after a lost answer
        gets the first one) until it is acknowledged or the load stops."""
        request = users_pb2.DeleteUserRequest(id=user_id, request_id=str(uuid.uuid4()))
        while not self.stopping.is_set():
            if self._pause_s:
                self.stopping.wait(self._pause_s)
            try:
                answer = stub.DeleteUser(request, timeout=5, metadata=as_user)
            except grpc.RpcError:
                self.stopping.wait(0.2)
                continue
            self.ledger.record_deleted(answer)
            self.deleted += 1
            return

    def _bearer(self, subject: str, scope: str) -> Metadata:
        return self._secure.bearer(subject, scope) if self._secure else ()

    def _call(self, call: Callable[[], Answer]) -> users_pb2.User | None:
        if self._pause_s:
            self.stopping.wait(self._pause_s)
        try:
            user = call().user
        except grpc.RpcError:
            return None
        self.ledger.record(user)
        return user


Answer = users_pb2.CreateUserResponse | users_pb2.UpdateUserResponse
Metadata = tuple[tuple[str, str], ...]
