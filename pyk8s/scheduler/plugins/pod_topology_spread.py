"""PodTopologySpread: keep matching pods evenly spread over topology domains.

Filter (DoNotSchedule constraints): per constraint, the matching pods per domain are counted once per cycle,
with the smallest count kept, so a node's skew is a look-up. Score (ScheduleAnyway constraints, or the
cluster's default constraints for pods that set none): fewer matching pods in the node's domains is better,
each constraint weighted by log(number of domains + 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyk8s.api.selectors import LabelSelector, SelectorError, label_selector_from_object, new_requirement

from ..cache import NodeInfo
from .base import (
    HOSTNAME_LABEL,
    MAX_NODE_SCORE,
    ZONE_LABEL,
    CycleState,
    PodInfo,
    Status,
    error,
    required_node_affinity_matches,
    skip,
    unresolvable,
    unschedulable,
    untolerated_hard_taint,
)
from .node_resources_fit import ArgsError

REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = REASON + " (missing required label)"
DO_NOT_SCHEDULE, SCHEDULE_ANYWAY = "DoNotSchedule", "ScheduleAnyway"
HONOR, IGNORE = "Honor", "Ignore"
SYSTEM_DEFAULT_CONSTRAINTS = (
    {"topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": ZONE_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
)

# The selector of the Services/ReplicaSets/... that own a pod, for the default constraints (None: none own it).
DefaultSelector = Callable[[Mapping], LabelSelector | None]


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: LabelSelector
    min_domains: int = 1
    node_affinity_policy: str = HONOR
    node_taints_policy: str = IGNORE

    @classmethod
    def of(cls, c: Mapping, pod: Mapping, selector: LabelSelector | None = None) -> Constraint:
        """Raises SelectorError for an invalid selector."""
        if selector is None:
            selector = label_selector_from_object(c.get("labelSelector"))
            labels = (pod.get("metadata") or {}).get("labels") or {}
            extra = [new_requirement(k, "in", [labels[k]]) for k in c.get("matchLabelKeys") or () if k in labels]
            if extra and not selector.nothing:
                selector = LabelSelector(tuple(sorted((*selector.requirements, *extra), key=lambda r: r.key)))
        return cls(int(c.get("maxSkew") or 1), c.get("topologyKey", ""), c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE,
                   selector, int(c.get("minDomains") or 1), c.get("nodeAffinityPolicy") or HONOR,
                   c.get("nodeTaintsPolicy") or IGNORE)

    def includes(self, pod: PodInfo, node: NodeInfo) -> bool:
        """Whether the node's pods count towards this constraint (nodeAffinityPolicy/nodeTaintsPolicy)."""
        if self.node_affinity_policy == HONOR and not required_node_affinity_matches(pod, node):
            return False
        return not (self.node_taints_policy == HONOR and untolerated_hard_taint(pod.tolerations, node) is not None)


def count_matching(node: NodeInfo, selector: LabelSelector, namespace: str) -> int:
    count = 0
    for other in node.pods.values():
        meta = other.get("metadata") or {}
        if (meta.get("namespace") == namespace and not meta.get("deletionTimestamp")
                and selector.matches(meta.get("labels") or {})):
            count += 1
    return count


def has_all_keys(node: NodeInfo, constraints: list[Constraint]) -> bool:
    labels = node.labels
    return all(c.topology_key in labels for c in constraints)


@dataclass
class FilterState:
    constraints: list[Constraint]
    counts: list[dict[str, int]]  # per constraint: domain value -> matching pods
    mins: list[int] = field(default_factory=list)

    def clone(self) -> FilterState:
        return FilterState(self.constraints, [dict(c) for c in self.counts], list(self.mins))

    def recompute_mins(self) -> None:
        self.mins = [min(c.values(), default=0) for c in self.counts]


@dataclass
class ScoreState:
    constraints: list[Constraint]
    ignored: set[str]
    require_all_keys: bool
    counts: list[dict[str, int]]
    weights: list[float]


