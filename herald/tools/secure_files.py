"""The files `herald certs` writes under one folder, and what servers and clients take from
them: the settings that turn TLS, mTLS and tokens on for a service, the client's side of the
TLS, and development tokens signed by the folder's key. `herald up --secure`, the tests and
the bench all secure a stack through this one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from herald.rpc.tls import ClientTls
from herald.settings import ServiceSettings
from herald.tools.certs import DEFAULT_OUT, mint_token, write_dev_certs


@dataclass(frozen=True)
class SecureFiles:
    folder: Path = DEFAULT_OUT

    @classmethod
    def made(cls, folder: Path = DEFAULT_OUT) -> SecureFiles:
        """The files under `folder`, made first where missing (as `herald certs` does)."""
        write_dev_certs(folder)
        return cls(folder)

    @property
    def tls_dir(self) -> Path:
        return self.folder / "tls"

    def server_env(self) -> dict[str, str]:
        """A service's settings for TLS, required client certificates and required tokens."""
        return {
            "HERALD_TLS_CERT_FILE": str(self.tls_dir / "server.pem"),
            "HERALD_TLS_KEY_FILE": str(self.tls_dir / "server.key"),
            "HERALD_TLS_CLIENT_CA_FILE": str(self.tls_dir / "ca.pem"),
            "HERALD_JWKS_FILE": str(self.folder / "jwt" / "jwks.json"),
        }

    def client_tls(self) -> ClientTls:
        return ClientTls(
            self.tls_dir / "ca.pem", self.tls_dir / "client.pem", self.tls_dir / "client.key"
        )

    def token(self, subject: str, scope: str = "", ttl_s: float = 3600) -> str:
        """A token for `subject` with `scope` that a service with the default issuer and
        audience settings accepts."""
        return mint_token(
            subject,
            scope,
            issuer=str(ServiceSettings.value_from_env("jwt_issuer")),
            audience=str(ServiceSettings.value_from_env("jwt_audience")),
            ttl_s=ttl_s,
            key_file=self.folder / "jwt" / "signing.key",
        )

    def bearer(self, subject: str, scope: str = "") -> tuple[tuple[str, str]]:
        """gRPC call metadata carrying a token for `subject` with `scope`."""
        return (("authorization", f"Bearer {self.token(subject, scope)}"),)
