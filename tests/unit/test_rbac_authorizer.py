"""The RBAC authorizer over a watch cache: bindings, subjects, reasons, the decision cache, and the
bootstrap policy's user-facing roles (admin/edit/view, aggregated as the controller aggregates them)."""

from __future__ import annotations

import copy

import orjson
import pytest

from pyk8s.api.kinds import REGISTRY
from pyk8s.apiserver.authn import ANONYMOUS_USER, UserInfo
from pyk8s.apiserver.authz import Attributes
from pyk8s.apiserver.authz import bootstrap_policy as policy
from pyk8s.apiserver.authz.escalation import escalation_message, only_gc_fields_changed
from pyk8s.apiserver.authz.rbac import RBACAuthorizer
from pyk8s.apiserver.authz.reconcile import reconciled_binding, reconciled_role
from pyk8s.apiserver.requestinfo import parse_request_info
from pyk8s.apiserver.watchcache import WatchCache
from pyk8s.controllers.clusterroleaggregation import aggregated_rules
from pyk8s.store import Event, KeyValue

RBAC = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))


class Cluster:
    """The four RBAC caches of a watch cache, fed by hand-made store events."""

    def __init__(self) -> None:
        kinds = [REGISTRY.by_kind(RBAC, "v1", k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
        self.cache = WatchCache(store=None, kinds=kinds)  # type: ignore[arg-type]
        self.authorizer = RBACAuthorizer(self.cache)
        self.rv = 0

    def put(self, obj: dict, event: str = "ADDED") -> None:
        kind = REGISTRY.by_kind(RBAC, "v1", obj["kind"])
        meta = obj["metadata"]
        key = kind.key(meta.get("namespace", ""), meta["name"])
        self.rv += 1
        kv = KeyValue(key, orjson.dumps(obj), self.rv, self.rv)
        self.cache.cache_for(kind).apply(Event(event, kv, None))

    def delete(self, obj: dict) -> None:
        self.put(obj, "DELETED")

    def allowed(self, user: UserInfo, verb: str, resource: str, namespace: str = "", group: str = "",
                subresource: str = "", name: str = "") -> bool:
        attrs = Attributes(user, verb, namespace, group, resource, subresource, name)
        return self.authorizer.authorize(attrs).allowed

    def path_allowed(self, user: UserInfo, path: str, verb: str = "get") -> bool:
        return self.authorizer.authorize(Attributes(user, verb, path=path, is_resource_request=False)).allowed


def cluster_role(name, rules):
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def role(namespace, name, rules):
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name, "namespace": namespace},
            "rules": rules}


def binding(name, role_kind, role_name, subjects, namespace=""):
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name}, "subjects": subjects}


READ_PODS = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]


def test_nothing_is_allowed_without_a_binding_except_to_system_masters():
    c = Cluster()
    assert not c.allowed(ALICE, "get", "pods", "default")
    admin = UserInfo("system:admin", groups=("system:masters", "system:authenticated"))
    assert c.allowed(admin, "delete", "nodes")
    assert c.authorizer.authorize(Attributes(admin, "get", "d", "", "pods")).reason == ""


def test_role_binding_grants_only_in_its_namespace_and_names_the_binding():
    c = Cluster()
    c.put(role("team", "reader", READ_PODS))
    c.put(binding("alice-reads", "Role", "reader", [{"kind": "User", "name": "alice"}], namespace="team"))
    assert c.allowed(ALICE, "list", "pods", "team")
    assert not c.allowed(ALICE, "list", "pods", "other")
    assert not c.allowed(ALICE, "list", "pods")  # cluster scope
    assert not c.allowed(ALICE, "delete", "pods", "team")
    decision = c.authorizer.authorize(Attributes(ALICE, "get", "team", "", "pods"))
    assert decision.reason == 'RBAC: allowed by RoleBinding "alice-reads/team" of Role "reader" to User "alice"'


