"""docker/kafka-secure-start.sh, compose's broker command, run outside a container.

No Docker engine runs here, so the script runs on this host against a stand-in for the
apache/kafka image's folders: its absolute paths are rewritten to a temporary root whose
`kafka-run-class.sh` is java on the project's Kafka jars (the same release as the image, and
the same KafkaDockerWrapper and StorageTool) and whose `kafka-server-start.sh` only says what
it would start. The environment is kafka-1's, as Compose normalises it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from herald.tools.compose_secrets import write_volumes
from herald.tools.localkafka import PRINCIPALS
from tests.conftest import REPO, kafka_libs
from tests.unit.test_compose import compose_config, local_secure_cluster, server_properties

SCRIPT = REPO / "docker" / "kafka-secure-start.sh"
SECRETS_IN_IMAGE = "/etc/kafka/herald"
HEALTH_SETTINGS = "/tmp/node-client.properties"  # noqa: S108 - a path in the container


def stand_in(root: Path) -> Path:
    """The image's folders under `root`, and the script with its paths pointing there."""
    bin_dir = root / "opt" / "kafka" / "bin"
    for folder in (bin_dir, root / "opt/kafka/config", root / "etc/kafka/docker"):
        folder.mkdir(parents=True)
    (root / "mnt/shared/config").mkdir(parents=True)
    (bin_dir / "kafka-run-class.sh").write_text(
        f'#!/usr/bin/env bash\nexec java -Xmx256m -cp "{kafka_libs()}/*" "$@"\n'
    )
    (bin_dir / "kafka-server-start.sh").write_text('#!/usr/bin/env bash\necho "start $1"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = SCRIPT.read_text().replace("/opt/kafka/libs", str(kafka_libs()))
    for path in ("/opt/kafka", "/etc/kafka/docker", "/mnt/shared/config", HEALTH_SETTINGS):
        script = script.replace(path, f"{root}{path}")
    (root / "tmp").mkdir()
    started = root / "kafka-secure-start.sh"
    started.write_text(script)
    return started


def run(script: Path, root: Path) -> subprocess.CompletedProcess[str]:
    env = compose_config(REPO / "docker-compose.yml")["services"]["kafka-1"]["environment"]
    secrets = str(root / "secrets" / "kafka")
    # In the container the data lives at Kafka's default log.dir; here, in the stand-in.
    environ = {key: str(value).replace("$$", "$") for key, value in env.items()}
    environ = {key: value.replace(SECRETS_IN_IMAGE, secrets) for key, value in environ.items()}
    environ |= {"KAFKA_LOG_DIRS": str(root / "data"), "PATH": os.environ["PATH"]}
    environ["TMPDIR"] = str(root / "tmp")  # where mktemp makes the argfile
    # Set by mistake, the image's own format would run without the SCRAM users.
    environ["CLUSTER_ID"] = "SGVyYWxkTG9jYWxLYWZrYQ"
    return subprocess.run(
        ["bash", str(script)], env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_start_script_writes_the_local_settings_and_formats_the_scram_users(
    tmp_path: Path,
) -> None:
    write_volumes(tmp_path / "secrets", ["kafka-1", "kafka-2", "kafka-3"], chown=False)
    script = stand_in(tmp_path)
    result = run(script, tmp_path)
    assert result.returncode == 0, result.stderr
    config = tmp_path / "opt/kafka/config/server.properties"
    assert result.stdout.splitlines()[-1] == f"start {config}"
    # The image's wrapper really does read the variables as test_compose.py says it does.
    written = dict(line.split("=", 1) for line in config.read_text().splitlines() if "=" in line)
    env = compose_config(REPO / "docker-compose.yml")["services"]["kafka-1"]["environment"]
    expected = server_properties(env) | {"log.dirs": str(tmp_path / "data")}
    expected = {
        k: v.replace(SECRETS_IN_IMAGE, str(tmp_path / "secrets/kafka")) for k, v in expected.items()
    }
    assert written == expected
    local = local_secure_cluster().broker_settings(local_secure_cluster().node(1))
    assert written["ssl.principal.mapping.rules"] == local["ssl.principal.mapping.rules"]
    # Every principal formatted in; no password in the output, and no argfile left.
    assert f"SCRAM users {' '.join(sorted(PRINCIPALS))}" in result.stdout
    passwords = [p.read_text() for p in (tmp_path / "secrets/kafka").glob("*.password")]
    for password in passwords:
        assert password not in result.stdout + result.stderr
    assert "storedKey" not in result.stdout
    assert (tmp_path / "data" / "meta.properties").is_file()
    checkpoint = (tmp_path / "data" / "bootstrap.checkpoint").read_bytes()
    for principal in PRINCIPALS:
        assert principal.encode() in checkpoint
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["node-client.properties"]
    # A restart on the same data: the format is skipped, the start goes ahead.
    again = run(script, tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "data" / "bootstrap.checkpoint").read_bytes() == checkpoint


def test_a_password_the_one_shot_did_not_make_is_refused_unshown(tmp_path: Path) -> None:
    write_volumes(tmp_path / "secrets", ["kafka-1"], chown=False)
    bad = tmp_path / "secrets" / "kafka" / "users-svc.password"
    bad.chmod(0o600)
    bad.write_text("pass,word]")
    result = run(stand_in(tmp_path), tmp_path)
    assert result.returncode == 1
    assert "is not a password the secrets one-shot made" in result.stderr
    assert "pass,word" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()
