"""Running ghz (the gRPC load generator, pinned in the Makefile) and reading its report."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import Latencies
from herald.rpc.tls import ClientTls

CREATE_USER = "herald.users.v1.UserService.CreateUser"


@dataclass(frozen=True)
class Load:
    """One ghz run: closed loop at `concurrency` when `rps` is 0, else that fixed rate."""

    concurrency: int
    connections: int
    seconds: float = 0.0
    total: int = 0  # a number of calls instead of a duration
    rps: int = 0

    def args(self) -> list[str]:
        args = ["-c", str(self.concurrency), "--connections", str(self.connections)]
        if self.total:
            args += ["-n", str(self.total)]
        else:
            # At the deadline, let calls in flight finish rather than count them as failed.
            args += ["-z", f"{self.seconds:g}s", "--duration-stop", "wait"]
        if self.rps:
            args += ["--rps", str(self.rps)]
        return args


@dataclass(frozen=True)
class Credentials:
    """How ghz reaches a server with TLS on: its client certificate and a bearer token."""

    tls: ClientTls
    token: str

    def args(self) -> list[str]:
        args = ["--cacert", str(self.tls.ca_file)]
        if self.tls.cert_file and self.tls.key_file:
            args += ["--cert", str(self.tls.cert_file), "--key", str(self.tls.key_file)]
        return [*args, "--metadata", json.dumps({"authorization": f"Bearer {self.token}"})]


@dataclass(frozen=True)
class GhzResult:
    load: Load
    calls: int
    ok: int
    rps: float  # successful calls per second of the run
    latencies: Latencies
    statuses: dict[str, int]
    cpu_s: float  # CPU seconds ghz itself used: the load generator's own cost
    wall_s: float

    def summary(self) -> dict[str, Any]:
        return {
            "load": self.load.__dict__,
            "calls": self.calls,
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "latency_ms": self.latencies.summary(),
            "statuses": self.statuses,
            "ghz_cpu_cores": round(self.cpu_s / self.wall_s, 3),
        }


class Ghz:
    def __init__(self, binary: Path, protoset: Path, workdir: Path) -> None:
        self._binary = binary
        self._protoset = protoset
        self._workdir = workdir
        self._runs = 0

    def create_users(
        self, target: str, load: Load, tag: str, credentials: Credentials | None = None
    ) -> GhzResult:
        """CreateUser calls with a unique email each. The email carries the call's start time
        (ghz's TimestampUnixNano), so whoever sees the user later knows when its call began."""
        data = {
            "name": "Bench User",
            "email": f"{tag}-{{{{.TimestampUnixNano}}}}-{{{{.RequestNumber}}}}@bench.example",
        }
        return self.run(target, CREATE_USER, data, load, credentials)

    def run(
        self,
        target: str,
        call: str,
        data: dict[str, str],
        load: Load,
        credentials: Credentials | None = None,
    ) -> GhzResult:
        self._runs += 1
        out = self._workdir / f"ghz-{self._runs}.json"
        command = [
            str(self._binary),
            *(credentials.args() if credentials else ["--insecure"]),
            "--protoset",
            str(self._protoset),
            "--call",
            call,
            "--data",
            json.dumps(data),
            "--timeout",
            "20s",
            "--format",
            "json",
            "--output",
            str(out),
            *load.args(),
            target,
        ]
        # ghz is the only child reaped during the run, so the change in the children's
        # resource usage is its own CPU time.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        report = json.loads(out.read_text())
        out.unlink()
        return _result(load, report, cpu, wall)


def _result(load: Load, report: dict[str, Any], cpu_s: float, wall_s: float) -> GhzResult:
    details = report.get("details") or []
    ok = [d["latency"] / 1e6 for d in details if d.get("status") == "OK"]
    total_s = report["total"] / 1e9
    return GhzResult(
        load=load,
        calls=int(report["count"]),
        ok=len(ok),
        rps=len(ok) / total_s if total_s else 0.0,
        latencies=Latencies(ok),
        statuses=dict(report.get("statusCodeDistribution") or {}),
        cpu_s=cpu_s,
        wall_s=wall_s,
    )