def test_rolebinding_to_a_clusterrole_is_namespaced_and_clusterrolebinding_is_everywhere():
    c = Cluster()
    c.put(cluster_role("pod-reader", READ_PODS))
    c.put(binding("b", "ClusterRole", "pod-reader", [{"kind": "Group", "name": "devs"}], namespace="team"))
    assert c.allowed(ALICE, "get", "pods", "team")
    assert not c.allowed(ALICE, "get", "pods", "other")
    c.put(binding("everywhere", "ClusterRole", "pod-reader", [{"kind": "Group", "name": "devs"}]))
    assert c.allowed(ALICE, "get", "pods", "other")
    assert c.allowed(ALICE, "list", "pods")
    assert c.authorizer.authorize(Attributes(ALICE, "get", "x", "", "pods")).reason == (
        'RBAC: allowed by ClusterRoleBinding "everywhere" of ClusterRole "pod-reader" to Group "devs"')


def test_service_account_subjects():
    c = Cluster()
    c.put(cluster_role("pod-reader", READ_PODS))
    robot = UserInfo("system:serviceaccount:team:robot", groups=("system:serviceaccounts",
                                                                   "system:serviceaccounts:team",
                                                                   "system:authenticated"))
    # Without a namespace, a RoleBinding's ServiceAccount subject is in the binding's namespace.
    c.put(binding("b1", "ClusterRole", "pod-reader", [{"kind": "ServiceAccount", "name": "robot"}], namespace="team"))
    assert c.allowed(robot, "get", "pods", "team")
    assert c.authorizer.authorize(Attributes(robot, "get", "team", "", "pods")).reason == (
        'RBAC: allowed by RoleBinding "b1/team" of ClusterRole "pod-reader" to ServiceAccount "robot/team"')
    # ... and a ClusterRoleBinding's needs one.
    c.put(binding("b2", "ClusterRole", "pod-reader", [{"kind": "ServiceAccount", "name": "robot"}]))
    assert not c.allowed(robot, "get", "pods", "elsewhere")
    c.put(binding("b3", "ClusterRole", "pod-reader", [{"kind": "Group", "name": "system:serviceaccounts:team"}]))
    assert c.allowed(robot, "get", "pods", "elsewhere")


def test_missing_role_is_the_denial_reason():
    c = Cluster()
    c.put(binding("dangling", "ClusterRole", "foo", [{"kind": "User", "name": "alice"}]))
    decision = c.authorizer.authorize(Attributes(ALICE, "get", "d", "", "pods"))
    assert not decision.allowed
    assert decision.reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "foo" not found'
    c.put(binding("dangling2", "Role", "bar", [{"kind": "User", "name": "alice"}], namespace="d"))
    assert c.authorizer.authorize(Attributes(ALICE, "get", "d", "", "pods")).reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "foo" not found, role.rbac.authorization.k8s.io "bar" not '
        'found]')
    # Bindings of other users are not looked at.
    bob = UserInfo("bob", groups=("system:authenticated",))
    assert c.authorizer.authorize(Attributes(bob, "get", "d", "", "pods")).reason == ""


def test_decisions_follow_every_rbac_change():
    c = Cluster()
    reader = cluster_role("pod-reader", READ_PODS)
    grant = binding("g", "ClusterRole", "pod-reader", [{"kind": "User", "name": "alice"}])
    assert not c.allowed(ALICE, "get", "pods", "d")
    c.put(reader)
    c.put(grant)
    assert c.allowed(ALICE, "get", "pods", "d")
    narrowed = copy.deepcopy(reader)
    narrowed["rules"] = [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]
    c.put(narrowed, "MODIFIED")
    assert not c.allowed(ALICE, "get", "pods", "d")
    assert c.allowed(ALICE, "list", "pods", "d")
    c.delete(grant)
    assert not c.allowed(ALICE, "list", "pods", "d")


