"""The default filter and score plugins (CPU only: no I/O, no awaits).

Each filter returns None when the node fits, else a `Status` with upstream's reason strings.
Each scorer returns a raw score per node; `normalize` (when present) maps them onto 0..100.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .cache import NodeInfo
from .resources import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    PODS,
    Resources,
    host_ports,
    non_zero_requests,
    pod_requests,
)

MAX_NODE_SCORE = 100
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


class Code(enum.Enum):
    UNSCHEDULABLE = "Unschedulable"  # preemption might help
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"  # preemption cannot help


@dataclass
class Status:
    code: Code
    reasons: list[str]
    plugin: str = ""


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, list(reasons))


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, list(reasons))


@dataclass
class PodInfo:
    """What the plugins need from a pod, computed once per scheduling cycle (upstream's PreFilter)."""

    pod: dict
    requests: Resources = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    ports: list[tuple[str, str, int]] = field(default_factory=list)

    @classmethod
    def of(cls, pod: dict) -> PodInfo:
        requests = pod_requests(pod)
        cpu, mem = non_zero_requests(requests)
        return cls(pod, requests, cpu, mem, host_ports(pod))

    @property
    def spec(self) -> dict:
        return self.pod.get("spec") or {}

    @property
    def tolerations(self) -> list[dict]:
        return self.spec.get("tolerations") or []

    @property
    def node_affinity(self) -> dict:
        return (self.spec.get("affinity") or {}).get("nodeAffinity") or {}


class FilterPlugin(Protocol):
    name: str

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None: ...


class ScorePlugin(Protocol):
    name: str
    weight: int

    def score(self, pod: PodInfo, node: NodeInfo) -> int: ...

    def normalize(self, scores: dict[str, int]) -> None: ...


# ---- shared matching helpers ---------------------------------------------------------------

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


# ---- filters -------------------------------------------------------------------------------

class NodeUnschedulable:
    name = "NodeUnschedulable"
    REASON = "node(s) were unschedulable"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.spec.get("unschedulable"):
            return None
        if tolerated(pod.tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
            return None
        return unresolvable(self.REASON)


class NodeName:
    name = "NodeName"
    REASON = "node(s) didn't match the requested node name"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        wanted = pod.spec.get("nodeName")
        return None if not wanted or wanted == node.name else unresolvable(self.REASON)


class NodeResourcesFit:
    """Filter: the pod's requests fit the node's free allocatable. Score: LeastAllocated (cpu, memory)."""

    name = "NodeResourcesFit"
    weight = 1

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons: list[str] = []
        alloc, used = node.allocatable, node.requested
        if used.get(PODS, 0) + 1 > alloc.get(PODS, 0):
            reasons.append("Too many pods")
        req = pod.requests
        for name in (CPU, MEMORY, EPHEMERAL_STORAGE):
            want = req.get(name, 0)
            if want > 0 and want > alloc.get(name, 0) - used.get(name, 0):
                reasons.append(f"Insufficient {name}")
        for name in sorted(req):
            if name in (CPU, MEMORY, EPHEMERAL_STORAGE, PODS) or not _is_extended(name):
                continue
            want = req[name]
            if want > 0 and want > alloc.get(name, 0) - used.get(name, 0):
                reasons.append(f"Insufficient {name}")
        return unschedulable(*reasons) if reasons else None

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        total = 0
        weights = 0
        for alloc, used in ((node.allocatable.get(CPU, 0), node.non_zero_cpu + pod.non_zero_cpu),
                            (node.allocatable.get(MEMORY, 0), node.non_zero_memory + pod.non_zero_memory)):
            weights += 1
            if alloc == 0 or used > alloc:
                continue
            total += (alloc - used) * MAX_NODE_SCORE // alloc
        return total // weights if weights else 0

    def normalize(self, scores: dict[str, int]) -> None:
        return None


def _is_extended(name: str) -> bool:
    """Extended resources: a domain-qualified name outside kubernetes.io, or hugepages/attachable volumes."""
    if name.startswith("hugepages-") or name.startswith("attachable-volumes-"):
        return True
    if "/" not in name:
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io")) or name.startswith("requests.")


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        fractions = []
        for alloc, used in ((node.allocatable.get(CPU, 0), node.non_zero_cpu + pod.non_zero_cpu),
                            (node.allocatable.get(MEMORY, 0), node.non_zero_memory + pod.non_zero_memory)):
            if alloc:
                fractions.append(min(used / alloc, 1.0))
        if len(fractions) < 2:
            return MAX_NODE_SCORE
        std = abs(fractions[0] - fractions[1]) / 2
        return int((1 - std) * MAX_NODE_SCORE)

    def normalize(self, scores: dict[str, int]) -> None:
        return None


class NodeAffinity:
    """Filter: nodeSelector and required terms. Score: sum of matching preferred terms' weights."""

    name = "NodeAffinity"
    weight = 2
    REASON = "node(s) didn't match Pod's node affinity/selector"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        labels = node.labels
        selector = pod.spec.get("nodeSelector") or {}
        if any(labels.get(k) != v or k not in labels for k, v in selector.items()):
            return unresolvable(self.REASON)
        required = pod.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is not None:
            terms = required.get("nodeSelectorTerms") or []
            if not any(term_matches(t, node) for t in terms):
                return unresolvable(self.REASON)
        return None

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        total = 0
        for term in pod.node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            weight = term.get("weight") or 0
            if weight and term_matches(term.get("preference") or {}, node):
                total += weight
        return total

    def normalize(self, scores: dict[str, int]) -> None:
        top = max(scores.values(), default=0)
        if top > 0:
            for name, s in scores.items():
                scores[name] = MAX_NODE_SCORE * s // top


class TaintToleration:
    """Filter: untolerated NoSchedule/NoExecute taints. Score: fewer untolerated PreferNoSchedule taints."""

    name = "TaintToleration"
    weight = 3

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.spec.get("taints") or []:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not tolerated(pod.tolerations, taint):
                return unresolvable(f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                                    f"{taint.get('value', '')}}}")
        return None

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        prefer = [t for t in pod.tolerations if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
        return sum(1 for taint in node.spec.get("taints") or []
                   if taint.get("effect") == "PreferNoSchedule" and not tolerated(prefer, taint))

    def normalize(self, scores: dict[str, int]) -> None:
        top = max(scores.values(), default=0)
        for name, s in scores.items():
            scores[name] = MAX_NODE_SCORE if top == 0 else MAX_NODE_SCORE - MAX_NODE_SCORE * s // top


class NodePorts:
    name = "NodePorts"
    REASON = "node(s) didn't have free ports for the requested pod ports"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for proto, ip, port in pod.ports:
            for used_proto, used_ip, used_port in node.used_ports:
                if (proto == used_proto and port == used_port
                        and (ip == used_ip or "0.0.0.0" in (ip, used_ip))):
                    return unschedulable(self.REASON)
        return None


def default_filters() -> list[FilterPlugin]:
    """Upstream's default filter order (the subset implemented here)."""
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(), NodeResourcesFit()]


def default_scorers() -> list[ScorePlugin]:
    return [TaintToleration(), NodeAffinity(), NodeResourcesFit(), BalancedAllocation()]
