"""The figures `make bench` is judged by, computed from a run's raw measurements.

A throughput ratio comes from alternating pairs (baseline, Herald, baseline, Herald, ...):
its value is the median of the pairs' ratios, and `spread` keeps the lowest, the highest and
every pair, so a reader sees how much one run of each would have moved it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

# The paired ratios, each with the unit of its two sides: raw["pairs"][key] is a list of
# {"baseline", "herald", "ratio"}.
PAIRED = {
    "rpc_throughput": "RPS",
    "secure_rpc_throughput": "RPS",
    "consumer_throughput": "ev/s",
    "consumer_vs_lean_apply": "ev/s",
    "relay_throughput": "rows/s",
}


def pair(baseline: float, herald: float) -> dict[str, float]:
    return {"baseline": baseline, "herald": herald, "ratio": round(herald / baseline, 4)}


def spread(pairs: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    ratios = [p["ratio"] for p in pairs]
    return {
        "median": round(statistics.median(ratios), 3),
        "min": round(min(ratios), 3),
        "max": round(max(ratios), 3),
        "pairs": list(pairs),
    }


def ratios(raw: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """(ratio by key, the spread of each paired one)."""
    rpc, e2e, startup, memory = raw["rpc"], raw["e2e"], raw["startup"], raw["memory"]
    imported = startup["import_grpc_confluent_kafka_s"]["median"]
    growth = {
        name: memory["rss_last_mib"][name] / memory["rss_first_mib"][name]
        for name in memory["rss_first_mib"]
    }
    spreads = {key: spread(raw["pairs"][key]) for key in PAIRED}
    cpu = rpc["cpu_per_call_us"]
    figures = {
        **{key: spreads[key]["median"] for key in PAIRED},
        "rpc_cpu_per_call": (cpu["noop"] + cpu["bare_producer"]) / cpu["create_user"],
        "rpc_p99": rpc["create_user_at_half"]["latency_ms"]["p99"]
        / rpc["noop_at_half"]["latency_ms"]["p99"],
        "e2e_p99_vs_bare": e2e["herald_at_half_ms"]["p99"] / e2e["bare_at_half_ms"]["p99"],
        "e2e_p99_light_vs_bare": e2e["herald_light_ms"]["p99"] / e2e["bare_light_ms"]["p99"],
        "startup_users": startup["users_svc_s"]["median"] / imported,
        "startup_auth": startup["auth_svc_s"]["median"] / imported,
        "rss_growth": max(growth.values()),
    }
    return {name: round(value, 3) for name, value in figures.items()}, spreads


def medians(pairs: Sequence[Mapping[str, float]]) -> tuple[float, float]:
    """(Herald's median, the baseline's median) over the pairs: the table's two sides."""
    return (
        statistics.median(p["herald"] for p in pairs),
        statistics.median(p["baseline"] for p in pairs),
    )
