"""The contract gate (scripts/proto-breaking, run by `make lint`) on a scratch repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

BUF = REPO / ".venv" / "bin" / "buf"
USERS_PROTO = Path("protos/herald/users/v1/users.proto")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def gate(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / "proto-breaking")],
        cwd=repo,
        env={**os.environ, "BUF": str(BUF)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "contract")
    return tmp_path


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / USERS_PROTO
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_first_contract_has_nothing_to_break(repo: Path) -> None:
    result = gate(repo)
    assert result.returncode == 0
    assert "skipped" in result.stdout


def test_a_removed_field_fails_before_and_after_it_is_committed(repo: Path) -> None:
    edit(repo, "  string email = 3;\n", "")
    uncommitted = gate(repo)
    assert uncommitted.returncode != 0
    assert "email" in uncommitted.stdout + uncommitted.stderr
    git(repo, "commit", "-q", "-am", "drop email")
    assert gate(repo).returncode != 0


def test_an_added_field_passes(repo: Path) -> None:
    edit(repo, "  string request_id = 3;\n", "  string request_id = 3;\n  string locale = 4;\n")
    assert gate(repo).returncode == 0
    git(repo, "commit", "-q", "-am", "add locale")
    assert gate(repo).returncode == 0
