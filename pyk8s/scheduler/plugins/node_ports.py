"""NodePorts: a pod's host ports must be free on the node."""

from __future__ import annotations

from ..cache import NodeInfo
from .base import CycleState, PodInfo, Status, skip, unschedulable


class NodePorts:
    name = "NodePorts"
    REASON = "node(s) didn't have free ports for the requested pod ports"
    events = frozenset({"NodeAdd", "AssignedPodDelete"})

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None if pod.ports else skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.used_ports:
            return None
        for proto, ip, port in pod.ports:
            for used_proto, used_ip, used_port in node.used_ports:
                if (proto == used_proto and port == used_port
                        and (ip == used_ip or "0.0.0.0" in (ip, used_ip))):
                    return unschedulable(self.REASON)
        return None
