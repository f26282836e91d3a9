"""docker-compose.yml's one-shot `secrets` service: `python -m herald.tools.compose_secrets`.

It makes, once, what the local secure cluster and `herald certs` make, in the same layout
(`BrokerSecurity.prepare`: the CA, the server, client and Kafka node certificates valid for
the containers' names, the token signing key and its JWKS, the four SCRAM passwords, the node
keystore) in `<root>/master`, a volume only this service mounts. Then it copies to each
consumer's volume only the files that consumer reads, owned by the uid it runs as, owner-only:

- `kafka` (apache/kafka's appuser, uid 1000): the CA, the node keystore, and every
  principal's password, which StorageTool needs to format the SCRAM users in;
- `users-svc`, `auth-svc` (Herald's image, uid 10001): the CA, the gRPC server's certificate
  and key, the JWKS, the client certificate the health check presents (mTLS asks every
  caller for one), and the service's own Kafka password only;
- `ops` (uid 10001): the CA and the passwords of herald-admin (`herald topics ensure`,
  `herald events tail`) and herald-replay (`herald dlq replay`).

Existing files in the master are kept (a formatted cluster holds credentials made from its
passwords), and the copies are made again from them on every run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from herald.tools.localkafka.secure import PRINCIPALS, BrokerSecurity

KAFKA_UID = 1000  # appuser, in the apache/kafka image
HERALD_UID = 10001  # herald, in Herald's Dockerfile
MASTER = "master"
KEYSTORE = "kafka/node-keystore.pem"  # under the master, as BrokerSecurity.prepare writes it


@dataclass(frozen=True)
class Bundle:
    """One consumer's volume: its folder under the root, its owner, and its files (the name
    in the volume → the file in the master it copies)."""

    name: str
    uid: int
    files: Mapping[str, str]


def _password(principal: str) -> dict[str, str]:
    return {f"{principal}.password": f"kafka/{principal}.password"}


def _service(principal: str) -> Bundle:
    tls = {name: f"tls/{name}" for name in ("ca.pem", "server.pem", "server.key")}
    # The same client certificate a host caller uses: the only one `herald certs` makes. A
    # service holding it can open mTLS to the other, yet still needs a token for any call.
    health = {name: f"tls/{name}" for name in ("client.pem", "client.key")}
    files = {**tls, **health, "jwks.json": "jwt/jwks.json", **_password(principal)}
    return Bundle(principal, HERALD_UID, files)


BUNDLES = (
    Bundle(
        "kafka",
        KAFKA_UID,
        {
            "ca.pem": "tls/ca.pem",
            "node-keystore.pem": KEYSTORE,
            **{k: v for p in PRINCIPALS for k, v in _password(p).items()},
        },
    ),
    _service("users-svc"),
    _service("auth-svc"),
    Bundle(
        "ops",
        HERALD_UID,
        {"ca.pem": "tls/ca.pem", **_password("herald-admin"), **_password("herald-replay")},
    ),
)


def write_volumes(root: Path, hosts: Sequence[str], *, chown: bool) -> list[Path]:
    """Make the master's missing files under `root/master`, then every bundle's copies under
    `root/<bundle>`, owned by the bundle's uid when `chown`; return the copies written."""
    master = root / MASTER
    BrokerSecurity(master).prepare(master / KEYSTORE, hosts)
    written = []
    for bundle in BUNDLES:
        folder = root / bundle.name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        if chown:
            os.chown(folder, bundle.uid, bundle.uid)
        for name, source in bundle.files.items():
            written.append(_copy(master / source, folder / name, bundle.uid if chown else None))
    return written


def _copy(source: Path, target: Path, uid: int | None) -> Path:
    """Replace `target` with `source`'s bytes, owner read-only, in one rename: a reader sees
    the old file or the new one, never a part."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(source.read_bytes())
    if uid is not None:
        os.chown(partial, uid, uid)
    partial.chmod(0o400)
    partial.replace(target)
    return target


def parser() -> argparse.ArgumentParser:
    """The one-shot's arguments (tests/unit/test_compose.py reads the compose command with it)."""
    parser = argparse.ArgumentParser(prog="python -m herald.tools.compose_secrets")
    parser.add_argument("root", type=Path, help="the folder the volumes are mounted under")
    parser.add_argument(
        "--host", action="append", default=[], help="a name the containers dial; repeatable"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        # Files left owned by this uid would be unreadable to the brokers and services.
        print("compose_secrets: run as root, to give each volume to its reader", file=sys.stderr)
        return 2
    try:
        written = write_volumes(args.root, args.host, chown=True)
    except ValueError as error:
        print(f"compose_secrets: {error}", file=sys.stderr)
        return 1
    print(*written, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
