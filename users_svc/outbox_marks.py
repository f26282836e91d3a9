"""Marking published outbox rows off the relay's path.

Marking rows published is a write, and a write commits with a sync to disk: when the relay
waited for it after every batch, that commit was one of two per CreateUser, and its wait sat
between one batch and the next. `DeferredMarks` takes the marks on a thread of its own. The
relay goes on at once; the thread commits what has queued meanwhile, as one unit of the
store's group commit (so it often rides along with CreateUser calls' commit), as fast as the
disk allows.

Until a mark commits, the rows stay unpublished in the database, so the store must not offer
them again: `snapshot` says which to leave out. A crash before the commit leaves them
unpublished, and the next start sends them again; every copy has the same event id, so
consumers drop it, as after any crash between send and mark.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from herald.lifecycle import name_os_thread

logger = logging.getLogger(__name__)


class DeferredMarks:
    def __init__(self, write: Callable[[Sequence[int], datetime], None]) -> None:
        # `write` marks rows published and returns once that has committed; it raises if the
        # commit failed, and the rows must then be offered (and sent) again.
        self._write = write
        self._lock = threading.Condition()
        self._queued: list[int] = []
        self._at: datetime | None = None
        self._writing = False
        # Marked here, not yet committed: pending() leaves them out.
        self._marked: set[int] = set()
        # Every unpublished row up to `floor` is in `_marked`: pending() reads after it. It
        # advances over the rows last offered, in order, as far as they are all marked.
        self._floor = 0
        self._offered: list[int] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="outbox-marks", daemon=True)
        self._thread.start()

    def snapshot(self) -> tuple[int, frozenset[int]]:
        """(read rows after this seq, and leave these out): taken before reading, so a mark
        that commits meanwhile is either still left out or already in what is read."""
        with self._lock:
            return self._floor, frozenset(self._marked)

    def offered(self, seqs: Sequence[int]) -> None:
        """The rows pending() just handed the relay, in order."""
        with self._lock:
            self._offered = list(seqs)

    def mark(self, seqs: Sequence[int], at: datetime) -> None:
        """Queue `seqs` to be marked published at `at`; returns at once."""
        with self._lock:
            self._marked.update(seqs)
            self._queued.extend(seqs)
            self._at = at if self._at is None else max(self._at, at)
            while self._offered and self._offered[0] in self._marked:
                self._floor = max(self._floor, self._offered.pop(0))
            self._lock.notify_all()

    def flush(self) -> None:
        """Return once every mark queued so far has been written (or has failed)."""
        with self._lock:
            self._lock.wait_for(lambda: not self._queued and not self._writing)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join()

    def _run(self) -> None:
        name_os_thread()
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._queued or self._stopping)
                if not self._queued:
                    return
                seqs, at = self._queued, self._at or datetime.now(UTC)
                self._queued, self._at, self._writing = [], None, True
            failed = False
            try:
                self._write(seqs, at)
            except Exception:
                # Offered again, so sent again: a duplicate, never a loss.
                logger.warning("outbox marks not committed; the rows will be sent again")
                failed = True
            with self._lock:
                self._marked.difference_update(seqs)
                if failed:
                    self._floor = min(self._floor, min(seqs) - 1)
                    self._offered = []
                self._writing = False
                self._lock.notify_all()
