"""Where a server may listen, and with which credentials; and how a client reaches it.

Plaintext is allowed on loopback only: anywhere else, a server needs TLS, or an operator's
explicit HERALD_INSECURE_LISTEN=1 (for a service mesh that terminates TLS in a sidecar). With
a client CA, clients must present a certificate it signed (mTLS). Certificates are read again
whenever their files change, so a renewal needs no restart.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

logger = logging.getLogger(__name__)


class InsecureListenError(ValueError):
    """A plaintext listener was asked for on an address other hosts can reach."""


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate chain and key, and the CA its clients' certificates must
    chain to (None: no client certificates asked for)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials that serve the files as they are at each new handshake."""
        files = _WatchedFiles(self)
        return grpc.dynamic_ssl_server_credentials(
            files.configuration(),
            # grpc documents None as "keep the current one"; the stubs do not allow it.
            files.changed_configuration,  # type: ignore[arg-type]
            require_client_authentication=self.client_ca_file is not None,
        )


@dataclass(frozen=True)
class ClientTls:
    """What a client needs to reach a TLS server: the CA to trust, and for mTLS its own
    certificate and key."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes(),
            private_key=self.key_file.read_bytes() if self.key_file else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file else None,
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ClientTls | None:
        """From HERALD_TLS_CA_FILE (and HERALD_TLS_CLIENT_CERT_FILE, _KEY_FILE); None when the
        CA is not set, which means plaintext."""
        env = dict(os.environ) if env is None else env
        ca = env.get("HERALD_TLS_CA_FILE")
        if not ca:
            return None
        cert, key = env.get("HERALD_TLS_CLIENT_CERT_FILE"), env.get("HERALD_TLS_CLIENT_KEY_FILE")
        return cls(Path(ca), Path(cert) if cert else None, Path(key) if key else None)


def channel(
    target: str, tls: ClientTls | None = None, options: list[tuple[str, int]] | None = None
) -> grpc.Channel:
    """A channel to `target`: TLS when `tls` is given, plaintext otherwise."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options)


def check_listen(host: str, tls: ServerTls | None, insecure_listen: bool) -> None:
    """Raise InsecureListenError for plaintext off loopback unless it is allowed explicitly;
    warn when it is."""
    if tls is not None or is_loopback(host):
        return
    if not insecure_listen:
        raise InsecureListenError(
            f"refusing to listen in plaintext on {host!r}, which other hosts can reach: set "
            "HERALD_TLS_CERT_FILE and HERALD_TLS_KEY_FILE, or HERALD_INSECURE_LISTEN=1 if "
            "something in front (a service mesh) encrypts the traffic"
        )
    logger.warning("listening in plaintext on %r (HERALD_INSECURE_LISTEN=1)", host)


def address(host: str, port: int) -> str:
    """`host:port` as grpc takes it, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


class _WatchedFiles:
    """The server's certificate files, and their modification times when last read."""

    def __init__(self, tls: ServerTls) -> None:
        self._tls = tls
        self._stamp = self._stamps()

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        tls = self._tls
        return grpc.ssl_server_certificate_configuration(
            [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
            root_certificates=tls.client_ca_file.read_bytes() if tls.client_ca_file else None,
        )

    def changed_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc asks before each handshake: a new configuration if a file changed, else None
        (keep the current one). A file caught half-written keeps the old one until the next."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return None
        try:
            configuration = self.configuration()
        except OSError as error:
            logger.warning("certificate files changed but cannot be read: %s", error)
            return None
        self._stamp = stamp
        logger.info("serving the renewed certificate from %s", self._tls.cert_file)
        return configuration

    def _stamps(self) -> tuple[int, ...]:
        files = [self._tls.cert_file, self._tls.key_file, self._tls.client_ca_file]
        try:
            return tuple(f.stat().st_mtime_ns for f in files if f is not None)
        except OSError:
            return ()
