"""Where users_svc keeps its users. For now, memory: users live as long as the process."""

from __future__ import annotations

import threading
from typing import Protocol

from users_svc.model import User


class UserRepository(Protocol):
    def add(self, user: User) -> None: ...

    def get(self, user_id: str) -> User | None: ...


class InMemoryUserRepository:
    """Thread-safe, because gRPC serves calls from a pool of threads."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._lock = threading.Lock()

    def add(self, user: User) -> None:
        with self._lock:
            self._users[user.id] = user

    def get(self, user_id: str) -> User | None:
        with self._lock:
            return self._users.get(user_id)
