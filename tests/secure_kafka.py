"""The secure cluster the tests share: one SASL_SSL node on free ports, with every
command line watched while it formats and starts (no password may show on one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from herald.kafka.config import ClientConfig, producer_config
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
            self.stop.wait(0.01)  # sampled often: a format lasts a second or two


@dataclass
class Secure:
    cluster: LocalKafka
    seen: CommandLines

    def config(self, principal: str = "herald-admin", **overrides: str | int) -> ClientConfig:
        """librdkafka settings that log in as `principal`, from `client_env` as a Herald
        process reads it (LocalKafka.kafka_security)."""
        security = self.cluster.kafka_security(principal)
        config: ClientConfig = {"bootstrap.servers": self.cluster.bootstrap_servers}
        return {**config, **security.client_config(), **overrides}


def produce_as(cluster: LocalKafka, principal: str, topic: str, value: bytes) -> KafkaError | None:
    """Produce one record to `topic` with Herald's producer settings, logged in as
    `principal`: the delivery error the broker gave, or None when it was written."""
    security = cluster.kafka_security(principal)
    config = producer_config(cluster.bootstrap_servers, "producing-as", security)
    reports: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 15000})
    producer.produce(topic, key=b"k", value=value, on_delivery=lambda e, _m: reports.append(e))
    producer.flush(20)
    [report] = reports
    return report


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
