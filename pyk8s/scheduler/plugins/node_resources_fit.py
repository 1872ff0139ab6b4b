"""NodeResourcesFit. Filter: the pod's requests fit the node's free allocatable.
Score: one of upstream's strategies over weighted resources (LeastAllocated by default, MostAllocated,
RequestedToCapacityRatio with a piecewise-linear shape)."""

from __future__ import annotations

from collections.abc import Mapping

from ..cache import NodeInfo
from ..resources import CPU, EPHEMERAL_STORAGE, MEMORY, PODS
from .base import MAX_NODE_SCORE, CycleState, PodInfo, Status, unschedulable

LEAST_ALLOCATED, MOST_ALLOCATED, REQUESTED_TO_CAPACITY_RATIO = (
    "LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")
DEFAULT_RESOURCES = ({"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1})
MAX_CUSTOM_PRIORITY_SCORE = 10  # shape scores are 0..10, scaled onto 0..100


class ArgsError(ValueError):
    """Invalid plugin args in a scheduler configuration."""


def is_extended(name: str) -> bool:
    """Extended resources: a domain-qualified name outside kubernetes.io, or hugepages/attachable volumes."""
    if name.startswith("hugepages-") or name.startswith("attachable-volumes-"):
        return True
    if "/" not in name:
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io")) or name.startswith("requests.")


def least_requested(requested: int, capacity: int) -> int:
    if requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested(requested: int, capacity: int) -> int:
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


class Shape:
    """RequestedToCapacityRatio's function: utilization (0..100) -> score (0..100), linear between points."""

    def __init__(self, points: list[Mapping]):
        if not points:
            raise ArgsError("scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point")
        self.points = [(int(p.get("utilization", 0)), int(p.get("score", 0)) * MAX_NODE_SCORE
                        // MAX_CUSTOM_PRIORITY_SCORE) for p in points]
        for i, (u, s) in enumerate(self.points):
            if not 0 <= u <= 100 or not 0 <= s <= MAX_NODE_SCORE:
                raise ArgsError(f"scoringStrategy.requestedToCapacityRatio.shape[{i}]: Invalid value: out of range")
            if i and u <= self.points[i - 1][0]:
                raise ArgsError(f"scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: Invalid value: "
                                f"{u}: utilization values must be sorted in increasing order")

    def __call__(self, utilization: int) -> int:
        points = self.points
        if utilization <= points[0][0]:
            return points[0][1]
        for (u0, s0), (u1, s1) in zip(points, points[1:], strict=False):
            if utilization <= u1:
                return s0 + (s1 - s0) * (utilization - u0) // (u1 - u0)
        return points[-1][1]


class NodeResourcesFit:
    name = "NodeResourcesFit"
    weight = 1
    events = frozenset({"NodeAdd", "NodeUpdate", "AssignedPodDelete", "AssignedPodUpdate"})

    def __init__(self, args: Mapping | None = None):
        args = args or {}
        strategy = args.get("scoringStrategy") or {}
        self.strategy = strategy.get("type") or LEAST_ALLOCATED
        if self.strategy not in (LEAST_ALLOCATED, MOST_ALLOCATED, REQUESTED_TO_CAPACITY_RATIO):
            raise ArgsError(f"scoringStrategy.type: Unsupported value: \"{self.strategy}\": supported values: "
                            f"\"{LEAST_ALLOCATED}\", \"{MOST_ALLOCATED}\", \"{REQUESTED_TO_CAPACITY_RATIO}\"")
        self.resources = [(r["name"], int(r.get("weight") or 1)) for r in strategy.get("resources")
                          or DEFAULT_RESOURCES]
        self.shape: Shape | None = None
        if self.strategy == REQUESTED_TO_CAPACITY_RATIO:
            self.shape = Shape((strategy.get("requestedToCapacityRatio") or {}).get("shape") or [])
        self.ignored = set(args.get("ignoredResources") or [])
        self.ignored_groups = set(args.get("ignoredResourceGroups") or [])

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        """The requests to check, in upstream's reason order (cpu, memory, ephemeral-storage, extended)."""
        req = pod.requests
        wanted = [(name, req[name]) for name in (CPU, MEMORY, EPHEMERAL_STORAGE) if req.get(name, 0) > 0]
        wanted += [(name, req[name]) for name in sorted(req) if name not in (CPU, MEMORY, EPHEMERAL_STORAGE, PODS)
                   and is_extended(name) and not self._ignored(name) and req[name] > 0]
        state[self.name] = wanted
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        alloc, used = node.allocatable, node.requested
        reasons = None
        if used.get(PODS, 0) + 1 > alloc.get(PODS, 0):
            reasons = ["Too many pods"]
        wanted = state.get(self.name)
        if wanted is None:  # Filter without PreFilter (a test, a dry run of a bare state)
            self.pre_filter(state, pod, [])
            wanted = state[self.name]
        for name, want in wanted:
            if want > alloc.get(name, 0) - used.get(name, 0):
                if reasons is None:
                    reasons = []
                reasons.append(f"Insufficient {name}")
        return unschedulable(*reasons) if reasons else None

    def _ignored(self, name: str) -> bool:
        return name in self.ignored or ("/" in name and name.split("/", 1)[0] in self.ignored_groups)

    def _requested(self, pod: PodInfo, node: NodeInfo, name: str) -> int:
        # Scoring counts pods without cpu/memory requests as upstream's non-zero defaults.
        if name == CPU:
            return node.non_zero_cpu + pod.non_zero_cpu
        if name == MEMORY:
            return node.non_zero_memory + pod.non_zero_memory
        return node.requested.get(name, 0) + pod.requests.get(name, 0)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        total = weights = 0
        for name, weight in self.resources:
            capacity = node.allocatable.get(name, 0)
            if capacity == 0:
                continue
            requested = self._requested(pod, node, name)
            if self.strategy == LEAST_ALLOCATED:
                s = least_requested(requested, capacity)
            elif self.strategy == MOST_ALLOCATED:
                s = most_requested(requested, capacity)
            else:
                assert self.shape is not None
                s = self.shape(min(requested, capacity) * 100 // capacity)
            total += s * weight
            weights += weight
        return total // weights if weights else 0

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> dict[str, int]:
        if self.strategy != LEAST_ALLOCATED or self.resources != [(CPU, 1), (MEMORY, 1)]:
            return {n.name: self.score(state, pod, n) for n in nodes}
        # The default (LeastAllocated over cpu and memory, equal weights), unrolled: the scoring hot path.
        pod_cpu, pod_mem = pod.non_zero_cpu, pod.non_zero_memory
        out = {}
        for n in nodes:
            alloc = n.allocatable
            total = weights = 0
            cap = alloc.get(CPU, 0)
            if cap:
                used = n.non_zero_cpu + pod_cpu
                total += (cap - used) * MAX_NODE_SCORE // cap if used <= cap else 0
                weights += 1
            cap = alloc.get(MEMORY, 0)
            if cap:
                used = n.non_zero_memory + pod_mem
                total += (cap - used) * MAX_NODE_SCORE // cap if used <= cap else 0
                weights += 1
            out[n.name] = total // weights if weights else 0
        return out

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        return None
