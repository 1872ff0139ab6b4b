"""Join tokens, the CA hash, CertificateSigningRequest validation and strategy, and the CSR signer's rules."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.api import certificates as csrs
from pyk8s.api.printers import certificate_signing_request as csr_printer
from pyk8s.apiserver.authn.bootstrap_tokens import BootstrapTokenAuthenticator
from pyk8s.controllers.certificates import (
    kubelet_client_problem,
    sign,
    signer_problem,
    simulated_nodes_client_problem,
)
from pyk8s.kubelet.tlsbootstrap import (
    SIMULATED_NODES,
    JoinError,
    certificate_request,
    cluster_ca_from_cluster_info,
    kubelet_identity,
)
from pyk8s.server import jointoken
from pyk8s.server.pki import ensure_pki

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _request_pem(cn: str, orgs: tuple[str, ...] = (),
                 dns: tuple[str, ...] = ()) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), key


def _csr(request_pem: bytes | None = None, **spec) -> dict:
    if request_pem is None:
        request_pem = _request_pem("jane", ("devs",))[0]
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "x"},
            "spec": {"request": base64.b64encode(request_pem).decode(),
                     "signerName": csrs.KUBE_APISERVER_CLIENT, "usages": ["client auth"], **spec}}


def _messages(errs) -> list[str]:
    return [e.message() for e in errs]


# ---- join tokens ----------------------------------------------------------------------------------

def test_join_token_round_trips_and_rejects_other_shapes() -> None:
    text = "K10" + "ab" * 32 + "::abcdef.0123456789abcdef"
    token = jointoken.parse_join_token(text)
    assert token.ca_hash == "ab" * 32
    assert token.bootstrap_token == "abcdef.0123456789abcdef"
    assert token.token_id == "abcdef"
    assert str(token) == text
    for bad in ("abcdef.0123456789abcdef", "K10" + "ab" * 31 + "::abcdef.0123456789abcdef",
                "K10" + "AB" * 32 + "::abcdef.0123456789abcdef", "K10" + "ab" * 32 + "::abcdef.short",
                "K10" + "ab" * 32 + ":abcdef.0123456789abcdef"):
        with pytest.raises(jointoken.JoinTokenError):
            jointoken.parse_join_token(bad)


def test_new_bootstrap_tokens_are_well_formed_and_random() -> None:
    tokens = {jointoken.new_bootstrap_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert jointoken.parse_join_token("K10" + "0" * 64 + "::" + token).bootstrap_token == token


def test_ca_hash_is_sha256_of_the_der_certificate(tmp_path) -> None:
    pki = ensure_pki(tmp_path, hostnames=[], ips=[])
    pem = pki.ca_cert.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert jointoken.ca_hash(pem) == hashlib.sha256(der).hexdigest()
    other = ensure_pki(tmp_path / "other", hostnames=[], ips=[])
    assert jointoken.ca_hash(other.ca_cert.read_bytes()) != jointoken.ca_hash(pem)


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400),
                                               ("0", None)])
def test_ttl_parses_go_durations(text: str, seconds: int | None) -> None:
    ttl = jointoken.parse_ttl(text)
    assert (ttl.total_seconds() if ttl is not None else None) == seconds


@pytest.mark.parametrize("text", ["", "24", "1d", "h", "-1h", "0h"])
def test_ttl_rejects_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(jointoken.JoinTokenError):
        jointoken.parse_ttl(text)


async def test_the_bootstrap_token_secret_authenticates_until_it_expires() -> None:
    secret = jointoken.bootstrap_token_secret("abcdef.0123456789abcdef", datetime.timedelta(hours=1), "note", NOW)
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true",
                    "usage-bootstrap-signing": "true", "description": "note", "expiration": "2026-01-02T04:04:05Z"}

    async def lookup(_plural, _namespace, _name):
        return secret

    before = BootstrapTokenAuthenticator(lookup, clock=lambda: (NOW + datetime.timedelta(minutes=59)).timestamp())
    result = await before.authenticate_token("abcdef.0123456789abcdef", ())
    assert result is not None and result.user.name == "system:bootstrap:abcdef"
    assert "system:bootstrappers" in result.user.groups
    after = BootstrapTokenAuthenticator(lookup, clock=lambda: (NOW + datetime.timedelta(minutes=61)).timestamp())
    assert await after.authenticate_token("abcdef.0123456789abcdef", ()) is None


def test_a_token_without_ttl_never_expires() -> None:
    secret = jointoken.bootstrap_token_secret("abcdef.0123456789abcdef", None, "", NOW)
    assert "expiration" not in secret["data"]
    assert jointoken.format_ttl(None, NOW) == "<forever>"
    assert jointoken.format_ttl(NOW - datetime.timedelta(seconds=1), NOW) == "<invalid>"
    assert jointoken.format_ttl(NOW + datetime.timedelta(hours=23, minutes=59, seconds=59), NOW) == "23h"


def test_token_ids_come_from_ids_tokens_or_join_tokens() -> None:
    assert jointoken.token_id_of("abcdef") == "abcdef"
    assert jointoken.token_id_of("abcdef.0123456789abcdef") == "abcdef"
    assert jointoken.token_id_of("K10" + "0" * 64 + "::abcdef.0123456789abcdef") == "abcdef"
    with pytest.raises(jointoken.JoinTokenError):
        jointoken.token_id_of("ABC")


def test_cluster_info_carries_the_ca_the_agent_reads(tmp_path) -> None:
    ca_pem = ensure_pki(tmp_path, hostnames=[], ips=[]).ca_cert.read_bytes()
    configmap = jointoken.cluster_info_configmap("https://10.0.0.1:6443", ca_pem)
    assert configmap["metadata"] == {"name": "cluster-info", "namespace": "kube-public"}
    assert cluster_ca_from_cluster_info(configmap) == ca_pem
    with pytest.raises(JoinError):
        cluster_ca_from_cluster_info({"data": {"kubeconfig": "clusters: []"}})


# ---- CertificateSigningRequest validation ---------------------------------------------------------

def test_a_well_formed_csr_is_valid() -> None:
    assert csrs.certificate_signing_request(_csr(expirationSeconds=600)) == []


def test_request_must_be_a_pem_certificate_request() -> None:
    assert _messages(csrs.certificate_signing_request(_csr(b""))) == ["spec.request: Required value"]
    cert_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    errs = csrs.certificate_signing_request(_csr(cert_pem))
    assert [(e.field, e.detail) for e in errs] == [("spec.request", "PEM block type must be CERTIFICATE REQUEST")]
    garbled = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    errs = csrs.certificate_signing_request(_csr(garbled))
    assert [e.field for e in errs] == ["spec.request"] and "x509" in errs[0].detail


def test_signer_usages_and_expiration_rules() -> None:
    errs = csrs.certificate_signing_request(_csr(signerName="", usages=[], expirationSeconds=599))
    assert _messages(errs) == ["spec.usages: Required value: usages must be provided",
                               "spec.signerName: Required value",
                               "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than "
                               "600 seconds (10 minutes)"]
    errs = csrs.certificate_signing_request(_csr(signerName="nodomain", usages=["client auth", "client auth",
                                                                                 "flying"]))
    assert [(e.type, e.field) for e in errs] == [("Duplicate", "spec.usages[1]"), ("NotSupported", "spec.usages[2]"),
                                                 ("Invalid", "spec.signerName")]
    assert "must be a fully qualified domain and path" in errs[2].detail


def test_approval_conditions() -> None:
    both = _csr()
    both["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}
    assert [e.detail for e in csrs.certificate_signing_request(both)] == [
        "Approved and Denied conditions are mutually exclusive"]
    false_approval = _csr()
    false_approval["status"] = {"conditions": [{"type": "Approved", "status": "False"}]}
    assert _messages(csrs.certificate_signing_request(false_approval)) == [
        'status.conditions[0].status: Unsupported value: "False": supported values: "True"']
    twice = _csr()
    twice["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Approved", "status": "True"}]}
    assert [e.type for e in csrs.certificate_signing_request(twice)] == ["Duplicate"]


def test_updates_keep_spec_conditions_and_certificate() -> None:
    old = _csr()
    old["status"] = {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "Y2VydA=="}
    changed = _csr(usages=["client auth", "digital signature"])
    changed["status"] = {}
    messages = _messages(csrs.certificate_signing_request_update(changed, old))
    assert messages == ["spec: Invalid value: \"\": field is immutable",
                        'status.conditions: Forbidden: updates may not remove a condition of type "Approved"',
                        'status.certificate: Invalid value: "<certificate data>": updates may not modify existing '
                        'certificate content']


def test_approval_subresource_takes_only_approval_conditions() -> None:
    old = _csr()
    old["status"] = {"conditions": [{"type": "Failed", "status": "True", "lastUpdateTime": "t0",
                                     "lastTransitionTime": "t0"}]}
    request = _csr(signerName="example.com/hijack")
    request["status"] = {"certificate": "Zm9yZ2Vk", "conditions": [
        {"type": "Approved", "status": "True", "reason": "KubectlApprove"}, {"type": "Failed", "status": "False"}]}
    new = csrs.prepare_for_approval_update(request, old)
    assert new["spec"] == old["spec"]
    assert "certificate" not in new["status"]
    assert [(c["type"], c["status"]) for c in new["status"]["conditions"]] == [("Approved", "True"),
                                                                               ("Failed", "True")]
    approved = new["status"]["conditions"][0]
    assert approved["lastUpdateTime"] and approved["lastTransitionTime"]
    assert new["status"]["conditions"][1]["lastTransitionTime"] == "t0"


def test_status_subresource_cannot_approve() -> None:
    old = _csr()
    request = _csr()
    request["status"] = {"certificate": "Y2VydA==", "conditions": [{"type": "Approved", "status": "True"}]}
    new = csrs.prepare_for_status_update(request, old)
    assert new["status"] == {"certificate": "Y2VydA=="}


def test_requestor_comes_from_the_authenticated_user() -> None:
    from pyk8s.apiserver.authn import UserInfo

    obj = _csr(username="system:admin", groups=["system:masters"])
    csrs.set_requestor(obj, UserInfo("system:bootstrap:abcdef", groups=("system:bootstrappers",
                                                                        "system:authenticated")))
    assert obj["spec"]["username"] == "system:bootstrap:abcdef"
    assert obj["spec"]["groups"] == ["system:bootstrappers", "system:authenticated"]
    assert "uid" not in obj["spec"] and "extra" not in obj["spec"]


def test_printer_columns_and_condition_summary() -> None:
    assert [c["name"] for c in csr_printer.columns] == ["Name", "Age", "SignerName", "Requestor",
                                                       "RequestedDuration", "Condition"]
    obj = _csr(expirationSeconds=86400, username="jane")
    obj["metadata"]["creationTimestamp"] = "2026-01-02T03:04:05Z"
    now = datetime.datetime(2026, 1, 2, 3, 5, 5, tzinfo=datetime.UTC)
    assert csr_printer.cells(obj, now) == ["x", "60s", csrs.KUBE_APISERVER_CLIENT, "jane", "24h", "Pending"]
    obj["status"] = {"conditions": [{"type": "Approved"}, {"type": "Failed"}], "certificate": "eA=="}
    assert csrs.condition_summary(obj) == "Approved,Failed,Issued"
    obj["status"] = {"conditions": [{"type": "Denied"}]}
    assert csrs.condition_summary(obj) == "Denied"
    del obj["spec"]["expirationSeconds"]
    assert csr_printer.cells(obj, now)[4] == "<none>"


# ---- the signer ---------------------------------------------------------------------------------

def test_kubelet_client_requests_must_name_a_node() -> None:
    usages = ["digital signature", "client auth"]
    good = x509.load_pem_x509_csr(_request_pem("system:node:n1", ("system:nodes",))[0])
    assert kubelet_client_problem(good, usages) is None
    assert kubelet_client_problem(good, ["client auth", "server auth"]) is not None
    for cn, orgs, dns in (("jane", ("system:nodes",), ()), ("system:node:n1", ("system:masters",), ()),
                          ("system:node:n1", ("system:nodes", "system:masters"), ()),
                          ("system:node:n1", ("system:nodes",), ("n1.example",))):
        request = x509.load_pem_x509_csr(_request_pem(cn, orgs, dns)[0])
        assert kubelet_client_problem(request, usages) is not None, (cn, orgs, dns)


def test_simulated_agent_requests_name_exactly_its_shared_identity() -> None:
    usages = ["digital signature", "client auth"]
    key = ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(certificate_request(SIMULATED_NODES, key))
    assert good.subject.rfc4514_string() == "CN=system:pyk8s:simulated-nodes"
    assert SIMULATED_NODES.signer == csrs.KUBE_APISERVER_CLIENT
    assert simulated_nodes_client_problem(good, usages) is None
    assert simulated_nodes_client_problem(good, ["client auth", "server auth"]) is not None
    kubelet = x509.load_pem_x509_csr(certificate_request(kubelet_identity("n1"), key))
    assert kubelet.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    for cn, orgs, dns in (("system:pyk8s:simulated-nodes", ("system:masters",), ()),
                          ("system:pyk8s:simulated-nodes", (), ("x.example",)), ("system:node:n1", (), ()),
                          ("system:pyk8s:simulated-nodes-2", (), ())):
        request = x509.load_pem_x509_csr(_request_pem(cn, orgs, dns)[0])
        assert simulated_nodes_client_problem(request, usages) is not None, (cn, orgs, dns)


def test_client_signer_refuses_server_usage() -> None:
    obj = _csr(usages=["server auth"])
    assert signer_problem(obj, csrs.parse_request(obj)) is not None
    assert signer_problem(_csr(), csrs.parse_request(_csr())) is None


def test_signed_certificate_follows_the_request(tmp_path) -> None:
    pki = ensure_pki(tmp_path, hostnames=[], ips=[])
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    pem, key = _request_pem("system:node:n1", ("system:nodes",))
    request = x509.load_pem_x509_csr(pem)
    cert = sign(request, ["digital signature", "client auth"], 3600, ca_cert, ca_key, NOW)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject == request.subject
    assert cert.public_key() == key.public_key()
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(hours=1)
    assert cert.not_valid_before_utc < NOW
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    # Without expirationSeconds the signer's one year applies.
    default = sign(request, ["client auth"], None, ca_cert, ca_key, NOW)
    assert default.not_valid_after_utc == NOW + datetime.timedelta(days=365)


# ---- the certificates admission plugins ---------------------------------------------------------

def _admission(operation: str, subresource: str, obj: dict, old: dict | None, user):
    from pyk8s.api.kinds import REGISTRY
    from pyk8s.apiserver.admission import Attributes

    kind = REGISTRY.by_kind("certificates.k8s.io", "v1", "CertificateSigningRequest")
    return Attributes(kind, operation, "", "x", obj, old, subresource, user=user)


def _authorizer(allowed: set[tuple[str, str]]):
    from pyk8s.apiserver.authz.attributes import Decision

    seen = []

    def authorize(attrs):
        seen.append((attrs.verb, attrs.api_group, attrs.resource, attrs.name))
        return Decision((attrs.verb, attrs.name) in allowed)

    return authorize, seen


async def test_approving_needs_the_approve_verb_on_the_signer() -> None:
    from pyk8s.api.errors import APIError
    from pyk8s.apiserver.admission.certificates import CertificateApproval
    from pyk8s.apiserver.authn import UserInfo

    user = UserInfo("jane")
    authorize, seen = _authorizer({("approve", "kubernetes.io/*")})
    plugin = CertificateApproval(authorize)
    attrs = _admission("UPDATE", "approval", _csr(), _csr(), user)
    assert plugin.handles(attrs)
    await plugin.validate(attrs)  # the domain wildcard grants it
    assert seen == [("approve", "certificates.k8s.io", "signers", csrs.KUBE_APISERVER_CLIENT),
                    ("approve", "certificates.k8s.io", "signers", "kubernetes.io/*")]
    denied = CertificateApproval(_authorizer(set())[0])
    with pytest.raises(APIError) as exc:
        await denied.validate(attrs)
    assert exc.value.code == 403
    assert exc.value.message == ('certificatesigningrequests.certificates.k8s.io "x" is forbidden: user not permitted '
                                 'to approve requests with signerName "kubernetes.io/kube-apiserver-client"')
    assert not plugin.handles(_admission("UPDATE", "status", _csr(), _csr(), user))


async def test_issuing_needs_the_sign_verb_and_other_status_writes_do_not() -> None:
    from pyk8s.api.errors import APIError
    from pyk8s.apiserver.admission.certificates import CertificateSigning
    from pyk8s.apiserver.authn import UserInfo

    plugin = CertificateSigning(_authorizer(set())[0])
    old = _csr()
    failed = _csr()
    failed["status"] = {"conditions": [{"type": "Failed", "status": "True"}]}
    await plugin.validate(_admission("UPDATE", "status", failed, old, UserInfo("jane")))
    issued = _csr()
    issued["status"] = {"certificate": "Y2VydA=="}
    with pytest.raises(APIError) as exc:
        await plugin.validate(_admission("UPDATE", "status", issued, old, UserInfo("jane")))
    assert "user not permitted to sign requests" in exc.value.message
    signer = CertificateSigning(_authorizer({("sign", csrs.KUBE_APISERVER_CLIENT)})[0])
    await signer.validate(_admission("UPDATE", "status", issued, old, UserInfo("controller")))


async def test_no_kube_apiserver_client_certificate_for_system_masters() -> None:
    from pyk8s.api.errors import APIError
    from pyk8s.apiserver.admission.certificates import CertificateSubjectRestriction
    from pyk8s.apiserver.authn import UserInfo

    plugin = CertificateSubjectRestriction()
    masters = _csr(_request_pem("mallory", ("system:masters",))[0])
    with pytest.raises(APIError) as exc:
        await plugin.validate(_admission("CREATE", "", masters, None, UserInfo("mallory")))
    assert exc.value.message.endswith("use of kubernetes.io/kube-apiserver-client signer with system:masters group "
                                      "is not allowed")
    await plugin.validate(_admission("CREATE", "", _csr(), None, UserInfo("jane")))
    other_signer = _csr(_request_pem("mallory", ("system:masters",))[0], signerName="example.com/mine")
    await plugin.validate(_admission("CREATE", "", other_signer, None, UserInfo("mallory")))
