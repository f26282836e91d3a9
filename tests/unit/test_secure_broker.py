"""The secure local cluster's server.properties, credentials and layout, without a JVM."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from herald.kafka.security import PLAINTEXT
from herald.tools.certs import DEFAULT_OUT
from herald.tools.localkafka import PRINCIPALS, KafkaLaunchError, LocalKafka, add_secure_argument
from herald.tools.localkafka.secure import BrokerSecurity, write_argfile

LIBS = Path("/nonexistent-libs")


def secure_cluster(tmp_path: Path, node_count: int = 1, *, standard: bool = False) -> LocalKafka:
    build = LocalKafka.standard if standard else LocalKafka.on_free_ports
    cluster = build(
        libs_dir=LIBS, run_dir=tmp_path / "run", node_count=node_count, secure=tmp_path / "sec"
    )
    assert cluster.security is not None
    cluster.security.prepare(tmp_path / "run" / "tls" / "node-keystore.pem")
    return cluster


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secure_node_serves_clients_only_over_sasl_ssl_and_nodes_over_mtls(
    tmp_path: Path,
) -> None:
    cluster = secure_cluster(tmp_path)
    [node] = cluster.nodes
    settings = cluster.broker_settings(node)
    assert settings["listeners"] == (
        f"CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port},"
        f"CONTROLLER://127.0.0.1:{node.controller_port}"
    )
    assert settings["advertised.listeners"] == (
        f"CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port}"
    )
    assert settings["listener.security.protocol.map"] == (
        "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"
    )
    assert "PLAINTEXT" not in " ".join(settings.values())
    assert settings["inter.broker.listener.name"] == "INTERNAL"
    assert settings["controller.listener.names"] == "CONTROLLER"
    assert settings["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert (
        "ScramLoginModule required;"
        in settings["listener.name.client.scram-sha-512.sasl.jaas.config"]
    )
    assert settings["ssl.keystore.type"] == settings["ssl.truststore.type"] == "PEM"
    assert settings["ssl.truststore.location"] == str(tmp_path / "sec" / "tls" / "ca.pem")
    assert settings["listener.name.internal.ssl.client.auth"] == "required"
    assert settings["listener.name.controller.ssl.client.auth"] == "required"
    assert settings["ssl.principal.mapping.rules"] == "RULE:^CN=([^,]+)$/$1/,DEFAULT"
    assert settings["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert settings["super.users"] == "User:herald-node;User:herald-admin"
    # The plaintext cluster's durability settings stay.
    assert settings["unclean.leader.election.enable"] == "false"
    assert settings["auto.create.topics.enable"] == "false"


def test_server_properties_hold_no_password_and_the_keystore_is_owner_only(
    tmp_path: Path,
) -> None:
    cluster = secure_cluster(tmp_path)
    assert cluster.security is not None
    text = json.dumps(cluster.broker_settings(cluster.nodes[0]))
    for password in cluster.security.passwords():
        assert password not in text
    assert not any("password" in key for key in cluster.broker_settings(cluster.nodes[0]))
    keystore = Path(cluster.broker_settings(cluster.nodes[0])["ssl.keystore.location"])
    assert mode(keystore) == 0o600
    pem = keystore.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Java needs
    assert "-----BEGIN CERTIFICATE-----" in pem


def test_three_secure_nodes_have_their_own_ports_and_the_standard_ones(tmp_path: Path) -> None:
    cluster = secure_cluster(tmp_path, 3, standard=True)
    assert [(n.port, n.controller_port, n.internal_port) for n in cluster.nodes] == [
        (19092, 19093, 19094),
        (29092, 29093, 29094),
        (39092, 39093, 39094),
    ]
    free = secure_cluster(tmp_path / "free", 3)
    ports = [p for n in free.nodes for p in (n.port, n.controller_port, n.internal_port)]
    assert len(set(ports)) == 9
    voters = cluster.broker_settings(cluster.nodes[1])["controller.quorum.voters"]
    assert voters == "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"


def test_a_plaintext_cluster_is_unchanged_and_has_no_internal_port(tmp_path: Path) -> None:
    cluster = LocalKafka.standard(libs_dir=LIBS, run_dir=tmp_path, node_count=1)
    settings = cluster.broker_settings(cluster.nodes[0])
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert "authorizer.class.name" not in settings
    assert cluster.nodes[0].internal_port is None
    assert cluster.kafka_security() == PLAINTEXT
    with pytest.raises(KafkaLaunchError, match="not secure"):
        cluster.client_env("users-svc")


def test_passwords_are_random_owner_only_and_made_once(tmp_path: Path) -> None:
    security = BrokerSecurity(tmp_path)
    security.prepare(tmp_path / "ks.pem")
    first = {p: security.password(p) for p in PRINCIPALS}
    assert set(PRINCIPALS) == {"users-svc", "auth-svc", "herald-replay", "herald-admin"}
    assert len(set(first.values())) == len(PRINCIPALS)
    for principal, password in first.items():
        path = tmp_path / "kafka" / f"{principal}.password"
        assert mode(path) == 0o600
        assert len(password) >= 40
    assert mode(tmp_path / "kafka") == 0o700
    security.prepare(tmp_path / "ks.pem")
    assert {p: security.password(p) for p in PRINCIPALS} == first
    with pytest.raises(KeyError):
        security.password_file("someone-else")


def test_the_node_certificate_names_herald_node_and_loopback(tmp_path: Path) -> None:
    BrokerSecurity(tmp_path).prepare(tmp_path / "ks.pem")
    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "kafka-node.pem").read_bytes())
    [cn] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == "herald-node"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert mode(tmp_path / "tls" / "kafka-node.key") == 0o600


def test_client_env_names_exactly_what_a_client_reads(tmp_path: Path) -> None:
    cluster = secure_cluster(tmp_path)
    env = cluster.client_env("users-svc")
    assert env == {
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "users-svc",
        "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "sec" / "kafka" / "users-svc.password"),
        "KAFKA_SSL_CA_FILE": str(tmp_path / "sec" / "tls" / "ca.pem"),
    }
    assert Path(env["KAFKA_SASL_PASSWORD_FILE"]).is_file()
    with pytest.raises(KeyError):
        cluster.client_env("root")


def test_cluster_json_brings_back_the_ports_listeners_and_security(tmp_path: Path) -> None:
    cluster = secure_cluster(tmp_path, 3)
    layout = cluster.layout()
    (tmp_path / "run" / "cluster.json").write_text(json.dumps(layout))
    again = LocalKafka.load(libs_dir=LIBS, run_dir=tmp_path / "run")
    assert again is not None
    assert again.nodes == cluster.nodes
    assert again.security == cluster.security
    assert again.broker_settings(again.nodes[2]) == cluster.broker_settings(cluster.nodes[2])
    security = json.loads(json.dumps(layout))["security"]
    assert security["listeners"] == {"CLIENT": "SASL_SSL", "INTERNAL": "SSL", "CONTROLLER": "SSL"}
    assert security["super_users"] == ["User:herald-node", "User:herald-admin"]
    # A plaintext cluster.json of before this mode still loads.
    plain = {"nodes": [{"node_id": 1, "port": 1, "controller_port": 2}]}
    (tmp_path / "run" / "cluster.json").write_text(json.dumps(plain))
    old = LocalKafka.load(libs_dir=LIBS, run_dir=tmp_path / "run")
    assert old is not None
    assert old.security is None


def test_scram_arguments_go_to_an_owner_only_argfile(tmp_path: Path) -> None:
    security = BrokerSecurity(tmp_path)
    security.prepare(tmp_path / "ks.pem")
    arguments = security.scram_arguments()
    assert arguments[0::2] == ["--add-scram"] * len(PRINCIPALS)
    password = security.password("auth-svc")
    assert f"SCRAM-SHA-512=[name=auth-svc,password={password}]" in arguments
    argfile = tmp_path / "format.args"
    write_argfile(argfile, ["kafka.tools.StorageTool", *arguments])
    assert mode(argfile) == 0o600
    assert argfile.read_text().splitlines()[:2] == ['"kafka.tools.StorageTool"', '"--add-scram"']
    with pytest.raises(ValueError, match="quotes"):
        write_argfile(argfile, ['pass"word'])


def test_secure_flag_defaults_to_the_certs_folder() -> None:
    parser = argparse.ArgumentParser()
    add_secure_argument(parser)
    assert parser.parse_args([]).secure is None
    assert parser.parse_args(["--secure"]).secure == DEFAULT_OUT
    assert parser.parse_args(["--secure", "/x"]).secure == Path("/x")


def test_a_failed_format_reads_its_argfile_and_reports_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `java` that prints its arguments and the argfile they name, then fails.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(
        '#!/bin/sh\necho "args: $*"\nfor a; do case "$a" in @*) cat "${a#@}";; esac; done\nexit 1\n'
    )
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    cluster = secure_cluster(tmp_path)
    assert cluster.security is not None
    with pytest.raises(KafkaLaunchError) as failure:
        cluster._format(cluster.nodes[0])
    report = str(failure.value)
    assert "args: " in report
    assert "--add-scram" in report  # the argfile was read: it held the SCRAM arguments
    assert "password=***" in report
    assert not any(password in report for password in cluster.security.passwords())
    assert not (tmp_path / "run" / "node-1" / "format.args").exists()
