"""The node authorizer: its graph (pods and volumes to nodes, followed from the watch cache) and its
decisions, alone and in the `Node,RBAC` chain, worded as upstream."""

from __future__ import annotations

import orjson
import pytest

from pyk8s.api.kinds import REGISTRY
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import bootstrap_policy as policy
from pyk8s.apiserver.authz.attributes import Attributes
from pyk8s.apiserver.authz.chain import AuthorizerChain, parse_modes
from pyk8s.apiserver.authz.node_graph import pod_references
from pyk8s.apiserver.authz.reconcile import reconciled_binding
from pyk8s.apiserver.negotiation import parse_bool
from pyk8s.apiserver.requestinfo import parse_request_info
from pyk8s.apiserver.watchcache import HISTORY_LIMIT, WatchCache
from pyk8s.store import Event, KeyValue

RBAC = "rbac.authorization.k8s.io"
N1 = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
N2 = UserInfo("system:node:n2", groups=("system:nodes", "system:authenticated"))


class Cluster:
    """Pods, volumes and RBAC objects in a watch cache fed by hand-made store events."""

    def __init__(self, modes: tuple[str, ...] = ("Node", "RBAC")) -> None:
        kinds = [REGISTRY.by_kind("", "v1", "Pod"), REGISTRY.by_kind("", "v1", "PersistentVolume")]
        kinds += [REGISTRY.by_kind(RBAC, "v1", k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
        self.cache = WatchCache(store=None, kinds=kinds)  # type: ignore[arg-type]
        self.chain = AuthorizerChain(self.cache, modes)
        self.rv = 0

    def put(self, obj: dict, event: str = "ADDED") -> dict:
        kind = REGISTRY.by_kind(*obj["apiVersion"].rpartition("/")[::2], obj["kind"]) if "/" in obj["apiVersion"] \
            else REGISTRY.by_kind("", "v1", obj["kind"])
        meta = obj["metadata"]
        self.rv += 1
        kv = KeyValue(kind.key(meta.get("namespace", ""), meta["name"]), orjson.dumps(obj), self.rv, self.rv)
        self.cache.cache_for(kind).apply(Event(event, kv, None))
        return obj

    def delete(self, obj: dict) -> None:
        self.put(obj, "DELETED")

    def decide(self, user: UserInfo, verb: str, resource: str, namespace: str = "", name: str = "",
               subresource: str = "", group: str = "", field_selector: str = ""):
        return self.chain.authorize(Attributes(user, verb, namespace, group, resource, subresource, name,
                                               field_selector=field_selector))

    def allowed(self, *args, **kwargs) -> bool:
        return self.decide(*args, **kwargs).allowed


def pod(name: str, node: str = "", namespace: str = "default", uid: str = "", **spec) -> dict:
    meta = {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"}
    if spec.pop("mirror", False):
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    body = {"containers": [{"name": "c", "image": "i"}], **spec}
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def volume(name: str, claim: tuple[str, str] | None = None, **spec) -> dict:
    body = dict(spec)
    if claim:
        body["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": body}


def everything_a_pod_can_reference() -> dict:
    return {
        "serviceAccountName": "runner",
        "imagePullSecrets": [{"name": "pull"}],
        "initContainers": [{"name": "i", "image": "i", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}]}],
        "containers": [{"name": "c", "image": "i",
                        "envFrom": [{"configMapRef": {"name": "env-cm"}}, {"secretRef": {"name": "envfrom-secret"}}],
                        "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "k"}}}]}],
        "volumes": [
            {"name": "s", "secret": {"secretName": "vol-secret"}},
            {"name": "c", "configMap": {"name": "vol-cm"}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                    {"configMap": {"name": "proj-cm"}}]}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
        ],
    }


def test_pod_references_cover_upstream_cases():
    refs = pod_references(pod("web", "n1", **everything_a_pod_can_reference()))
    assert refs == {
        ("serviceaccount", "default", "runner"),
        *(("secret", "default", n) for n in ("pull", "env-secret", "envfrom-secret", "vol-secret", "proj-secret",
                                             "csi-secret")),
        *(("configmap", "default", n) for n in ("env-cm", "key-cm", "vol-cm", "proj-cm")),
        ("pvc", "default", "data"), ("pvc", "default", "web-scratch"),
    }


def test_a_node_reads_what_its_pods_reference_and_nothing_else():
    c = Cluster()
    c.put(pod("web", "n1", **everything_a_pod_can_reference()))
    for name in ("pull", "env-secret", "vol-secret", "csi-secret"):
        assert c.allowed(N1, "get", "secrets", "default", name), name
        assert not c.allowed(N2, "get", "secrets", "default", name), name
    assert c.allowed(N1, "get", "configmaps", "default", "vol-cm")
    assert c.allowed(N1, "watch", "configmaps", "default", "vol-cm")  # kubelet watches single objects
    assert c.allowed(N1, "get", "persistentvolumeclaims", "default", "web-scratch")
    assert not c.allowed(N1, "get", "secrets", "other", "pull")  # another namespace's secret of the same name
    refused = c.decide(N1, "get", "secrets", "default", "unrelated")
    assert not refused.allowed and refused.reason == "no relationship found between node 'n1' and this object"
    assert c.decide(N1, "list", "secrets", "default").reason == "No Object name found"
    assert c.decide(N1, "update", "secrets", "default", "pull").reason == "can only read resources of this type"
    assert c.decide(N1, "get", "secrets", "", "pull").reason == "can only read namespaced object of this type"


def test_the_graph_follows_binding_deletion_and_node_changes():
    c = Cluster()
    pending = c.put(pod("p", **{"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}))
    assert not c.allowed(N1, "get", "secrets", "default", "s")  # an unbound pod links nothing
    bound = dict(pending, spec={**pending["spec"], "nodeName": "n1"})
    c.put(bound, "MODIFIED")
    assert c.allowed(N1, "get", "secrets", "default", "s")
    c.put(pod("q", "n1", **{"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}))
    c.delete(bound)
    assert c.allowed(N1, "get", "secrets", "default", "s")  # q still uses it
    c.delete(pod("q", "n1"))
    assert not c.allowed(N1, "get", "secrets", "default", "s")
    # Same name, new pod (new uid) on another node: the old node loses access.
    c.put(pod("r", "n1", uid="a", serviceAccountName="sa"))
    c.put(pod("r", "n2", uid="b", serviceAccountName="sa"), "MODIFIED")
    assert not c.allowed(N1, "create", "serviceaccounts", "default", "sa", "token")
    assert c.allowed(N2, "create", "serviceaccounts", "default", "sa", "token")


def test_an_added_ephemeral_container_links_its_secrets():
    c = Cluster()
    running = c.put(pod("debugged", "n1"))
    assert not c.allowed(N1, "get", "secrets", "default", "debug-token")
    debug = {"name": "dbg", "image": "busybox", "envFrom": [{"secretRef": {"name": "debug-token"}}]}
    c.put({**running, "spec": {**running["spec"], "ephemeralContainers": [debug]}}, "MODIFIED")
    assert c.allowed(N1, "get", "secrets", "default", "debug-token")


def test_volumes_link_claims_and_their_secrets():
    c = Cluster()
    c.put(volume("pv1", ("default", "data"), csi={"driver": "d", "nodeStageSecretRef": {"name": "stage"}}))
    assert not c.allowed(N1, "get", "persistentvolumes", "", "pv1")
    c.put(pod("db", "n1", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    assert c.allowed(N1, "get", "persistentvolumeclaims", "default", "data")
    assert c.allowed(N1, "get", "persistentvolumes", "", "pv1")
    assert c.allowed(N1, "get", "secrets", "default", "stage")  # namespace from the claim
    assert c.allowed(N1, "patch", "persistentvolumeclaims", "default", "data", "status")
    assert not c.allowed(N2, "get", "persistentvolumes", "", "pv1")
    assert c.decide(N1, "list", "persistentvolumes").reason == "can only get individual resources of this type"
    c.put(volume("pv1"), "MODIFIED")  # released
    assert not c.allowed(N1, "get", "persistentvolumes", "", "pv1")
    assert not c.allowed(N1, "get", "secrets", "default", "stage")


def test_mirror_pods_link_only_their_node():
    c = Cluster()
    c.put(pod("static", "n1", mirror=True, volumes=[{"name": "s", "secret": {"secretName": "s"}}]))
    assert c.allowed(N1, "get", "pods", "default", "static")
    assert not c.allowed(N1, "get", "secrets", "default", "s")


def test_tokens_only_for_service_accounts_of_the_nodes_pods():
    c = Cluster()
    c.put(pod("app", "n1", serviceAccountName="builder"))
    assert c.allowed(N1, "create", "serviceaccounts", "default", "builder", "token")
    assert not c.allowed(N2, "create", "serviceaccounts", "default", "builder", "token")
    assert c.decide(N1, "get", "serviceaccounts", "default", "builder").reason == \
        "can only create tokens for individual service accounts"
    assert c.decide(N1, "create", "serviceaccounts", "default", "builder").reason == \
        "can only create token subresource of serviceaccount"


def test_own_node_lease_and_pods():
    c = Cluster()
    c.put(pod("mine", "n1"))
    c.put(pod("theirs", "n2"))
    assert c.allowed(N1, "get", "nodes", name="n1")
    assert c.allowed(N1, "create", "nodes")
    assert c.allowed(N1, "patch", "nodes", name="n1", subresource="status")
    assert c.decide(N1, "get", "nodes", name="n2").reason == "node 'n1' cannot read 'n2', only its own Node object"
    assert c.decide(N1, "list", "nodes").reason == "node 'n1' cannot read all nodes, only its own Node object"
    assert not c.allowed(N1, "delete", "nodes", name="n1")
    lease = ("coordination.k8s.io",)
    assert c.allowed(N1, "update", "leases", "kube-node-lease", "n1", group=lease[0])
    assert c.allowed(N1, "create", "leases", "kube-node-lease", group=lease[0])
    assert c.decide(N1, "update", "leases", "kube-node-lease", "n2", group=lease[0]).reason == \
        "can only access node lease with the same name as the requesting node"
    assert c.decide(N1, "get", "leases", "kube-system", "n1", group=lease[0]).reason == \
        'can only access leases in the "kube-node-lease" system namespace'
    assert c.allowed(N1, "get", "pods", "default", "mine")
    assert not c.allowed(N1, "get", "pods", "default", "theirs")
    assert c.allowed(N1, "watch", "pods", field_selector="spec.nodeName=n1")
    assert c.allowed(N1, "list", "pods", field_selector="spec.nodeName==n1,status.phase!=Failed")
    assert c.decide(N1, "list", "pods", field_selector="spec.nodeName=n2").reason == \
        "can only list/watch pods with spec.nodeName field selector"
    assert not c.allowed(N1, "list", "pods")
    assert c.allowed(N1, "patch", "pods", "default", "theirs", "status")  # NodeRestriction narrows it
    assert c.allowed(N1, "create", "pods", "default", "eviction-target", "eviction")
    assert not c.allowed(N1, "update", "pods", "default", "mine")


def test_static_node_rules_and_rbac_behind():
    c = Cluster()
    assert c.allowed(N1, "list", "services")
    assert c.allowed(N1, "create", "events", "default")
    assert c.allowed(N1, "create", "tokenreviews", group="authentication.k8s.io")
    assert c.allowed(N1, "create", "subjectaccessreviews", group="authorization.k8s.io")
    assert c.allowed(N1, "create", "certificatesigningrequests", group="certificates.k8s.io")
    assert not c.allowed(N1, "create", "deployments", "default", group="apps")
    # RBAC still decides what the node authorizer does not allow.
    for obj in (policy.cluster_role("secret-reader", [policy.rule(("get",), ("",), ("secrets",))]),
                policy.cluster_role_binding("n1-secrets", [policy.user("system:node:n1")], "secret-reader")):
        c.put(obj)
    assert c.allowed(N1, "get", "secrets", "default", "anything")
    assert not c.allowed(N2, "get", "secrets", "default", "anything")


def test_only_node_users_are_judged_and_malformed_ones_refused():
    c = Cluster()
    c.put(pod("web", "n1", volumes=[{"name": "s", "secret": {"secretName": "s"}}]))
    impostor = UserInfo("system:node:n1", groups=("system:authenticated",))  # not in system:nodes
    assert not c.allowed(impostor, "get", "secrets", "default", "s")
    nameless = UserInfo("system:node:", groups=("system:nodes",))
    assert c.decide(nameless, "get", "secrets", "default", "s").reason == 'unknown node for user "system:node:"'
    admin = UserInfo("root", groups=("system:masters",))
    assert c.allowed(admin, "delete", "nodes", name="n1")


def test_chain_modes():
    assert parse_modes("Node,RBAC") == ("Node", "RBAC")
    with pytest.raises(ValueError, match="not a valid mode"):
        parse_modes("Node,ABAC")
    with pytest.raises(ValueError, match="more than once"):
        parse_modes("RBAC,RBAC")
    everyone = Cluster(("AlwaysAllow",))
    assert everyone.allowed(UserInfo("anyone"), "delete", "nodes", name="n1")
    nobody = Cluster(("AlwaysDeny",))
    assert nobody.decide(N1, "get", "nodes", name="n1").reason == "Everything is forbidden."
    rbac_only = Cluster(("RBAC",))
    assert not rbac_only.allowed(N1, "get", "nodes", name="n1")


def test_rules_review_of_a_node_is_incomplete():
    c = Cluster()
    _, problems, incomplete = c.chain.rules_for(N1, "default")
    assert incomplete and problems == ["node authorizer does not support user rule resolution"]
    assert c.chain.rules_for(UserInfo("alice"), "default")[2] is False


def test_graph_rebuilds_when_history_outran_it():
    c = Cluster()
    c.put(pod("first", "n1", volumes=[{"name": "s", "secret": {"secretName": "old"}}]))
    assert c.allowed(N1, "get", "secrets", "default", "old")
    for i in range(HISTORY_LIMIT + 5):  # more events than the cache keeps: the graph must read the objects again
        c.put(pod(f"p{i}", "n2"))
    c.delete(pod("first", "n1"))
    c.put(pod("last", "n1", volumes=[{"name": "s", "secret": {"secretName": "new"}}]))
    assert not c.allowed(N1, "get", "secrets", "default", "old")
    assert c.allowed(N1, "get", "secrets", "default", "new")


def test_reconcile_removes_the_retired_system_nodes_subject():
    expected = next(b for b in policy.all_cluster_role_bindings() if b["metadata"]["name"] == "system:node")
    assert "subjects" not in expected
    stored = {**expected, "subjects": [policy.group("system:nodes"), policy.user("kept")]}
    assert reconciled_binding(stored, expected)["subjects"] == [policy.user("kept")]
    only_retired = {**expected, "subjects": [policy.group("system:nodes")]}
    assert "subjects" not in reconciled_binding(only_retired, expected)


def test_a_list_pinned_by_metadata_name_is_authorized_for_that_name():
    info = parse_request_info("GET", "/api/v1/nodes", {"fieldSelector": "metadata.name=n1", "watch": "true"},
                              parse_bool)
    attrs = Attributes.from_request(N1, info)
    assert (attrs.verb, attrs.name) == ("watch", "n1")
    assert Cluster().chain.authorize(attrs).allowed
    pods = Attributes.from_request(N1, parse_request_info("GET", "/api/v1/pods", {
        "fieldSelector": "spec.nodeName=n1"}, parse_bool))
    assert pods.name == "" and Cluster().chain.authorize(pods).allowed
    bad = Attributes.from_request(N1, parse_request_info("GET", "/api/v1/nodes", {"fieldSelector": "metadata.name"},
                                                         parse_bool))
    assert bad.name == "" and not Cluster().chain.authorize(bad).allowed
