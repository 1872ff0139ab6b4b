"""The node authorizer (upstream plugin/pkg/auth/authorizer/node/node_authorizer.go, v1.32 with its default
feature gates, AuthorizeNodeWithSelectors on).

It speaks only for kubelets: users `system:node:<name>` in the group `system:nodes`. A kubelet may read
the secrets, config maps, claims and volumes of the pods bound to its node (the `NodeGraph`), create
tokens only for their service accounts, read and write its own Node and Lease, list and watch only the
pods bound to it, and do what upstream's static node rules (the `system:node` role) allow for
everything else. For anything it does not allow it has no opinion, so the next authorizer (RBAC)
decides; its reason explains the refusal, as upstream's. Writes it lets through for Node, pods and
leases are narrowed to the node's own objects by the NodeRestriction admission plugin.
"""

from __future__ import annotations

from ..authn import UserInfo
from . import rules as rulematch
from .attributes import Attributes, Decision
from .bootstrap_policy import node_rules
from .node_graph import CONFIGMAP, POD, PV, PVC, SECRET, SERVICE_ACCOUNT, NodeGraph

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

NO_OPINION = Decision(False, "")
ALLOW = Decision(True, "")


def node_identity(user: UserInfo) -> tuple[str, bool]:
    """(node name, is a node) as upstream's default NodeIdentifier: the name may be "" for a malformed user."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return "", False
    return user.name[len(NODE_USER_PREFIX):], True


def _no_relationship(node: str) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")


class NodeAuthorizer:
    def __init__(self, graph: NodeGraph):
        self.graph = graph
        self.static_rules = node_rules()

    def authorize(self, attrs: Attributes) -> Decision:
        node, is_node = node_identity(attrs.user)
        if not is_node:
            return NO_OPINION
        if not node:
            return Decision(False, f'unknown node for user "{attrs.user.name}"')
        if attrs.is_resource_request:
            check = _RESOURCE_CHECKS.get((attrs.api_group, attrs.resource))
            if check is not None:
                return check(self, node, attrs)
        if any(rulematch.allows(rule, attrs) for rule in self.static_rules):
            return ALLOW
        return NO_OPINION

    # ---- graph-scoped reads -------------------------------------------------------------

    def _related(self, node: str, vertex_type: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return Decision(False, "No Object name found")
        if self.graph.reachable(node, (vertex_type, attrs.namespace, attrs.name)):
            return ALLOW
        return _no_relationship(node)

    def _read_namespaced(self, node: str, vertex_type: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "list", "watch"):
            return Decision(False, "can only read resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot read subresource")
        if not attrs.namespace:
            return Decision(False, "can only read namespaced object of this type")
        return self._related(node, vertex_type, attrs)

    def _get(self, node: str, vertex_type: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return Decision(False, "can only get individual resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot get subresource")
        return self._related(node, vertex_type, attrs)

    def secrets(self, node: str, attrs: Attributes) -> Decision:
        return self._read_namespaced(node, SECRET, attrs)

    def configmaps(self, node: str, attrs: Attributes) -> Decision:
        return self._read_namespaced(node, CONFIGMAP, attrs)

    def claims(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource == "status":
            if attrs.verb not in ("update", "patch"):
                return Decision(False, "can only get/update/patch this type")
            return self._related(node, PVC, attrs)
        return self._get(node, PVC, attrs)

    def volumes(self, node: str, attrs: Attributes) -> Decision:
        return self._get(node, PV, attrs)

    def service_accounts(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return Decision(False, "can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return Decision(False, "can only create token subresource of serviceaccount")
        if self.graph.reachable(node, (SERVICE_ACCOUNT, attrs.namespace, attrs.name)):
            return ALLOW
        return _no_relationship(node)

    # ---- the node's own objects -----------------------------------------------------------

    def leases(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(False, "can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return Decision(False, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        # A create's name is in the body: NodeRestriction checks it.
        if attrs.verb != "create" and attrs.name != node:
            return Decision(False, "can only access node lease with the same name as the requesting node")
        return ALLOW

    def nodes(self, node: str, attrs: Attributes) -> Decision:
        if not attrs.subresource:
            if attrs.verb in ("create", "update", "patch"):
                return ALLOW  # NodeRestriction keeps a node to its own Node object
            if attrs.verb in ("get", "list", "watch"):
                # By name rather than through the graph, so a kubelet can read its Node before creating it.
                if attrs.name == node:
                    return ALLOW
                if not attrs.name:
                    return Decision(False, f"node '{node}' cannot read all nodes, only its own Node object")
                return Decision(False, f"node '{node}' cannot read '{attrs.name}', only its own Node object")
        elif attrs.subresource == "status" and attrs.verb in ("update", "patch"):
            return ALLOW
        return NO_OPINION

    def pods(self, node: str, attrs: Attributes) -> Decision:
        if not attrs.subresource:
            if attrs.verb == "get":
                return self._get(node, POD, attrs)
            if attrs.verb in ("list", "watch"):
                if attrs.field_requirements().requires_exact_match("spec.nodeName") == node:
                    return ALLOW
                if attrs.name:
                    return self._related(node, POD, attrs)
                return Decision(False, "can only list/watch pods with spec.nodeName field selector")
            if attrs.verb in ("create", "delete"):
                return ALLOW  # mirror pods; NodeRestriction keeps them to this node
        elif attrs.subresource == "status" and attrs.verb in ("update", "patch"):
            return ALLOW  # NodeRestriction: only pods bound to this node
        elif attrs.subresource == "eviction" and attrs.verb == "create":
            return ALLOW  # NodeRestriction: only pods bound to this node
        return NO_OPINION


_RESOURCE_CHECKS = {
    ("", "secrets"): NodeAuthorizer.secrets,
    ("", "configmaps"): NodeAuthorizer.configmaps,
    ("", "persistentvolumeclaims"): NodeAuthorizer.claims,
    ("", "persistentvolumes"): NodeAuthorizer.volumes,
    ("", "serviceaccounts"): NodeAuthorizer.service_accounts,
    ("coordination.k8s.io", "leases"): NodeAuthorizer.leases,
    ("", "nodes"): NodeAuthorizer.nodes,
    ("", "pods"): NodeAuthorizer.pods,
}
