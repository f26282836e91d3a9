"""The secure cluster the tests share: one SASL_SSL node on free ports, with every
command line watched while it formats and starts (no password may show on one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from herald.kafka.config import ClientConfig
from herald.tools.localkafka import LocalKafka


@dataclass
class CommandLines:
    """Every process command line seen while the cluster was formatted and started."""

    passwords: list[str] = field(repr=False)  # never in a failure report either
    leaks: list[str] = field(default_factory=list, repr=False)
    formats: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self) -> None:
        while not self.stop.is_set():
            for cmdline in all_command_lines():
                if any(password in cmdline for password in self.passwords):
                    self.leaks.append(cmdline)
                if "format.args" in cmdline:
                    self.formats.append(cmdline)
            time.sleep(0.01)


@dataclass
class Secure:
    cluster: LocalKafka
    seen: CommandLines

    def config(self, principal: str = "herald-admin", **overrides: str | int) -> ClientConfig:
        """librdkafka settings built from `client_env`, as a Herald process would."""
        env = self.cluster.client_env(principal)
        config: ClientConfig = {
            "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "security.protocol": env["KAFKA_SECURITY_PROTOCOL"],
            "sasl.mechanisms": env["KAFKA_SASL_MECHANISM"],
            "sasl.username": env["KAFKA_SASL_USERNAME"],
            "sasl.password": Path(env["KAFKA_SASL_PASSWORD_FILE"]).read_text().strip(),
            "ssl.ca.location": env["KAFKA_SSL_CA_FILE"],
        }
        return {**config, **overrides}


def all_command_lines() -> Iterator[str]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                yield (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue


def running_secure_cluster(root: Path, libs: Path) -> Iterator[Secure]:
    """One secure node on free ports under `root`, watched while it formats and starts."""
    cluster = LocalKafka.on_free_ports(
        libs_dir=libs, run_dir=root / "kafka", node_count=1, secure=root / "secure"
    )
    assert cluster.security is not None
    # The passwords exist before the start (which keeps them), so the watch knows them.
    cluster.security.prepare(root / "scratch-keystore.pem")
    seen = CommandLines(cluster.security.passwords())
    watcher = threading.Thread(target=seen.watch, daemon=True)
    watcher.start()
    try:
        seconds = cluster.start()
        print(f"\nsecure Kafka at {cluster.bootstrap_servers} in {seconds:.1f} s")
        seen.stop.set()
        watcher.join()
        yield Secure(cluster, seen)
    finally:
        seen.stop.set()
        cluster.stop()
