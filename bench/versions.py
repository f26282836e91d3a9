"""What a result was measured with: machine, commit and the versions of everything in the path."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka
import psutil
from google.protobuf.internal import api_implementation

from bench.processes import REPO


def environment(ghz: Path) -> dict[str, Any]:
    return {
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(),
        },
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        # upb is the fast C protobuf backend; "python" would make every figure meaningless.
        "protobuf_backend": api_implementation.Type(),
        "packages": {
            name: version(name)
            for name in ("grpcio", "protobuf", "confluent-kafka", "grpcio-health-checking")
        },
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka_jar": _kafka_jar(),
        "ghz": _ghz_version(ghz),
        "java": _java_version(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _kafka_jar() -> str:
    libs = Path(os.environ.get("KAFKA_LIBS", REPO / ".cache" / "kafka-libs"))
    jars = sorted(p.name for p in libs.glob("kafka_2.13-*.jar"))
    return jars[0] if jars else "unknown"


def _ghz_version(ghz: Path) -> str:
    # Built with `go install`, so the module version is in the binary's build info.
    done = subprocess.run(
        ["go", "version", "-m", str(ghz)], check=False, capture_output=True, text=True
    )
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["mod", "github.com/bojand/ghz"]:
            return parts[2]
    return "unknown"


def _java_version() -> str:
    done = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return done.stderr.splitlines()[0] if done.stderr else "unknown"
