"""The apiserver's authorizer: upstream's union of the `--authorization-mode` authorizers.

Members of `system:masters` are allowed first (upstream's privileged-group authorizer); then each mode
in the order given answers until one allows. A refusal carries every reason the modes gave, one per
line, as upstream's union does. Modes: `Node` (kubelets, `node.py`), `RBAC`, `AlwaysAllow` and
`AlwaysDeny`. The default is upstream's recommended `Node,RBAC`.
"""

from __future__ import annotations

from ...api.kinds import REGISTRY
from ..authn import UserInfo
from ..watchcache import WatchCache
from .attributes import Attributes, Decision
from .node import NodeAuthorizer, node_identity
from .node_graph import NodeGraph
from .rbac import PRIVILEGED_GROUP, RBACAuthorizer

MODES = ("Node", "RBAC", "AlwaysAllow", "AlwaysDeny")
DEFAULT_MODES = ("Node", "RBAC")
EVERYTHING = ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]})
NODE_RULES_UNSUPPORTED = "node authorizer does not support user rule resolution"


class _AlwaysAllow:
    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(True, "")


class _AlwaysDeny:
    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(False, "Everything is forbidden.")


def parse_modes(value: str) -> tuple[str, ...]:
    """`--authorization-mode`: a comma-separated list of known modes, each at most once."""
    modes = tuple(m.strip() for m in value.split(",") if m.strip())
    if not modes:
        raise ValueError("at least one authorization-mode must be passed")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"authorization-mode {mode!r} is not a valid mode (one of {', '.join(MODES)})")
    if len(set(modes)) != len(modes):
        raise ValueError(f"authorization-mode {value!r} has mode specified more than once")
    return modes


class AuthorizerChain:
    def __init__(self, cache: WatchCache, modes: tuple[str, ...] = DEFAULT_MODES):
        self.modes = modes
        # RBAC is kept even when not a mode: its rule resolution answers SelfSubjectRulesReview and the
        # escalation checks, as upstream's RBAC storage always uses it.
        self.rbac = RBACAuthorizer(cache)
        self.node: NodeAuthorizer | None = None
        authorizers = []
        for mode in modes:
            if mode == "Node":
                pods = REGISTRY.by_kind("", "v1", "Pod")
                volumes = REGISTRY.by_kind("", "v1", "PersistentVolume")
                assert pods is not None and volumes is not None
                self.node = NodeAuthorizer(NodeGraph(cache.cache_for(pods), cache.cache_for(volumes)))
                authorizers.append(self.node)
            elif mode == "RBAC":
                authorizers.append(self.rbac)
            elif mode == "AlwaysAllow":
                authorizers.append(_AlwaysAllow())
            else:
                authorizers.append(_AlwaysDeny())
        self._authorizers = tuple(authorizers)

    def authorize(self, attrs: Attributes) -> Decision:
        if PRIVILEGED_GROUP in attrs.user.groups:
            return Decision(True, "")
        reasons = []
        for authorizer in self._authorizers:
            decision = authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        if not reasons:
            return Decision(False, "")
        return Decision(False, reasons[0] if len(reasons) == 1 else "\n".join(reasons))

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str], bool]:
        """(rules, resolution errors, incomplete) for SelfSubjectRulesReview: RBAC's rules; a node's list is
        incomplete, since the node authorizer's decisions depend on the objects asked about."""
        if "AlwaysAllow" in self.modes:
            return list(EVERYTHING), [], False
        if "RBAC" not in self.modes:
            return [], [], True
        rules, problems = self.rbac.rules_for(user, namespace)
        if self.node is not None and node_identity(user)[1]:
            return rules, [NODE_RULES_UNSUPPORTED, *problems], True
        return rules, problems, False
