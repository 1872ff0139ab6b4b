"""What every plugin shares: statuses, the per-cycle pod view, cycle state and node/label matching helpers.

Plugins are plain classes with some of these methods (each extension point is optional):
`pre_filter(state, pod, nodes) -> Status | None`, `filter(state, pod, node) -> Status | None`,
`add_pod(state, pod, other, node)` / `remove_pod(state, pod, other, node)` (PreFilter extensions used by
nominated pods and preemption dry runs), `pre_score(state, pod, feasible, nodes) -> bool` (False: skip Score),
`score(state, pod, node) -> int`, `normalize(state, scores)`. All of them are CPU-only: no I/O, no awaits.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..cache import NodeInfo
from ..resources import Resources, host_ports, non_zero_requests, pod_requests

MAX_NODE_SCORE = 100
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"


class Code(enum.Enum):
    UNSCHEDULABLE = "Unschedulable"  # preemption might help
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"  # preemption cannot help
    ERROR = "Error"  # bad input or a plugin failure: retry after backoff
    SKIP = "Skip"  # from PreFilter: this plugin has nothing to check for this pod (its Filter is not run)


@dataclass
class Status:
    code: Code
    reasons: list[str]
    plugin: str = ""


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, list(reasons))


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, list(reasons))


def error(reason: str) -> Status:
    return Status(Code.ERROR, [reason])


def skip() -> Status:
    return Status(Code.SKIP, [])


class CycleState(dict):
    """Per-pod, per-cycle data keyed by plugin name; `clone` copies each entry for a dry run.

    `filters` is the cycle's Filter plugins: the profile's, less those whose PreFilter returned Skip.
    """

    filters: list | None = None

    def clone(self) -> CycleState:
        other = CycleState({k: v.clone() if hasattr(v, "clone") else copy.copy(v) for k, v in self.items()})
        other.filters = self.filters
        return other


def pod_priority(pod: Mapping) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


@dataclass
class PodInfo:
    """What the plugins need from a pod, computed once per scheduling cycle (plain attributes: the filters
    read them once per node)."""

    pod: dict
    requests: Resources = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    ports: list[tuple[str, str, int]] = field(default_factory=list)
    spec: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    tolerations: list[dict] = field(default_factory=list)
    affinity: dict = field(default_factory=dict)
    node_affinity: dict = field(default_factory=dict)

    @classmethod
    def of(cls, pod: dict) -> PodInfo:
        requests = pod_requests(pod)
        cpu, mem = non_zero_requests(requests)
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        affinity = spec.get("affinity") or {}
        return cls(pod, requests, cpu, mem, host_ports(pod), spec, meta, meta.get("namespace", ""),
                   meta.get("labels") or {}, pod_priority(pod), spec.get("tolerations") or [], affinity,
                   affinity.get("nodeAffinity") or {})


# ---- taints and tolerations ----------------------------------------------------------------

def tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """Upstream's Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(tolerations: list[dict], taint: Mapping) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def untolerated_hard_taint(tolerations: list[dict], node: NodeInfo) -> dict | None:
    """The first NoSchedule/NoExecute taint of `node` that `tolerations` do not tolerate."""
    for taint in node.spec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(tolerations, taint):
            return taint
    return None


# ---- node selectors ------------------------------------------------------------------------

def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def requirement_matches(req: Mapping, values_by_key: Mapping[str, str]) -> bool:
    """One node selector requirement (In/NotIn/Exists/DoesNotExist/Gt/Lt) against labels or fields."""
    key, op, values = req.get("key", ""), req.get("operator", ""), req.get("values") or []
    present = key in values_by_key
    value = values_by_key.get(key, "")
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Mapping, node: NodeInfo) -> bool:
    """A node selector term: every expression and field requirement holds; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node.labels
    if not all(requirement_matches(r, labels) for r in expressions):
        return False
    node_fields = {"metadata.name": node.name}
    return all(r.get("key") == "metadata.name" and requirement_matches(r, node_fields) for r in fields)


def required_node_affinity_matches(pod: PodInfo, node: NodeInfo) -> bool:
    """nodeSelector and requiredDuringScheduling node affinity (upstream's RequiredNodeAffinity.Match)."""
    labels = node.labels
    for k, v in (pod.spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v or k not in labels:
            return False
    required = pod.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])
    return True


# Namespace labels by name, for namespaceSelector (the scheduler's namespace informer).
NamespaceLabels = Callable[[str], Mapping[str, str] | None]
