"""The certificate controllers (upstream pkg/controller/certificates):

- `csrsigning-controller` signs approved CertificateSigningRequests for the kubernetes.io signers the
  cluster CA serves (kube-apiserver-client, kube-apiserver-client-kubelet, kubelet-serving), after
  checking the request fits the signer (else a Failed condition, as upstream);
- `csrapproving-controller` approves kubelet client certificate requests when a SubjectAccessReview says
  the requestor may create `certificatesigningrequests/nodeclient` (bootstrapping) or
  `certificatesigningrequests/selfnodeclient` (a node renewing its own certificate); and (pyk8s) requests
  for the simulated-node agent's shared identity `system:pyk8s:simulated-nodes` (signer kube-apiserver-client)
  when the requestor may create `certificatesigningrequests/simulatednodeclient`."""

from __future__ import annotations

import base64
import datetime
import logging
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..api import certificates as csrs
from ..client import APIClient, APIStatusError, Controller, SharedInformerFactory, WorkQueue, is_conflict, is_not_found
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter

log = logging.getLogger("pyk8s.controllers.certificates")

SIGNING_NAME = "certificatesigningrequest-signing-controller"
APPROVING_NAME = "certificatesigningrequest-approving-controller"
SIGNERS = (csrs.KUBE_APISERVER_CLIENT, csrs.KUBE_APISERVER_CLIENT_KUBELET, csrs.KUBELET_SERVING)
# kube-controller-manager's --cluster-signing-duration default.
DEFAULT_DURATION = datetime.timedelta(days=365)
BACKDATE = datetime.timedelta(minutes=5)
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
KUBELET_CLIENT_USAGES = {"key encipherment", "digital signature", "client auth"}
# The identity every simulated node of a `pyk8s agent --simulated` shares (outside system:nodes: the node
# authorizer gives one identity one node).
SIMULATED_NODES_USER = "system:pyk8s:simulated-nodes"
KUBELET_SERVING_USAGES = {"key encipherment", "digital signature", "server auth"}
_KEY_USAGES = {"digital signature": "digital_signature", "content commitment": "content_commitment",
               "key encipherment": "key_encipherment", "key agreement": "key_agreement",
               "data encipherment": "data_encipherment", "cert sign": "key_cert_sign", "crl sign": "crl_sign",
               "encipher only": "encipher_only", "decipher only": "decipher_only"}
_EXTENDED_USAGES = {"server auth": ExtendedKeyUsageOID.SERVER_AUTH, "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
                    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
                    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
                    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
                    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING}


def _attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def _has_sans(request: x509.CertificateSigningRequest) -> bool:
    try:
        request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return True


