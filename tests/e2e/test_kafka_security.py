"""Both services refuse to start, with the reason on one line and exit code 2, when their
Kafka security settings do not hold together; before any Kafka client exists, so no broker
is needed (the bootstrap address is a closed port)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    run = subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = run.stderr + run.stdout
    assert run.returncode == 2, output
    [line] = [each for each in output.splitlines() if "not starting" in each]
    assert reason in line
    assert PASSWORD not in output
