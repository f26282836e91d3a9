"""users_svc as a process behind TLS and mTLS, called with the Python client and grpcurl; where
the services listen, and that a plaintext listener off loopback refuses to start."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from herald.rpc.client import SERVING, health_status
from herald.rpc.tls import ClientTls, channel, is_loopback
from herald.tools.certs import write_dev_certs
from herald.tools.processes import ServiceProcess
from herald.users.v1 import users_pb2, users_pb2_grpc
from tests.support import eventually, refused_start, unique


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("secure")
    write_dev_certs(folder)
    return folder / "tls"


@pytest.fixture(scope="module")
def strangers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files of another CA: a client trusting it, or presenting its certificate, is refused."""
    folder = tmp_path_factory.mktemp("strangers")
    write_dev_certs(folder)
    return folder / "tls"


def users_process(kafka: str, folder: Path, **env: str) -> ServiceProcess:
    return ServiceProcess(
        "users_svc",
        {"KAFKA_BOOTSTRAP_SERVERS": kafka, "USERS_DATA_DIR": str(folder), **env},
        folder / "users_svc.log",
    )


def served(kafka: str, folder: Path, certs: Path, mtls: bool) -> Iterator[ServiceProcess]:
    # The server reads copies, so a test can replace them as a renewal would.
    for name in ("server.pem", "server.key"):
        shutil.copy(certs / name, folder / name)
    env = {
        "HERALD_TLS_CERT_FILE": str(folder / "server.pem"),
        "HERALD_TLS_KEY_FILE": str(folder / "server.key"),
    }
    if mtls:
        env["HERALD_TLS_CLIENT_CA_FILE"] = str(certs / "ca.pem")
    process = users_process(kafka, folder, **env)
    process.tls = ClientTls(certs / "ca.pem", certs / "client.pem", certs / "client.key")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def tls_users(kafka_bootstrap: str, tmp_path: Path, certs: Path) -> Iterator[ServiceProcess]:
    yield from served(kafka_bootstrap, tmp_path, certs, mtls=False)


@pytest.fixture
def mtls_users(kafka_bootstrap: str, tmp_path: Path, certs: Path) -> Iterator[ServiceProcess]:
    yield from served(kafka_bootstrap, tmp_path, certs, mtls=True)


def test_tls_needs_the_right_ca_and_then_serves_calls(
    tls_users: ServiceProcess, certs: Path, strangers: Path
) -> None:
    target = tls_users.target
    assert health_status(target, timeout_s=2) is None  # plaintext to a TLS port
    assert health_status(target, timeout_s=2, tls=ClientTls(strangers / "ca.pem")) is None
    trusted = ClientTls(certs / "ca.pem")
    assert health_status(target, timeout_s=2, tls=trusted) == SERVING
    with channel(target, trusted) as connection:
        request = users_pb2.CreateUserRequest(name="Ada", email=f"{unique('ada')}@example.com")
        user = users_pb2_grpc.UserServiceStub(connection).CreateUser(request, timeout=5).user
    assert user.version == 1


def test_mtls_needs_a_client_certificate_from_its_ca(
    mtls_users: ServiceProcess, certs: Path, strangers: Path
) -> None:
    target, ca = mtls_users.target, certs / "ca.pem"
    assert health_status(target, timeout_s=2, tls=ClientTls(ca)) is None
    foreign = ClientTls(ca, strangers / "client.pem", strangers / "client.key")
    assert health_status(target, timeout_s=2, tls=foreign) is None
    own = ClientTls(ca, certs / "client.pem", certs / "client.key")
    assert health_status(target, timeout_s=2, tls=own) == SERVING


def grpcurl_ok(grpcurl: str, *args: str) -> bool:
    run = subprocess.run([grpcurl, *args], capture_output=True, timeout=30, check=False)
    return run.returncode == 0


def test_grpcurl_matrix(
    tls_users: ServiceProcess,
    mtls_users: ServiceProcess,
    grpcurl: str,
    certs: Path,
    strangers: Path,
) -> None:
    ca, cert, key = (str(certs / n) for n in ("ca.pem", "client.pem", "client.key"))
    assert not grpcurl_ok(grpcurl, "-plaintext", tls_users.target, "list")
    assert not grpcurl_ok(grpcurl, "-cacert", str(strangers / "ca.pem"), tls_users.target, "list")
    assert grpcurl_ok(grpcurl, "-cacert", ca, tls_users.target, "list")
    assert not grpcurl_ok(grpcurl, "-cacert", ca, mtls_users.target, "list")
    assert grpcurl_ok(grpcurl, "-cacert", ca, "-cert", cert, "-key", key, mtls_users.target, "list")


def served_serial(port: int, ca: Path) -> int:
    """The serial number of the certificate the server shows a new connection."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_certificate_is_served_without_a_restart(
    tls_users: ServiceProcess, certs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ca = certs / "ca.pem"
    before = served_serial(tls_users.port, ca)
    # A new server certificate from the same CA, written over the files the server reads.
    renewal = tmp_path_factory.mktemp("renewal")
    shutil.copytree(certs, renewal / "tls")
    for name in ("server.pem", "server.key"):
        (renewal / "tls" / name).unlink()
    write_dev_certs(renewal)
    data = Path(tls_users.env["USERS_DATA_DIR"])
    for name in ("server.key", "server.pem"):
        shutil.copy(renewal / "tls" / name, data / name)
    after = eventually(lambda: ((s := served_serial(tls_users.port, ca)) != before and s) or None)
    assert after == x509.load_pem_x509_certificate((data / "server.pem").read_bytes()).serial_number
    assert health_status(tls_users.target, timeout_s=2, tls=ClientTls(ca)) == SERVING


def test_services_listen_on_loopback_by_default(kafka_bootstrap: str, tmp_path: Path) -> None:
    users = users_process(kafka_bootstrap, tmp_path)
    users.start()
    try:
        listening = {
            c.laddr.ip
            for c in psutil.Process(users.pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == users.port
        }
    finally:
        users.stop()
    # grpc may bind 127.0.0.1 through an IPv6 socket (::ffff:127.0.0.1): loopback all the same.
    assert listening
    assert all(is_loopback(a.removeprefix("::ffff:")) for a in listening), listening


@pytest.mark.parametrize("module", ["users_svc", "auth_svc"])
def test_plaintext_off_loopback_refuses_to_start_and_says_why(
    kafka_bootstrap: str, tmp_path: Path, module: str
) -> None:
    prefix = "USERS" if module == "users_svc" else "AUTH"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        f"{prefix}_DATA_DIR": str(tmp_path),
        f"{prefix}_GRPC_HOST": "0.0.0.0",
    }
    assert "refusing to listen in plaintext on '0.0.0.0'" in refused_start(module, env)


def test_an_explicit_insecure_listen_starts_and_warns(kafka_bootstrap: str, tmp_path: Path) -> None:
    users = users_process(
        kafka_bootstrap, tmp_path, USERS_GRPC_HOST="0.0.0.0", HERALD_INSECURE_LISTEN="1"
    )
    users.start()
    users.stop()
    assert "listening in plaintext on '0.0.0.0'" in users.log_text()