class PodTopologySpread:
    name = "PodTopologySpread"
    weight = 2
    events = frozenset({"AssignedPodAdd", "AssignedPodUpdate", "AssignedPodDelete", "NodeAdd", "NodeUpdate",
                        "NodeDelete"})

    def __init__(self, args: Mapping | None = None, default_selector: DefaultSelector | None = None):
        args = args or {}
        defaulting = args.get("defaultingType") or "System"
        if defaulting not in ("System", "List"):
            raise ArgsError(f"defaultingType: Unsupported value: \"{defaulting}\": supported values: "
                            "\"List\", \"System\"")
        configured = args.get("defaultConstraints") or []
        if defaulting == "System" and configured:
            raise ArgsError("defaultConstraints: Invalid value: when .defaultingType is \"System\", "
                            "defaultConstraints must be empty")
        self.system_defaulted = defaulting == "System"
        self.default_constraints = list(SYSTEM_DEFAULT_CONSTRAINTS) if self.system_defaulted else list(configured)
        self.default_selector: DefaultSelector = default_selector or (lambda pod: None)

    def _constraints(self, pod: PodInfo, when: str) -> tuple[list[Constraint], bool]:
        """The pod's constraints with `when`, or the default ones; (constraints, from the pod itself)."""
        own = pod.spec.get("topologySpreadConstraints") or []
        if own:
            return [Constraint.of(c, pod.pod) for c in own if (c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE)
                    == when], True
        defaults = [c for c in self.default_constraints if (c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE) == when]
        if not defaults:
            return [], False
        selector = self.default_selector(pod.pod)
        if selector is None or selector.empty:
            return [], False
        return [Constraint.of(c, pod.pod, selector) for c in defaults], False

    # ---- filter ----------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        try:
            constraints, _ = self._constraints(pod, DO_NOT_SCHEDULE)
        except SelectorError as exc:
            return error(f"parsing pod topology spread constraints: {exc}")
        if not constraints:
            return skip()
        counts: list[dict[str, int]] = [{} for _ in constraints]
        for node in nodes:
            if not has_all_keys(node, constraints):
                continue
            for i, c in enumerate(constraints):
                if c.includes(pod, node):
                    value = node.labels[c.topology_key]
                    counts[i][value] = counts[i].get(value, 0) + count_matching(node, c.selector, pod.namespace)
        s = FilterState(constraints, counts)
        s.recompute_mins()
        state[self.name] = s
        return None

    def _update(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo, delta: int) -> None:
        s: FilterState | None = state.get(self.name)
        if s is None or not has_all_keys(node, s.constraints):
            return
        meta = other.get("metadata") or {}
        if meta.get("namespace") != pod.namespace:
            return
        for i, c in enumerate(s.constraints):
            if c.includes(pod, node) and c.selector.matches(meta.get("labels") or {}):
                value = node.labels[c.topology_key]
                s.counts[i][value] = s.counts[i].get(value, 0) + delta
        s.recompute_mins()

    def add_pod(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo) -> None:
        self._update(state, pod, other, node, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo) -> None:
        self._update(state, pod, other, node, -1)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: FilterState | None = state.get(self.name)
        if s is None:
            return None
        labels = node.labels
        for i, c in enumerate(s.constraints):
            value = labels.get(c.topology_key)
            if value is None:
                return unresolvable(MISSING_LABEL_REASON)
            self_match = 1 if c.selector.matches(pod.labels) else 0
            minimum = 0 if len(s.counts[i]) < c.min_domains else s.mins[i]
            if s.counts[i].get(value, 0) + self_match - minimum > c.max_skew:
                return unschedulable(REASON)
        return None

    # ---- score -----------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo], nodes: list[NodeInfo]) -> bool:
        try:
            constraints, own = self._constraints(pod, SCHEDULE_ANYWAY)
        except SelectorError:
            return False  # PreFilter already reported it
        if not constraints:
            return False
        require_all = own or not self.system_defaulted
        ignored = {n.name for n in feasible if require_all and not has_all_keys(n, constraints)}
        counts: list[dict[str, int]] = [{} for _ in constraints]
        sizes = [0] * len(constraints)
        for node in feasible:
            if node.name in ignored:
                continue
            for i, c in enumerate(constraints):
                value = node.labels.get(c.topology_key)
                if c.topology_key != HOSTNAME_LABEL and value is not None and value not in counts[i]:
                    counts[i][value] = 0
                    sizes[i] += 1
        for i, c in enumerate(constraints):
            if c.topology_key == HOSTNAME_LABEL:
                sizes[i] = len(feasible) - len(ignored)
        weights = [math.log(size + 2) for size in sizes]
        for node in nodes:
            if require_all and not has_all_keys(node, constraints):
                continue
            for i, c in enumerate(constraints):
                value = node.labels.get(c.topology_key)
                if c.topology_key == HOSTNAME_LABEL or value not in counts[i] or not c.includes(pod, node):
                    continue
                counts[i][value] += count_matching(node, c.selector, pod.namespace)
        state[self.name + "/score"] = ScoreState(constraints, ignored, require_all, counts, weights)
        return True

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        s: ScoreState = state[self.name + "/score"]
        if node.name in s.ignored:
            return 0
        total = 0.0
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                continue
            if c.topology_key == HOSTNAME_LABEL:
                count = count_matching(node, c.selector, pod.namespace)
            else:
                count = s.counts[i].get(value, 0)
            total += count * s.weights[i] + (c.max_skew - 1)
        return round(total)

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        s: ScoreState = state[self.name + "/score"]
        counted = [v for name, v in scores.items() if name not in s.ignored]
        low, high = min(counted, default=0), max(counted, default=0)
        for name, v in scores.items():
            if name in s.ignored:
                scores[name] = 0
            elif high == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                scores[name] = MAX_NODE_SCORE * (high + low - v) // high
