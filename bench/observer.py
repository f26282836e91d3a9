"""Watching auth_svc's database for accounts as they commit: the end of an end-to-end trip.

A reader of a WAL database sees a transaction only once it has committed, so the moment an
account shows up here is the moment it is durably in auth_svc. The bench's CreateUser calls
put their start time into the email (see bench.ghz), so each account carries its own start.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from bench.stats import Latencies

POLL_S = 0.001  # the observer's resolution: it adds up to this much to each latency


class AccountWatcher:
    def __init__(self, database: Path) -> None:
        self._database = database
        self._seen: dict[str, int] = {}  # email -> time seen (ns since the epoch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="account-watcher", daemon=True)

    def __enter__(self) -> AccountWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def latencies(self, tag: str, expected: int, timeout_s: float = 60.0) -> Latencies:
        """Start-to-committed latency of every account whose email has `tag`; waits until
        `expected` of them are seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            mine = self._tagged(tag)
            if len(mine) >= expected:
                break
            self._stop.wait(0.05)
        mine = self._tagged(tag)
        if len(mine) < expected:
            raise RuntimeError(f"only {len(mine)} of {expected} accounts reached auth_svc")
        return Latencies([(seen - began) / 1e6 for began, seen in mine])

    def _tagged(self, tag: str) -> list[tuple[int, int]]:
        prefix = tag + "-"
        return [
            (int(email[len(prefix) :].split("-", 1)[0]), seen)
            for email, seen in list(self._seen.items())
            if email.startswith(prefix)
        ]

    def _watch(self) -> None:
        connection = sqlite3.connect(f"file:{self._database}?mode=ro", uri=True)
        last = connection.execute("SELECT coalesce(max(rowid), 0) FROM accounts").fetchone()[0]
        try:
            while not self._stop.is_set():
                rows = connection.execute(
                    "SELECT rowid, email FROM accounts WHERE rowid > ? ORDER BY rowid", (last,)
                ).fetchall()
                now = time.time_ns()
                for rowid, email in rows:
                    self._seen[email] = now
                    last = rowid
                time.sleep(POLL_S)
        finally:
            connection.close()
