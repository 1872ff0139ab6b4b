"""A kubelet's identity end to end: kubectl with a `system:node:n1` client certificate from the cluster's CA
reads only what pods bound to n1 reference, writes only its own Node, Lease, mirror pods and pod status
(the node authorizer plus NodeRestriction), and `kubectl auth can-i --as system:node:n1 --as-group
system:nodes` answers like upstream."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from pyk8s.server.kubeconfig import write_kubeconfig
from pyk8s.server.pki import PKI

from conftest import BARE, Cluster

NS = "apps"


class Node:
    """kubectl as the kubelet of one node: CN=system:node:<name>, O=system:nodes."""

    def __init__(self, cluster: Cluster, name: str):
        self.cluster = cluster
        self.kubeconfig = cluster.data_dir / "nodes" / f"{name}.yaml"
        cert, key = PKI.at(cluster.data_dir / "tls").issue_client_cert(f"system:node:{name}", ["system:nodes"])
        write_kubeconfig(self.kubeconfig, cluster.url, (cluster.data_dir / "tls" / "ca.crt").read_bytes(), cert, key,
                         user=name)
        # kubectl reads an object before patching it; a kubelet patches pod status without reading pods/status.
        (self.kubeconfig.parent / f"{name}.crt").write_bytes(cert)
        (self.kubeconfig.parent / f"{name}.key").write_bytes(key)
        self.tls = ssl.create_default_context(cafile=str(cluster.data_dir / "tls" / "ca.crt"))
        self.tls.load_cert_chain(self.kubeconfig.parent / f"{name}.crt", self.kubeconfig.parent / f"{name}.key")

    def patch(self, path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.cluster.url}{path}", data=json.dumps(body).encode(), method="PATCH",
                                         headers={"Content-Type": "application/merge-patch+json"})
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kubectl(self, *args: str, check: bool = True, input: str | None = None):
        return self.cluster.kubectl("--kubeconfig", str(self.kubeconfig), *args, check=check, input=input)

    def refused(self, *args: str, input: str | None = None) -> str:
        result = self.kubectl(*args, check=False, input=input)
        assert result.returncode != 0, result.stdout
        return result.stderr


def apply(cluster: Cluster, obj: dict) -> dict:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    meta = obj["metadata"]
    where = ["-n", meta["namespace"]] if meta.get("namespace") else []
    return cluster.kubectl_json("get", obj["kind"].lower(), meta["name"], *where)


def secret(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "stringData": {"k": "v"}}


def bound_pod(name: str, node: str, secret_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "s", "secret": {"secretName": secret_name}}]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("nodeauthz"), BARE)
    c.start()
    apply(c, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    # No controller-manager here to create it.
    apply(c, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": NS}})
    for name in ("for-n1", "for-n2", "nobodys"):
        apply(c, secret(name))
    apply(c, bound_pod("on-n1", "n1", "for-n1"))
    apply(c, bound_pod("on-n2", "n2", "for-n2"))
    yield c
    if c.process is not None:
        c.stop()


@pytest.fixture(scope="module")
def n1(cluster: Cluster) -> Node:
    return Node(cluster, "n1")


def test_a_node_reads_only_the_secrets_of_its_pods(cluster: Cluster, n1: Node) -> None:
    got = json.loads(n1.kubectl("get", "secret", "for-n1", "-n", NS, "-o", "json").stdout)
    assert got["data"]["k"] == "dg=="
    for name in ("for-n2", "nobodys"):
        assert (f'Error from server (Forbidden): secrets "{name}" is forbidden: User "system:node:n1" cannot get '
                f'resource "secrets" in API group "" in the namespace "{NS}": no relationship found between node '
                "'n1' and this object") in n1.refused("get", "secret", name, "-n", NS)
    assert "cannot list resource \"secrets\"" in n1.refused("get", "secrets", "-n", NS)


def test_a_node_writes_only_its_own_node(cluster: Cluster, n1: Node) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"example.com/rack": "7"}}}
    n1.kubectl("create", "-f", "-", input=json.dumps(node))
    n1.kubectl("label", "node", "n1", "kubernetes.io/os=linux")
    assert 'nodes "n1" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/worker' in \
        n1.refused("label", "node", "n1", "node-role.kubernetes.io/worker=")
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}
    assert 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"' in \
        n1.refused("create", "-f", "-", input=json.dumps(other))
    assert cluster.kubectl("get", "node", "n2", check=False).returncode != 0
    cluster.kubectl("create", "-f", "-", input=json.dumps(other))
    # Nodes read every Node (RBAC's system:pyk8s:node-network, for host-gw routes; docs/security.md) but
    # change only their own.
    assert n1.kubectl("get", "node", "n2").returncode == 0
    assert 'node "n1" is not allowed to modify node "n2"' in n1.refused("label", "node", "n2", "a=b")
    assert json.loads(n1.kubectl("get", "node", "n1", "-o", "json").stdout)["metadata"]["labels"] == {
        "example.com/rack": "7", "kubernetes.io/os": "linux"}
    assert cluster.kubectl_json("get", "node", "n2")["metadata"].get("labels", {}) == {}


def test_a_node_creates_only_mirror_pods(cluster: Cluster, n1: Node) -> None:
    plain = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky", "namespace": NS},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}
    assert ('pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can '
            "only create mirror pods") in n1.refused("create", "-f", "-", input=json.dumps(plain))
    assert cluster.kubectl("get", "pod", "sneaky", "-n", NS, check=False).returncode != 0
    node_uid = cluster.kubectl_json("get", "node", "n1")["metadata"]["uid"]
    mirror = {**plain, "metadata": {"name": "static-n1", "namespace": NS,
                                    "annotations": {"kubernetes.io/config.mirror": "hash"},
                                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1",
                                                         "uid": node_uid, "controller": True}]}}
    n1.kubectl("create", "-f", "-", input=json.dumps(mirror))
    assert cluster.kubectl_json("get", "pod", "static-n1", "-n", NS)["spec"]["nodeName"] == "n1"


def test_a_node_updates_the_status_of_its_pods_only(cluster: Cluster, n1: Node) -> None:
    status = {"status": {"phase": "Running"}}
    code, _ = n1.patch(f"/api/v1/namespaces/{NS}/pods/on-n1/status", status)
    assert code == 200
    assert cluster.kubectl_json("get", "pod", "on-n1", "-n", NS)["status"]["phase"] == "Running"
    code, refusal = n1.patch(f"/api/v1/namespaces/{NS}/pods/on-n2/status", status)
    assert code == 403 and refusal["message"] == (
        'pods "on-n2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself')
    code, refusal = n1.patch(f"/api/v1/namespaces/{NS}/pods/on-n1", {"metadata": {"labels": {"a": "b"}}})
    assert code == 403 and refusal["message"] == (
        'pods "on-n1" is forbidden: User "system:node:n1" cannot patch resource "pods" in API group "" in the '
        f'namespace "{NS}"')
    assert cluster.kubectl_json("get", "pod", "on-n2", "-n", NS).get("status", {}).get("phase") != "Running"


def test_a_node_gets_tokens_only_for_its_pods(cluster: Cluster, n1: Node) -> None:
    mine = cluster.kubectl_json("get", "pod", "on-n1", "-n", NS)["metadata"]["uid"]
    theirs = cluster.kubectl_json("get", "pod", "on-n2", "-n", NS)["metadata"]["uid"]
    token = n1.kubectl("create", "token", "default", "-n", NS, "--bound-object-kind", "Pod",
                       "--bound-object-name", "on-n1", "--bound-object-uid", mine).stdout.strip()
    assert token.count(".") == 2
    assert "node requested token not bound to a pod" in n1.refused("create", "token", "default", "-n", NS)
    # The pod on n2 runs as the same service account, so authorization passes; NodeRestriction refuses.
    assert "node requested token bound to a pod scheduled on a different node" in n1.refused(
        "create", "token", "default", "-n", NS, "--bound-object-kind", "Pod", "--bound-object-name", "on-n2",
        "--bound-object-uid", theirs)


def test_a_node_holds_only_its_own_lease(cluster: Cluster, n1: Node) -> None:
    def lease(name: str) -> str:
        return json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": name, "namespace": "kube-node-lease"},
                           "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}})

    n1.kubectl("create", "-f", "-", input=lease("n1"))
    assert 'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the ' \
           "requesting node" in n1.refused("create", "-f", "-", input=lease("n2"))


@pytest.mark.parametrize(("args", "expected"), [
    (("get", "secret/for-n1", "-n", NS), "yes"),
    (("get", "secret/for-n2", "-n", NS), "no"),
    (("get", "pod/on-n1", "-n", NS), "yes"),
    (("get", "pod/on-n2", "-n", NS), "no"),
    (("list", "pods"), "no"),  # only with a spec.nodeName field selector, which can-i does not send
    (("create", "nodes"), "yes"),
    (("get", "node/n1"), "yes"),
    (("get", "node/n2"), "yes"),  # system:pyk8s:node-network (host-gw routes need every node's pod CIDR)
    (("patch", "node/n2"), "yes"),  # authorized; NodeRestriction refuses it at admission
    (("delete", "node/n1"), "no"),
    (("list", "services"), "yes"),
    (("create", "events", "-n", NS), "yes"),
    (("update", "leases/n1", "-n", "kube-node-lease"), "yes"),
    (("update", "leases/n2", "-n", "kube-node-lease"), "no"),
    (("create", "deployments", "-n", NS), "no"),
    (("create", "tokenreviews.authentication.k8s.io"), "yes"),  # its own server's authentication
    (("create", "subjectaccessreviews.authorization.k8s.io"), "yes"),
    (("create", "certificatesigningrequests.certificates.k8s.io"), "yes"),
    # The ServiceAccount admission plugin gave its pod the projected token volume, which names the CA ConfigMap.
    (("get", "configmap/kube-root-ca.crt", "-n", NS), "yes"),
    (("get", "configmap/kube-root-ca.crt", "-n", "default"), "no"),
    (("create", "serviceaccounts/default", "--subresource=token", "-n", NS), "yes"),
])
def test_can_i_as_a_node(cluster: Cluster, args: tuple[str, ...], expected: str) -> None:
    result = cluster.kubectl("auth", "can-i", *args, "--as", "system:node:n1", "--as-group", "system:nodes",
                             check=False)
    # kubectl prints a refusal's reason after the answer, as it does against upstream's node authorizer.
    answer = result.stdout.strip().split(" - ", 1)[0]
    assert answer == expected, result.stdout + result.stderr
    assert result.returncode == (0 if expected == "yes" else 1)
    if args[1] == "secret/for-n2":
        assert result.stdout.strip() == "no - no relationship found between node 'n1' and this object"


def test_subject_access_review_reads_the_field_selector(cluster: Cluster) -> None:
    def allowed(field_selector: dict | None) -> bool:
        attributes = {"verb": "list", "resource": "pods"}
        if field_selector is not None:
            attributes["fieldSelector"] = field_selector
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": "system:node:n1", "groups": ["system:nodes"], "resourceAttributes": attributes}}
        answer = cluster.kubectl("create", "--validate=false", "-o", "json", "-f", "-", input=json.dumps(review))
        return json.loads(answer.stdout)["status"]["allowed"]

    assert allowed({"rawSelector": "spec.nodeName=n1"})
    assert allowed({"requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]})
    assert not allowed({"rawSelector": "spec.nodeName=n2"})
    assert not allowed(None)


def test_rules_review_of_a_node_says_it_is_incomplete(cluster: Cluster) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": NS}}
    answer = cluster.kubectl("create", "--validate=false", "-o", "json", "-f", "-", "--as", "system:node:n1",
                             "--as-group", "system:nodes", input=json.dumps(review))
    status = json.loads(answer.stdout)["status"]
    assert status["incomplete"] is True
    assert status["evaluationError"] == "node authorizer does not support user rule resolution"
    listed = cluster.kubectl("auth", "can-i", "--list", "-n", NS, "--as", "system:node:n1", "--as-group",
                             "system:nodes")
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed.stdout
