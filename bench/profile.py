"""`python -m bench.profile`: where users_svc's CPU goes under CreateUser load.

Starts a broker, users_svc (pinned, as in `make bench`) and auth_svc, drives CreateUser with
ghz in a closed loop, and meanwhile samples users_svc with py-spy and reads each thread's CPU
from /proc. Prints the CPU per call by thread and the functions that use the most of it (own
time, and time including callees), per thread. bench/README.md quotes its output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.ghz import Ghz, Load
from bench.processes import REPO, Pinning, Services, bench_broker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    pinning = Pinning.for_this_process()
    with tempfile.TemporaryDirectory(prefix="herald-profile-") as folder:
        workdir = Path(folder)
        with bench_broker(workdir) as cluster:
            ghz = Ghz(REPO / ".bin" / "ghz", REPO / "herald" / "descriptors.binpb", workdir)
            services = Services(workdir, cluster, pinning)
            users = services.users(workdir / "users", log_level="WARNING")
            auth = services.auth(workdir / "auth", "profile")
            with services.running(users, auth):
                ghz.create_users(users.target, Load(32, 1, seconds=3), "warm")
                raw = workdir / "py-spy.txt"
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(users.pid),
                        "--format",
                        "raw",
                        "--threads",
                        "--rate",
                        "250",
                        "--duration",
                        str(int(args.seconds)),
                        "--output",
                        str(raw),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                meter = services.meter(users_svc=users)
                run = ghz.create_users(users.target, Load(32, 1, seconds=args.seconds), "load")
                threads = meter.thread_seconds("users_svc")
                total = meter.seconds()["users_svc"]
                spy.wait()
        print(f"{run.ok} calls, {run.rps:,.0f} RPS; users_svc {total / run.ok * 1e6:.0f} µs/call")
        for name, seconds in sorted(threads.items(), key=lambda item: -item[1]):
            print(f"  {name:<18} {seconds / run.ok * 1e6:7.1f} µs/call")
        _report(raw.read_text(), args.top)
    return 0


def _report(raw: str, top: int) -> None:
    """py-spy's raw format: one line per stack, `thread;frame;frame... count`."""
    own: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread, frames = frames[0], [f.split(" (")[0] for f in frames[1:]]
        thread = thread.split('"')[1] if '"' in thread else thread
        n = int(count)
        samples[thread] += n
        if frames:
            own.setdefault(thread, Counter())[frames[-1]] += n
            for frame in set(frames):
                inclusive.setdefault(thread, Counter())[frame] += n
    for thread, n in samples.most_common():
        print(f"\n{thread}: {n} samples")
        for frame, k in own.get(thread, Counter()).most_common(top):
            print(f"  own {k / n:6.1%}  {frame}")
        for frame, k in inclusive.get(thread, Counter()).most_common(top):
            print(f"  all {k / n:6.1%}  {frame}")


if __name__ == "__main__":
    sys.exit(main())
