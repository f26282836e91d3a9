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
    light_rate: int  # calls/s for the light end-to-end figure
    backlog: int  # users created while the broker is down, for the memory figure
    memory_base: int  # calls before the first RSS sample
    prefill: int  # events for the consumer figures
    startups: int  # starts of each service; the median is reported
    # Alternating (baseline, Herald) measurements behind each throughput ratio: one run of
    # each moves by 15-30% with what else the 2-core machine does; the median of several less.
    pairs: int
    relay_backlog: int  # rows each relay pair drains after an outage


FULL = Plan("full", 15, 3, 32, 1, 100, 100_000, 1_000, 200_000, 5, 3, 40_000)
# Every phase runs, so the code is checked; its figures mean nothing.
SMOKE = Plan("smoke", 1, 0.3, 4, 1, 50, 300, 100, 2_000, 1, 1, 300)
