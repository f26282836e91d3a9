"""KafkaSecurity from the settings: the defaults, a complete SASL_SSL set-up, every incomplete
or contradictory one refused with a reason, and the password in none of what can be shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from confluent_kafka import Producer

from herald.kafka.config import admin_config, consumer_config, producer_config
from herald.kafka.security import PLAINTEXT
from herald.settings import ServiceSettings
from herald.tools.certs import write_dev_certs
from users_svc.settings import Settings as UsersSettings

PASSWORD = "s3cret-Pa55word-that-must-never-show"  # noqa: S105 (the canary the tests look for)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")  # as `echo` writes it
    return path


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # read, not parsed, by KafkaSecurity
    return path


def sasl_env(password_file: Path, ca_file: Path, **more: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "users-svc",
        "KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "KAFKA_SSL_CA_FILE": str(ca_file),
        **more,
    }


def test_by_default_clients_connect_in_plaintext_as_nobody() -> None:
    security = UsersSettings.from_env({}).kafka_security()
    assert security == PLAINTEXT == ServiceSettings.kafka_security_from_env({})
    assert (security.tls, security.sasl, security.principal) == (False, False, None)
    assert security.client_config() == {"security.protocol": "PLAINTEXT"}


def test_sasl_ssl_gives_librdkafka_the_user_the_password_and_the_ca(
    password_file: Path, ca_file: Path
) -> None:
    security = UsersSettings.from_env(sasl_env(password_file, ca_file)).kafka_security()
    assert security.principal == "User:users-svc"
    # The line ending `echo` added is not part of the password; hostname verification is
    # left to librdkafka's default (https), so it is not in the dict at all.
    assert security.client_config() == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(ca_file),
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "users-svc",
        "sasl.password": PASSWORD,
    }


def test_the_mechanism_and_the_protocol_may_be_written_in_any_case(
    password_file: Path, ca_file: Path
) -> None:
    env = sasl_env(
        password_file,
        ca_file,
        KAFKA_SECURITY_PROTOCOL="sasl_ssl",
        KAFKA_SASL_MECHANISM="scram-sha-256",
    )
    config = ServiceSettings.kafka_security_from_env(env).client_config()
    assert (config["security.protocol"], config["sasl.mechanisms"]) == ("SASL_SSL", "SCRAM-SHA-256")


def test_ssl_alone_is_tls_without_a_principal(ca_file: Path) -> None:
    env = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(ca_file)}
    security = ServiceSettings.kafka_security_from_env(env)
    assert (security.tls, security.principal) == (True, None)
    assert security.client_config() == {"security.protocol": "SSL", "ssl.ca.location": str(ca_file)}
    # Without a CA file, librdkafka trusts the system's CAs.
    assert ServiceSettings.kafka_security_from_env(
        {"KAFKA_SECURITY_PROTOCOL": "SSL"}
    ).client_config() == {"security.protocol": "SSL"}


def test_the_tools_read_the_kafka_settings_without_the_others(
    password_file: Path, ca_file: Path
) -> None:
    env = sasl_env(password_file, ca_file, SHUTDOWN_GRACE_S="not a number")
    assert ServiceSettings.kafka_security_from_env(env).sasl


NEEDS_BOTH = "SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE"
PROTOCOL = "KAFKA_SECURITY_PROTOCOL"
REFUSED = [
    ({"KAFKA_SASL_USERNAME": ""}, NEEDS_BOTH),
    ({"KAFKA_SASL_PASSWORD_FILE": ""}, NEEDS_BOTH),
    ({"KAFKA_SASL_PASSWORD_FILE": "/nope/pw"}, "KAFKA_SASL_PASSWORD_FILE /nope/pw: cannot read it"),
    ({"KAFKA_SSL_CA_FILE": "/nope/ca.pem"}, "KAFKA_SSL_CA_FILE /nope/ca.pem: cannot read it"),
    ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM 'PLAIN' is not one of"),
    ({PROTOCOL: "SASL_PLAINTEXT"}, "'SASL_PLAINTEXT' is not one of PLAINTEXT, SSL, SASL_SSL"),
    ({PROTOCOL: "TLS"}, "'TLS' is not one of"),
    ({PROTOCOL: "SSL"}, "a SASL username or password is set, but KAFKA_SECURITY_PROTOCOL is SSL"),
    (
        {PROTOCOL: "PLAINTEXT", "KAFKA_SASL_USERNAME": "", "KAFKA_SASL_PASSWORD_FILE": ""},
        "KAFKA_SSL_CA_FILE is set, but KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
    ),
]


@pytest.mark.parametrize(("change", "reason"), REFUSED)
def test_settings_that_do_not_hold_together_are_refused_with_the_reason(
    password_file: Path, ca_file: Path, change: dict[str, str], reason: str
) -> None:
    settings = UsersSettings.from_env(sasl_env(password_file, ca_file, **change))
    with pytest.raises(ValueError, match=re.escape(reason)) as refused:
        settings.kafka_security()
    message = str(refused.value)
    assert "\n" not in message, "one line, for `not starting: …`"
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"caf\xe9-" + PASSWORD.encode(), "is not UTF-8 text"),
    ],
)
def test_a_password_file_without_a_usable_password_is_refused(
    tmp_path: Path, ca_file: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad-password"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as refused:
        ServiceSettings.kafka_security_from_env(sasl_env(path, ca_file))
    # Not even the byte UTF-8 could not decode, as UnicodeDecodeError would quote it.
    assert "0xe9" not in str(refused.value)
    assert refused.value.__context__ is None or refused.value.__suppress_context__


def test_the_password_is_in_no_repr_or_str(password_file: Path, ca_file: Path) -> None:
    settings = UsersSettings.from_env(sasl_env(password_file, ca_file))
    security = settings.kafka_security()
    for shown in (repr(security), str(security), repr(settings), str(settings)):
        assert PASSWORD not in shown
    assert "users-svc" in repr(security)
    assert "sasl_password" not in repr(security)


def test_every_client_config_carries_the_security(password_file: Path, ca_file: Path) -> None:
    security = ServiceSettings.kafka_security_from_env(sasl_env(password_file, ca_file))
    for config in (
        producer_config("k:1", "p", security, **{"linger.ms": 0}),
        consumer_config("k:1", "g", "c", security, **{"enable.auto.commit": False}),
        admin_config("k:1", "a", security=security),
    ):
        assert security.client_config().items() <= config.items()
    settings = UsersSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:1"})
    assert settings.producer_config("p", security)["sasl.username"] == "users-svc"
    assert settings.consumer_config("g", "c", security)["sasl.username"] == "users-svc"
    # Plaintext by default: what every existing caller gets, as before.
    assert producer_config("k:1", "p")["security.protocol"] == "PLAINTEXT"


def test_librdkafka_accepts_the_sasl_ssl_config(tmp_path: Path, password_file: Path) -> None:
    """The property names and values are ones this librdkafka knows (SCRAM and SSL built in),
    and the CA file loads: creating a client checks both, without any broker."""
    write_dev_certs(tmp_path / "dev")
    env = sasl_env(password_file, tmp_path / "dev" / "tls" / "ca.pem")
    security = ServiceSettings.kafka_security_from_env(env)
    producer = Producer(producer_config("127.0.0.1:1", "config-check", security))
    assert producer.flush(0) == 0
