"""The reliability suite: one shared broker, results gathered into a report at the end.

`make test-reliability` runs it; the report goes to reliability/results/latest.json and
latest.md (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from herald.tools.localkafka import LocalKafka, running_cluster
from tests.conftest import REPO, free_port_cluster, kafka_libs
from tests.reliability.harness import Result

RESULTS: list[Result] = []
ORDER = (
    "baseline",
    "baseline_secure",
    "kafka_down",
    "broker_kill",
    "delete_during_stream",
    "leader_kill_3node",
    "too_few_replicas",
    "service_kill_rebalance",
    "poison_records",
    "hostile_grpc",
    "oversized_record",
    "forged_events",
    "auth_db_outage",
    "auth_paused",
    "stalled_streams",
)
COLUMNS = (
    "name",
    "acknowledged",
    "published",
    "applied",
    "lost",
    "applied_twice",
    "skipped",
    "state_mismatch",
    "order_violations",
    "dead_lettered",
    "recovery_s",
    "wall_s",
    "fault",
)


@pytest.fixture(scope="session")
def single_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A one-node cluster the single-node scenarios share (and stop, kill and restart)."""
    with running_cluster(free_port_cluster(tmp_path_factory.mktemp("kafka-1"))) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def secure_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A one-node SASL_SSL cluster with ACLs enforced, for the secure scenarios."""
    root = tmp_path_factory.mktemp("kafka-secure")
    cluster = LocalKafka.on_free_ports(
        libs_dir=kafka_libs(), run_dir=root / "kafka", node_count=1, secure=root / "secure"
    )
    with running_cluster(cluster):
        yield cluster


@pytest.fixture
def report() -> Callable[[Result], None]:
    return RESULTS.append


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RESULTS:
        return
    folder = REPO / "reliability" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(RESULTS, key=lambda r: ORDER.index(r.name) if r.name in ORDER else len(ORDER))
    rows = [result.as_dict() for result in ordered]
    (folder / "latest.json").write_text(json.dumps({"scenarios": rows}, indent=2) + "\n")
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    (folder / "latest.md").write_text("\n".join(table) + "\n")
    print("\n" + "\n".join(table))


def _cell(value: object) -> str:
    # The fault's evidence as compact JSON, so the table stays one line per scenario.
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)
