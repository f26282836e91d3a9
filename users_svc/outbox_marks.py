"""The relay's marks waiting to be stored (rows the broker acknowledged, not yet marked
published in the database), and the SQLite statements that store them.

Storing a mark costs a commit, and a commit a sync to disk. Marked batch by batch, a relay
keeping up with CreateUser at a moderate rate waited for a commit of its own between nearly
every two batches, and rows committed meanwhile waited with it. So the relay hands its marks
in as rows are acknowledged and stores them together, at most users_svc.relay.MARK_EVERY_S
later; meanwhile the outbox leaves those rows out of what is pending. In `make bench`'s rpc
phase this took the end-to-end p50 at half CreateUser's max rate from 7.1 and 14.7 ms to 3.6
and 3.3 (two alternating pairs; bench/README.md). A crash before they are stored publishes
them again, as a crash between publishing and marking always could: every copy has the same
event id, and consumers drop the second.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence

# What an erased user's published outbox row keeps: its seq, key and event id, nothing else.
ERASED = (
    "value = x'', headers = json_array(json_array('ce_id', event_id)), erase_when_published = 0"
)

# (published at, in µs; first seq; last seq): one UPDATE's parameters.
MarkRun = tuple[int, int, int]


class WaitingMarks:
    """Runs of seqs marked published in memory only. Safe from any thread: the relay adds and
    stores them, while other threads may ask what is pending."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[MarkRun] = []

    def add(self, seqs: Sequence[int], at_us: int) -> None:
        with self._lock:
            self._runs += [(at_us, first, last) for first, last in runs(seqs)]

    def taken(self) -> list[MarkRun]:
        """The runs waiting, oldest first; they keep waiting until `stored` says otherwise."""
        with self._lock:
            return self._runs[:]

    def stored(self, done: Sequence[MarkRun]) -> None:
        """These runs of `taken` are in the database now. Only they leave: runs added, or
        stored by another caller, meanwhile are no business of this one."""
        with self._lock:
            for run in done:
                if run in self._runs:
                    self._runs.remove(run)

    def ranges(self) -> list[tuple[int, int]]:
        """The seqs waiting, as few ranges as cover them (consecutive batches join up)."""
        with self._lock:
            spans = sorted((first, last) for _, first, last in self._runs)
        merged: list[tuple[int, int]] = []
        for first, last in spans:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
            else:
                merged.append((first, last))
        return merged


def runs(seqs: Sequence[int]) -> Iterator[tuple[int, int]]:
    """The seqs as runs of consecutive numbers, ascending: [7, 1, 2, 3] -> (1, 3), (7, 7)."""
    ordered = sorted(seqs)
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            yield ordered[start], ordered[index - 1]
            start = index


def excluding(ranges: Sequence[tuple[int, int]]) -> tuple[str, list[int]]:
    """A WHERE clause's extra terms leaving the `ranges` of seqs out, and their parameters."""
    sql = " AND seq NOT BETWEEN ? AND ?" * len(ranges)
    return sql, [bound for span in ranges for bound in span]


def store_runs(connection: sqlite3.Connection, marks: Sequence[MarkRun]) -> int:
    """Store the marks, one UPDATE per run of consecutive seqs (a statement per row cost the
    relay more than reading the rows did); then erase the rows pending when their user was
    erased, now sent. How many were erased."""
    connection.executemany("UPDATE outbox SET published_at_us = ? WHERE seq BETWEEN ? AND ?", marks)
    # The partial index outbox_to_erase holds only those rows, so this costs nothing when
    # there are none (left to itself, the planner would scan every published row instead).
    return connection.execute(
        f"UPDATE outbox INDEXED BY outbox_to_erase SET {ERASED}"  # noqa: S608 - constant
        " WHERE erase_when_published = 1 AND published_at_us IS NOT NULL"
    ).rowcount
