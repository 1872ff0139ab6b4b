"""Cluster PKI: CA, serving and client certificates, and TLS with optional client certificates."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.server import pki as pki_module
from pyk8s.server.pki import PKI, client_identity, ensure_pki, server_ssl_context


def load_cert(path_or_pem: Path | bytes) -> x509.Certificate:
    data = path_or_pem.read_bytes() if isinstance(path_or_pem, Path) else path_or_pem
    return x509.load_pem_x509_certificate(data)


def sans_of(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


def subject(cert: x509.Certificate) -> tuple[str, list[str]]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), [str(o) for o in orgs]


def ekus(cert: x509.Certificate) -> list:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def snapshot(p: PKI) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in (p.ca_cert, p.ca_key, p.serving_cert, p.serving_key, p.admin_cert,
                                             p.admin_key)}


@pytest.fixture
def cluster_pki(tmp_path: Path) -> PKI:
    return ensure_pki(tmp_path, hostnames=["node-1.example"], ips=["10.43.0.1", "192.168.1.10"])


def test_creates_ca_serving_and_admin_certificates(cluster_pki: PKI, tmp_path: Path):
    assert cluster_pki.dir == tmp_path / "tls"
    ca = load_cert(cluster_pki.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650

    serving = load_cert(cluster_pki.serving_cert)
    serving.verify_directly_issued_by(ca)
    dns, ips = sans_of(serving)
    assert dns == {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local", "node-1.example"}
    assert ips == {"127.0.0.1", "::1", "10.43.0.1", "192.168.1.10"}
    assert ekus(serving) == [ExtendedKeyUsageOID.SERVER_AUTH]

    admin = load_cert(cluster_pki.admin_cert)
    admin.verify_directly_issued_by(ca)
    assert subject(admin) == ("system:admin", ["system:masters"])
    assert ekus(admin) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_private_keys_are_private(cluster_pki: PKI):
    for key in (cluster_pki.ca_key, cluster_pki.serving_key, cluster_pki.admin_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cluster_pki.dir.stat().st_mode) == 0o700
    assert not list(cluster_pki.dir.glob(".*.tmp"))


def test_restart_reuses_everything(cluster_pki: PKI, tmp_path: Path):
    before = snapshot(cluster_pki)
    again = ensure_pki(tmp_path, hostnames=["node-1.example"], ips=["192.168.1.10", "10.43.0.1"])
    assert again == cluster_pki
    assert snapshot(again) == before


def test_changed_names_reissue_only_the_serving_certificate(cluster_pki: PKI, tmp_path: Path):
    before = snapshot(cluster_pki)
    ensure_pki(tmp_path, hostnames=["node-1.example", "api.example"], ips=["10.43.0.1", "192.168.1.11"])
    after = snapshot(cluster_pki)
    for name in ("ca.crt", "ca.key", "admin.crt", "admin.key", "serving.key"):
        assert after[name] == before[name], name
    assert after["serving.crt"] != before["serving.crt"]
    serving = load_cert(cluster_pki.serving_cert)
    serving.verify_directly_issued_by(load_cert(cluster_pki.ca_cert))
    dns, ips = sans_of(serving)
    assert "api.example" in dns and "192.168.1.11" in ips and "192.168.1.10" not in ips


def test_certificates_near_expiry_are_reissued(cluster_pki: PKI, tmp_path: Path, monkeypatch):
    before = snapshot(cluster_pki)
    monkeypatch.setattr(pki_module, "RENEW_BEFORE", pki_module.LEAF_VALIDITY * 2)
    ensure_pki(tmp_path, hostnames=["node-1.example"], ips=["10.43.0.1", "192.168.1.10"])
    after = snapshot(cluster_pki)
    assert after["ca.crt"] == before["ca.crt"]
    assert after["serving.crt"] != before["serving.crt"] and after["admin.crt"] != before["admin.crt"]


def test_lost_ca_replaces_everything_it_signed(cluster_pki: PKI, tmp_path: Path):
    before = snapshot(cluster_pki)
    cluster_pki.ca_key.unlink()
    ensure_pki(tmp_path, hostnames=["node-1.example"], ips=["10.43.0.1", "192.168.1.10"])
    ca = load_cert(cluster_pki.ca_cert)
    assert cluster_pki.ca_cert.read_bytes() != before["ca.crt"]
    load_cert(cluster_pki.serving_cert).verify_directly_issued_by(ca)
    load_cert(cluster_pki.admin_cert).verify_directly_issued_by(ca)


def test_issue_client_cert(cluster_pki: PKI):
    cert_pem, key_pem = cluster_pki.issue_client_cert("system:kube-scheduler", ["a", "b"])
    cert = load_cert(cert_pem)
    cert.verify_directly_issued_by(load_cert(cluster_pki.ca_cert))
    assert subject(cert) == ("system:kube-scheduler", ["a", "b"])
    assert ekus(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert b"PRIVATE KEY" in key_pem


@pytest.mark.parametrize("peercert, identity", [
    (None, None),
    ({}, None),
    ({"subject": ((("organizationName", "system:masters"),), (("commonName", "system:admin"),))},
     ("system:admin", ["system:masters"])),
    ({"subject": ((("commonName", "alice"),), (("organizationName", "devs"),), (("organizationName", "ops"),))},
     ("alice", ["devs", "ops"])),
    ({"subject": ((("commonName", "bob"),),)}, ("bob", [])),
    ({"subject": ((("organizationName", "devs"),),)}, None),
])
def test_client_identity(peercert, identity):
    assert client_identity(peercert) == identity


async def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str) -> list:
    """Connect over TLS on 127.0.0.1, read until the server hangs up, and return what the server's
    transports reported as 'peercert' (empty when the server never accepted the handshake)."""
    seen: list = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append(transport.get_extra_info("peercert"))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Recorder, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname), 10)
        try:
            await asyncio.wait_for(reader.read(), 10)
        except (ssl.SSLError, ConnectionResetError):
            pass  # with TLS 1.3 the client learns of a rejected certificate only when it reads
        writer.close()
        return seen
    finally:
        server.close()
        await server.wait_closed()


def _client_context(p: PKI, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=p.ca_cert)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


async def test_tls_handshake_identifies_the_admin(cluster_pki: PKI):
    [peercert] = await _handshake(server_ssl_context(cluster_pki),
                                  _client_context(cluster_pki, cluster_pki.admin_cert, cluster_pki.admin_key),
                                  "127.0.0.1")
    assert client_identity(peercert) == ("system:admin", ["system:masters"])


async def test_tls_handshake_without_client_certificate(cluster_pki: PKI):
    # Bearer-token clients share the port: no certificate is fine and identifies nobody.
    for hostname in ("localhost", "kubernetes.default.svc", "10.43.0.1"):
        [peercert] = await _handshake(server_ssl_context(cluster_pki), _client_context(cluster_pki), hostname)
        assert client_identity(peercert) is None


async def test_tls_handshake_with_a_foreign_client_certificate_fails(cluster_pki: PKI, tmp_path: Path):
    other = ensure_pki(tmp_path / "other", hostnames=[], ips=[])
    seen = await _handshake(server_ssl_context(cluster_pki),
                            _client_context(cluster_pki, other.admin_cert, other.admin_key), "localhost")
    assert seen == []


async def test_serving_certificate_does_not_cover_unknown_names(cluster_pki: PKI):
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(server_ssl_context(cluster_pki), _client_context(cluster_pki), "elsewhere.example")


def test_sans_accept_ipv6_and_deduplicate(tmp_path: Path):
    p = ensure_pki(tmp_path, hostnames=["localhost", "a"], ips=["::1", "fd00::1", "127.0.0.1"])
    dns, ips = sans_of(load_cert(p.serving_cert))
    assert dns >= {"localhost", "a"}
    assert {ipaddress.ip_address(i) for i in ips} >= {ipaddress.ip_address("fd00::1")}
    ext = load_cert(p.serving_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert len(list(ext)) == len(set(ext))
