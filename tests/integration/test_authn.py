"""Authentication end to end: TokenRequest through real kubectl, the tokens used over plain HTTPS,
revocation, TokenReview, SelfSubjectReview (`kubectl auth whoami`), impersonation, bootstrap
tokens and the service-account issuer discovery documents."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import jwt
import pytest
import yaml

from conftest import KUBECTL, Cluster, eventually, validate_tree

ISSUER = "https://kubernetes.default.svc.cluster.local"
WHOAMI_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# kubectl's client-side validation looks for a PATCH operation of the kind in /openapi/v3, which a create-only
# kind has none of, then falls back to /openapi/v2, which pyk8s does not serve: create the reviews unvalidated.
CREATE = ("create", "--validate=false", "-o", "json", "-f", "-")


def call(cluster: Cluster, method: str, path: str, token: str | None = None, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    """One HTTPS request without a client certificate: the bearer token is the only credential."""
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "tls" / "ca.crt"))
    request = urllib.request.Request(cluster.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def whoami(cluster: Cluster, token: str) -> tuple[int, dict]:
    return call(cluster, "POST", WHOAMI_PATH, token,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})


def token_kubectl(cluster: Cluster, token: str, *args: str) -> subprocess.CompletedProcess:
    """kubectl with only a bearer token (the admin kubeconfig's client certificate would win over it)."""
    return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", cluster.url, "--certificate-authority",
                           str(cluster.data_dir / "tls" / "ca.crt"), "--token", token, *args],
                          capture_output=True, text=True, timeout=60)


def create_token(cluster: Cluster, namespace: str, account: str, *args: str) -> str:
    return cluster.kubectl("create", "token", account, "-n", namespace, *args).stdout.strip()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def apply(cluster: Cluster, obj: dict) -> dict:
    return json.loads(cluster.kubectl("apply", "-o", "json", "-f", "-", input=json.dumps(obj)).stdout)


def assert_unauthorized(status: int, body: dict) -> None:
    assert status == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


@pytest.fixture
def account(cluster: Cluster, namespace: str) -> dict:
    cluster.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    return cluster.kubectl_json("get", "serviceaccount", "robot", "-n", namespace)


def test_kubectl_create_token_then_call_the_api_with_it(cluster: Cluster, namespace: str, account: dict):
    token = create_token(cluster, namespace, "robot")
    claims = claims_of(token)
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["kubernetes.io"] == {"namespace": namespace,
                                       "serviceaccount": {"name": "robot", "uid": account["metadata"]["uid"]}}

    status, review = whoami(cluster, token)
    assert status == 201, review
    validate_tree(review)
    assert review["status"]["userInfo"] == {
        "username": f"system:serviceaccount:{namespace}:robot", "uid": account["metadata"]["uid"],
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}}

    result = token_kubectl(cluster, token, "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:robot"


def test_token_request_options_and_errors(cluster: Cluster, namespace: str, account: dict):
    token = create_token(cluster, namespace, "robot", "--audience", "vault", "--audience", "other",
                         "--duration", "15m")
    claims = claims_of(token)
    assert claims["aud"] == ["vault", "other"] and claims["exp"] - claims["iat"] == 900
    assert_unauthorized(*whoami(cluster, token))  # not meant for the API server

    short = cluster.kubectl("create", "token", "robot", "-n", namespace, "--duration", "5m", check=False)
    assert short.returncode != 0
    assert ('TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 300: '
            "may not specify a duration less than 10 minutes") in short.stderr
    missing = cluster.kubectl("create", "token", "nobody", "-n", namespace, check=False)
    assert missing.returncode != 0 and 'serviceaccounts "nobody" not found' in missing.stderr

    # The whole TokenRequest as the API answers it (kubectl create token prints only the token).
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 700}}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/robot/token"
    answer = json.loads(cluster.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(body)).stdout)
    validate_tree(answer)
    assert answer["spec"] == {"audiences": [ISSUER], "expirationSeconds": 700, "boundObjectRef": None}
    assert answer["metadata"]["name"] == "robot" and answer["metadata"]["namespace"] == namespace
    assert claims_of(answer["status"]["token"])["exp"] - claims_of(answer["status"]["token"])["iat"] == 700
    assert answer["status"]["expirationTimestamp"].endswith("Z")


