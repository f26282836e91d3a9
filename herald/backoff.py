"""Exponential backoff: how long to wait before each next attempt at something that may pass."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits that start at `first_s` and double with every attempt, up to `max_s`."""

    first_s: float
    max_s: float

    def delays(self) -> Iterator[float]:
        """The wait before each next attempt, without end: take one per failure, and start
        again from a new iterator once an attempt succeeds."""
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)
