"""A secure local cluster, for real: who gets in, who is refused, and where no password leaks.

One secure node on free ports (tests/secure_kafka.py) serves every integration
test that needs one. Topics these tests make have no ACLs, so only the super users
(herald-admin, the node itself) may touch them.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from herald.kafka.config import ClientConfig
from herald.tools.localkafka import PRINCIPALS, LocalKafka
from tests.conftest import kafka_libs
from tests.secure_kafka import Secure, all_command_lines
from tests.support import unique


def errors_of(config: ClientConfig) -> tuple[list[KafkaError], bool]:
    """The errors a client reports trying to read the cluster's metadata, and whether it did."""
    errors: list[KafkaError] = []
    admin = AdminClient({**config}, error_cb=errors.append)
    try:
        admin.list_topics(timeout=5)
    except KafkaException as error:
        admin.poll(1)  # error_cb runs only in poll
        errors.append(error.args[0])
        return errors, False
    return errors, True


def test_herald_admin_creates_a_topic_and_produces_and_consumes(secure: Secure) -> None:
    topic = unique("secure")
    admin = AdminClient({**secure.config()})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({**secure.config(), "enable.idempotence": True})
    producer.produce(topic, key=b"k", value=b"over SASL_SSL")
    assert producer.flush(20) == 0
    consumer = Consumer(
        {**secure.config(), "group.id": unique("g"), "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error():
                message = None
        assert message is not None
        assert message.value() == b"over SASL_SSL"
    finally:
        consumer.close()


def test_a_client_without_credentials_is_refused(secure: Secure) -> None:
    env = secure.cluster.client_env("herald-admin")
    # TLS alone, no SASL login: the broker never answers a metadata request.
    config: ClientConfig = {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": "SSL",
        "ssl.ca.location": env["KAFKA_SSL_CA_FILE"],
    }
    _errors, served = errors_of(config)
    assert not served


def test_a_wrong_password_is_refused(secure: Secure) -> None:
    errors, served = errors_of(secure.config("herald-admin", **{"sasl.password": "not-it"}))
    assert not served
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_a_plaintext_client_gets_nothing_from_the_sasl_ssl_port(secure: Secure) -> None:
    _errors, served = errors_of({"bootstrap.servers": secure.cluster.bootstrap_servers})
    assert not served
    # Byte level: an ApiVersions request in the clear gets no Kafka answer, at most a TLS alert.
    request = struct.pack(">hhih", 18, 0, 7, 4) + b"test"
    with socket.create_connection(("127.0.0.1", secure.cluster.nodes[0].port), 5) as sock:
        sock.settimeout(5)
        sock.sendall(struct.pack(">i", len(request)) + request)
        try:
            answer = sock.recv(4096)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert answer == b"" or answer[0] == 0x15  # 0x15: a TLS alert record


def test_the_node_listeners_refuse_a_client_without_a_node_certificate(secure: Secure) -> None:
    node = secure.cluster.nodes[0]
    assert node.internal_port is not None
    ca_file = secure.cluster.client_env("users-svc")["KAFKA_SSL_CA_FILE"]
    for port in (node.internal_port, node.controller_port):
        assert refuses_tls(port, ca_file), port
    # The check tells the two apart: the node's own certificate is let in.
    tls = Path(ca_file).parent
    assert not refuses_tls(node.internal_port, ca_file, tls / "kafka-node.pem")


def refuses_tls(port: int, ca_file: str, certificate: Path | None = None) -> bool:
    """Whether a TLS client that trusts the CA (and shows `certificate`) is turned away."""
    context = ssl.create_default_context(cafile=ca_file)
    if certificate is not None:
        context.load_cert_chain(certificate, certificate.with_suffix(".key"))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), 5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            # TLS 1.3 reports the missing client certificate on the first read. A server that
            # took the client would wait for a request instead: the read would time out.
            tls.settimeout(3)
            return tls.recv(1) == b""
    except TimeoutError:
        return False
    except (ssl.SSLError, ConnectionResetError):
        return True


def test_users_svc_without_an_acl_may_not_produce(secure: Secure) -> None:
    topic = unique("no-acl")
    admin = AdminClient({**secure.config()})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    reports: list[KafkaError | None] = []
    producer = Producer({**secure.config("users-svc"), "message.timeout.ms": 15000})
    producer.produce(topic, value=b"denied", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(20)
    [error] = reports
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_every_principal_can_log_in(secure: Secure) -> None:
    for principal in PRINCIPALS:
        _errors, served = errors_of(secure.config(principal))
        assert served, principal


def test_no_password_in_any_command_line_or_broker_log(secure: Secure) -> None:
    seen = secure.seen
    # The watch did see StorageTool run, with only its argfile's name on the command line.
    assert seen.formats, "the watch never saw the format run"
    assert all("--add-scram" not in cmdline for cmdline in seen.formats)
    # Counted, not shown: a failure report must not print the password either.
    assert not seen.leaks, f"{len(seen.leaks)} command lines held a password"
    assert not list(secure.cluster.run_dir.rglob("format.args"))  # deleted after the format
    passwords = seen.passwords
    for cmdline in all_command_lines():
        assert not any(password in cmdline for password in passwords)
    logs = list(secure.cluster.run_dir.rglob("*.log"))
    assert logs
    # Every file: logs, server.properties, cluster.json, and the data, whose bootstrap and
    # metadata records hold only salted SCRAM hashes.
    for path in secure.cluster.run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(password.encode() in data for password in passwords), path


def test_a_later_command_finds_the_secure_cluster_in_cluster_json(secure: Secure) -> None:
    again = LocalKafka.load(libs_dir=kafka_libs(), run_dir=secure.cluster.run_dir)
    assert again is not None
    assert again.security == secure.cluster.security
    assert again.nodes == secure.cluster.nodes
    assert all(pid is not None for pid in again.status().values())
    again.wait_until_ready(deadline=time.monotonic() + 30)


def test_a_killed_secure_node_restarts_on_its_data_with_its_logins(secure: Secure) -> None:
    # Last in the module: it bounces the shared node. The SCRAM credentials live in the
    # metadata log, so they survive without another format.
    secure.cluster.kill_node(1)
    assert secure.cluster.status() == {1: None}
    secure.cluster.start_node(1, timeout_s=90)
    _errors, served = errors_of(secure.config("users-svc"))
    assert served
