"""An agent's TLS bootstrap: from a join token to a kubeconfig with the node's own client certificate.

1. Read the cluster's CA from the anonymous kube-public/cluster-info ConfigMap over TLS *without*
   trusting anything yet, and compare its sha256 with the hash in the join token. A mismatch stops here:
   the bootstrap token is never sent to a server that cannot prove it is the token's cluster.
2. From then on talk to the server through TLS verified against that CA, authenticated with the bootstrap
   token: create a CertificateSigningRequest (CN system:node:<name>, O system:nodes, signer
   kubernetes.io/kube-apiserver-client-kubelet), which the controller-manager approves and signs. A
   simulated-node agent asks instead for its shared identity (CN system:pyk8s:simulated-nodes, signer
   kubernetes.io/kube-apiserver-client), which the controller-manager approves likewise.
3. Write a kubeconfig with the issued certificate and the new key (as kubelet's --bootstrap-kubeconfig
   flow writes its kubeconfig); later starts reuse it while its certificate is valid.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..api import certificates as csrs
from ..client import APIClient, APIStatusError, ClientConfig
from ..server.jointoken import JoinToken, ca_hash
from ..server.kubeconfig import write_kubeconfig
from ..server.pki import write_atomic

log = logging.getLogger("pyk8s.kubelet.tlsbootstrap")

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO = "cluster-info"
NODES_GROUP = "system:nodes"
SIMULATED_NODES_USER = "system:pyk8s:simulated-nodes"
# An ECDSA key: kubelet asks for these usages (no key encipherment, which RSA keys add).
CLIENT_USAGES = ["digital signature", "client auth"]
# A certificate this close to its end is requested again rather than reused.
RENEW_BEFORE = datetime.timedelta(hours=1)


class JoinError(RuntimeError):
    """The agent cannot join: the message says why and what to do."""


def cluster_ca_from_cluster_info(configmap: dict) -> bytes:
    """The CA bundle in a cluster-info ConfigMap (a kubeconfig in data.kubeconfig, kubeadm's layout)."""
    try:
        doc = yaml.safe_load((configmap.get("data") or {}).get("kubeconfig") or "") or {}
        cluster = doc["clusters"][0]["cluster"]
        return base64.b64decode(cluster["certificate-authority-data"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise JoinError(f"the server's {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO} has no usable CA: {exc}") from None


async def fetch_verified_ca(server: str, token: JoinToken) -> bytes:
    """The server's CA, read without trust and accepted only if its hash is the token's."""
    # No credentials and no verification: nothing secret travels on this connection.
    config = ClientConfig(server=server, insecure_skip_tls_verify=True)
    config.user_agent = config.user_agent.replace("client", "agent-bootstrap")
    async with APIClient(config) as client:
        try:
            configmap = await client.get("configmaps", CLUSTER_INFO, CLUSTER_INFO_NAMESPACE)
        except APIStatusError as exc:
            raise JoinError(f"cannot read {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO} from {server}: {exc}") from None
    ca_pem = cluster_ca_from_cluster_info(configmap)
    try:
        actual = ca_hash(ca_pem)
    except ValueError as exc:
        raise JoinError(f"the server's CA certificate cannot be read: {exc}") from None
    if actual != token.ca_hash:
        raise JoinError(f"the server's CA certificate hash does not match the join token: sha256 {actual} != "
                        f"{token.ca_hash}; refusing to send the token (is --server the right cluster?)")
    return ca_pem


@dataclass(frozen=True)
class ClientIdentity:
    """Who an agent asks to be: its certificate's subject and the signer that issues it."""

    user: str
    groups: tuple[str, ...]
    signer: str


def kubelet_identity(node_name: str) -> ClientIdentity:
    return ClientIdentity(f"system:node:{node_name}", (NODES_GROUP,), csrs.KUBE_APISERVER_CLIENT_KUBELET)


# Every node of a simulated agent, with one credential (outside system:nodes; see docs/security.md).
SIMULATED_NODES = ClientIdentity(SIMULATED_NODES_USER, (), csrs.KUBE_APISERVER_CLIENT)


def certificate_request(identity: ClientIdentity, key: ec.EllipticCurvePrivateKey) -> bytes:
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups),
                         x509.NameAttribute(NameOID.COMMON_NAME, identity.user)])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM)


