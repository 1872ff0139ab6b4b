"""The kubelet's serving certificate for port 10250, when the node joined with a token.

Like upstream's kubelet with serverTLSBootstrap, the node asks for it through a CertificateSigningRequest
(signer kubernetes.io/kubelet-serving, subject system:node:<name> in system:nodes, the node's host names
and addresses as SANs) with its own client certificate, and waits for it to be approved and signed.
Upstream approves no serving certificates on its own: `kubectl certificate approve <csr>` does. A
certificate that still covers the node's names and is not about to expire is reused across restarts.
In `pyk8s server` mode the launcher issues the certificate from the cluster PKI instead.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..api import certificates as csrs
from ..client import APIClient
from ..server.pki import write_atomic

log = logging.getLogger("pyk8s.kubelet.servingcert")

NODES_GROUP = "system:nodes"
# An ECDSA key: the kubelet asks for these usages (key encipherment only goes with RSA keys).
SERVING_USAGES = ["digital signature", "server auth"]
RENEW_BEFORE = datetime.timedelta(days=1)


def _sans(hostnames: list[str], ips: list[str]) -> list[x509.GeneralName]:
    return [*(x509.DNSName(name) for name in dict.fromkeys(hostnames)),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips))]


def serving_request(node_name: str, hostnames: list[str], ips: list[str], key: ec.EllipticCurvePrivateKey) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject).add_extension(
        x509.SubjectAlternativeName(_sans(hostnames, ips)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def certificate_usable(cert_file: Path, key_file: Path, hostnames: list[str], ips: list[str]) -> bool:
    """True when the files hold a matching pair whose SANs cover the node and that does not expire soon."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    if key.public_key() != cert.public_key():
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > RENEW_BEFORE and set(_sans(hostnames, ips)) <= set(names)


async def ensure_serving_certificate(client: APIClient, node_name: str, hostnames: list[str], ips: list[str],
                                     cert_file: Path, key_file: Path, *, poll: float = 1.0) -> None:
    """Reuse the certificate in `cert_file`, or request one and wait (until cancelled) for it to be issued."""
    if certificate_usable(cert_file, key_file, hostnames, ips):
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = f"csr-{secrets.token_hex(5)}"
    request = serving_request(node_name, hostnames, ips, key)
    await client.create({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                         "metadata": {"name": name},
                         "spec": {"request": base64.b64encode(request).decode(), "signerName": csrs.KUBELET_SERVING,
                                  "usages": SERVING_USAGES}})
    log.info("node %s: requested its serving certificate as CSR %s (signer %s); until it is approved "
             "(kubectl certificate approve %s) the kubelet port is not served", node_name, name, csrs.KUBELET_SERVING,
             name)
    while True:
        csr = await client.get("certificatesigningrequests", name)
        status = csr.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") in (csrs.DENIED, csrs.FAILED):
                raise RuntimeError(f"serving certificate request {name} was {condition['type'].lower()}: "
                                   f"{condition.get('message', '')}")
        certificate = csrs.decode_bytes(status.get("certificate"))
        if certificate:
            break
        await asyncio.sleep(poll)
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), 0o600)
    write_atomic(cert_file, certificate, 0o644)
    log.info("node %s: serving certificate issued (CSR %s)", node_name, name)
