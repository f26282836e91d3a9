"""Writing records auth_svc cannot apply to the dead-letter topic, with the reason: a record
counts as finished, and its partition may move past it, only once the broker has its letter."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from auth_svc.batch import BlockedError, InFlight
from auth_svc.decoders import PoisonRecordError
from auth_svc.status import StatusBoard
from herald.contract.fields import quoted
from herald.kafka import deadletter
from herald.kafka.records import Record
from herald.kafka.sender import RecordSender
from herald.timestamps import utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetterWriter:
    sender: RecordSender
    topic: str
    status: StatusBoard  # counts each dead letter once the broker has it
    clock: Callable[[], datetime] = utc_now

    def write(self, records: Sequence[tuple[InFlight, Exception]]) -> None:
        """Send each record, as it was plus why, to the dead-letter topic, all at once, and
        mark the ones the broker took finished. Raises BlockedError if it refused any: the
        caller holds them and tries again later (never skips a record without a trace)."""
        if not records:
            return
        at = self.clock()
        letters = [self._letter(record, error, at) for record, error in records]
        refused = 0
        for (record, error), acknowledged in zip(records, self.sender.send(letters), strict=True):
            if acknowledged:
                record.finished = True
                self.status.count_dead_letter()
                # The reason may quote a record's header: quoted, so it cannot forge a line.
                logger.warning("dead-lettered %s: %s", record.where, quoted(error))
            else:
                refused += 1
        if refused:
            raise BlockedError(f"the dead-letter topic {self.topic} refused {refused} records")

    def _letter(self, record: InFlight, error: Exception, at: datetime) -> Record:
        # A poison record's class is what was wrong with it (DecodeError, say), not ours.
        cause = (
            error.__cause__ if isinstance(error, PoisonRecordError) and error.__cause__ else error
        )
        return deadletter.dead_letter(
            record.message,
            self.topic,
            error_class=type(cause).__name__,
            error_message=str(error),
            at=at,
        )
