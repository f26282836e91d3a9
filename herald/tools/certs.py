"""`herald certs`: a development CA and the certificates and keys a secure local Herald needs.

Under `<out>/tls/`: the CA (`ca.pem`, `ca.key`), a server certificate valid for 127.0.0.1,
::1 and localhost (`server.pem`, `server.key`), a client certificate for mTLS (`client.pem`,
`client.key`), and the local Kafka nodes' certificate (`kafka-node.pem`, `kafka-node.key`,
CN=herald-node: it serves clients and logs the nodes in to each other). `--host NAME` adds a
name both the server and the node certificates are valid for (docker-compose.yml's
containers dial each other by name). Under `<out>/jwt/`: an
Ed25519 token signing key (`signing.key`) and the JWKS that verifies it (`jwks.json`). Keys
are unencrypted PKCS#8 PEM, readable by the owner only: what grpc, librdkafka and the Kafka
brokers' Java all read.

For development only: a production CA keeps its key elsewhere, and an identity provider signs
the tokens. Files that exist are kept, so running it twice changes nothing; without a CA,
everything is made anew (a certificate signed by a CA that is gone is no use). A server or
node certificate that lacks a name asked for is made again, by the same CA, valid for its old
names and the new ones, so the files that trust the CA keep working.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from herald.settings import ServiceSettings

DEFAULT_OUT = Path(".run/secure")
VALID_FOR = dt.timedelta(days=365)
# Where the certificates are valid: what clients dial on one host (librdkafka, like grpc,
# checks the name it dialed against these).
LOCAL_NAMES = ("localhost",)
LOCAL_ADDRESSES = ("127.0.0.1", "::1")
# RFC 1123 host names: letters, digits and inner hyphens, dot-separated labels.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")

Key = ec.EllipticCurvePrivateKey


def add_credential_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`herald certs` and `herald token`."""
    certs = commands.add_parser("certs", help="a development CA, TLS certificates, token key")
    certs.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    certs.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further name (or address) the server and Kafka node certificates are valid "
        "for; repeatable",
    )
    certs.set_defaults(handler=_certs)
    token = commands.add_parser("token", help="mint a development token; prints it alone")
    token.add_argument("--sub", required=True, help="the caller: a user id, or a name")
    token.add_argument("--scope", default="", help='space-separated, e.g. "herald.admin"')
    token.add_argument("--ttl-s", type=float, default=3600.0)
    token.add_argument("--key", type=Path, default=DEFAULT_OUT / "jwt" / "signing.key")
    token.set_defaults(handler=_token)


def _certs(args: argparse.Namespace) -> int:
    print(*write_dev_certs(args.out, args.host), sep="\n")
    return 0


def _token(args: argparse.Namespace) -> int:
    # The issuer and audience Herald's own settings require, so the token works here.
    settings = ServiceSettings.from_env()
    token = mint_token(
        args.sub,
        args.scope,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=args.ttl_s,
        key_file=args.key,
    )
    print(token)
    return 0


def write_dev_certs(out: Path = DEFAULT_OUT, hosts: Sequence[str] = ()) -> list[Path]:
    """Make whatever is missing under `out`, the server and node certificates valid for
    `hosts` too; return the files written. Raises ValueError for a host that is no name."""
    wanted = _names([*LOCAL_NAMES, *LOCAL_ADDRESSES, *hosts])
    tls, jwt_dir = out / "tls", out / "jwt"
    tls.mkdir(parents=True, exist_ok=True)
    jwt_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if not (tls / "ca.pem").exists() or not (tls / "ca.key").exists():
        for stale in tls.glob("*"):
            stale.unlink()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        written += _write(tls, "ca", ca_key, _ca_certificate(ca_key))
    ca_key = _read_key(tls / "ca.key")
    ca = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
    server_use = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for name, common_name, usage, served in (
        ("server", "herald-server", server_use, True),
        ("client", "herald-client", [ExtendedKeyUsageOID.CLIENT_AUTH], False),
        # One identity every node shares: its CN is the principal the brokers map it to.
        ("kafka-node", "herald-node", server_use, True),
    ):
        cert_file = tls / f"{name}.pem"
        names: list[x509.GeneralName] = []
        if served:
            had = _subject_names(cert_file) if cert_file.exists() else []
            if cert_file.exists() and set(wanted) <= set(had):
                continue
            # Old names kept: whoever dialled one before still can.
            names = list(dict.fromkeys([*had, *wanted]))
        elif cert_file.exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(ca, ca_key, key, common_name=common_name, usage=usage, names=names)
        written += _write(tls, name, key, cert)
    if not (jwt_dir / "signing.key").exists():
        written += _write_signing_key(jwt_dir)
    return written


def _ca_certificate(key: Key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Herald development CA")])
    now = dt.datetime.now(dt.UTC)
    return (
        _builder(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signs_certificates=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    ca: x509.Certificate,
    ca_key: Key,
    key: Key,
    *,
    common_name: str,
    usage: list[x509.ObjectIdentifier],
    names: list[x509.GeneralName],
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca.subject, key.public_key(), dt.datetime.now(dt.UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """Subject alternative names: an IP address entry for an address, else a DNS name."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f"--host {host!r} is neither a host name nor an address") from None
            names.append(x509.DNSName(host.lower()))
    return list(dict.fromkeys(names))


def _subject_names(cert_file: Path) -> list[x509.GeneralName]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A little in the past, so a clock a few minutes behind still accepts it.
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _usage(signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _write(folder: Path, name: str, key: Key, cert: x509.Certificate) -> list[Path]:
    cert_file = folder / f"{name}.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return [cert_file, _write_private(folder / f"{name}.key", key)]


def _write_private(path: Path, key: Key | ed25519.Ed25519PrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.chmod(0o600)  # touch leaves an existing file's mode alone
    path.write_bytes(pem)
    return path


def _read_key(path: Path) -> Key:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not the EC key `herald certs` makes")
    return key


def mint_token(
    subject: str,
    scope: str,
    *,
    issuer: str,
    audience: str,
    ttl_s: float = 3600,
    key_file: Path = DEFAULT_OUT / "jwt" / "signing.key",
) -> str:
    """A development token for `subject` with `scope`, signed by `key_file` (EdDSA)."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{key_file} is not the Ed25519 key `herald certs` makes")
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl_s),
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": _public_jwk(key)[1]})


def _public_jwk(key: ed25519.Ed25519PrivateKey) -> tuple[dict[str, str], str]:
    """The key's public JWK, and its RFC 7638 thumbprint, which names it (kid): a rotated key
    gets a kid of its own."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    kid = _b64url(hashlib.sha256(json.dumps(public, separators=(",", ":")).encode()).digest())
    return public, kid


def _write_signing_key(folder: Path) -> list[Path]:
    key = ed25519.Ed25519PrivateKey.generate()
    public, kid = _public_jwk(key)
    jwks = {"keys": [{**public, "kid": kid, "alg": "EdDSA", "use": "sig"}]}
    jwks_file = folder / "jwks.json"
    jwks_file.write_text(json.dumps(jwks, indent=2) + "\n")
    return [_write_private(folder / "signing.key", key), jwks_file]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