def test_repeated_requests_are_answered_from_the_decision_cache():
    c = Cluster()
    c.put(cluster_role("pod-reader", READ_PODS))
    c.put(binding("g", "ClusterRole", "pod-reader", [{"kind": "User", "name": "alice"}]))
    assert c.allowed(ALICE, "get", "pods", "d")
    rebuilds = c.authorizer.rebuilds
    for _ in range(3):
        assert c.allowed(ALICE, "get", "pods", "d")
    assert c.authorizer.rebuilds == rebuilds
    assert len(c.authorizer._decisions) == 1


def test_namespace_objects_are_authorized_in_their_own_namespace():
    c = Cluster()
    c.put(cluster_role("ns-reader", [{"verbs": ["get"], "apiGroups": [""], "resources": ["namespaces"]}]))
    c.put(binding("b", "ClusterRole", "ns-reader", [{"kind": "User", "name": "alice"}], namespace="team"))
    info = parse_request_info("GET", "/api/v1/namespaces/team", {}, lambda v: v == "true")
    attrs = Attributes.from_request(ALICE, info)
    assert attrs.namespace == "team" and attrs.name == "team"
    assert c.authorizer.authorize(attrs).allowed
    other = Attributes.from_request(ALICE, parse_request_info("GET", "/api/v1/namespaces/other", {}, bool))
    assert not c.authorizer.authorize(other).allowed


# ---- the bootstrap policy -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bootstrapped() -> Cluster:
    c = Cluster()
    roles = policy.all_cluster_roles()
    # view aggregates into edit and edit into admin: aggregate, as the controller does on every change,
    # until nothing changes.
    changed = True
    while changed:
        changed = False
        for r in roles:
            if r.get("aggregationRule") and r["rules"] != (rules := aggregated_rules(r, roles)):
                r["rules"], changed = rules, True
    for obj in roles + policy.all_cluster_role_bindings() + policy.all_namespaced_roles() + \
            policy.all_namespaced_role_bindings():
        c.put(obj)
    return c


def bound(c: Cluster, role_name: str, user_name: str) -> UserInfo:
    c.put(binding(f"{user_name}-{role_name}", "ClusterRole", role_name, [{"kind": "User", "name": user_name}],
                  namespace="team"))
    return UserInfo(user_name, groups=("system:authenticated",))


@pytest.mark.parametrize("verb,resource,group,subresource,view,edit,admin", [
    ("get", "pods", "", "", True, True, True),
    ("create", "pods", "", "", False, True, True),
    ("get", "pods", "", "log", True, True, True),
    ("create", "pods", "", "exec", False, True, True),
    ("get", "secrets", "", "", False, True, True),
    ("list", "configmaps", "", "", True, True, True),
    ("create", "deployments", "apps", "", False, True, True),
    ("update", "deployments", "apps", "scale", False, True, True),
    ("get", "deployments", "apps", "status", True, True, True),
    ("create", "roles", RBAC, "", False, False, True),
    ("create", "rolebindings", RBAC, "", False, False, True),
    ("create", "localsubjectaccessreviews", "authorization.k8s.io", "", False, False, True),
    ("create", "resourcequotas", "", "", False, False, False),
    ("update", "pods", "", "status", False, False, False),
    ("impersonate", "serviceaccounts", "", "", False, True, True),
    ("create", "serviceaccounts", "", "token", False, True, True),
    ("create", "endpoints", "", "", False, False, False),
    ("list", "endpointslices", "discovery.k8s.io", "", True, True, True),
])
def test_user_facing_roles(bootstrapped, verb, resource, group, subresource, view, edit, admin):
    c = bootstrapped
    for role_name, expected in (("view", view), ("edit", edit), ("admin", admin)):
        user = bound(c, role_name, f"{role_name}-user")
        assert c.allowed(user, verb, resource, "team", group, subresource) is expected, role_name
        assert not c.allowed(user, verb, resource, "elsewhere", group, subresource), role_name


