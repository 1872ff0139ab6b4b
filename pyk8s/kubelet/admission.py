"""Pod admission under node pressure (upstream's eviction manager Admit, a kubelet lifecycle admit handler).

Before a pod starts on a node under pressure the kubelet may refuse it: under memory pressure alone BestEffort pods
are refused unless they tolerate the memory-pressure taint; under disk or PID pressure every pod is. Critical pods
(static, mirror, or at system-critical priority) are always admitted. A refused pod is reported Failed with reason
`Evicted` and the message `The node had condition: [MemoryPressure]. `.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..api.quota import qos_class
from .eviction.manager import is_critical_pod
from .eviction.ranking import NODE_CONDITION_MESSAGE, REASON
from .eviction.thresholds import MEMORY_PRESSURE, PRESSURE_CONDITIONS

MEMORY_PRESSURE_TAINT = {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}


@dataclass(frozen=True)
class AdmitResult:
    admit: bool
    reason: str = ""
    message: str = ""


def _tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key") and toleration["key"] != taint["key"]:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and not toleration.get("value")


def admit(pod: dict, conditions: Mapping[str, bool] | Iterable[str]) -> AdmitResult:
    """Whether `pod` may start given the node's pressure conditions (`EvictionManager.conditions()` or names)."""
    if isinstance(conditions, Mapping):
        active = [c for c in PRESSURE_CONDITIONS if conditions.get(c)]
    else:
        names = set(conditions)
        active = [c for c in PRESSURE_CONDITIONS if c in names]
    if not active or is_critical_pod(pod):
        return AdmitResult(True)
    spec = pod.get("spec") or {}
    if active == [MEMORY_PRESSURE]:
        if qos_class(spec) != "BestEffort":
            return AdmitResult(True)
        if any(_tolerates(t, MEMORY_PRESSURE_TAINT) for t in spec.get("tolerations") or []):
            return AdmitResult(True)
    return AdmitResult(False, REASON, NODE_CONDITION_MESSAGE.format(" ".join(active)))
