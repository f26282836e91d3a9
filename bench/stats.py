"""Latency samples and the percentiles the reports quote."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Latencies:
    """Milliseconds, one per completed operation."""

    samples_ms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.samples_ms = sorted(self.samples_ms)

    def __len__(self) -> int:
        return len(self.samples_ms)

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile: the smallest sample with at least p% of samples at or below."""
        if not self.samples_ms:
            return math.nan
        rank = max(1, math.ceil(p / 100 * len(self.samples_ms)))
        return self.samples_ms[rank - 1]

    def summary(self) -> dict[str, Any]:
        return {
            "count": len(self.samples_ms),
            **{f"p{p:g}": round(self.percentile(p), 3) for p in (50, 90, 99, 99.9)},
            "max": round(self.samples_ms[-1], 3) if self.samples_ms else math.nan,
        }
