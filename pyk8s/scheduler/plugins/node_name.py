"""NodeName: a pod that names its node fits only that node."""

from __future__ import annotations

from ..cache import NodeInfo
from .base import CycleState, PodInfo, Status, skip, unresolvable


class NodeName:
    name = "NodeName"
    REASON = "node(s) didn't match the requested node name"
    events = frozenset({"NodeAdd"})

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None if pod.spec.get("nodeName") else skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if pod.spec.get("nodeName") == node.name else unresolvable(self.REASON)
