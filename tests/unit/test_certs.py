"""`herald certs --host`: further names on the server and Kafka node certificates, and
running it again changes nothing it need not change."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from herald.tools.certs import write_dev_certs
from herald.tools.cli import main


def dns_names(cert_file: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sans.get_values_for_type(x509.DNSName)


def addresses(cert_file: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_hosts_are_named_by_the_server_and_node_certificates_only(tmp_path: Path) -> None:
    write_dev_certs(tmp_path, ["kafka-1", "users-svc", "10.0.0.7"])
    tls = tmp_path / "tls"
    for name in ("server.pem", "kafka-node.pem"):
        assert dns_names(tls / name) == ["localhost", "kafka-1", "users-svc"]
        assert addresses(tls / name) == {"127.0.0.1", "::1", "10.0.0.7"}
    client = x509.load_pem_x509_certificate((tls / "client.pem").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        client.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_running_again_with_the_same_or_fewer_hosts_changes_nothing(tmp_path: Path) -> None:
    write_dev_certs(tmp_path, ["kafka-1", "kafka-2"])
    before = snapshot(tmp_path)
    assert write_dev_certs(tmp_path, ["kafka-2", "kafka-1"]) == []
    assert write_dev_certs(tmp_path) == []
    assert snapshot(tmp_path) == before


def test_a_new_host_remakes_only_the_certificates_that_lack_it(tmp_path: Path) -> None:
    write_dev_certs(tmp_path, ["kafka-1"])
    before = snapshot(tmp_path)
    written = write_dev_certs(tmp_path, ["auth-svc"])
    tls = tmp_path / "tls"
    assert set(written) == {
        tls / f"{n}.{ext}" for n in ("server", "kafka-node") for ext in ("pem", "key")
    }
    after = snapshot(tmp_path)
    # Same CA, same client certificate and token key: what trusted them still does.
    for kept in ("tls/ca.pem", "tls/ca.key", "tls/client.pem", "jwt/signing.key"):
        assert after[kept] == before[kept]
    # The old name is kept: whoever dialled it before still can.
    assert dns_names(tls / "kafka-node.pem") == ["localhost", "kafka-1", "auth-svc"]
    ca = x509.load_pem_x509_certificate(after["tls/ca.pem"])
    x509.load_pem_x509_certificate(after["tls/server.pem"]).verify_directly_issued_by(ca)


@pytest.mark.parametrize("host", ["kafka 1", "-kafka", "a/b", ""])
def test_a_host_that_is_no_name_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="neither a host name nor an address"):
        write_dev_certs(tmp_path, [host])


def test_the_command_takes_repeated_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sec"
    assert main(["certs", "--out", str(out), "--host", "kafka-1", "--host", "auth-svc"]) == 0
    assert dns_names(out / "tls" / "server.pem") == ["localhost", "kafka-1", "auth-svc"]
    assert str(out / "tls" / "server.pem") in capsys.readouterr().out
    assert main(["certs", "--out", str(out), "--host", "bad name"]) == 1
