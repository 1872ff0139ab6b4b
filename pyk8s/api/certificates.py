"""certificates.k8s.io/v1 CertificateSigningRequest: upstream's strategy rules (pkg/registry/certificates)
and validation (pkg/apis/certificates/validation) in the JSON form.

A CSR's spec is written once by its requestor (the server fills username, uid, groups and extra from the
authenticated caller); approval conditions (Approved/Denied) change only through the `approval`
subresource, the issued certificate and other conditions only through `status`."""

from __future__ import annotations

import base64
import binascii
import copy
import re

from cryptography import x509

from .errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from .meta import now_rfc3339

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
APPROVAL_TYPES = (APPROVED, DENIED)

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"

KNOWN_USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
                "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
                "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
                "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc")
MIN_EXPIRATION_SECONDS = 600

_SIGNER_DOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SIGNER_PATH = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_CERTIFICATE_DATA = "<certificate data>"


def _dict(value: object) -> dict:
    """Validation sees whatever a client sent: a field of the wrong shape reads as empty."""
    return value if isinstance(value, dict) else {}


def _conditions(status: dict) -> list[dict]:
    conditions = status.get("conditions")
    return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []


def decode_bytes(value: object) -> bytes | None:
    """A []byte field as JSON carries it (base64); None when absent or not base64."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_request(obj: dict) -> x509.CertificateSigningRequest:
    """The PEM CSR in spec.request (ValueError with upstream's wording when it is not one)."""
    raw = decode_bytes(_dict(obj.get("spec")).get("request")) or b""
    text = raw.decode("latin-1")
    begin = text.find("-----BEGIN ")
    if begin < 0:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    block_type = text[begin + len("-----BEGIN "):].split("-----", 1)[0]
    if block_type not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        return x509.load_pem_x509_csr(raw[begin:])
    except ValueError as exc:
        raise ValueError(f"x509: malformed certificate request: {exc}") from None


def _signer_name_errors(path: str, signer: str) -> list[FieldError]:
    domain, sep, rest = signer.partition("/")
    if not sep or not domain or not rest:
        return [invalid(path, signer, "must be a fully qualified domain and path of the form "
                                      "'example.com/signer-name'")]
    errs = []
    if len(domain) > 253 or not _SIGNER_DOMAIN.fullmatch(domain) or "." not in domain:
        errs.append(invalid(path, signer, "should be a domain with at least two segments separated by dots"))
    if len(rest) > 63 or not _SIGNER_PATH.fullmatch(rest.replace("/", "")):
        errs.append(invalid(path, signer, "validating label \"" + rest + "\": must consist of alphanumeric "
                                          "characters, '-', '_' or '.', and must start and end with an "
                                          "alphanumeric character"))
    return errs


def _status_errors(obj: dict) -> list[FieldError]:
    status = _dict(obj.get("status"))
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, condition in enumerate(_conditions(status)):
        path = f"status.conditions[{i}]"
        ctype = condition.get("type") or ""
        if not isinstance(ctype, str) or not ctype:
            errs.append(required(f"{path}.type", ""))
            continue
        if ctype in seen:
            errs.append(duplicate(f"{path}.type", ctype))
        seen.add(ctype)
        cstatus = condition.get("status") or ""
        if not cstatus:
            errs.append(required(f"{path}.status", ""))
        elif ctype in (APPROVED, DENIED, FAILED) and cstatus != "True":
            errs.append(not_supported(f"{path}.status", cstatus, ["True"]))
        elif cstatus not in ("True", "False", "Unknown"):
            errs.append(not_supported(f"{path}.status", cstatus, ["False", "True", "Unknown"]))
    if APPROVED in seen and DENIED in seen:
        errs.append(invalid("status.conditions", status.get("conditions"),
                            "Approved and Denied conditions are mutually exclusive"))
    certificate = status.get("certificate")
    if certificate:
        raw = decode_bytes(certificate)
        try:
            if raw is None or not x509.load_pem_x509_certificates(raw):
                raise ValueError("no certificate")
        except ValueError:
            errs.append(invalid("status.certificate", _CERTIFICATE_DATA, "must contain at least one CERTIFICATE "
                                                                         "PEM block"))
    return errs


def certificate_signing_request(obj: dict) -> list[FieldError]:
    spec = _dict(obj.get("spec"))
    errs: list[FieldError] = []
    if not spec.get("request"):
        errs.append(required("spec.request", ""))
    else:
        try:
            parse_request(obj)
        except ValueError as exc:
            errs.append(invalid("spec.request", spec.get("request"), str(exc)))
    usages = spec.get("usages") if isinstance(spec.get("usages"), list) else []
    if not usages:
        errs.append(required("spec.usages", "usages must be provided"))
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if not isinstance(usage, str) or usage not in KNOWN_USAGES:
            errs.append(not_supported(f"spec.usages[{i}]", usage, list(KNOWN_USAGES)))
        elif usage in seen:
            errs.append(duplicate(f"spec.usages[{i}]", usage))
        seen.add(usage)
    signer = spec.get("signerName") or ""
    if not isinstance(signer, str):
        errs.append(invalid("spec.signerName", signer, "must be a string"))
    elif not signer:
        errs.append(required("spec.signerName", ""))
    else:
        errs += _signer_name_errors("spec.signerName", signer)
    expiration = spec.get("expirationSeconds")
    if expiration is not None and (not isinstance(expiration, int) or expiration < MIN_EXPIRATION_SECONDS):
        errs.append(invalid("spec.expirationSeconds", expiration,
                            "may not specify a duration less than 600 seconds (10 minutes)"))
    return errs + _status_errors(obj)


def certificate_signing_request_update(obj: dict, old: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    if _dict(obj.get("spec")) != _dict(old.get("spec")):
        errs.append(invalid("spec", "", "field is immutable"))
    old_status, new_status = _dict(old.get("status")), _dict(obj.get("status"))
    new_types = {c.get("type") for c in _conditions(new_status)}
    for condition in _conditions(old_status):
        if condition.get("type") in (APPROVED, DENIED, FAILED) and condition.get("type") not in new_types:
            errs.append(forbidden("status.conditions",
                                  f"updates may not remove a condition of type \"{condition.get('type')}\""))
    old_cert = old_status.get("certificate")
    if old_cert and new_status.get("certificate") != old_cert:
        errs.append(invalid("status.certificate", _CERTIFICATE_DATA,
                            "updates may not modify existing certificate content"))
    return errs


def set_requestor(obj: dict, user: object | None) -> None:
    """Upstream's PrepareForCreate: the requestor's identity comes from authentication, never the body."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return  # validation reports the malformed spec
    for field in ("username", "uid", "groups", "extra"):
        spec.pop(field, None)
    if user is None:
        return
    if getattr(user, "name", ""):
        spec["username"] = user.name
    if getattr(user, "uid", ""):
        spec["uid"] = user.uid
    if getattr(user, "groups", ()):
        spec["groups"] = list(user.groups)
    if getattr(user, "extra", None):
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}


def _split_conditions(status: dict) -> tuple[list[dict], list[dict]]:
    conditions = _conditions(status)
    return ([c for c in conditions if c.get("type") in APPROVAL_TYPES],
            [c for c in conditions if c.get("type") not in APPROVAL_TYPES])


def _stamp_conditions(status: dict, old_status: dict) -> None:
    """Upstream's populateConditionTimestamps: a condition without lastUpdateTime gets now; one that is new
    or changed status gets a fresh lastTransitionTime, otherwise it keeps the old one."""
    now = now_rfc3339()
    before = {c.get("type"): c for c in _conditions(old_status)}
    for condition in _conditions(status):
        condition.setdefault("lastUpdateTime", now)
        previous = before.get(condition.get("type"))
        if previous is None or previous.get("status") != condition.get("status"):
            condition.setdefault("lastTransitionTime", now)
        elif not condition.get("lastTransitionTime") and previous.get("lastTransitionTime"):
            condition["lastTransitionTime"] = previous["lastTransitionTime"]


def prepare_for_status_update(obj: dict, old: dict) -> dict:
    """/status: spec and the approval conditions stay as they were; the certificate and other conditions
    come from the request."""
    new = copy.deepcopy(old)
    requested = _dict(obj.get("status"))
    kept_approval, _ = _split_conditions(_dict(old.get("status")))
    _, others = _split_conditions(requested)
    status: dict = {}
    if kept_approval or others:
        status["conditions"] = kept_approval + others
    if requested.get("certificate"):
        status["certificate"] = requested["certificate"]
    _stamp_conditions(status, _dict(old.get("status")))
    new["status"] = status
    return new


def prepare_for_approval_update(obj: dict, old: dict) -> dict:
    """/approval: only the Approved/Denied conditions come from the request."""
    new = copy.deepcopy(old)
    old_status = _dict(old.get("status"))
    approval, _ = _split_conditions(_dict(obj.get("status")))
    _, kept_others = _split_conditions(old_status)
    status = {k: v for k, v in old_status.items() if k != "conditions"}
    if approval or kept_others:
        status["conditions"] = approval + kept_others
    _stamp_conditions(status, old_status)
    new["status"] = status
    return new


def condition_summary(obj: dict) -> str:
    """kubectl's CONDITION column: Pending/Approved/Denied, then ",Failed" and ",Issued"."""
    status = _dict(obj.get("status"))
    types = {c.get("type") for c in _conditions(status)}
    text = DENIED if DENIED in types else APPROVED if APPROVED in types else "Pending"
    if FAILED in types:
        text += ",Failed"
    if status.get("certificate"):
        text += ",Issued"
    return text


def is_approved(obj: dict) -> bool:
    types = {c.get("type") for c in _conditions(_dict(obj.get("status")))}
    return APPROVED in types and DENIED not in types
