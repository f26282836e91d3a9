"""Runs Apache Kafka (KRaft, combined broker+controller nodes) from the Maven jars, no Docker.

Each node is one `java kafka.Kafka` process with its own folder under the run folder:
`server.properties`, its data, `server.log` and a pid file. The cluster's layout is kept in
`cluster.json`, so a later command (another `herald kafka …`) finds the same nodes, and a
stopped or killed node restarts on its old data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from herald.kafka.topics import replication_for

logger = logging.getLogger(__name__)

# Cluster ids are 16 bytes in URL-safe base64; any fixed valid one will do, and a fresh run
# folder gets fresh data, so every run is a new cluster even with the same id.
CLUSTER_ID = "SGVyYWxkTG9jYWxLYWZrYQ"
STANDARD_PORTS = ((19092, 19093), (29092, 29093), (39092, 39093))
READY_MESSAGE = "Kafka Server started"

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

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class LocalKafka:
    """A local KRaft cluster of 1 or 3 combined nodes with static voters."""

    def __init__(self, *, libs_dir: Path, run_dir: Path, nodes: Sequence[Node]) -> None:
        if len(nodes) not in (1, 3):
            raise ValueError("a local cluster has 1 or 3 nodes")
        self.libs_dir = libs_dir
        self.run_dir = run_dir
        self.nodes = tuple(nodes)
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # --- building one ---

    @classmethod
    def standard(cls, *, libs_dir: Path, run_dir: Path, node_count: int) -> LocalKafka:
        """The fixed ports README and docker-compose.yml use: 19092, 29092, 39092."""
        ports = STANDARD_PORTS[:node_count]
        nodes = [Node(i, port, ctl) for i, (port, ctl) in enumerate(ports, start=1)]
        return cls(libs_dir=libs_dir, run_dir=run_dir, nodes=nodes)

    @classmethod
    def on_free_ports(cls, *, libs_dir: Path, run_dir: Path, node_count: int) -> LocalKafka:
        """Ports the OS says are free, so a test run never collides with `make run`."""
        ports = free_ports(2 * node_count)
        nodes = [Node(i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(node_count)]
        return cls(libs_dir=libs_dir, run_dir=run_dir, nodes=nodes)

    @classmethod
    def load(cls, *, libs_dir: Path, run_dir: Path) -> LocalKafka | None:
        """The cluster an earlier command set up in `run_dir`, if any."""
        state = run_dir / "cluster.json"
        if not state.exists():
            return None
        layout = json.loads(state.read_text())
        nodes = [Node(**node) for node in layout["nodes"]]
        return cls(libs_dir=libs_dir, run_dir=run_dir, nodes=nodes)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in this cluster")

    # --- the whole cluster ---

    def start(self, timeout_s: float = 120.0) -> float:
        """Format what is new, start every node that is not running, wait until all serve.

        Returns the seconds it took. Nodes start together because a 3-voter quorum needs two
        of them up before any can finish starting.
        """
        began = time.monotonic()
        self._check_libs()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        (self.run_dir / "cluster.json").write_text(
            json.dumps({"nodes": [asdict(node) for node in self.nodes]}, indent=2)
        )
        to_start = [node for node in self.nodes if not self.is_running(node.node_id)]
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(self._format, to_start))
        for node in to_start:
            self._spawn(node)
        self.wait_until_ready(deadline=began + timeout_s)
        return time.monotonic() - began

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop every node: SIGTERM (a controlled shutdown), then SIGKILL after the grace.

        A broker's controlled shutdown needs a controller quorum. Once most voters are gone,
        the nodes left can never finish one, so they are killed instead of waited for.
        """
        running = {node_id: pid for node_id, pid in self.status().items() if pid is not None}
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):  # it exited on its own meanwhile
                os.kill(pid, signal.SIGTERM)
        quorum = len(self.nodes) // 2 + 1
        deadline = time.monotonic() + grace_s
        while running and time.monotonic() < deadline:
            running = {node_id: pid for node_id, pid in running.items() if self.is_running(node_id)}
            if 0 < len(running) < quorum and len(self.nodes) > 1:
                break
            time.sleep(0.1)
        for node_id in running:
            self.kill_node(node_id)
        for child in self._children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)

    def wipe(self) -> None:
        """Delete the run folder: the next start is a new, empty cluster."""
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def status(self) -> dict[int, int | None]:
        """Node id → pid of its running process, or None."""
        return {node.node_id: self._running_pid(node) for node in self.nodes}

    def wait_until_ready(self, deadline: float, node_ids: Sequence[int] | None = None) -> None:
        """Wait until the cluster's metadata lists these nodes (all, by default) as brokers."""
        expected = set(node_ids or [node.node_id for node in self.nodes])
        # Listening sockets first: an admin client asked earlier floods stderr with
        # "connection refused" lines while the JVMs warm up.
        while not all(_accepts(self.node(node_id).port) for node_id in expected):
            self._check_alive(deadline, expected)
            time.sleep(0.1)
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        while True:
            with contextlib.suppress(KafkaException):
                if expected <= set(admin.list_topics(timeout=1.0).brokers):
                    return
            self._check_alive(deadline, expected)
            time.sleep(0.1)

    def _check_alive(self, deadline: float, expected: set[int]) -> None:
        for node_id in expected:
            child = self._children.get(node_id)
            if child is not None and child.poll() is not None:
                raise KafkaLaunchError(
                    f"node {node_id} exited with {child.returncode}:\n" + self.log_tail(node_id)
                )
        if time.monotonic() > deadline:
            raise KafkaLaunchError(
                f"nodes {sorted(expected)} not serving in time; logs in {self.run_dir}"
            )

    # --- one node, for fault tests ---

    def start_node(self, node_id: int, timeout_s: float | None = 120.0) -> None:
        """Start one node again on its data, and wait until it serves (unless timeout_s is None).

        After a SIGKILL the controllers wait out the old broker session
        (`broker.session.timeout.ms`, 9 s) before they let the node register again.
        """
        node = self.node(node_id)
        if not self.is_running(node_id):
            self._spawn(node)
        if timeout_s is not None:
            self.wait_until_ready(deadline=time.monotonic() + timeout_s, node_ids=[node_id])

    def stop_node(self, node_id: int, grace_s: float = 30.0) -> None:
        """SIGTERM one node and wait for it; SIGKILL it if it outlives the grace."""
        pid = self._running_pid(self.node(node_id))
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(node_id, pid, grace_s):
            logger.warning("node %d ignored SIGTERM for %.0f s; killing it", node_id, grace_s)
            self.kill_node(node_id)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would."""
        pid = self._running_pid(self.node(node_id))
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(node_id, pid, 10.0)

    def is_running(self, node_id: int) -> bool:
        return self._running_pid(self.node(node_id)) is not None

    def log_tail(self, node_id: int, lines: int = 40) -> str:
        log = self._node_dir(node_id) / "server.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    # --- internals ---

    def _node_dir(self, node_id: int) -> Path:
        return self.run_dir / f"node-{node_id}"

    def _java(self, main_class: str, *args: str, jvm_options: Sequence[str] = ()) -> list[str]:
        return [
            "java",
            *jvm_options,
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def _check_libs(self) -> None:
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise KafkaLaunchError(
                f"no Kafka jars in {self.libs_dir}; run `make kafka-jars` to fetch them"
            )
        if shutil.which("java") is None:
            raise KafkaLaunchError("java is not on PATH; Kafka needs Java 17 or newer")

    def broker_settings(self, node: Node) -> dict[str, str]:
        """The server.properties of one node (docker-compose.yml mirrors them; a test checks)."""
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas, min_insync = replication_for(len(self.nodes))
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
            "log.dirs": self._node_dir(node.node_id) / "data",
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

    def _format(self, node: Node) -> None:
        node_dir = self._node_dir(node.node_id)
        node_dir.mkdir(parents=True, exist_ok=True)
        config = node_dir / "server.properties"
        config.write_text(
            "".join(f"{key}={value}\n" for key, value in self.broker_settings(node).items())
        )
        if (node_dir / "data" / "meta.properties").exists():
            return
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                CLUSTER_ID,
                "--config",
                str(config),
                jvm_options=("-Xmx256m",),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaLaunchError(
                f"formatting node {node.node_id} failed:\n{result.stdout}{result.stderr}"
            )

    def _spawn(self, node: Node) -> None:
        node_dir = self._node_dir(node.node_id)
        with (node_dir / "server.log").open("ab") as log:
            child = subprocess.Popen(
                self._java(
                    "kafka.Kafka", str(node_dir / "server.properties"), jvm_options=JVM_OPTIONS
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the user's terminal reaches Herald, which then
                # stops the broker in order, instead of hitting the JVM directly.
                start_new_session=True,
            )
        self._children[node.node_id] = child
        (node_dir / "pid").write_text(str(child.pid))
        logger.info("started Kafka node %d (pid %d) on %s", node.node_id, child.pid, node.address)

    def _running_pid(self, node: Node) -> int | None:
        """The pid of this node's JVM if it is alive (and really is this node's JVM)."""
        pid_file = self._node_dir(node.node_id) / "pid"
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        # A pid can be reused after a reboot; only our node's command line counts. A zombie
        # ("Z") has exited and only waits to be reaped.
        properties = str(self._node_dir(node.node_id) / "server.properties").encode()
        if properties not in cmdline or stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return pid

    def _wait_exit(self, node_id: int, pid: int, timeout_s: float) -> bool:
        child = self._children.get(node_id)
        if child is not None and child.pid == pid:
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._running_pid(self.node(node_id)) is None:
                return True
            time.sleep(0.1)
        return False


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@contextlib.contextmanager
def running_cluster(cluster: LocalKafka) -> Iterator[LocalKafka]:
    """Start the cluster for the duration of a block, and stop it whatever happens."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
