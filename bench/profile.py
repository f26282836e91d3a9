"""`python -m bench.profile`: where Herald's CPU goes, by thread and by function.

Starts a broker of its own and the services a workload needs (the server under test pinned as
in `make bench`), samples the process under test with py-spy and reads each of its threads' CPU
from /proc while the workload runs. Prints the CPU per unit of work by thread and the functions
that use the most of it (own time, and time including callees), per thread. Workloads:

- `create` (the default): CreateUser through users_svc, ghz in a closed loop, or at `--rps`;
- `apply`: auth_svc applying a pre-filled topic of `--events` UserCreated records;
- `drain`: users_svc's relay publishing an outage's backlog of `--events` CreateUser calls.

bench/README.md quotes its output.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import bare
from bench.ghz import Ghz, Load
from bench.processes import REPO, Pinning, Services, bench_broker, bench_topic
from bench.progress import TopicSize, time_drain, wait_applied
from bench.records import user_created_records
from herald.kafka.topics import EVENTS_TOPIC
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess

# What a workload hands back: CPU seconds by thread of the process it sampled, units done.
Measured = tuple[dict[str, float], int]


@dataclass(frozen=True)
class Where:
    """What a workload runs on: the broker, the services, ghz and the work folder."""

    cluster: LocalKafka
    services: Services
    ghz: Ghz
    workdir: Path

    @property
    def raw(self) -> Path:
        """Where py-spy writes its samples."""
        return self.workdir / "py-spy.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "workload", nargs="?", choices=("create", "apply", "drain"), default="create"
    )
    parser.add_argument("--seconds", type=float, default=15, help="create: how long")
    parser.add_argument("--rps", type=int, default=0, help="create: a fixed rate (0: closed loop)")
    parser.add_argument("--concurrency", type=int, default=32, help="create: ghz workers")
    parser.add_argument("--events", type=int, default=200_000, help="apply, drain: how many")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    pinning = Pinning.for_this_process()
    with tempfile.TemporaryDirectory(prefix="herald-profile-") as folder:
        workdir = Path(folder)
        with bench_broker(workdir) as cluster:
            ghz = Ghz(REPO / ".bin" / "ghz", REPO / "herald" / "descriptors.binpb", workdir)
            where = Where(cluster, Services(workdir, cluster, pinning), ghz, workdir)
            threads, done = WORKLOADS[args.workload](where, args)
        total = sum(threads.values())
        print(f"{done:,} done, {total / done * 1e6:.1f} µs of CPU each, by thread:")
        for thread, seconds in sorted(threads.items(), key=lambda item: -item[1]):
            if seconds / done * 1e6 >= 0.1:
                print(f"  {thread:<18} {seconds / done * 1e6:7.1f} µs")
        _report(where.raw.read_text(), args.top)
    return 0


def _create(where: Where, args: argparse.Namespace) -> Measured:
    services, ghz, workdir, raw = where.services, where.ghz, where.workdir, where.raw
    users = services.users(workdir / "users", log_level="WARNING")
    auth = services.auth(workdir / "auth", "profile")
    with services.running(users, auth):
        ghz.create_users(users.target, Load(32, 1, seconds=3), "warm")
        with _sampled(users, raw):
            meter = services.meter(users_svc=users)
            run = ghz.create_users(
                users.target, Load(args.concurrency, 1, seconds=args.seconds, rps=args.rps), "load"
            )
            threads = meter.thread_seconds("users_svc")
    print(f"CreateUser: {run.ok:,} calls, {run.rps:,.0f} RPS; users_svc:")
    return threads, run.ok


def _apply(where: Where, args: argparse.Namespace) -> Measured:
    cluster, services, workdir, raw = where.cluster, where.services, where.workdir, where.raw
    events = args.events
    topic = "bench.profile-apply"
    bench_topic(cluster.bootstrap_servers, topic)
    bare.produce_throughput(cluster.bootstrap_servers, user_created_records(topic, events), topic)
    auth = services.auth(workdir / "auth", "profile-apply", topic=topic)
    with services.running(auth), _sampled(auth, raw):
        meter = services.meter(auth_svc=auth)
        began = time.perf_counter()
        wait_applied(auth.target, events, timeout_s=900)
        seconds = time.perf_counter() - began
        threads = meter.thread_seconds("auth_svc")
    print(f"auth_svc: {events / seconds:,.0f} events/s from its start;")
    return threads, events


def _drain(where: Where, args: argparse.Namespace) -> Measured:
    cluster, services, ghz, raw = where.cluster, where.services, where.ghz, where.raw
    events = args.events
    users = services.users(where.workdir / "users", log_level="WARNING")
    with services.running(users):
        ghz.create_users(users.target, Load(32, 1, seconds=2), "warm")
        size = TopicSize(cluster.bootstrap_servers)
        published = size()
        size.close()
        cluster.stop_node(1)
        backlog = ghz.create_users(users.target, Load(32, 1, total=events), "backlog")
        cluster.start_node(1)
        with _sampled(users, raw):
            meter = services.meter(users_svc=users)
            drain = time_drain(cluster.bootstrap_servers, EVENTS_TOPIC, published, backlog.ok)
            threads = meter.thread_seconds("users_svc")
    print(f"relay: {drain['events_per_s']:,.0f} rows/s once the broker was back; users_svc:")
    return threads, backlog.ok


@contextmanager
def _sampled(process: ServiceProcess, raw: Path) -> Iterator[None]:
    """py-spy sampling `process` (raw format, 250 Hz, every thread) into `raw` for the block."""
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(process.pid)),
            *("--format", "raw", "--threads", "--rate", "250", "--nonblocking"),
            *("--output", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes what it has sampled, and stops
        spy.wait(30)


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


WORKLOADS: dict[str, Callable[[Where, argparse.Namespace], Measured]] = {
    "create": _create,
    "apply": _apply,
    "drain": _drain,
}

if __name__ == "__main__":
    sys.exit(main())
