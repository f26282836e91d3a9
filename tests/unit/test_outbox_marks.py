"""DeferredMarks: the relay's marks committed on a thread of their own, and what the store
must leave out of `pending` until they have."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from users_svc.outbox_marks import DeferredMarks

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Disk:
    """A `write` that blocks until released, and records or refuses what it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.release = threading.Event()
        self.started = threading.Event()
        self.written: list[list[int]] = []

    def write(self, seqs: Sequence[int], at: datetime) -> None:
        self.started.set()
        self.release.wait(10)
        if self.fail:
            raise OSError("disk I/O error")
        self.written.append(list(seqs))


def test_marked_rows_are_left_out_until_their_commit_and_then_read_past() -> None:
    disk = Disk()
    marks = DeferredMarks(disk.write)
    marks.offered([1, 2, 3])
    marks.mark([1, 2], T0)  # returns before the write has committed
    assert disk.started.wait(10)
    floor, left_out = marks.snapshot()
    assert (floor, left_out) == (2, frozenset({1, 2}))
    disk.release.set()
    marks.flush()
    assert disk.written == [[1, 2]]
    assert marks.snapshot() == (2, frozenset())
    marks.close()


def test_the_floor_stops_at_the_first_offered_row_not_marked() -> None:
    disk = Disk()
    disk.release.set()
    marks = DeferredMarks(disk.write)
    marks.offered([5, 6, 7, 8])
    marks.mark([5, 7, 8], T0)  # 6 failed to send: it must be offered again
    floor, _ = marks.snapshot()
    assert floor == 5
    marks.close()


def test_marks_that_fail_to_commit_are_offered_again() -> None:
    disk = Disk(fail=True)
    disk.release.set()
    marks = DeferredMarks(disk.write)
    marks.offered([10, 11])
    marks.mark([10, 11], T0)
    marks.flush()
    floor, left_out = marks.snapshot()
    assert left_out == frozenset()
    assert floor < 10  # pending() reads them again, so the relay sends them again
    marks.close()


def test_marks_queued_during_a_write_go_together_in_the_next() -> None:
    disk = Disk()
    marks = DeferredMarks(disk.write)
    marks.offered([1, 2, 3])
    marks.mark([1], T0)
    assert disk.started.wait(10)
    marks.mark([2], T0)
    marks.mark([3], T0)
    disk.release.set()
    marks.flush()
    assert disk.written == [[1], [2, 3]]
    marks.close()
