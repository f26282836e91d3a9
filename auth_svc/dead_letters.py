"""Writing a record auth_svc cannot apply to the dead-letter topic, with the reason, until the
broker has it: the partition moves past a record only once its dead letter is safe."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from auth_svc.batch import InFlight, StoppedError
from auth_svc.decoders import PoisonRecordError
from auth_svc.status import StatusBoard
from herald.backoff import Backoff
from herald.kafka import deadletter
from herald.kafka.sender import RecordSender
from herald.timestamps import utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetterWriter:
    sender: RecordSender
    topic: str
    backoff: Backoff
    status: StatusBoard  # counts each dead letter once the broker has it
    clock: Callable[[], datetime] = utc_now

    def write(self, record: InFlight, error: Exception, stopping: threading.Event) -> None:
        """Send the record, as it was plus why, to the dead-letter topic; keep trying until
        it is there (never skip a record without a trace). Raises StoppedError if `stopping`
        is set meanwhile."""
        # A poison record's class is what was wrong with it (DecodeError, say), not ours.
        cause = (
            error.__cause__ if isinstance(error, PoisonRecordError) and error.__cause__ else error
        )
        letter = deadletter.dead_letter(
            record.message,
            self.topic,
            error_class=type(cause).__name__,
            error_message=str(error),
            at=self.clock(),
        )
        delays = self.backoff.delays()
        while not self.sender.send([letter])[0]:
            delay = next(delays)
            logger.error("could not dead-letter %s; retrying in %.1f s", record.where, delay)
            if stopping.wait(delay):
                raise StoppedError
        self.status.count_dead_letter()
        logger.warning("dead-lettered %s: %s", record.where, error)
