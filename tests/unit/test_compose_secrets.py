"""The `secrets` one-shot: each consumer's volume holds what it reads and nothing more,
owner read-only, made from one master that a second run keeps."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from herald.tools.compose_secrets import BUNDLES, HERALD_UID, KAFKA_UID, main, write_volumes
from herald.tools.localkafka import PRINCIPALS

HOSTS = ["kafka-1", "users-svc"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_volume_holds_exactly_its_files_owner_read_only(tmp_path: Path) -> None:
    write_volumes(tmp_path, HOSTS, chown=False)
    for bundle in BUNDLES:
        folder = tmp_path / bundle.name
        assert mode(folder) == 0o700
        assert sorted(p.name for p in folder.iterdir()) == sorted(bundle.files)
        for name, source in bundle.files.items():
            assert mode(folder / name) == 0o400, f"{bundle.name}/{name}"
            assert (folder / name).read_bytes() == (tmp_path / "master" / source).read_bytes()


def test_no_secret_reaches_a_volume_that_does_not_need_it() -> None:
    files = {bundle.name: set(bundle.files) for bundle in BUNDLES}
    assert {f"{p}.password" for p in PRINCIPALS} <= files["kafka"]
    assert files["users-svc"] & {f"{p}.password" for p in PRINCIPALS} == {"users-svc.password"}
    assert files["auth-svc"] & {f"{p}.password" for p in PRINCIPALS} == {"auth-svc.password"}
    # Signing keys and the CA's key stay in the master: nobody but the one-shot mints or signs.
    for bundle in BUNDLES:
        assert not {"tls/ca.key", "jwt/signing.key"} & set(bundle.files.values()), bundle.name
    assert "node-keystore.pem" not in files["users-svc"] | files["auth-svc"] | files["ops"]


def test_a_second_run_keeps_the_passwords_and_certificates(tmp_path: Path) -> None:
    write_volumes(tmp_path, HOSTS, chown=False)
    first = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    write_volumes(tmp_path, HOSTS, chown=False)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == first


def test_as_root_each_volume_belongs_to_its_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Who gets what, recorded rather than done: the test needs no root to run.
    owners: dict[Path, int] = {}
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", lambda path, uid, _gid: owners.__setitem__(Path(path), uid))
    assert main([str(tmp_path), "--host", "kafka-1"]) == 0
    readers = {"kafka": KAFKA_UID, "users-svc": HERALD_UID, "auth-svc": HERALD_UID}
    for name, uid in readers.items():
        assert owners[tmp_path / name] == uid
        given = {owner for path, owner in owners.items() if path.parent == tmp_path / name}
        assert given == {uid}, name
    assert not any(path.is_relative_to(tmp_path / "master") for path in owners)


def test_not_as_root_it_refuses_rather_than_leave_unreadable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main([str(tmp_path)]) == 2
    assert "run as root" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
