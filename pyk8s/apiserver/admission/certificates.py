"""The certificates admission plugins (upstream plugin/pkg/admission/certificates):

- CertificateApproval: approving or denying a CertificateSigningRequest (its `approval` subresource) needs
  the `approve` verb on `signers` for its signerName (or `<domain>/*`) in certificates.k8s.io;
- CertificateSigning: writing `status.certificate` needs the `sign` verb likewise;
- CertificateSubjectRestriction: no request may ask the kube-apiserver-client signer for a certificate in
  the system:masters group (that would be cluster-admin for whoever approves it)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.x509.oid import NameOID

from ...api import certificates as csrs
from ..authz.attributes import Attributes as AuthzAttributes
from ..authz.attributes import Decision
from .interfaces import CREATE, UPDATE, AdmissionPlugin, Attributes

GROUP = "certificates.k8s.io"
MASTERS = "system:masters"

Authorize = Callable[[AuthzAttributes], Decision]


def _is_csr(attrs: Attributes) -> bool:
    return attrs.kind.group == GROUP and attrs.kind.plural == "certificatesigningrequests"


def _signer(obj: dict | None) -> str:
    spec = (obj or {}).get("spec")
    return str(spec.get("signerName") or "") if isinstance(spec, dict) else ""


def authorized_for_signer(authorize: Authorize, user: object, verb: str, signer: str) -> bool:
    """Upstream's IsAuthorizedForSignerName: the exact signer name, else its `<domain>/*` wildcard."""
    if user is None:
        return True  # the apiserver's own writes
    for name in (signer, signer.split("/", 1)[0] + "/*"):
        if authorize(AuthzAttributes(user, verb, api_group=GROUP, resource="signers", name=name)).allowed:
            return True
    return False


class CertificateApproval(AdmissionPlugin):
    name = "CertificateApproval"
    validating = True

    def __init__(self, authorize: Authorize):
        self.authorize = authorize

    def handles(self, attrs: Attributes) -> bool:
        return _is_csr(attrs) and attrs.operation == UPDATE and attrs.subresource == "approval"

    async def validate(self, attrs: Attributes) -> None:
        signer = _signer(attrs.old)
        if not authorized_for_signer(self.authorize, attrs.user, "approve", signer):
            raise attrs.forbidden(f'user not permitted to approve requests with signerName "{signer}"')


class CertificateSigning(AdmissionPlugin):
    name = "CertificateSigning"
    validating = True

    def __init__(self, authorize: Authorize):
        self.authorize = authorize

    def handles(self, attrs: Attributes) -> bool:
        return _is_csr(attrs) and attrs.operation == UPDATE and attrs.subresource == "status"

    async def validate(self, attrs: Attributes) -> None:
        new_cert = ((attrs.obj or {}).get("status") or {}).get("certificate")
        old_cert = ((attrs.old or {}).get("status") or {}).get("certificate")
        if new_cert == old_cert:
            return  # only issuing a certificate needs the sign verb
        signer = _signer(attrs.old)
        if not authorized_for_signer(self.authorize, attrs.user, "sign", signer):
            raise attrs.forbidden(f'user not permitted to sign requests with signerName "{signer}"')


class CertificateSubjectRestriction(AdmissionPlugin):
    name = "CertificateSubjectRestriction"
    validating = True

    def handles(self, attrs: Attributes) -> bool:
        return _is_csr(attrs) and attrs.operation == CREATE and not attrs.subresource

    async def validate(self, attrs: Attributes) -> None:
        if _signer(attrs.obj) != csrs.KUBE_APISERVER_CLIENT:
            return
        try:
            request = csrs.parse_request(attrs.obj or {})
        except ValueError:
            return  # validation has already refused it
        organizations = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if MASTERS in organizations:
            raise attrs.forbidden(f"use of {csrs.KUBE_APISERVER_CLIENT} signer with {MASTERS} group is not "
                                  "allowed")
