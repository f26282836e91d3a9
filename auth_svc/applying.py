"""Applying a batch's events to the store: in one transaction; when the store keeps refusing
that, record by record, so that a record the store cannot take is told apart from a store that
takes nothing. Only the first is ever dead-lettered; the second holds the batch (BlockedError)
until the store is back, however long that takes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from auth_svc.accounts import AccountStore
from auth_svc.batch import BlockedError, InFlight
from auth_svc.dead_letters import DeadLetterWriter
from auth_svc.status import StatusBoard
from herald.backoff import Backoff
from herald.storage.errors import StoreUnavailableError

logger = logging.getLogger(__name__)


# The longest wait between two tries: long enough to let a busy database catch up, short
# enough that a partition is not held back for long once it has.
MAX_BACKOFF_S = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing batch is tried whole before it is tried record by record, how often
    a record may fail while others succeed before it is dead-lettered, and the waits between."""

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

    def apply(self, batch: Sequence[InFlight], tries: int) -> None:
        """Apply the batch's decoded, unfinished records and mark them finished; `tries` is
        how often this batch was tried before. One attempt each call, with no waiting here:
        the consumer waits between attempts, and keeps polling Kafka meanwhile. Raises
        BlockedError while some record is still unfinished."""
        pending = [r for r in batch if r.event is not None and not r.finished]
        if not pending:
            return
        if tries < self._retry.attempts:
            try:
                outcomes = self._store.apply_batch([r.event for r in pending if r.event])
            except StoreUnavailableError as error:
                self._status.count_retry()
                raise BlockedError(f"the account store is unavailable: {error}") from error
            self._status.count(outcomes)
            for record in pending:
                record.finished = True
            return
        self._one_by_one(pending)

    def _one_by_one(self, pending: list[InFlight]) -> None:
        """Try each record alone, those that failed least often first.

        A record that fails while the store takes others (or, with none taken yet, still
        answers a ping) counts a failure of its own, and is dead-lettered after the policy's
        attempts. A store that answers nothing is down: nobody's fault, so nothing counts and
        the batch is held until it is back.
        """
        store_answers = False
        for record in sorted(pending, key=lambda r: r.store_failures):
            if record.event is None:  # pragma: no cover - pending records are decoded
                continue
            try:
                outcome = self._store.apply(*record.event)
            except StoreUnavailableError as error:
                store_answers = store_answers or self._answers_ping()
                if not store_answers:
                    self._status.count_retry()
                    raise BlockedError(f"the account store is unavailable: {error}") from None
                self._failed_alone(record, error)
                continue
            self._status.count([outcome])
            record.finished = True
            store_answers = True
        if any(not record.finished for record in pending):
            self._status.count_retry()
            raise BlockedError("the account store refuses some records")

    def _answers_ping(self) -> bool:
        try:
            self._store.ping()
        except StoreUnavailableError:
            return False
        return True

    def _failed_alone(self, record: InFlight, error: StoreUnavailableError) -> None:
        record.store_failures += 1
        logger.warning(
            "%s failed while the store took other writes (%d of %d): %s",
            record.where,
            record.store_failures,
            self._retry.attempts,
            error,
        )
        if record.store_failures >= self._retry.attempts:
            self._dead_letters.write([(record, error)])
