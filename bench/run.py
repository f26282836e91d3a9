"""`make bench`: Herald measured against the bare libraries beneath it, in one run.

Every figure is a ratio to a baseline measured in the same run, on the same broker and
machine, with the same load generator settings (bench/README.md says what each is):

  rpc_throughput         CreateUser's max RPS / a no-op UserService's on Herald's server stack
  rpc_cpu_per_call       (no-op's CPU per call + a bare idempotent producer's per record)
                         / users_svc's CPU per call, relay included, at the same rate
  rpc_p99                CreateUser p99 / no-op p99, both at half CreateUser's max rate
  e2e_p99_vs_bare        p99 from CreateUser's start to the account committed in auth_svc
                         / p99 of a bare produce -> consume round trip, same rate and record
  e2e_p99_light_vs_bare  the same at 100 calls/s
  consumer_throughput    auth_svc events applied/s over a pre-filled topic
                         / a bare consume(1000)-and-decode loop over the same topic
  consumer_vs_lean_apply auth_svc / a lean loop doing the same durable work (bench.lean)
  relay_throughput       outbox rows published/s after an outage backlog
                         / a bare idempotent producer sending as many records
  secure_rpc_throughput  CreateUser's max RPS with mTLS and tokens / without
  startup_users          users_svc spawn -> SERVING / `import grpc, confluent_kafka`
  startup_auth           auth_svc spawn -> SERVING (assignment held) / the same import
  rss_growth             RSS after the last CreateUser / RSS after the first thousand (the
                         larger of the two services)

Throughput ratios are the median of alternating (baseline, Herald) pairs; `ratio_spread`
keeps every pair. The server under test runs alone on the last CPU; the broker, auth_svc,
ghz and this process share the others. `--smoke` runs every phase with tiny sizes and one
pair, so `make test` keeps this code working; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.ghz import Ghz
from bench.phases import Bench
from bench.plan import FULL, SMOKE
from bench.processes import REPO, Pinning, bench_broker
from bench.ratios import ratios
from bench.versions import environment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code runs")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--ghz", type=Path, default=REPO / ".bin" / "ghz")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    # This process, the broker it starts and ghz share every CPU but the last.
    pinning = Pinning.for_this_process()
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as folder:
        workdir = Path(folder)
        with bench_broker(workdir) as cluster:
            ghz = Ghz(args.ghz, REPO / "herald" / "descriptors.binpb", workdir)
            bench = Bench(plan, workdir, cluster, ghz, pinning)
            phases = (bench.startup, bench.rpc_and_e2e, bench.memory, bench.relay, bench.consumer)
            for phase in phases:
                print(f"bench: {phase.__name__} ...", flush=True)
                phase_began = time.monotonic()
                phase()
                print(f"bench: {phase.__name__} done in {time.monotonic() - phase_began:.0f} s")
    figures, spread = ratios(bench.raw)
    results = {
        "plan": asdict(plan),
        "started": began.isoformat(timespec="seconds"),
        "ratios": figures,
        "ratio_spread": spread,
        "e2e_p99_ms": bench.raw["e2e"]["herald_light_ms"]["p99"],
        "raw": bench.raw,
        "pinning": {"server_under_test": pinning.server, "everything_else": pinning.others_list},
        "environment": environment(args.ghz),
        "command": " ".join(sys.argv),
    }
    paths = report.write(results, bench.series, args.results, began)
    print(report.table(results))
    print("\n".join(f"wrote {path}" for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
