"""SchedulingGates (PreEnqueue): a pod with spec.schedulingGates stays out of the active queue."""

from __future__ import annotations

from collections.abc import Mapping

from .base import Status, unresolvable

GATED_REASON = "SchedulingGated"
GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


class SchedulingGates:
    name = "SchedulingGates"
    events = frozenset({"PodUpdate"})

    def pre_enqueue(self, pod: Mapping) -> Status | None:
        gates = [g.get("name", "") for g in (pod.get("spec") or {}).get("schedulingGates") or ()]
        if not gates:
            return None
        return unresolvable(f"waiting for scheduling gates: [{' '.join(gates)}]")