def kubelet_client_problem(request: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    """Why a request does not fit kube-apiserver-client-kubelet (upstream ValidateKubeletClientCSR)."""
    if _attribute_values(request.subject, NameOID.ORGANIZATION_NAME) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    common_names = _attribute_values(request.subject, NameOID.COMMON_NAME)
    if len(common_names) != 1 or not common_names[0].startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    if _has_sans(request):
        return "DNS, email, IP or URI subjectAltNames are not allowed"
    if not set(usages) <= KUBELET_CLIENT_USAGES or "client auth" not in usages:
        return f"usages did not match {sorted(KUBELET_CLIENT_USAGES)}"
    return None


def simulated_nodes_client_problem(request: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    """Why a request is not one for the simulated-node agent's identity (checked like a kubelet client's)."""
    if _attribute_values(request.subject, NameOID.COMMON_NAME) != [SIMULATED_NODES_USER]:
        return f"subject common name is not {SIMULATED_NODES_USER}"
    if _attribute_values(request.subject, NameOID.ORGANIZATION_NAME):
        return "subject organization is not empty"
    if _has_sans(request):
        return "DNS, email, IP or URI subjectAltNames are not allowed"
    if not set(usages) <= KUBELET_CLIENT_USAGES or "client auth" not in usages:
        return f"usages did not match {sorted(KUBELET_CLIENT_USAGES)}"
    return None


def kubelet_serving_problem(request: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    """Why a request does not fit kubelet-serving (upstream validation of kubelet serving CSRs)."""
    if _attribute_values(request.subject, NameOID.ORGANIZATION_NAME) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    common_names = _attribute_values(request.subject, NameOID.COMMON_NAME)
    if len(common_names) != 1 or not common_names[0].startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    if not set(usages) <= KUBELET_SERVING_USAGES or "server auth" not in usages:
        return f"usages did not match {sorted(KUBELET_SERVING_USAGES)}"
    return None


def signer_problem(csr: dict, request: x509.CertificateSigningRequest) -> str | None:
    spec = csr.get("spec") or {}
    usages = spec.get("usages") or []
    signer = spec.get("signerName")
    if signer == csrs.KUBE_APISERVER_CLIENT_KUBELET:
        return kubelet_client_problem(request, usages)
    if signer == csrs.KUBELET_SERVING:
        return kubelet_serving_problem(request, usages)
    if "server auth" in usages:  # kube-apiserver-client issues client certificates only
        return "invalid usage for client certificate: server auth"
    return None


def sign(request: x509.CertificateSigningRequest, usages: list[str], expiration_seconds: int | None,
         ca_cert: x509.Certificate, ca_key: Any, now: datetime.datetime) -> x509.Certificate:
    """A certificate for the request's subject and key, valid for the requested duration (capped at the
    signer's), never past the CA."""
    duration = DEFAULT_DURATION
    if expiration_seconds:
        duration = min(duration, datetime.timedelta(seconds=expiration_seconds))
    flags = {name: False for name in _KEY_USAGES.values()}
    for usage in usages:
        if usage in _KEY_USAGES:
            flags[_KEY_USAGES[usage]] = True
    extended = [_EXTENDED_USAGES[u] for u in usages if u in _EXTENDED_USAGES]
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_cert.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + duration, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**flags), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if _has_sans(request):
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(sans, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _condition(ctype: str, reason: str, message: str) -> dict:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": ctype, "status": "True", "reason": reason, "message": message, "lastUpdateTime": now,
            "lastTransitionTime": now}


def _finished(csr: dict) -> bool:
    status = csr.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    return bool(status.get("certificate")) or csrs.FAILED in types or csrs.DENIED in types


class _CSRController:
    """One informer on CSRs feeding a work queue; subclasses decide what `sync` does."""

    name = ""

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *, clock: Clock = REAL_CLOCK):
        self.client = client
        self.csrs = factory.informer("certificatesigningrequests")
        self.queue: WorkQueue[str] = WorkQueue(self.name, rate_limiter=default_controller_rate_limiter(clock),
                                               clock=clock)
        self.controller: Controller[str] = Controller(self.name, self._sync_key, workers=1, queue=self.queue,
                                                      clock=clock, wait_for=(self.csrs.wait_for_sync,))
        self.csrs.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, csr: dict) -> None:
        self.queue.add(csr["metadata"]["name"])

    async def run(self) -> None:
        await self.controller.run()

    async def _sync_key(self, name: str) -> None:
        csr = self.csrs.get_by_name(name)
        if csr is None or _finished(csr):
            return
        try:
            await self.sync(csr)
        except APIStatusError as exc:
            if is_conflict(exc):  # our cache lagged a write; the update event brings the CSR back
                self.queue.add_rate_limited(name)
                return
            if is_not_found(exc):
                return
            raise

    async def sync(self, csr: dict) -> None:
        raise NotImplementedError


