"""Writing a bench run down: the JSON with every raw figure, a Markdown table, a latency plot."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt

from bench.ratios import PAIRED, medians
from bench.stats import Latencies

# ratio key -> (comparison, target, what it compares)
TARGETS: dict[str, tuple[str, float, str]] = {
    "rpc_throughput": (">=", 0.85, "CreateUser max RPS / no-op max RPS"),
    "rpc_cpu_per_call": (">=", 0.85, "(no-op + bare producer) CPU / users_svc CPU, per call"),
    "rpc_p99": ("<=", 1.5, "CreateUser p99 / no-op p99, at half CreateUser's max rate"),
    "e2e_p99_vs_bare": ("<=", 2.0, "CreateUser -> account in auth p99 / bare round trip p99"),
    "e2e_p99_light_vs_bare": ("<=", 1.5, "the same at 100 calls/s"),
    "consumer_throughput": (">=", 0.2, "auth_svc applied/s / bare consume+decode/s"),
    "consumer_vs_lean_apply": (">=", 0.8, "auth_svc applied/s / lean durable apply loop/s"),
    "relay_throughput": (">=", 0.7, "relay drain/s after outage / bare idempotent producer/s"),
    "startup_users": ("<=", 3.0, "users_svc spawn -> SERVING / import grpc+confluent_kafka"),
    "startup_auth": ("<=", 10.0, "auth_svc spawn -> SERVING / the same import"),
    "rss_growth": ("<=", 1.10, "RSS after the last call / after the first thousand"),
    "secure_rpc_throughput": (">=", 0.8, "CreateUser max RPS with mTLS + tokens / without"),
}


def met(comparison: str, value: float, target: float) -> bool:
    return value >= target if comparison == ">=" else value <= target


def sides(raw: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Each ratio's two measured sides, as text: (Herald, baseline); a paired ratio's are
    the medians of its pairs."""
    rpc, e2e, startup = raw["rpc"], raw["e2e"], raw["startup"]
    imported = startup["import_grpc_confluent_kafka_s"]["median"]
    memory = raw["memory"]
    grew = max(
        memory["rss_first_mib"],
        key=lambda n: memory["rss_last_mib"][n] / memory["rss_first_mib"][n],
    )
    paired = {}
    for key, unit in PAIRED.items():
        herald, baseline = medians(raw["pairs"][key])
        paired[key] = (f"{herald:,.0f} {unit}", f"{baseline:,.0f} {unit}")
    cpu = rpc["cpu_per_call_us"]
    return {
        **paired,
        "rpc_cpu_per_call": (
            f"{cpu['create_user']:.0f} µs (server {cpu['create_user_server']:.0f},"
            f" relay {cpu['create_user_relay']:.0f})",
            f"{cpu['noop']:.0f} + {cpu['bare_producer']:.0f} µs",
        ),
        "rpc_p99": (
            f"{rpc['create_user_at_half']['latency_ms']['p99']:.2f} ms",
            f"{rpc['noop_at_half']['latency_ms']['p99']:.2f} ms @ {rpc['half_rate']}/s",
        ),
        "e2e_p99_vs_bare": (
            f"{e2e['herald_at_half_ms']['p99']:.2f} ms",
            f"{e2e['bare_at_half_ms']['p99']:.2f} ms",
        ),
        "e2e_p99_light_vs_bare": (
            f"{e2e['herald_light_ms']['p99']:.2f} ms",
            f"{e2e['bare_light_ms']['p99']:.2f} ms",
        ),
        "startup_users": (f"{startup['users_svc_s']['median']:.3f} s", f"{imported:.3f} s"),
        "startup_auth": (f"{startup['auth_svc_s']['median']:.3f} s", f"{imported:.3f} s"),
        "rss_growth": (
            f"{grew}: {memory['rss_last_mib'][grew]:.0f} MiB",
            f"{memory['rss_first_mib'][grew]:.0f} MiB",
        ),
    }


def table(results: Mapping[str, Any]) -> str:
    ratios, spread = results["ratios"], results["ratio_spread"]
    measured = sides(results["raw"])
    lines = [
        "| figure | Herald | baseline | ratio | spread | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, (comparison, target, _) in TARGETS.items():
        herald, baseline = measured[key]
        ok = "yes" if met(comparison, ratios[key], target) else "**no**"
        ratio = f"{ratios[key]:.3f}"
        varied = f"{spread[key]['min']:.3f} to {spread[key]['max']:.3f}" if key in spread else ""
        lines.append(
            f"| {key} | {herald} | {baseline} | {ratio} | {varied} "
            f"| {comparison} {target:g} | {ok} |"
        )
    users_s = results["raw"]["startup"]["users_svc_s"]["median"]
    lines.append(
        f"| e2e_p99_ms @ {results['plan']['light_rate']}/s "
        f"| {results['e2e_p99_ms']:.2f} ms | | | | | |"
    )
    ok = "yes" if users_s < 1 else "**no**"
    lines.append(f"| users_svc start-up | {users_s:.3f} s | | | | < 1 s | {ok} |")
    return "\n".join(lines)


def write(
    results: Mapping[str, Any], series: Mapping[str, Latencies], folder: Path, began: datetime
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / began.strftime("%Y%m%dT%H%M%SZ")
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    env = results["environment"]
    md_path = stem.with_suffix(".md")
    md_path.write_text(
        f"# Herald bench, {results['started']} ({results['plan']['name']})\n\n"
        f"{table(results)}\n\n"
        f"Commit `{env['commit'][:12]}`{' (dirty)' if env['dirty'] else ''}; "
        f"{env['machine']['cpus']} CPUs ({env['machine']['cpu']}); "
        f"protobuf backend {env['protobuf_backend']}; ghz {env['ghz']}; {env['kafka_jar']}.\n"
    )
    png_path = stem.with_suffix(".png")
    plot(series, png_path, f"Latency at half CreateUser's max rate ({results['started']})")
    return [json_path, md_path, png_path]


# Percentiles on a log scale of 1/(1-p), so the tail gets as much room as the median.
_PERCENTILES = [0, 50, 75, 90, 95, 99, 99.5, 99.9]


def plot(series: Mapping[str, Latencies], path: Path, title: str) -> None:
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, latencies in series.items():
        if not len(latencies):
            continue
        xs = [_x(p) for p in _PERCENTILES]
        axes.plot(xs, [latencies.percentile(max(p, 0.001)) for p in _PERCENTILES], label=label)
    axes.set_xticks([_x(p) for p in _PERCENTILES], [f"p{p:g}" for p in _PERCENTILES])
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _x(percentile: float) -> float:
    return math.log10(1 / (1 - percentile / 100))
