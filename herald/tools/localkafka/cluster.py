"""Runs Apache Kafka (KRaft, combined broker+controller nodes) from the Maven jars, no Docker.

Each node is one `java kafka.Kafka` process with its own folder under the run folder:
`server.properties`, its data, `server.log` and a pid file. The cluster's layout is kept in
`cluster.json`, so a later command (another `herald kafka …`) finds the same nodes, and a
stopped or killed node restarts on its old data. With `secure`, a folder of certificates and
passwords, the nodes take only TLS and SCRAM logins and enforce ACLs (see secure.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from herald.kafka.config import admin_config
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.settings import ServiceSettings
from herald.tools.localkafka.jvm import NodeProcess
from herald.tools.localkafka.nodes import (
    LOG4J2_PROPERTIES,
    STANDARD_INTERNAL_PORTS,
    STANDARD_PORTS,
    KafkaLaunchError,
    Node,
    broker_settings,
)
from herald.tools.localkafka.secure import ADMIN, BrokerSecurity, secure_settings
from herald.tools.processes import free_ports

logger = logging.getLogger(__name__)


class LocalKafka:
    """A local KRaft cluster of 1 or 3 combined nodes with static voters."""

    def __init__(
        self, *, libs_dir: Path, run_dir: Path, nodes: Sequence[Node], secure: Path | None = None
    ) -> None:
        if len(nodes) not in (1, 3):
            raise ValueError("a local cluster has 1 or 3 nodes")
        self.libs_dir = libs_dir
        self.run_dir = run_dir
        self.nodes = tuple(nodes)
        self.security = None if secure is None else BrokerSecurity(secure)
        log4j_config = run_dir / "log4j2.properties"
        self._jvms = {
            node.node_id: NodeProcess(
                node, run_dir / f"node-{node.node_id}", libs_dir, log4j_config
            )
            for node in self.nodes
        }

    # --- building one ---

    @classmethod
    def standard(
        cls, *, libs_dir: Path, run_dir: Path, node_count: int, secure: Path | None = None
    ) -> LocalKafka:
        """The fixed ports README uses: 19092, 29092, 39092 (and, when
        secure, 19094, 29094, 39094 between the brokers)."""
        nodes = [
            Node(i, port, ctl, internal if secure else None)
            for i, ((port, ctl), internal) in enumerate(
                zip(STANDARD_PORTS[:node_count], STANDARD_INTERNAL_PORTS, strict=False), start=1
            )
        ]
        return cls(libs_dir=libs_dir, run_dir=run_dir, nodes=nodes, secure=secure)

    @classmethod
    def on_free_ports(
        cls, *, libs_dir: Path, run_dir: Path, node_count: int, secure: Path | None = None
    ) -> LocalKafka:
        """Ports the OS says are free, so a test run never collides with `make run`."""
        per_node = 3 if secure else 2
        ports = free_ports(per_node * node_count)
        nodes = [Node(i + 1, *ports[per_node * i : per_node * (i + 1)]) for i in range(node_count)]
        return cls(libs_dir=libs_dir, run_dir=run_dir, nodes=nodes, secure=secure)

    @classmethod
    def load(cls, *, libs_dir: Path, run_dir: Path) -> LocalKafka | None:
        """The cluster an earlier command set up in `run_dir`, if any."""
        state = run_dir / "cluster.json"
        if not state.exists():
            return None
        layout = json.loads(state.read_text())
        nodes = [Node(**node) for node in layout["nodes"]]
        security = layout.get("security")
        secure = None if security is None else Path(security["folder"])
        return cls(libs_dir=libs_dir, run_dir=run_dir, nodes=nodes, secure=secure)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def client_env(self, principal: str) -> dict[str, str]:
        """The environment a Herald process reads to log in to this secure cluster."""
        return self._secured().client_env(self.bootstrap_servers, principal)

    def kafka_security(self, principal: str = ADMIN) -> KafkaSecurity:
        """How a Herald client reaches the cluster: as `principal` when it is secure."""
        if self.security is None:
            return PLAINTEXT
        return ServiceSettings.kafka_security_from_env(self.client_env(principal))

    def _secured(self) -> BrokerSecurity:
        if self.security is None:
            raise KafkaLaunchError(f"the cluster in {self.run_dir} is not secure")
        return self.security

    def layout(self) -> dict[str, object]:
        """What cluster.json holds: the nodes, each node's listeners, and the security."""
        return {
            "nodes": [asdict(node) for node in self.nodes],
            "listeners": {n.node_id: self.broker_settings(n)["listeners"] for n in self.nodes},
            "security": None if self.security is None else self.security.describe(),
        }

    def node(self, node_id: int) -> Node:
        return self._jvm(node_id).node

    def _jvm(self, node_id: int) -> NodeProcess:
        jvm = self._jvms.get(node_id)
        if jvm is None:
            raise KeyError(f"no node {node_id} in this cluster")
        return jvm

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
        if self.security is not None:
            self.security.prepare(self._keystore)
        (self.run_dir / "cluster.json").write_text(json.dumps(self.layout(), indent=2))
        to_start = [node for node in self.nodes if not self.is_running(node.node_id)]
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(self._format, to_start))
        for node in to_start:
            self._jvms[node.node_id].spawn()
        self.wait_until_ready(deadline=began + timeout_s)
        return time.monotonic() - began

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop every node: SIGTERM (a controlled shutdown), then SIGKILL after the grace.

        A broker's controlled shutdown needs a controller quorum. Once most voters are gone,
        the nodes left can never finish one, so they are killed instead of waited for.
        """
        running = {node_id: pid for node_id, pid in self.status().items() if pid is not None}
        for node_id in running:
            self._jvms[node_id].signal(signal.SIGTERM)
        quorum = len(self.nodes) // 2 + 1
        deadline = time.monotonic() + grace_s
        while running and time.monotonic() < deadline:
            running = {node_id: pid for node_id, pid in running.items() if self.is_running(node_id)}
            if 0 < len(running) < quorum and len(self.nodes) > 1:
                break
            time.sleep(0.1)
        for node_id in running:
            self.kill_node(node_id)
        for jvm in self._jvms.values():
            jvm.reap()

    def wipe(self) -> None:
        """Delete the run folder: the next start is a new, empty cluster."""
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def status(self) -> dict[int, int | None]:
        """Node id → pid of its running process, or None."""
        return {node_id: jvm.running_pid() for node_id, jvm in self._jvms.items()}

    def wait_until_ready(self, deadline: float, node_ids: Sequence[int] | None = None) -> None:
        """Wait until the cluster's metadata lists these nodes (all, by default) as brokers."""
        expected = set(node_ids or [node.node_id for node in self.nodes])
        # Listening sockets first: an admin client asked earlier floods stderr with
        # "connection refused" lines while the JVMs warm up.
        while not all(self.node(node_id).accepts() for node_id in expected):
            self._check_alive(deadline, expected)
            time.sleep(0.1)
        admin = AdminClient(
            admin_config(self.bootstrap_servers, "herald-launcher", security=self.kafka_security())
        )
        while True:
            with contextlib.suppress(KafkaException):
                if expected <= set(admin.list_topics(timeout=1.0).brokers):
                    return
            self._check_alive(deadline, expected)
            time.sleep(0.1)

    def _check_alive(self, deadline: float, expected: set[int]) -> None:
        for node_id in expected:
            code = self._jvms[node_id].exit_code()
            if code is not None:
                raise KafkaLaunchError(
                    f"node {node_id} exited with {code}:\n" + self.log_tail(node_id)
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
        if not self.is_running(node_id):
            self._jvm(node_id).spawn()
        if timeout_s is not None:
            self.wait_until_ready(deadline=time.monotonic() + timeout_s, node_ids=[node_id])

    def stop_node(self, node_id: int, grace_s: float = 30.0) -> None:
        """SIGTERM one node and wait for it; SIGKILL it if it outlives the grace."""
        jvm = self._jvm(node_id)
        pid = jvm.signal(signal.SIGTERM)
        if pid is None:
            return
        if not jvm.wait_exit(pid, grace_s):
            logger.warning("node %d ignored SIGTERM for %.0f s; killing it", node_id, grace_s)
            self.kill_node(node_id)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would."""
        jvm = self._jvm(node_id)
        pid = jvm.signal(signal.SIGKILL)
        if pid is not None:
            jvm.wait_exit(pid, 10.0)

    def is_running(self, node_id: int) -> bool:
        return self._jvm(node_id).running_pid() is not None

    def log_tail(self, node_id: int, lines: int = 40) -> str:
        return self._jvm(node_id).log_tail(lines)

    # --- internals ---

    def _check_libs(self) -> None:
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise KafkaLaunchError(
                f"no Kafka jars in {self.libs_dir}; run `make kafka-jars` to fetch them"
            )
        if shutil.which("java") is None:
            raise KafkaLaunchError("java is not on PATH; Kafka needs Java 17 or newer")

    def broker_settings(self, node: Node) -> dict[str, str]:
        """The server.properties of one node (docker-compose.yml mirrors the secure 3-node
        ones; tests/unit/test_compose.py checks)."""
        plain = broker_settings(self.nodes, node, self._jvms[node.node_id].data_dir)
        if self.security is None:
            return plain
        return secure_settings(plain, node, self.security, self._keystore)

    @property
    def _keystore(self) -> Path:
        return self.run_dir / "tls" / "node-keystore.pem"

    def _format(self, node: Node) -> None:
        jvm = self._jvms[node.node_id]
        if self.security is None:
            jvm.format(self.broker_settings(node))
        else:
            security = self.security
            jvm.format(self.broker_settings(node), security.scram_arguments(), security.passwords())


@contextlib.contextmanager
def running_cluster(cluster: LocalKafka) -> Iterator[LocalKafka]:
    """Start the cluster for the duration of a block, and stop it whatever happens."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