def test_pod_bound_token_is_revoked_with_its_pod(cluster: Cluster, namespace: str, account: dict):
    pod = apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": namespace},
                          "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}})
    token = create_token(cluster, namespace, "robot", "--bound-object-kind", "Pod", "--bound-object-name", "worker")
    assert claims_of(token)["kubernetes.io"]["pod"] == {"name": "worker", "uid": pod["metadata"]["uid"]}
    status, review = whoami(cluster, token)
    assert status == 201
    extra = review["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["worker"]
    assert extra["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]

    # A pod running as another service account cannot carry a token for this one.
    eventually(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", namespace,
                                       check=False).returncode == 0, timeout=60)
    wrong = cluster.kubectl("create", "token", "default", "-n", namespace, "--bound-object-kind", "Pod",
                            "--bound-object-name", "worker", check=False)
    assert wrong.returncode != 0 and "cannot bind token for serviceaccount \"default\"" in wrong.stderr
    # A UID that is not the pod's: it was deleted and recreated meanwhile.
    stale = cluster.kubectl("create", "token", "robot", "-n", namespace, "--bound-object-kind", "Pod",
                            "--bound-object-name", "worker", "--bound-object-uid", "0000", check=False)
    assert stale.returncode != 0
    assert ('Operation cannot be fulfilled on Pod "worker": the UID in the bound object reference (0000) does not '
            "match the UID in record") in stale.stderr

    cluster.kubectl("delete", "pod", "worker", "-n", namespace, "--grace-period=0", "--force")
    eventually(lambda: whoami(cluster, token)[0] == 401, timeout=60)
    assert_unauthorized(*whoami(cluster, token))


def test_secret_bound_token_and_deleted_service_account(cluster: Cluster, namespace: str, account: dict):
    cluster.kubectl("create", "secret", "generic", "anchor", "-n", namespace, "--from-literal=k=v")
    bound = create_token(cluster, namespace, "robot", "--bound-object-kind", "Secret", "--bound-object-name", "anchor")
    plain = create_token(cluster, namespace, "robot")
    assert whoami(cluster, bound)[0] == 201
    cluster.kubectl("delete", "secret", "anchor", "-n", namespace)
    eventually(lambda: whoami(cluster, bound)[0] == 401, timeout=60)

    assert whoami(cluster, plain)[0] == 201
    cluster.kubectl("delete", "serviceaccount", "robot", "-n", namespace)
    cluster.kubectl("create", "serviceaccount", "robot", "-n", namespace)  # same name, new UID
    eventually(lambda: whoami(cluster, plain)[0] == 401, timeout=60)


def test_node_bound_token(cluster: Cluster, namespace: str, account: dict):
    node = apply(cluster, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{namespace}-node"}})
    token = create_token(cluster, namespace, "robot", "--bound-object-kind", "Node", "--bound-object-name",
                         f"{namespace}-node")
    status, review = whoami(cluster, token)
    assert status == 201
    extra = review["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/node-name"] == [f"{namespace}-node"]
    assert extra["authentication.kubernetes.io/node-uid"] == [node["metadata"]["uid"]]
    cluster.kubectl("delete", "node", f"{namespace}-node")
    eventually(lambda: whoami(cluster, token)[0] == 401, timeout=60)


def test_forged_expired_and_malformed_tokens_get_401(cluster: Cluster, namespace: str, account: dict):
    from cryptography.hazmat.primitives.asymmetric import ec

    token = create_token(cluster, namespace, "robot")
    claims = claims_of(token)
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    header, payload, signature = token.split(".")
    tampered_claims = {**claims, "exp": claims["exp"] + 10**6}
    tampered = ".".join([header, base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=")
                         .decode(), signature])
    for bad in (forged, tampered, "not-a-token", token + "x"):
        assert_unauthorized(*whoami(cluster, bad))
    # Another scheme is no credential at all: the anonymous user, who may not list namespaces.
    status, body = call(cluster, "GET", "/api/v1/namespaces", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert status == 403 and 'User "system:anonymous"' in body["message"]
    # The server never logs a credential.
    assert token not in cluster.log_path.read_text()


def test_token_review(cluster: Cluster, namespace: str, account: dict):
    token = create_token(cluster, namespace, "robot", "--audience", "vault")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": token, "audiences": ["vault"]}}
    good = json.loads(cluster.kubectl(*CREATE, input=json.dumps(review)).stdout)
    validate_tree(good)
    assert good["status"]["authenticated"] is True
    assert good["status"]["audiences"] == ["vault"]
    assert good["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:robot"

    wrong_audience = {**review, "spec": {"token": token}}
    bad = json.loads(cluster.kubectl(*CREATE, input=json.dumps(wrong_audience)).stdout)
    assert "authenticated" not in bad["status"]
    assert bad["status"]["error"] == f'token audiences ["vault"] is invalid for the target audiences ["{ISSUER}"]'

    garbage = {**review, "spec": {"token": "garbage"}}
    unknown = json.loads(cluster.kubectl(*CREATE, input=json.dumps(garbage)).stdout)
    assert unknown["status"] == {"user": {}}

    empty = cluster.kubectl(*CREATE, input=json.dumps({**review, "spec": {}}), check=False)
    assert empty.returncode != 0 and "token is required for TokenReview in authentication" in empty.stderr
    listing = cluster.kubectl("get", "tokenreviews", check=False)
    assert listing.returncode != 0


def test_whoami_for_certificate_user(cluster: Cluster):
    table = cluster.kubectl("auth", "whoami").stdout
    assert table.split("\n")[0].split() == ["ATTRIBUTE", "VALUE"]
    assert "Username    system:admin" in table
    assert "Groups      [system:masters system:authenticated]" in table
    review = yaml.safe_load(cluster.kubectl("auth", "whoami", "-o", "yaml").stdout)
    validate_tree(review)
    assert review["kind"] == "SelfSubjectReview"
    assert review["status"]["userInfo"] == {"username": "system:admin",
                                            "groups": ["system:masters", "system:authenticated"]}


def test_impersonation(cluster: Cluster, namespace: str, account: dict):
    review = json.loads(cluster.kubectl("auth", "whoami", "--as", "bob", "--as-group", "devs", "-o", "json").stdout)
    assert review["status"]["userInfo"] == {"username": "bob", "groups": ["devs", "system:authenticated"]}
    review = json.loads(cluster.kubectl("auth", "whoami", "--as", f"system:serviceaccount:{namespace}:robot",
                                        "-o", "json").stdout)
    assert review["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    review = json.loads(cluster.kubectl("auth", "whoami", "--as", "bob", "--as-uid", "1234", "-o", "json").stdout)
    assert review["status"]["userInfo"]["uid"] == "1234"
    # The request really runs as bob, who may do nothing here.
    denied = cluster.kubectl("get", "pods", "-n", namespace, "--as", "bob", "--as-group", "devs", check=False)
    assert denied.returncode != 0
    assert f'User "bob" cannot list resource "pods" in API group "" in the namespace "{namespace}"' in denied.stderr

    # A service account has no right to impersonate anyone.
    token = create_token(cluster, namespace, "robot")
    status, body = call(cluster, "POST", WHOAMI_PATH, token, {"kind": "SelfSubjectReview"},
                        {"Impersonate-User": "bob"})
    assert status == 403
    assert body["message"] == (f'users "bob" is forbidden: User "system:serviceaccount:{namespace}:robot" cannot '
                               'impersonate resource "users" in API group "" at the cluster scope')
    status, body = call(cluster, "POST", WHOAMI_PATH, token, {"kind": "SelfSubjectReview"},
                        {"Impersonate-Group": "devs"})
    assert status == 400 and "without impersonating a user" in body["message"]


def test_bootstrap_token(cluster: Cluster):
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
              "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
              "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                             "usage-bootstrap-authentication": "true",
                             "auth-extra-groups": "system:bootstrappers:worker", "expiration": "2099-01-01T00:00:00Z"}}
    apply(cluster, secret)
    status, review = whoami(cluster, "abcdef.0123456789abcdef")
    assert status == 201, review
    assert review["status"]["userInfo"] == {"username": "system:bootstrap:abcdef", "groups": [
        "system:bootstrappers", "system:bootstrappers:worker", "system:authenticated"]}
    assert_unauthorized(*whoami(cluster, "abcdef.0123456789abcdex"))
    apply(cluster, {**secret, "stringData": {**secret["stringData"], "expiration": "2000-01-01T00:00:00Z"}})
    eventually(lambda: whoami(cluster, "abcdef.0123456789abcdef")[0] == 401, timeout=60)
    cluster.kubectl("delete", "secret", "bootstrap-token-abcdef", "-n", "kube-system")


def test_issuer_discovery_verifies_tokens(cluster: Cluster, namespace: str, account: dict):
    token = create_token(cluster, namespace, "robot")
    status, config = call(cluster, "GET", "/.well-known/openid-configuration", token)
    assert status == 200, config
    assert config["issuer"] == ISSUER and config["jwks_uri"].endswith("/openid/v1/jwks")
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    status, jwks = call(cluster, "GET", "/openid/v1/jwks", token)
    assert status == 200
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    verified = jwt.decode(token, key.key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)
    assert verified["sub"] == f"system:serviceaccount:{namespace}:robot"
    # Anonymous callers are not in the discovery role's group.
    assert call(cluster, "GET", "/openid/v1/jwks")[0] == 403


def test_certificate_from_another_ca_fails_the_handshake(cluster: Cluster, tmp_path):
    """Upstream completes the handshake and answers 401; Python's ssl can only ask for a client certificate
    and verify it (CERT_OPTIONAL), so a certificate from a foreign CA ends the connection instead
    (documented in docs/security.md)."""
    from pyk8s.server.pki import ensure_pki

    foreign = ensure_pki(tmp_path / "other", hostnames=[], ips=[])
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "tls" / "ca.crt"))
    ctx.load_cert_chain(str(foreign.admin_cert), str(foreign.admin_key))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(cluster.url + "/api", context=ctx, timeout=30).read()
