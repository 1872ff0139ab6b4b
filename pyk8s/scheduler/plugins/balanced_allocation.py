"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in equal fractions.

Like upstream it counts actual requests (not the non-zero defaults NodeResourcesFit scores with):
score = (1 - |cpu fraction - memory fraction| / 2) * 100, each fraction capped at 1.
"""

from __future__ import annotations

from ..cache import NodeInfo
from ..resources import CPU, MEMORY
from .base import MAX_NODE_SCORE, CycleState, PodInfo


def _balanced(cpu_used: int, cpu_alloc: int, mem_used: int, mem_alloc: int) -> int:
    fractions = [min(used / alloc, 1.0) for used, alloc in ((cpu_used, cpu_alloc), (mem_used, mem_alloc)) if alloc]
    if len(fractions) < 2:
        return MAX_NODE_SCORE  # one resource or none: nothing to balance
    return int((1 - abs(fractions[0] - fractions[1]) / 2) * MAX_NODE_SCORE)


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    weight = 1
    events = frozenset({"NodeAdd", "NodeUpdate", "AssignedPodDelete"})

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        alloc, used = node.allocatable, node.requested
        return _balanced(used.get(CPU, 0) + pod.requests.get(CPU, 0), alloc.get(CPU, 0),
                         used.get(MEMORY, 0) + pod.requests.get(MEMORY, 0), alloc.get(MEMORY, 0))

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> dict[str, int]:
        pod_cpu, pod_mem = pod.requests.get(CPU, 0), pod.requests.get(MEMORY, 0)
        out = {}
        for n in nodes:
            alloc, used = n.allocatable, n.requested
            cpu, mem = alloc.get(CPU, 0), alloc.get(MEMORY, 0)
            if not cpu or not mem:
                out[n.name] = self.score(state, pod, n)
                continue
            cpu_fraction = min((used.get(CPU, 0) + pod_cpu) / cpu, 1.0)
            mem_fraction = min((used.get(MEMORY, 0) + pod_mem) / mem, 1.0)
            out[n.name] = int((1 - abs(cpu_fraction - mem_fraction) / 2) * MAX_NODE_SCORE)
        return out

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        return None
