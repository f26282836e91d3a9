"""The sizes of a bench run: the full plan of `make bench`, and the tiny one of `--smoke`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    name: str
    seconds: float  # each fixed-duration load
    warmup_s: float
    concurrency: int  # ghz workers in the closed-loop runs
    connections: int
    light_rate: int  # calls/s for the absolute end-to-end figure
    backlog: int  # users created while the broker is down
    memory_base: int  # calls before the first RSS sample
    prefill: int  # events for the consumer figure
    startups: int  # starts of each service; the median is reported


FULL = Plan("full", 15, 3, 32, 1, 100, 100_000, 1_000, 200_000, 5)
# Every phase runs, so the code is checked; its figures mean nothing.
SMOKE = Plan("smoke", 1, 0.3, 4, 1, 50, 300, 100, 2_000, 1)