def test_every_authenticated_user_may_discover_and_ask_about_itself(bootstrapped):
    c = bootstrapped
    nobody = UserInfo("nobody", groups=("system:authenticated",))
    for path in ("/api", "/apis/apps/v1", "/version", "/healthz", "/openapi/v3"):
        assert c.path_allowed(nobody, path), path
    assert not c.path_allowed(nobody, "/metrics")
    assert c.allowed(nobody, "create", "selfsubjectaccessreviews", group="authorization.k8s.io")
    assert c.allowed(nobody, "create", "selfsubjectrulesreviews", group="authorization.k8s.io")
    assert c.allowed(nobody, "create", "selfsubjectreviews", group="authentication.k8s.io")
    assert not c.allowed(nobody, "list", "pods", "default")


def test_anonymous_users_get_only_public_info(bootstrapped):
    c = bootstrapped
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert c.path_allowed(ANONYMOUS_USER, path), path
    for path in ("/api", "/apis", "/openapi/v3", "/metrics"):
        assert not c.path_allowed(ANONYMOUS_USER, path), path
    assert not c.allowed(ANONYMOUS_USER, "create", "selfsubjectaccessreviews", group="authorization.k8s.io")


@pytest.mark.parametrize("user,verb,resource,group,namespace,subresource,name", [
    # the scheduler binds pods, writes their status and its events, and holds its lease
    ("system:kube-scheduler", "create", "pods", "", "d", "binding", "p"),
    ("system:kube-scheduler", "patch", "pods", "", "d", "status", "p"),
    ("system:kube-scheduler", "watch", "nodes", "", "", "", ""),
    ("system:kube-scheduler", "update", "leases", "coordination.k8s.io", "kube-system", "", "kube-scheduler"),
    ("system:kube-scheduler", "create", "events", "events.k8s.io", "d", "", ""),
    # the controller-manager's identity runs every controller
    ("system:kube-controller-manager", "update", "leases", "coordination.k8s.io", "kube-system", "",
     "kube-controller-manager"),
    ("system:kube-controller-manager", "create", "pods", "", "d", "", ""),
    ("system:kube-controller-manager", "update", "replicasets", "apps", "d", "status", "rs"),
    ("system:kube-controller-manager", "delete", "configmaps", "", "d", "", "x"),
    ("system:kube-controller-manager", "update", "namespaces", "", "d", "finalize", "d"),
    ("system:kube-controller-manager", "patch", "nodes", "", "", "", "n"),
    ("system:kube-controller-manager", "escalate", "clusterroles", RBAC, "", "", "view"),
    ("system:kube-controller-manager", "create", "serviceaccounts", "", "d", "", ""),
])
def test_components_hold_what_they_need(bootstrapped, user, verb, resource, group, namespace, subresource, name):
    identity = UserInfo(user, groups=("system:authenticated",))
    assert bootstrapped.allowed(identity, verb, resource, namespace, group, subresource, name)


def test_rbac_alone_grants_nodes_nothing_and_the_simulated_agent_its_own_role(bootstrapped):
    # As upstream, system:node is bound to nobody: kubelets' rights come from the node authorizer.
    node = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
    c = bootstrapped
    assert not c.allowed(node, "create", "nodes")
    assert not c.allowed(node, "get", "secrets", "d", name="s")
    assert c.allowed(node, "create", "certificatesigningrequests", group="certificates.k8s.io",
                     subresource="selfnodeclient")
    simulated = UserInfo(policy.SIMULATED_NODES_USER, groups=("system:authenticated",))
    assert c.allowed(simulated, "create", "nodes")
    assert c.allowed(simulated, "patch", "nodes", subresource="status", name="sim-7")
    assert c.allowed(simulated, "update", "leases", "kube-node-lease", "coordination.k8s.io", name="sim-7")
    assert not c.allowed(simulated, "update", "leases", "kube-system", "coordination.k8s.io", name="x")
    assert c.allowed(simulated, "patch", "pods", "d", subresource="status", name="p")
    assert c.allowed(simulated, "delete", "pods", "d", name="p")
    assert not c.allowed(simulated, "create", "pods", "d")
    assert not c.allowed(simulated, "get", "secrets", "d", name="s")
    assert not c.allowed(simulated, "delete", "nodes", name="sim-7")


