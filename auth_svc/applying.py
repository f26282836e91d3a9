"""Applying a batch's events to the store: in one transaction, retried while the store is
unavailable; when the retries run out, record by record, so only what still fails is
dead-lettered."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from auth_svc.accounts import AccountStore, DecodedEvent
from auth_svc.batch import InFlight, StoppedError
from auth_svc.dead_letters import DeadLetterWriter
from auth_svc.status import StatusBoard
from herald.backoff import Backoff
from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")


# The longest wait between two tries: long enough to let a busy database catch up, short
# enough that a partition is not held back for long once it has.
MAX_BACKOFF_S = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often a transiently failing write is tried, and how long to wait between tries."""

    attempts: int
    first_backoff_s: float
    max_backoff_s: float = MAX_BACKOFF_S

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.first_backoff_s, self.max_backoff_s)


class Applier:
    def __init__(
        self,
        store: AccountStore,
        retry: RetryPolicy,
        dead_letters: DeadLetterWriter,
        status: StatusBoard,
    ) -> None:
        self._store = store
        self._retry = retry
        self._dead_letters = dead_letters
        self._status = status

    def apply(self, batch: Sequence[InFlight], stopping: threading.Event) -> None:
        """Apply the decoded records of the batch and mark them finished. Raises
        StoppedError if `stopping` is set while a record waits for a retry."""
        decoded = [(record, record.event) for record in batch if record.event is not None]
        if not decoded:
            return
        events = [event for _, event in decoded]
        try:
            outcomes = self._retrying(
                lambda: self._store.apply_batch(events),
                f"a batch of {len(events)} records",
                stopping,
            )
        except StoreUnavailableError as error:
            logger.warning("applying the batch one record at a time: %s", error)
            for record, event in decoded:
                self._apply_one(record, event, stopping)
                record.finished = True
            return
        self._status.count(outcomes)
        for record, _ in decoded:
            record.finished = True

    def _apply_one(self, record: InFlight, event: DecodedEvent, stopping: threading.Event) -> None:
        try:
            outcome = self._retrying(lambda: self._store.apply(*event), record.where, stopping)
        except StoreUnavailableError as error:
            self._dead_letters.write(record, error, stopping)
        else:
            self._status.count([outcome])

    def _retrying(self, apply: Callable[[], T], what: str, stopping: threading.Event) -> T:
        """apply(), again with backoff while the store is unavailable, up to the policy's
        attempts; then the last StoreUnavailableError is raised."""
        delays = self._retry.backoff.delays()
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return apply()
            except StoreUnavailableError as error:
                if attempt == self._retry.attempts:
                    raise
                self._status.count_retry()
                delay = next(delays)
                logger.warning("retrying %s in %.1f s: %s", what, delay, error)
                if stopping.wait(delay):
                    raise StoppedError from error
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover
