"""RBAC end to end with the real kubectl: users with client certificates and bearer tokens, the bootstrap
roles, `kubectl auth can-i`, escalation and bind checks, ClusterRole aggregation, the review APIs and
the bootstrap policy's reconciliation at restart."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyk8s.server.kubeconfig import write_kubeconfig
from pyk8s.server.pki import PKI

from conftest import Cluster, eventually

CAROL_TOKEN = "carol-token-0123456789"


@pytest.fixture(scope="module")
def rbac_cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A server with every component (each with its own identity), a simulated node and a static token
    for the user carol."""
    data_dir = tmp_path_factory.mktemp("rbac")
    token_file = data_dir / "tokens.csv"
    token_file.write_text(f'{CAROL_TOKEN},carol,carol-uid,"testers"\n')
    c = Cluster(data_dir, ("--simulated-nodes", "1", "--token-file", str(token_file)))
    c.start()
    # admin, edit and view get their rules from the controller-manager's aggregation controller.
    eventually(lambda: all(json.loads(c.kubectl("get", "clusterrole", role, "-o", "json").stdout).get("rules")
                           for role in ("view", "edit", "admin")), timeout=60)
    yield c
    if c.process is not None:
        c.stop()


class User:
    """kubectl as a user with a client certificate signed by the cluster CA (CN=name, O=groups)."""

    def __init__(self, cluster: Cluster, name: str, groups: tuple[str, ...] = ()):
        self.cluster = cluster
        self.name = name
        self.kubeconfig = cluster.data_dir / "users" / f"{name}.yaml"
        cert, key = PKI.at(cluster.data_dir / "tls").issue_client_cert(name, list(groups))
        write_kubeconfig(self.kubeconfig, cluster.url, (cluster.data_dir / "tls" / "ca.crt").read_bytes(), cert, key,
                         user=name)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None):
        return self.cluster.kubectl("--kubeconfig", str(self.kubeconfig), *args, check=check, input=input)

    def can_i(self, *args: str) -> bool:
        result = self.kubectl("auth", "can-i", *args, check=False)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), result.stdout + result.stderr
        assert result.returncode == (0 if answer == "yes" else 1)
        return answer == "yes"


def apply(cluster: Cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def namespace(cluster: Cluster, name: str) -> str:
    apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def bind(cluster: Cluster, ns: str, name: str, role: str, user: str, kind: str = "ClusterRole") -> None:
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


def http(cluster: Cluster, path: str, token: str | None = None, method: str = "GET",
         body: dict | None = None) -> tuple[int, dict | str]:
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "tls" / "ca.crt"))
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(cluster.url + path, headers=headers, method=method, data=data)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_certificate_user_is_forbidden_until_bound(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-cert")
    alice = User(rbac_cluster, "alice", ("devs",))
    denied = alice.kubectl("get", "pods", "-n", ns, check=False)
    assert denied.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group '
            f'"" in the namespace "{ns}"') in denied.stderr
    denied = alice.kubectl("get", "nodes", check=False)
    assert ('nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope'
            in denied.stderr)
    bind(rbac_cluster, ns, "alice-view", "view", "alice")
    assert "No resources found" in alice.kubectl("get", "pods", "-n", ns).stderr
    assert alice.kubectl("get", "pods", "-n", "default", check=False).returncode == 1


def test_token_user_gets_403_then_200(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-token")
    status, body = http(rbac_cluster, f"/api/v1/namespaces/{ns}/configmaps", CAROL_TOKEN)
    assert status == 403
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == (f'configmaps is forbidden: User "carol" cannot list resource "configmaps" in API '
                               f'group "" in the namespace "{ns}"')
    assert body["details"] == {"kind": "configmaps"}
    bind(rbac_cluster, ns, "carol-edit", "edit", "carol")
    status, body = http(rbac_cluster, f"/api/v1/namespaces/{ns}/configmaps", CAROL_TOKEN)
    assert status == 200 and body["kind"] == "ConfigMapList"
    status, body = http(rbac_cluster, "/metrics", CAROL_TOKEN)
    assert status == 403 and body["message"] == 'forbidden: User "carol" cannot get path "/metrics"'
    # The self reviews over plain JSON, as a token user.
    ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/apis/apps", "verb": "get"}}}
    status, body = http(rbac_cluster, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", CAROL_TOKEN,
                        "POST", ssar)
    assert status == 201 and body["kind"] == "SelfSubjectAccessReview"
    assert body["status"] == {"allowed": True, "reason": 'RBAC: allowed by ClusterRoleBinding "system:discovery" of '
                                                         'ClusterRole "system:discovery" to Group '
                                                         '"system:authenticated"'}
    ssar["spec"] = {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/", "verb": "get"}}
    status, body = http(rbac_cluster, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", CAROL_TOKEN,
                        "POST", ssar)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.nonResourceAttributes",
                                          "message": 'Invalid value: authorization.NonResourceAttributes{Path:"/", '
                                                     'Verb:"get"}: cannot be specified in combination with '
                                                     "resourceAttributes"}]
    ssar["spec"] = {"resourceAttributes": "pods"}
    status, body = http(rbac_cluster, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", CAROL_TOKEN,
                        "POST", ssar)
    assert status == 400 and body["message"] == (
        'SelfSubjectAccessReview in version "v1" cannot be handled as a SelfSubjectAccessReview: json: cannot '
        "unmarshal string into Go struct field SelfSubjectAccessReviewSpec.spec.resourceAttributes of type "
        "v1.ResourceAttributes")
    rules = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": ns}}
    status, body = http(rbac_cluster, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", CAROL_TOKEN,
                        "POST", rules)
    assert status == 201 and body["status"]["incomplete"] is False
    assert any("configmaps" in r.get("resources", []) and "create" in r["verbs"]
               for r in body["status"]["resourceRules"])
    lsar = {"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "default"},
            "spec": {"user": "x", "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}}}
    status, body = http(rbac_cluster, f"/apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews",
                        CAROL_TOKEN, "POST", lsar)
    assert status == 403  # edit does not include localsubjectaccessreviews (admin does)


def test_anonymous_requests_reach_only_public_information(rbac_cluster):
    assert http(rbac_cluster, "/version")[0] == 200
    assert http(rbac_cluster, "/healthz")[0] == 200
    status, body = http(rbac_cluster, "/api")
    assert status == 403 and body["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'
    status, body = http(rbac_cluster, "/api/v1/namespaces/default/pods")
    assert status == 403
    assert body["message"] == ('pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group '
                               '"" in the namespace "default"')


# What upstream documents for the user-facing roles, bound with a RoleBinding in one namespace.
CAN_I_MATRIX = [
    # (verb, resource, extra args, view, edit, admin)
    ("get", "pods", (), True, True, True),
    ("create", "pods", (), False, True, True),
    ("get", "pods", ("--subresource=log",), True, True, True),
    ("create", "pods", ("--subresource=exec",), False, True, True),
    ("get", "secrets", (), False, True, True),
    ("list", "configmaps", (), True, True, True),
    ("create", "deployments.apps", (), False, True, True),
    ("update", "deployments.apps", ("--subresource=scale",), False, True, True),
    ("create", "roles.rbac.authorization.k8s.io", (), False, False, True),
    ("create", "rolebindings.rbac.authorization.k8s.io", (), False, False, True),
    ("create", "resourcequotas", (), False, False, False),
    ("delete", "namespaces", (), False, False, False),
    ("*", "*", (), False, False, False),
]


def test_can_i_matrix_of_the_bootstrap_roles(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-matrix")
    users = {}
    for role in ("view", "edit", "admin"):
        users[role] = User(rbac_cluster, f"{role}-person")
        bind(rbac_cluster, ns, f"{role}-person", role, f"{role}-person")
    for verb, resource, extra, *expected in CAN_I_MATRIX:
        for role, allowed in zip(("view", "edit", "admin"), expected, strict=True):
            assert users[role].can_i(verb, resource, "-n", ns, *extra) is allowed, (role, verb, resource, extra)
            if allowed:
                assert not users[role].can_i(verb, resource, "-n", "default", *extra), (role, verb, resource)
    # The admin kubeconfig (system:masters) may do anything.
    assert rbac_cluster.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_can_i_as_another_user_and_list(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-as")
    bind(rbac_cluster, ns, "dave-view", "view", "dave")
    yes = rbac_cluster.kubectl("auth", "can-i", "list", "pods", "-n", ns, "--as", "dave")
    assert yes.stdout.strip() == "yes"
    no = rbac_cluster.kubectl("auth", "can-i", "create", "pods", "-n", ns, "--as", "dave", check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    dave = User(rbac_cluster, "dave")
    assert dave.can_i("get", "/apis/apps/v1")  # non-resource URLs: discovery is everyone's
    assert not dave.can_i("get", "/metrics")
    table = dave.kubectl("auth", "can-i", "--list", "-n", ns).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    pods = [line for line in lines if line.startswith("pods ")]
    assert pods and pods[0].split() == ["pods", "[]", "[]", "[get", "list", "watch]"]
    assert any(line.split()[:1] == ["selfsubjectaccessreviews.authorization.k8s.io"] for line in lines)
    assert not any(line.startswith("secrets ") for line in lines)


def test_escalation_is_refused_and_bind_is_checked(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-escalate")
    erin = User(rbac_cluster, "erin")
    bind(rbac_cluster, ns, "erin-admin", "admin", "erin")
    # Rules erin holds: fine.
    erin.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", ns)
    # Rules erin does not hold: refused with upstream's message.
    refused = erin.kubectl("create", "role", "node-reader", "--verb=get", "--resource=nodes", "-n", ns, check=False)
    assert refused.returncode == 1
    assert ('roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "erin" (groups=["system:authenticated"])'
            ' is attempting to grant RBAC permissions not currently held:\n'
            '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}') in refused.stderr
    # Binding a role whose permissions she holds works; binding cluster-admin does not...
    erin.kubectl("create", "rolebinding", "frank-view", "--clusterrole=view", "--user=frank", "-n", ns)
    refused = erin.kubectl("create", "rolebinding", "frank-root", "--clusterrole=cluster-admin", "--user=frank",
                           "-n", ns, check=False)
    assert refused.returncode == 1
    assert "is attempting to grant RBAC permissions not currently held" in refused.stderr
    # ... until she is given the bind verb on that ClusterRole.
    apply(rbac_cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                         "metadata": {"name": "may-bind-root", "namespace": ns},
                         "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                                    "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]})
    bind(rbac_cluster, ns, "erin-may-bind", "may-bind-root", "erin", kind="Role")
    erin.kubectl("create", "rolebinding", "frank-root", "--clusterrole=cluster-admin", "--user=frank", "-n", ns)
    # An edit user may not write roles at all.
    gina = User(rbac_cluster, "gina")
    bind(rbac_cluster, ns, "gina-edit", "edit", "gina")
    refused = gina.kubectl("create", "role", "x", "--verb=get", "--resource=pods", "-n", ns, check=False)
    assert (f'roles.rbac.authorization.k8s.io is forbidden: User "gina" cannot create resource "roles" in API group '
            f'"rbac.authorization.k8s.io" in the namespace "{ns}"') in refused.stderr


def test_dangling_binding_is_named_in_the_403(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-dangling")
    hank = User(rbac_cluster, "hank")
    bind(rbac_cluster, ns, "hank-missing", "no-such-role", "hank")
    denied = hank.kubectl("get", "pods", "-n", ns, check=False)
    assert (f'pods is forbidden: User "hank" cannot list resource "pods" in API group "" in the namespace "{ns}": '
            'RBAC: clusterrole.rbac.authorization.k8s.io "no-such-role" not found') in denied.stderr


def test_aggregated_rules_show_up_in_view(rbac_cluster):
    apply(rbac_cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                         "metadata": {"name": "widget-viewer",
                                      "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                         "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"],
                                    "verbs": ["get", "list", "watch"]}]})
    widget_rule = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}

    def aggregated(role: str) -> bool:
        return widget_rule in (rbac_cluster.kubectl_json("get", "clusterrole", role).get("rules") or [])

    eventually(lambda: aggregated("view") and aggregated("edit") and aggregated("admin"), timeout=60)
    rbac_cluster.kubectl("delete", "clusterrole", "widget-viewer")
    eventually(lambda: not aggregated("view"), timeout=60)


def review(cluster: Cluster, obj: dict, check: bool = True):
    # Client-side validation of a kind without PATCH needs /openapi/v2, which pyk8s does not serve.
    return cluster.kubectl("create", "--validate=false", "-f", "-", "-o", "json", input=json.dumps(obj), check=check)


def test_access_review_apis(rbac_cluster):
    ns = namespace(rbac_cluster, "rbac-reviews")
    bind(rbac_cluster, ns, "ivy-view", "view", "ivy")
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "ivy", "groups": ["system:authenticated"],
                    "resourceAttributes": {"namespace": ns, "verb": "list", "resource": "pods"}}}
    out = json.loads(review(rbac_cluster, sar).stdout)
    assert out["status"] == {"allowed": True, "reason": f'RBAC: allowed by RoleBinding "ivy-view/{ns}" of '
                                                        f'ClusterRole "view" to User "ivy"'}
    sar["spec"]["resourceAttributes"]["verb"] = "delete"
    out = json.loads(review(rbac_cluster, sar).stdout)
    assert out["status"] == {"allowed": False}
    lsar = {"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": ns},
            "spec": {"user": "ivy", "resourceAttributes": {"namespace": ns, "verb": "get", "resource": "pods"}}}
    out = json.loads(review(rbac_cluster, lsar).stdout)
    assert out["status"]["allowed"] is True
    bad = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    refused = review(rbac_cluster, bad, check=False)
    assert ('The SubjectAccessReview "" is invalid: spec.user: Invalid value: "": at least one of user or group must '
            "be specified") in refused.stderr
    # The reviews are created, never stored: reading them back is not allowed.
    status, _ = http(rbac_cluster, "/apis/authorization.k8s.io/v1/subjectaccessreviews", None)
    assert status == 403
    listed = rbac_cluster.kubectl("get", "--raw", "/apis/authorization.k8s.io/v1/subjectaccessreviews", check=False)
    assert "MethodNotAllowed" in listed.stderr or "not allow" in listed.stderr


def test_bootstrap_policy_is_reconciled_at_restart_without_clobbering(rbac_cluster):
    role = rbac_cluster.kubectl_json("get", "clusterrole", "system:basic-user")
    own_rule = {"apiGroups": ["example.com"], "resources": ["gadgets"], "verbs": ["get"]}
    role["rules"] = [own_rule]  # a user dropped the policy's rules and added their own
    role["metadata"].pop("resourceVersion")
    rbac_cluster.kubectl("replace", "-f", "-", input=json.dumps(role))
    kept = rbac_cluster.kubectl_json("get", "clusterrole", "system:monitoring")
    kept["rules"] = []
    kept["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
    kept["metadata"].pop("resourceVersion")
    rbac_cluster.kubectl("replace", "-f", "-", input=json.dumps(kept))
    rbac_cluster.kubectl("delete", "clusterrolebinding", "system:discovery")
    rbac_cluster.kubectl("delete", "clusterrolebinding", "system:kube-dns")
    rbac_cluster.kubectl("create", "clusterrolebinding", "system:kube-dns", "--clusterrole=view",
                         "--serviceaccount=kube-system:kube-dns")
    rbac_cluster.restart()
    restored = rbac_cluster.kubectl_json("get", "clusterrole", "system:basic-user")
    assert restored["rules"][0] == own_rule
    granted = {(r["apiGroups"][0], res) for r in restored["rules"] for res in r.get("resources", [])}
    assert ("authorization.k8s.io", "selfsubjectaccessreviews") in granted
    assert ("authentication.k8s.io", "selfsubjectreviews") in granted
    assert not rbac_cluster.kubectl_json("get", "clusterrole", "system:monitoring").get("rules")
    binding = rbac_cluster.kubectl_json("get", "clusterrolebinding", "system:discovery")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:authenticated"}]
    # A bootstrap binding pointed at another role is recreated with the policy's roleRef.
    binding = rbac_cluster.kubectl_json("get", "clusterrolebinding", "system:kube-dns")
    assert binding["roleRef"]["name"] == "system:kube-dns"
    assert binding["metadata"]["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def test_components_run_without_forbidden_errors(rbac_cluster):
    """The scheduler, the controller-manager (every controller under its one identity) and a simulated node
    hold what they need: a pod gets scheduled and runs, a ReplicaSet-less namespace is finalized, and no
    component logged a 403."""
    ns = namespace(rbac_cluster, "rbac-components")
    apply(rbac_cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    eventually(lambda: rbac_cluster.kubectl_json("get", "pod", "p", "-n", ns).get("status", {}).get("phase")
               == "Running", timeout=60)
    rbac_cluster.kubectl("delete", "namespace", ns, "--wait=false")
    eventually(lambda: rbac_cluster.kubectl("get", "namespace", ns, check=False).returncode != 0, timeout=90)
    for component in ("controller-manager", "scheduler", "simulated-nodes"):
        log = Path(rbac_cluster.data_dir / "logs" / f"{component}.log").read_text()
        assert "forbidden" not in log.lower(), (component, log[-3000:])
