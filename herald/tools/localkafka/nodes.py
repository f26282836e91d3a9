"""What a local Kafka node is: its ports, its server.properties, and the JVM it runs in."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from herald.kafka.topics import replication_for

# Cluster ids are 16 bytes in URL-safe base64; any fixed valid one will do, and a fresh run
# folder gets fresh data, so every run is a new cluster even with the same id.
CLUSTER_ID = "SGVyYWxkTG9jYWxLYWZrYQ"
STANDARD_PORTS = ((19092, 19093), (29092, 29093), (39092, 39093))
# The inter-broker listener's port, which only a secure cluster has (see secure.py).
STANDARD_INTERNAL_PORTS = (19094, 29094, 39094)

JVM_OPTIONS = (
    # 512 MiB is plenty for tests and local runs, and lets three nodes share a laptop.
    "-Xms512m",
    "-Xmx512m",
    # The flags kafka-server-start.sh passes.
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


class KafkaLaunchError(RuntimeError):
    """A node could not be formatted, started or reached."""


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int
    # A secure node's inter-broker listener; a plaintext node shares its client port.
    internal_port: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def accepts(self) -> bool:
        """Whether something accepts connections on the client port now."""
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


def broker_settings(nodes: Sequence[Node], node: Node, data_dir: Path) -> dict[str, str]:
    """The server.properties of one plaintext node; secure.py's secure_settings builds on it."""
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    replicas, min_insync = replication_for(len(nodes))
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        # Static voters: every node is formatted the same way and needs no directory ids.
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": data_dir,
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_insync,
        # The defaults (50 partitions, RF 3) are slow to create on a 2-core machine.
        "offsets.topic.num.partitions": 3,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.num.partitions": 3,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_insync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_insync,
        # Only an in-sync replica may lead: never trade acknowledged data for uptime.
        "unclean.leader.election.enable": "false",
        # The default 3 s wait for more members is dead time in tests and local runs.
        "group.initial.rebalance.delay.ms": 0,
        # Topics come from `herald topics ensure`, never from a typo in a client.
        "auto.create.topics.enable": "false",
        "num.network.threads": 2,
        "num.io.threads": 4,
    }
    return {key: str(value) for key, value in settings.items()}


def java_command(
    libs_dir: Path, log4j_config: Path, main_class: str, *args: str, jvm_options: Sequence[str] = ()
) -> list[str]:
    """`java` running one of Kafka's main classes from the jar folder, logging per log4j2."""
    return [
        "java",
        *jvm_options,
        f"-Dlog4j2.configurationFile={log4j_config}",
        "-cp",
        f"{libs_dir}/*",
        main_class,
        *args,
    ]
