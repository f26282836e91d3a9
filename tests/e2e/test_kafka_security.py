"""Both services refuse to start, with the reason on one line and exit code 2, when their
Kafka security settings do not hold together; before any Kafka client exists, so no broker
is needed (the bootstrap address is a closed port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.rpc.client import NOT_SERVING, health_status
from herald.tools.processes import ServiceProcess
from tests.secure_kafka import Secure
from tests.support import eventually, refused_start, unique

PASSWORD = "canary-Pa55word-never-shown"  # noqa: S105 (what the output must not contain)


@pytest.mark.parametrize("module", ["users_svc", "auth_svc"])
@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"KAFKA_SASL_USERNAME": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE"),
        ({"KAFKA_SASL_PASSWORD_FILE": "/nope/pw"}, "KAFKA_SASL_PASSWORD_FILE /nope/pw: cannot"),
    ],
)
def test_unusable_kafka_credentials_stop_the_start_and_say_why(
    tmp_path: Path, module: str, settings: dict[str, str], reason: str
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    prefix = "USERS" if module == "users_svc" else "AUTH"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        f"{prefix}_DATA_DIR": str(tmp_path),
        f"{prefix}_GRPC_PORT": "0",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "users-svc",
        "KAFKA_SASL_PASSWORD_FILE": str(password_file),
        **settings,
    }
    output = refused_start(module, env)
    [line] = [each for each in output.splitlines() if "not starting" in each]
    assert reason in line
    assert PASSWORD not in output


def test_a_wrong_kafka_password_keeps_auth_svc_up_and_not_serving(
    secure: Secure, tmp_path: Path
) -> None:
    """A login the brokers refuse is a state to report, not a crash: auth_svc stays up,
    answers health NOT_SERVING (it has no group to consume in), and never logs the
    password; with the right one it would have joined its group within seconds."""
    wrong = tmp_path / "auth-svc.password"
    wrong.write_text(PASSWORD)
    env = {
        **secure.cluster.client_env("auth-svc"),
        "KAFKA_SASL_PASSWORD_FILE": str(wrong),
        "AUTH_DATA_DIR": str(tmp_path),
        "HERALD_EVENTS_TOPIC": unique("never-read"),
    }
    auth = ServiceProcess("auth_svc", env, tmp_path / "auth_svc.log")
    auth.spawn()
    try:
        status = eventually(lambda: health_status(auth.target, timeout_s=1), timeout_s=30)
        assert status == NOT_SERVING
        # The brokers refused it, and refused it again when librdkafka retried: still up.
        eventually(lambda: refusals(auth) >= 2 or None, timeout_s=60, every_s=0.5)
        assert auth.running(), auth.log_text()[-2000:]
        assert health_status(auth.target, timeout_s=1) == NOT_SERVING
    finally:
        auth.stop()
    assert PASSWORD not in auth.log_text()


def refusals(service: ServiceProcess) -> int:
    return service.log_text().count("Authentication failed")
