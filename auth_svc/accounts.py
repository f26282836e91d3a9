"""Auth accounts and where they are kept. For now, memory, rebuilt from Kafka at start."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Account:
    user_id: str
    name: str
    email: str
    create_time: datetime
    # The user's version this account reflects; events carry it and only a higher one wins.
    version: int
    last_event_id: str
    update_time: datetime


class AccountStore(Protocol):
    # True when the store forgets everything on restart, so the consumer must replay the
    # topic from the beginning to rebuild it.
    volatile: bool

    def put_if_newer(self, account: Account) -> bool:
        """Keep the account unless one of the same or a higher version exists; True if kept."""
        ...

    def get(self, user_id: str) -> Account | None: ...


class InMemoryAccountStore:
    """Thread-safe: the consumer thread writes while gRPC threads read."""

    volatile = True

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()

    def put_if_newer(self, account: Account) -> bool:
        with self._lock:
            current = self._accounts.get(account.user_id)
            if current is not None and current.version >= account.version:
                return False
            self._accounts[account.user_id] = account
            return True

    def get(self, user_id: str) -> Account | None:
        with self._lock:
            return self._accounts.get(user_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._accounts)
