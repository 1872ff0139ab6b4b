"""TaintToleration. Filter: untolerated NoSchedule/NoExecute taints. Score: fewer untolerated PreferNoSchedule."""

from __future__ import annotations

from ..cache import NodeInfo
from .base import MAX_NODE_SCORE, CycleState, PodInfo, Status, tolerated, unresolvable, untolerated_hard_taint


class TaintToleration:
    name = "TaintToleration"
    weight = 3
    events = frozenset({"NodeAdd", "NodeUpdate"})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        taint = untolerated_hard_taint(pod.tolerations, node)
        if taint is None:
            return None
        return unresolvable(f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def pre_score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo], nodes: list[NodeInfo]) -> bool:
        if not any(n.spec.get("taints") for n in feasible):
            return False  # every node would score the same
        state[self.name] = [t for t in pod.tolerations if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
        return True

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        taints = node.spec.get("taints")
        if not taints:
            return 0
        prefer = state.get(self.name)
        if prefer is None:
            prefer = [t for t in pod.tolerations if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
        return sum(1 for taint in taints if taint.get("effect") == "PreferNoSchedule" and not tolerated(prefer, taint))

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        top = max(scores.values(), default=0)
        for name, s in scores.items():
            scores[name] = MAX_NODE_SCORE if top == 0 else MAX_NODE_SCORE - MAX_NODE_SCORE * s // top