def test_proxy_and_dns_identities(bootstrapped):
    proxy = UserInfo("system:kube-proxy", groups=("system:authenticated",))
    dns = UserInfo("system:coredns", groups=("system:authenticated",))
    for verb in ("list", "watch"):
        assert bootstrapped.allowed(proxy, verb, "endpointslices", group="discovery.k8s.io")
        assert bootstrapped.allowed(proxy, verb, "services")
        assert bootstrapped.allowed(dns, verb, "endpointslices", group="discovery.k8s.io")
        assert bootstrapped.allowed(dns, verb, "namespaces")
    assert bootstrapped.allowed(proxy, "get", "nodes", name="n1")
    assert not bootstrapped.allowed(proxy, "get", "secrets", "d", name="s")
    assert not bootstrapped.allowed(dns, "create", "services", "d")


def test_every_bootstrap_binding_points_at_a_bootstrap_role():
    cluster_roles = {r["metadata"]["name"] for r in policy.all_cluster_roles()}
    for b in policy.all_cluster_role_bindings():
        assert b["roleRef"]["name"] in cluster_roles, b["metadata"]["name"]
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in policy.all_namespaced_roles()}
    for b in policy.all_namespaced_role_bindings():
        assert (b["metadata"]["namespace"], b["roleRef"]["name"]) in roles, b["metadata"]["name"]
    for obj in policy.all_cluster_roles() + policy.all_cluster_role_bindings():
        assert obj["metadata"]["annotations"] == {policy.AUTOUPDATE_ANNOTATION: "true"}
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"


# ---- reconciliation and escalation wording ---------------------------------------------------


def test_reconcile_adds_what_is_missing_and_keeps_user_changes():
    expected = policy.cluster_role("r", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
                                   labels={"a": "policy"})
    existing = copy.deepcopy(expected)
    existing["rules"] = [{"verbs": ["list"], "apiGroups": ["apps"], "resources": ["deployments"]}]
    existing["metadata"]["labels"]["a"] = "user"
    existing["metadata"]["annotations"]["mine"] = "x"
    result = reconciled_role(existing, expected)
    assert result["rules"] == existing["rules"] + expected["rules"]
    assert result["metadata"]["labels"]["a"] == "user"
    assert result["metadata"]["annotations"]["mine"] == "x"
    assert reconciled_role(result, expected) == result  # nothing left to do


def test_reconcile_adds_missing_aggregation_selectors_and_subjects():
    expected = policy.cluster_role("view", [], aggregate_from=policy.AGGREGATE_TO_VIEW)
    existing = copy.deepcopy(expected)
    existing["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"mine": "true"}}]}
    result = reconciled_role(existing, expected)
    assert result["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"mine": "true"}}, {"matchLabels": {policy.AGGREGATE_TO_VIEW: "true"}}]
    expected_binding = policy.cluster_role_binding("b", [policy.group("g1")])
    existing_binding = policy.cluster_role_binding("b", [policy.user("someone")])
    assert reconciled_binding(existing_binding, expected_binding)["subjects"] == [
        policy.user("someone"), policy.group("g1")]


def test_escalation_message_is_upstreams():
    attrs = Attributes(ALICE, "create", "d", RBAC, "roles")
    missing = [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]},
               {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]
    assert escalation_message(attrs, missing, []) == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently '
        'held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}\n{APIGroups:[""], Resources:["secrets"], '
        'Verbs:["get"]}')


def test_gc_only_updates_are_not_escalation_checked():
    old = role("d", "r", READ_PODS)
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["x"]
    new["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u"}]
    assert only_gc_fields_changed(new, old)
    new["rules"] = []
    assert not only_gc_fields_changed(new, old)
