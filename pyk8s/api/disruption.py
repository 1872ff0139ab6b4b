"""PodDisruptionBudget facts shared by the eviction subresource and the disruption controller
(upstream pkg/apis/policy and pkg/api/v1/pod helpers)."""

from __future__ import annotations

from collections.abc import Mapping

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
DISRUPTION_TARGET = "DisruptionTarget"
ALWAYS_ALLOW = "AlwaysAllow"
IF_HEALTHY_BUDGET = "IfHealthyBudget"


def is_pod_ready(pod: Mapping) -> bool:
    """Upstream podutil.IsPodReady: the Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def set_condition(conditions: list[dict], new: dict, now: str) -> list[dict]:
    """apimachinery meta.SetStatusCondition: lastTransitionTime moves only when status changes."""
    out = []
    found = False
    for condition in conditions:
        if condition.get("type") != new["type"]:
            out.append(condition)
            continue
        found = True
        merged = dict(condition)
        if merged.get("status") != new["status"]:
            merged["lastTransitionTime"] = now
        merged.update({k: v for k, v in new.items() if k != "lastTransitionTime"})
        out.append(merged)
    if not found:
        out.append({**new, "lastTransitionTime": now})
    return out


def disruption_allowed_condition(status: dict, now: str) -> None:
    """Upstream pdbhelper.UpdateDisruptionAllowedCondition, in place on a PDB status."""
    allowed = status.get("disruptionsAllowed", 0) > 0
    condition = {"type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
                 "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "message": "",
                 "observedGeneration": status.get("observedGeneration", 0)}
    status["conditions"] = set_condition(list(status.get("conditions") or []), condition, now)


class IntOrPercentError(ValueError):
    pass


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """apimachinery intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, bool):
        raise IntOrPercentError(f"invalid value for IntOrString: invalid type: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise IntOrPercentError(f"invalid value for IntOrString: invalid value {value!r}") from None
        return -(-percent * total // 100) if round_up else percent * total // 100
    raise IntOrPercentError("invalid value for IntOrString: invalid type: string is not a percentage")