class CSRSigningController(_CSRController):
    name = SIGNING_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, ca_cert: x509.Certificate | None,
                 ca_key: Any, *, clock: Clock = REAL_CLOCK):
        super().__init__(client, factory, clock=clock)
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        if ca_cert is None:
            # As upstream without signing files: the controller runs but issues nothing.
            log.warning("%s: no --cluster-signing-cert-file/--cluster-signing-key-file, signing nothing",
                        SIGNING_NAME)

    @classmethod
    def from_context(cls, ctx: Any) -> CSRSigningController:
        """Options: cluster_signing_cert_file and cluster_signing_key_file (the cluster CA)."""
        options = ctx.options or {}
        cert_file, key_file = options.get("cluster_signing_cert_file"), options.get("cluster_signing_key_file")
        if not cert_file or not key_file:
            return cls(ctx.client, ctx.factory, None, None, clock=ctx.clock)
        ca_cert = x509.load_pem_x509_certificate(Path(str(cert_file)).read_bytes())
        ca_key = serialization.load_pem_private_key(Path(str(key_file)).read_bytes(), password=None)
        return cls(ctx.client, ctx.factory, ca_cert, ca_key, clock=ctx.clock)

    async def sync(self, csr: dict) -> None:
        spec = csr.get("spec") or {}
        if self.ca_cert is None or spec.get("signerName") not in SIGNERS or not csrs.is_approved(csr):
            return
        try:
            request = csrs.parse_request(csr)
        except ValueError as exc:
            await self._fail(csr, f"unable to parse csr: {exc}")
            return
        problem = signer_problem(csr, request)
        if problem is not None:
            await self._fail(csr, problem)
            return
        cert = sign(request, spec.get("usages") or [], spec.get("expirationSeconds"), self.ca_cert, self.ca_key,
                    datetime.datetime.now(datetime.UTC))
        updated = {**csr, "status": {**(csr.get("status") or {}), "certificate": base64.b64encode(
            cert.public_bytes(serialization.Encoding.PEM)).decode()}}
        await self.client.update_status(updated)
        log.info("%s: issued a certificate for %s (signer %s)", SIGNING_NAME, csr["metadata"]["name"],
                 spec.get("signerName"))

    async def _fail(self, csr: dict, message: str) -> None:
        status = dict(csr.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []),
                                _condition(csrs.FAILED, "SignerValidationFailure", message)]
        await self.client.update_status({**csr, "status": status})
        log.info("%s: %s failed the signer's checks: %s", SIGNING_NAME, csr["metadata"]["name"], message)


class CSRApprovingController(_CSRController):
    name = APPROVING_NAME

    @classmethod
    def from_context(cls, ctx: Any) -> CSRApprovingController:
        return cls(ctx.client, ctx.factory, clock=ctx.clock)

    async def sync(self, csr: dict) -> None:
        spec = csr.get("spec") or {}
        signer = spec.get("signerName")
        if signer not in (csrs.KUBE_APISERVER_CLIENT_KUBELET, csrs.KUBE_APISERVER_CLIENT) or csrs.is_approved(csr):
            return
        try:
            request = csrs.parse_request(csr)
        except ValueError:
            return  # the signer reports unusable requests; nothing to approve
        usages = spec.get("usages") or []
        if signer == csrs.KUBE_APISERVER_CLIENT:
            if simulated_nodes_client_problem(request, usages) is not None:
                return  # other client certificates are approved by people (kubectl certificate approve)
            subresource, message = "simulatednodeclient", "Auto approving simulated nodes client certificate " \
                                                          "after SubjectAccessReview."
        elif kubelet_client_problem(request, usages) is not None:
            return
        elif _attribute_values(request.subject, NameOID.COMMON_NAME)[0] == spec.get("username"):
            subresource, message = "selfnodeclient", "Auto approving self kubelet client certificate after " \
                                                     "SubjectAccessReview."
        else:
            subresource, message = "nodeclient", "Auto approving kubelet client certificate after " \
                                                 "SubjectAccessReview."
        if not await self._allowed(spec, subresource):
            return
        status = dict(csr.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []), _condition(csrs.APPROVED, "AutoApproved",
                                                                             message)]
        await self.client.update({**csr, "status": status}, subresource="approval")
        log.info("%s: approved %s for %s", APPROVING_NAME, csr["metadata"]["name"], spec.get("username"))

    async def _allowed(self, spec: dict, subresource: str) -> bool:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": spec.get("username", ""), "uid": spec.get("uid", ""),
                           "groups": spec.get("groups") or [], "extra": spec.get("extra") or {},
                           "resourceAttributes": {"group": "certificates.k8s.io",
                                                  "resource": "certificatesigningrequests", "verb": "create",
                                                  "subresource": subresource}}}
        answer = await self.client.create(review)
        return bool((answer.get("status") or {}).get("allowed"))
