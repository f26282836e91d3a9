from __future__ import annotations

from pathlib import Path

from auth_svc.settings import Settings as AuthSettings
from herald.tools import settings_table
from herald.tools.settings_table import with_table
from tests.conftest import REPO
from users_svc.settings import Settings as UserSettings


def test_defaults_match_make_run() -> None:
    users, auth = UserSettings.from_env({}), AuthSettings.from_env({})
    assert (users.kafka_bootstrap_servers, users.grpc_port) == ("127.0.0.1:19092", 50051)
    assert users.database_path == Path(".run/users-svc/users.sqlite3")
    assert (auth.grpc_port, auth.consumer_group) == (50052, "auth-svc")
    assert users.events_topic == auth.events_topic == "herald.users.v1.events"


def test_environment_overrides_defaults() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k:1",
        "USERS_GRPC_PORT": "6001",
        "USERS_DATA_DIR": "/data/users",
        "USERS_RELAY_BATCH_SIZE": "50",
        "AUTH_GRPC_PORT": "6002",
        "AUTH_CONSUMER_GROUP": "g",
        "AUTH_BATCH_SIZE": "250",
    }
    users, auth = UserSettings.from_env(env), AuthSettings.from_env(env)
    assert (users.kafka_bootstrap_servers, users.grpc_port, users.relay_batch_size) == (
        "k:1",
        6001,
        50,
    )
    assert users.database_path == Path("/data/users/users.sqlite3")
    assert (auth.kafka_bootstrap_servers, auth.grpc_port, auth.consumer_group) == ("k:1", 6002, "g")
    assert auth.batch_size == 250
    assert AuthSettings.from_env({"AUTH_BATCH_SIZE": "0"}).batch_size == 1


def test_readme_configuration_table_is_made_from_the_settings_classes() -> None:
    readme = (REPO / "README.md").read_text()
    assert with_table(readme) == readme, "README's settings table is stale: run `make docs`"


def test_a_stale_readme_table_is_caught(tmp_path: Path) -> None:
    stale = (
        (REPO / "README.md").read_text().replace("`1000` | most records", "`5000` | most records")
    )
    readme = tmp_path / "README.md"
    readme.write_text(stale)
    assert settings_table.main(["--check", str(readme)]) == 1
    assert settings_table.main([str(readme)]) == 0
    assert readme.read_text() == (REPO / "README.md").read_text()
