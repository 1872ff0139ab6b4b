"""The kubelet serving certificate of a joined node: what it asks for, and what the server approves."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyk8s.kubelet.servingcert import SERVING_USAGES, certificate_usable, serving_request
from pyk8s.server.kubeletserving import approval_problem
from pyk8s.server.pki import ensure_pki

NODE = {"metadata": {"name": "worker-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.254.1.2"},
                                 {"type": "Hostname", "address": "worker-1.lan"}]}}


def _csr(request: bytes, *, username: str = "system:node:worker-1", groups: tuple = ("system:nodes",),
         usages: list[str] = SERVING_USAGES) -> dict:
    return {"metadata": {"name": "csr-x"},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": "kubernetes.io/kubelet-serving",
                     "usages": list(usages), "username": username, "groups": [*groups, "system:authenticated"]}}


def _request(node: str = "worker-1", names: tuple = ("worker-1", "worker-1.lan"), ips: tuple = ("10.254.1.2",)):
    return serving_request(node, list(names), list(ips), ec.generate_private_key(ec.SECP256R1()))


def test_the_request_names_the_node_and_its_addresses() -> None:
    request = x509.load_pem_x509_csr(_request())
    assert request.subject.rfc4514_string() == "CN=system:node:worker-1,O=system:nodes"
    sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["worker-1", "worker-1.lan"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.254.1.2"]


def test_a_node_asking_for_its_own_names_is_approved() -> None:
    assert approval_problem(_csr(_request()), NODE) is None


@pytest.mark.parametrize("csr, node, problem", [
    (_csr(_request(), username="alice", groups=()), NODE, "not by a node"),
    (_csr(_request(node="worker-2")), NODE, "the subject is not the requesting node"),
    (_csr(_request(), usages=["digital signature", "client auth"]), NODE, "are not a kubelet serving"),
    (_csr(_request()), None, "node worker-1 does not exist"),
    (_csr(_request(ips=("10.254.1.2", "8.8.8.8"))), NODE, "names the node does not report: 8.8.8.8"),
    (_csr(_request(names=("worker-1", "kubernetes.default"))), NODE, "does not report: kubernetes.default"),
])
def test_anything_else_is_left_for_an_administrator(csr: dict, node: dict | None, problem: str) -> None:
    assert problem in (approval_problem(csr, node) or "")


def test_an_issued_certificate_is_reused_while_it_covers_the_node(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, hostnames=[], ips=[])
    cert, key = pki.issue_serving_cert("system:node:worker-1", ["system:nodes"], ["worker-1"], ["10.254.1.2"])
    (tmp_path / "kubelet.crt").write_bytes(cert)
    (tmp_path / "kubelet.key").write_bytes(key)
    files = (tmp_path / "kubelet.crt", tmp_path / "kubelet.key")
    assert certificate_usable(*files, ["worker-1"], ["10.254.1.2"])
    assert not certificate_usable(*files, ["worker-1"], ["10.254.1.3"])  # the node's address changed
    other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "kubelet.key").write_bytes(other_key)
    assert not certificate_usable(*files, ["worker-1"], ["10.254.1.2"])
    assert not certificate_usable(tmp_path / "missing.crt", tmp_path / "kubelet.key", ["worker-1"], [])
