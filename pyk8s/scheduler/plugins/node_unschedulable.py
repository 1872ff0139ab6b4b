"""NodeUnschedulable: cordoned nodes take only pods that tolerate the unschedulable taint."""

from __future__ import annotations

from ..cache import NodeInfo
from .base import UNSCHEDULABLE_TAINT, CycleState, PodInfo, Status, tolerated, unresolvable

_CORDON_TAINT = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}


class NodeUnschedulable:
    name = "NodeUnschedulable"
    REASON = "node(s) were unschedulable"
    events = frozenset({"NodeAdd", "NodeUpdate"})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.spec.get("unschedulable"):
            return None
        if tolerated(pod.tolerations, _CORDON_TAINT):
            return None
        return unresolvable(self.REASON)
