"""NodeRestriction: a kubelet writes only its own Node, Lease, mirror pods, pod status, evictions, tokens
and certificate requests, refused with upstream's messages."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.apiserver.admission import CREATE, DELETE, UPDATE, Attributes
from pyk8s.apiserver.admission.node_restriction import NodeRestriction, forbidden_labels
from pyk8s.apiserver.authn import UserInfo

from test_admission_chain import _refusal, attrs, cluster, kind_of, pod

N1 = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
NODE_UID = "node-uid-1"


def node(name: str = "n1", labels: dict | None = None, taints: list | None = None) -> dict:
    spec = {"taints": taints} if taints else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": NODE_UID, "labels": labels or {}},
            "spec": spec}


def bound(name: str, node_name: str, **spec) -> dict:
    obj = pod(name, **spec)
    obj["metadata"]["uid"] = f"uid-{name}"
    obj["spec"]["nodeName"] = node_name
    return obj


def mirror(name: str = "static", node_name: str = "n1", owner: dict | None = None, **spec) -> dict:
    obj = bound(name, node_name, **spec)
    obj["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    obj["metadata"]["ownerReferences"] = [owner if owner is not None else {
        "apiVersion": "v1", "kind": "Node", "name": node_name, "uid": NODE_UID, "controller": True}]
    return obj


def plugin(*objects: dict) -> NodeRestriction:
    return NodeRestriction(cluster(node(), *objects))


def as_node(a: Attributes, user: UserInfo = N1) -> Attributes:
    a.user = user
    return a


async def refused(p: NodeRestriction, a: Attributes) -> str:
    assert p.handles(a)
    return (await _refusal(p.admit(a))).status()["message"]


async def test_only_nodes_are_restricted():
    p = plugin()
    assert not p.handles(attrs(pod("x"), user=UserInfo("alice", groups=("system:authenticated",))))
    assert not p.handles(attrs(pod("x")))  # the apiserver's own writes
    impostor = UserInfo("system:node:n1", groups=("system:authenticated",))
    assert not p.handles(attrs(pod("x"), user=impostor))
    nameless = UserInfo("system:node:", groups=("system:nodes",))
    assert await refused(p, attrs(pod("x"), user=nameless)) == \
        'pods "x" is forbidden: could not determine node from user "system:node:"'


async def test_mirror_pods_only():
    p = plugin()
    await p.admit(as_node(attrs(mirror())))
    assert await refused(p, as_node(attrs(bound("plain", "n1")))) == (
        'pods "plain" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only '
        "create mirror pods")
    assert await refused(p, as_node(attrs(mirror(node_name="n2")))) == \
        'pods "static" is forbidden: node "n1" can only create pods with spec.nodeName set to itself'
    other_owner = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "stale", "controller": True}
    assert await refused(p, as_node(attrs(mirror(owner=other_owner)))) == \
        'pods "static" is forbidden: node n1 UID mismatch: expected stale got node-uid-1'
    not_controller = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": NODE_UID}
    assert "with a controller owner reference set to itself" in await refused(
        p, as_node(attrs(mirror(owner=not_controller))))
    assert await refused(p, as_node(attrs(mirror(serviceAccountName="default")))) == \
        'pods "static" is forbidden: node "n1" can not create pods that reference a service account'
    with_secret = mirror(volumes=[{"name": "v", "secret": {"secretName": "s"}}])
    assert await refused(p, as_node(attrs(with_secret))) == \
        'pods "static" is forbidden: node "n1" can not create pods that reference secrets'
    with_claim = mirror(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}])
    assert "can not create pods that reference persistentvolumeclaims" in await refused(p, as_node(attrs(with_claim)))


async def test_pod_delete_status_and_eviction_only_for_own_pods():
    mine, theirs = bound("mine", "n1"), bound("theirs", "n2")
    p = plugin(mine, theirs)
    await p.admit(as_node(attrs(mine, DELETE, old=mine)))
    assert await refused(p, as_node(Attributes(kind_of(theirs), DELETE, "ns", "theirs", None, theirs, user=N1))) == \
        'pods "theirs" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'
    new_status = {**mine, "status": {"phase": "Running"}}
    await p.admit(as_node(attrs(new_status, UPDATE, old=mine, subresource="status")))
    assert await refused(p, as_node(attrs({**theirs}, UPDATE, old=theirs, subresource="status"))) == (
        'pods "theirs" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself')
    relabelled = {**mine, "metadata": {**mine["metadata"], "labels": {"x": "y"}}}
    assert "cannot update labels through pod status" in await refused(
        p, as_node(attrs(relabelled, UPDATE, old=mine, subresource="status")))
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "theirs", "namespace": "ns"}}
    await p.admit(Attributes(kind_of(mine), CREATE, "ns", "mine", eviction, None, "eviction", user=N1))
    assert await refused(p, Attributes(kind_of(mine), CREATE, "ns", "theirs", eviction, None, "eviction",
                                       user=N1)) == \
        'pods "theirs" is forbidden: node n1 can only evict pods with spec.nodeName set to itself'
    assert "only 'status' and 'eviction' are allowed" in await refused(
        p, as_node(attrs(mine, UPDATE, old=mine, subresource="ephemeralcontainers")))


@pytest.mark.parametrize(("labels", "allowed"), [
    ({"kubernetes.io/hostname": "n1", "topology.kubernetes.io/zone": "z"}, True),
    ({"node.kubernetes.io/instance-type": "big", "team.kubelet.kubernetes.io/x": "y"}, True),
    ({"example.com/rack": "7"}, True),
    ({"node-role.kubernetes.io/control-plane": ""}, False),
    ({"node-restriction.kubernetes.io/secure": "true"}, False),
    ({"x.k8s.io/thing": "1"}, False),
])
async def test_node_labels_on_register(labels, allowed):
    p = plugin()
    a = as_node(attrs(node("n1", labels)))
    if allowed:
        await p.admit(a)
    else:
        assert await refused(p, a) == (f'nodes "n1" is forbidden: node "n1" is not allowed to set the following '
                                       f"labels: {', '.join(sorted(labels))}")


async def test_own_node_only_and_no_taint_changes():
    p = plugin()
    assert await refused(p, as_node(attrs(node("n2")))) == \
        'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    old = node("n1", {"node-role.kubernetes.io/worker": ""}, [{"key": "k", "effect": "NoSchedule"}])
    status_only = {**old, "status": {"capacity": {"cpu": "4"}}}
    await p.admit(as_node(attrs(status_only, UPDATE, old=old)))
    untainted = {**old, "spec": {}}
    assert await refused(p, as_node(attrs(untainted, UPDATE, old=old))) == \
        'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'
    unlabelled = node("n1", {}, [{"key": "k", "effect": "NoSchedule"}])
    assert await refused(p, as_node(attrs(unlabelled, UPDATE, old=old))) == \
        'nodes "n1" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/worker'
    assert forbidden_labels({"a/b": "1"}, {"a/b": "2"}) == []


async def test_leases_tokens_and_certificate_requests():
    mine, theirs = bound("mine", "n1"), bound("theirs", "n2")
    p = plugin(mine, theirs)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "n1", "namespace": "kube-node-lease"}}
    await p.admit(as_node(attrs(lease)))
    other = {**lease, "metadata": {"name": "n2", "namespace": "kube-node-lease"}}
    assert await refused(p, as_node(attrs(other))) == \
        'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the ' \
        "requesting node"
    elsewhere = {**lease, "metadata": {"name": "n1", "namespace": "kube-system"}}
    assert 'can only access leases in the "kube-node-lease" system namespace' in await refused(
        p, as_node(attrs(elsewhere)))

    def token(ref: dict | None) -> Attributes:
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "ns"}}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"boundObjectRef": ref}}
        return Attributes(kind_of(account), CREATE, "ns", "default", body, None, "token", user=N1)

    await p.admit(token({"apiVersion": "v1", "kind": "Pod", "name": "mine", "uid": "uid-mine"}))
    assert await refused(p, token(None)) == \
        'serviceaccounts "default" is forbidden: node requested token not bound to a pod'
    assert "node requested token with a pod binding without a uid" in await refused(
        p, token({"apiVersion": "v1", "kind": "Pod", "name": "mine"}))
    assert "node requested token bound to a pod scheduled on a different node" in await refused(
        p, token({"apiVersion": "v1", "kind": "Pod", "name": "theirs", "uid": "uid-theirs"}))

    def csr(cn: str) -> dict:
        key = ec.generate_private_key(ec.SECP256R1())
        request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
        pem = request.public_bytes(serialization.Encoding.PEM)
        return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": "c"}, "spec": {"request": base64.b64encode(pem).decode(),
                                                    "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                                                    "usages": ["client auth"]}}

    await p.admit(as_node(attrs(csr("system:node:n1"))))
    assert await refused(p, as_node(attrs(csr("system:node:n2")))) == \
        'certificatesigningrequests.certificates.k8s.io "c" is forbidden: can only create a node CSR with ' \
        "CN=system:node:n1"
