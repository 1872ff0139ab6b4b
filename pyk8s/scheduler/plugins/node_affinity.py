"""NodeAffinity. Filter: nodeSelector and required terms. Score: the weights of matching preferred terms."""

from __future__ import annotations

from ..cache import NodeInfo
from .base import (
    MAX_NODE_SCORE,
    CycleState,
    PodInfo,
    Status,
    required_node_affinity_matches,
    skip,
    term_matches,
    unresolvable,
)


class NodeAffinity:
    name = "NodeAffinity"
    weight = 2
    REASON = "node(s) didn't match Pod's node affinity/selector"
    events = frozenset({"NodeAdd", "NodeUpdate"})

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        required = pod.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        return skip() if not pod.spec.get("nodeSelector") and required is None else None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if required_node_affinity_matches(pod, node) else unresolvable(self.REASON)

    def pre_score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo], nodes: list[NodeInfo]) -> bool:
        preferred = pod.node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        state[self.name] = [(t.get("weight") or 0, t.get("preference") or {}) for t in preferred if t.get("weight")]
        return bool(state[self.name])

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(weight for weight, term in state[self.name] if term_matches(term, node))

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        top = max(scores.values(), default=0)
        if top > 0:
            for name, s in scores.items():
                scores[name] = MAX_NODE_SCORE * s // top