def _outcome(csr: dict) -> bytes | None:
    """The issued certificate; None while pending; JoinError if it was denied or failed."""
    status = csr.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") in (csrs.DENIED, csrs.FAILED):
            raise JoinError(f"certificate request {csr['metadata']['name']} was {condition['type'].lower()}: "
                            f"{condition.get('reason', '')} {condition.get('message', '')}".rstrip())
    return csrs.decode_bytes(status.get("certificate"))


async def request_client_certificate(server: str, ca_pem: bytes, bootstrap_token: str, identity: ClientIdentity,
                                     timeout: float) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for the identity, through an auto-approved CSR."""
    key = ec.generate_private_key(ec.SECP256R1())
    config = ClientConfig(server=server, ca_data=ca_pem, token=bootstrap_token)
    config.user_agent = config.user_agent.replace("client", "agent-bootstrap")
    csr = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": f"node-csr-{secrets.token_hex(8)}"},
           "spec": {"request": base64.b64encode(certificate_request(identity, key)).decode(),
                    "signerName": identity.signer, "usages": CLIENT_USAGES}}
    async with APIClient(config) as client:
        try:
            created = await client.create(csr)
        except APIStatusError as exc:
            if exc.code == 401:
                raise JoinError("the server refused the join token (401 Unauthorized): it is unknown, expired or "
                                "was deleted; create a new one with `pyk8s token create`") from None
            raise JoinError(f"cannot create a certificate signing request: {exc}") from None
        name = created["metadata"]["name"]
        log.info("join: waiting for certificate request %s to be approved and signed", name)
        async with asyncio.timeout(timeout):
            while True:
                certificate = _outcome(await client.get("certificatesigningrequests", name))
                if certificate:
                    break
                await asyncio.sleep(0.5)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate, key_pem


def _reusable(kubeconfig: Path, server: str, ca_pem: bytes, identity: ClientIdentity) -> bool:
    """An earlier join's kubeconfig for this server, CA and identity whose certificate is not about to expire."""
    try:
        config = ClientConfig.from_kubeconfig(kubeconfig)
        cert = x509.load_pem_x509_certificate(config.cert_data or b"")
    except Exception:  # missing or unreadable: join again
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return config.server == server and config.ca_data == ca_pem and left > RENEW_BEFORE and names == [identity.user]


async def join(server: str, token: JoinToken, node_name: str, data_dir: Path, *, timeout: float = 300) -> Path:
    """A kubeconfig in `data_dir` with the node's client certificate (reused when still good)."""
    return await join_as(server, token, kubelet_identity(node_name), data_dir, timeout=timeout)


async def join_as(server: str, token: JoinToken, identity: ClientIdentity, data_dir: Path, *,
                  timeout: float = 300) -> Path:
    """A kubeconfig in `data_dir` with a client certificate for `identity` (reused when still good)."""
    server = server.rstrip("/")
    ca_pem = await fetch_verified_ca(server, token)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(data_dir / "ca.crt", ca_pem, 0o644)
    kubeconfig = data_dir / "kubelet.kubeconfig"
    if _reusable(kubeconfig, server, ca_pem, identity):
        log.info("join: reusing the client certificate in %s", kubeconfig)
        return kubeconfig
    try:
        cert_pem, key_pem = await request_client_certificate(server, ca_pem, token.bootstrap_token, identity,
                                                             timeout)
    except TimeoutError:
        raise JoinError(f"no certificate was issued within {timeout:.0f}s: is the controller-manager running "
                        "with the csrapproving and csrsigning controllers?") from None
    write_kubeconfig(kubeconfig, server, ca_pem, cert_pem, key_pem, user=identity.user)
    log.info("join: joined %s as %s; kubeconfig written to %s", server, identity.user, kubeconfig)
    return kubeconfig
