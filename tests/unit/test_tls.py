"""Where a server may listen in plaintext, and the TLS settings' rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from herald.rpc.tls import ClientTls, InsecureListenError, ServerTls, check_listen, is_loopback
from users_svc.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    check_listen(host, None, insecure_listen=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "::", "10.0.0.5", "example.com", ""])
def test_plaintext_anywhere_else_is_refused_unless_allowed(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InsecureListenError, match="HERALD_INSECURE_LISTEN"):
        check_listen(host, None, insecure_listen=False)
    with caplog.at_level(logging.WARNING):
        check_listen(host, None, insecure_listen=True)
    assert "plaintext" in caplog.text
    check_listen(host, ServerTls(Path("c.pem"), Path("k.pem")), insecure_listen=False)


def test_server_tls_needs_both_files_and_mtls_a_client_ca() -> None:
    assert Settings().server_tls() is None
    with pytest.raises(ValueError, match="both"):
        Settings(tls_cert_file="c.pem").server_tls()
    tls = Settings(tls_cert_file="c.pem", tls_key_file="k.pem").server_tls()
    assert tls == ServerTls(Path("c.pem"), Path("k.pem"), None)
    mtls = Settings(tls_cert_file="c", tls_key_file="k", tls_client_ca_file="ca").server_tls()
    assert mtls is not None
    assert mtls.client_ca_file == Path("ca")


def test_clients_read_their_files_from_the_environment() -> None:
    assert ClientTls.from_env({}) is None
    assert ClientTls.from_env({"HERALD_TLS_CA_FILE": "ca.pem"}) == ClientTls(Path("ca.pem"))
    both = {
        "HERALD_TLS_CA_FILE": "ca.pem",
        "HERALD_TLS_CLIENT_CERT_FILE": "c.pem",
        "HERALD_TLS_CLIENT_KEY_FILE": "c.key",
    }
    assert ClientTls.from_env(both) == ClientTls(Path("ca.pem"), Path("c.pem"), Path("c.key"))
