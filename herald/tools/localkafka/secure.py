"""A secure local cluster: TLS everywhere, SCRAM logins for clients, ACLs enforced.

Per node, three listeners on loopback:
- CLIENT (the node's usual client port): SASL_SSL with SCRAM-SHA-512, the only way in for
  Herald's services and tools. Each logs in as its own principal (`User:users-svc`, …).
- INTERNAL (a third port): SSL with client certificates, between brokers.
- CONTROLLER: SSL with client certificates, the KRaft quorum. KRaft controllers cannot log in
  to each other with SCRAM (KAFKA-15513), and a certificate needs no credential to exist
  before the first start.
Both certificate listeners map the certificate's CN to the principal (`User:herald-node`),
which is a super user, as is `User:herald-admin`; everyone else gets only what an ACL grants.

The SCRAM credentials are written at format time (KIP-900), from passwords generated once into
`<secure>/kafka/<principal>.password` (owner-only). A password is never on a command line:
StorageTool reads its arguments from a java `@argfile` (owner-only, deleted afterwards), and
no password ever reaches server.properties.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from herald.kafka.acls import ADMIN as ADMIN_USER
from herald.kafka.acls import AUTH_SVC, REPLAY, USERS_SVC
from herald.tools.certs import DEFAULT_OUT, write_dev_certs
from herald.tools.localkafka.nodes import Node

# Every Herald principal that logs in with SCRAM, by the name the ACLs give it
# (herald.kafka.acls): users-svc publishes, auth-svc consumes, herald-replay sends dead letters
# back, herald-admin creates topics and ACLs.
PRINCIPALS = tuple(
    principal.removeprefix("User:") for principal in (USERS_SVC, AUTH_SVC, REPLAY, ADMIN_USER)
)
ADMIN = ADMIN_USER.removeprefix("User:")
NODE_PRINCIPAL = "herald-node"  # the CN of `herald certs`' kafka-node.pem
SUPER_USERS = (f"User:{NODE_PRINCIPAL}", ADMIN_USER)
MECHANISM = "SCRAM-SHA-512"
CLIENT_PROTOCOL = "SASL_SSL"
LISTENERS = {"CLIENT": CLIENT_PROTOCOL, "INTERNAL": "SSL", "CONTROLLER": "SSL"}
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def add_secure_argument(start: argparse.ArgumentParser) -> None:
    """`herald kafka start --secure [DIR]`: a new cluster is made secure."""
    start.add_argument(
        "--secure",
        nargs="?",
        type=Path,
        const=DEFAULT_OUT,
        metavar="DIR",
        help="clients log in with SCRAM-SHA-512 over TLS, nodes with certificates, ACLs "
        f"enforced; certificates and passwords in DIR (default {DEFAULT_OUT}, as `herald certs`)",
    )


@dataclass(frozen=True)
class BrokerSecurity:
    """Where a secure cluster's certificates and passwords live (`herald certs`' folder)."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "tls" / "ca.pem"

    def password_file(self, principal: str) -> Path:
        if principal not in PRINCIPALS:
            raise KeyError(f"{principal} is not one of the cluster's principals {PRINCIPALS}")
        return self.folder / "kafka" / f"{principal}.password"

    def password(self, principal: str) -> str:
        return self.password_file(principal).read_text().strip()

    def prepare(self, keystore: Path, hosts: Sequence[str] = ()) -> None:
        """Make the certificates and passwords that are missing, and the nodes' keystore;
        the node certificate is valid for `hosts` too (`herald certs --host`).

        Existing passwords are kept: a formatted cluster holds credentials made from them.
        """
        write_dev_certs(self.folder, hosts)
        for principal in PRINCIPALS:
            path = self.password_file(principal)
            if not path.exists():
                # URL-safe letters only: StorageTool's `[name=…,password=…]` syntax has no
                # escapes, so a comma or bracket would end the password early.
                _write_private(path, secrets.token_urlsafe(32))
        tls = self.folder / "tls"
        # A PEM keystore file holds the key and its chain together (KIP-651); the key stays
        # in an owner-only file instead of inline in server.properties.
        pem = (tls / "kafka-node.key").read_text() + (tls / "kafka-node.pem").read_text()
        _write_private(keystore, pem)

    def scram_arguments(self) -> list[str]:
        """StorageTool's `--add-scram` arguments: secrets, for an argfile only."""
        arguments = []
        for principal in PRINCIPALS:
            credential = f"name={principal},password={self.password(principal)}"
            arguments += ["--add-scram", f"{MECHANISM}=[{credential}]"]
        return arguments

    def passwords(self) -> list[str]:
        """What must never show in a log, a command line or an error message."""
        return [self.password(principal) for principal in PRINCIPALS]

    def client_env(self, bootstrap_servers: str, principal: str) -> dict[str, str]:
        """The environment a Herald process reads to log in as `principal`."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": CLIENT_PROTOCOL,
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": principal,
            "KAFKA_SASL_PASSWORD_FILE": str(self.password_file(principal)),
            "KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def describe(self) -> dict[str, object]:
        """What cluster.json records about the security, for `herald kafka status` and people."""
        return {
            "folder": str(self.folder),
            "listeners": LISTENERS,
            "client_listener": "CLIENT",
            "sasl_mechanism": MECHANISM,
            "inter_broker_listener": "INTERNAL",
            "controller_listener": "CONTROLLER",
            "ssl_client_auth": {"CLIENT": "none", "INTERNAL": "required", "CONTROLLER": "required"},
            "authorizer": AUTHORIZER,
            "super_users": list(SUPER_USERS),
            "principals": list(PRINCIPALS),
            "ca_file": str(self.ca_file),
        }


def secure_settings(
    plain: dict[str, str], node: Node, security: BrokerSecurity, keystore: Path
) -> dict[str, str]:
    """One node's server.properties in secure mode: the plaintext ones, listeners replaced."""
    if node.internal_port is None:
        raise ValueError(f"node {node.node_id} has no inter-broker port; a secure node needs one")
    client = f"CLIENT://127.0.0.1:{node.port}"
    internal = f"INTERNAL://127.0.0.1:{node.internal_port}"
    return {
        **plain,
        "listeners": f"{client},{internal},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"{client},{internal}",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in LISTENERS.items()),
        # Clients log in with SCRAM only; the JAAS line names the module and no secret.
        "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
        f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.ca_file),
        # Clients prove who they are with SCRAM; nodes with their certificate.
        "ssl.client.auth": "none",
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        # Nodes dial each other at 127.0.0.1, which the node certificate names.
        "ssl.endpoint.identification.algorithm": "https",
        # `CN=herald-node` → `User:herald-node`, not the whole DN.
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(SUPER_USERS),
    }


def write_argfile(path: Path, arguments: Sequence[str]) -> None:
    """A java launcher `@argfile`: one quoted argument a line, owner-only.

    The launcher expands an argfile only up to the main class, so the file must hold the main
    class as well as its arguments. Quoting keeps each argument whole; the arguments written
    here hold no quote or backslash, which the launcher would read as escapes.
    """
    for argument in arguments:
        if any(c in argument for c in '"\\\n'):
            raise ValueError("an argfile argument may not hold quotes, backslashes or newlines")
    _write_private(path, "".join(f'"{argument}"\n' for argument in arguments))


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner may read, never readable even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.chmod(0o600)  # touch leaves an existing file's mode alone
    path.write_text(text)
