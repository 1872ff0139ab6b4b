"""The pure arithmetic of Deployments (upstream pkg/controller/deployment/util): no I/O.

Surge and unavailability bounds, revisions and their annotations, which ReplicaSet is the new one,
proportional scaling during a rollout, and the status and conditions a Deployment reports.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from .history import compute_hash

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
MAX_REVISION_HISTORY_CHARS = 2000

# Annotations a Deployment does not copy onto its ReplicaSets (upstream skipCopyAnnotation).
_NOT_COPIED = frozenset({LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
                         DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION})

# Condition types and reasons (upstream deployment/util).
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MAX_INT32 = 2**31 - 1


def now_rfc3339(now: float | None = None) -> str:
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# ---- int-or-percent ---------------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of total rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from None
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable rounds down; both zero means unavailable 1."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def replicas_of(obj: Mapping) -> int:
    spec = obj.get("spec") or {}
    value = spec.get("replicas")
    return 1 if value is None else int(value)


def is_rolling_update(d: Mapping) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _rolling(d: Mapping) -> Mapping:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Mapping) -> int:
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(_rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas_of(d))[0]


def max_unavailable(d: Mapping) -> int:
    replicas = replicas_of(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    unavailable = resolve_fenceposts(_rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas)[1]
    return min(unavailable, replicas)


# ---- ReplicaSet sums and ordering --------------------------------------------------------


def rs_status(rs: Mapping | None, field: str) -> int:
    return int(((rs or {}).get("status") or {}).get(field) or 0)


def spec_replicas_sum(rss: Iterable[Mapping | None]) -> int:
    return sum(replicas_of(rs) for rs in rss if rs is not None)


def status_sum(rss: Iterable[Mapping | None], field: str) -> int:
    return sum(rs_status(rs, field) for rs in rss if rs is not None)


def active(rss: Iterable[Mapping | None]) -> list[Mapping]:
    return [rs for rs in rss if rs is not None and replicas_of(rs) > 0]


def _created(rs: Mapping) -> tuple[str, str]:
    meta = rs.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("name") or ""


def by_creation(rss: Iterable[Mapping]) -> list[Mapping]:
    return sorted(rss, key=_created)


def revision_of(obj: Mapping | None) -> int:
    value = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def max_revision(rss: Iterable[Mapping]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


# ---- templates ---------------------------------------------------------------------------


def template_without_hash(template: Mapping) -> dict:
    template = copy.deepcopy(dict(template or {}))
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return template


def _without_empty(value: object) -> object:
    """Drop empty maps and lists: upstream compares templates with Semantic.DeepEqual, where an empty
    collection equals a missing one and a struct field such as `resources: {}` is never missing."""
    if isinstance(value, dict):
        pruned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def equal_ignore_hash(a: Mapping, b: Mapping) -> bool:
    return _without_empty(template_without_hash(a)) == _without_empty(template_without_hash(b))


def pod_template_hash(template: Mapping, collision_count: int | None) -> str:
    return compute_hash(template, collision_count)


def find_new_replica_set(d: Mapping, rss: Iterable[Mapping]) -> Mapping | None:
    """The oldest ReplicaSet whose template equals the Deployment's, ignoring the hash label."""
    template = (d.get("spec") or {}).get("template") or {}
    for rs in by_creation(rss):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


# ---- annotations -------------------------------------------------------------------------


def copy_deployment_annotations(d: Mapping, rs: dict) -> bool:
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key in _NOT_COPIED or annotations.get(key) == value:
            continue
        annotations[key] = value
        changed = True
    return changed


def set_replicas_annotations(rs: dict, desired: int, max_replicas: int) -> bool:
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)), (MAX_REPLICAS_ANNOTATION, str(max_replicas))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Mapping, desired: int, max_replicas: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return (annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired)
            or annotations.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas))


def set_new_replica_set_annotations(d: Mapping, rs: dict, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations, raise the revision (keeping the old ones in revision-history when a
    rollback reuses this ReplicaSet) and, for a ReplicaSet about to be created, the replica annotations."""
    changed = copy_deployment_annotations(d, rs)
    annotations = rs["metadata"]["annotations"]
    had_revision = REVISION_ANNOTATION in annotations
    old_revision = revision_of(rs)
    if old_revision < new_revision:
        annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if had_revision:
            history = [r for r in annotations.get(REVISION_HISTORY_ANNOTATION, "").split(",") if r]
            history.append(str(old_revision))
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            annotations[REVISION_HISTORY_ANNOTATION] = ",".join(history)
    if not exists:
        replicas = replicas_of(d)
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)):
            changed = True
    return changed


def is_saturated(d: Mapping, rs: Mapping | None) -> bool:
    if rs is None:
        return False
    desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS_ANNOTATION)
    replicas = replicas_of(d)
    return desired == str(replicas) and replicas_of(rs) == replicas and rs_status(rs, "availableReplicas") == replicas


# ---- replica arithmetic ------------------------------------------------------------------


def new_rs_new_replicas(d: Mapping, all_rss: Iterable[Mapping | None], new_rs: Mapping | None) -> int:
    """How many replicas the new ReplicaSet may have now."""
    replicas = replicas_of(d)
    if not is_rolling_update(d):
        return replicas
    new_count = replicas_of(new_rs) if new_rs is not None else 0
    current = spec_replicas_sum(all_rss)
    max_total = replicas + max_surge(d)
    if current >= max_total:
        return new_count
    return new_count + min(max_total - current, replicas - new_count)


def old_scale_down_budget(d: Mapping, all_rss: list[Mapping], new_rs: Mapping | None) -> int:
    """reconcileOldReplicaSets' maxScaledDown: how many old replicas may go, counting unavailable new ones."""
    min_available = replicas_of(d) - max_unavailable(d)
    new_unavailable = (replicas_of(new_rs) - rs_status(new_rs, "availableReplicas")) if new_rs is not None else 0
    return spec_replicas_sum(all_rss) - min_available - new_unavailable


def cleanup_unhealthy_plan(old_rss: list[Mapping], budget: int) -> dict[str, int]:
    """Old ReplicaSets' new sizes after dropping their unavailable replicas, oldest first, within budget."""
    plan: dict[str, int] = {}
    total = 0
    for rs in by_creation(old_rss):
        if total >= budget:
            break
        replicas = replicas_of(rs)
        available = rs_status(rs, "availableReplicas")
        if replicas == 0 or replicas == available:
            continue
        drop = min(budget - total, replicas - available)
        if drop <= 0:
            continue
        plan[rs["metadata"]["name"]] = replicas - drop
        total += drop
    return plan


def old_rolling_scale_down_plan(d: Mapping, all_rss: list[Mapping], old_rss: list[Mapping]) -> dict[str, int]:
    """scaleDownOldReplicaSetsForRollingUpdate: shrink old ReplicaSets, oldest first, keeping minAvailable."""
    min_available = replicas_of(d) - max_unavailable(d)
    available = status_sum(all_rss, "availableReplicas")
    if available <= min_available:
        return {}
    to_scale = available - min_available
    plan: dict[str, int] = {}
    done = 0
    for rs in by_creation(old_rss):
        if done >= to_scale:
            break
        replicas = replicas_of(rs)
        if replicas == 0:
            continue
        drop = min(replicas, to_scale - done)
        plan[rs["metadata"]["name"]] = replicas - drop
        done += drop
    return plan


def find_active_or_latest(new_rs: Mapping | None, old_rss: list[Mapping]) -> Mapping | None:
    """The one ReplicaSet to scale when at most one has replicas: that one, else the newest."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=_created, reverse=True)
    live = active([*newest_first, new_rs])
    if not live:
        return new_rs if new_rs is not None else newest_first[0]
    if len(live) == 1:
        return live[0]
    return None


def _max_replicas_annotation(rs: Mapping) -> int | None:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _round_half_away(value: float) -> int:
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def replica_set_fraction(rs: Mapping, d: Mapping) -> int:
    """How many replicas `rs` gains (or loses) when the Deployment's size changes, in proportion to its size."""
    replicas = replicas_of(d)
    if replicas == 0:
        return -replicas_of(rs)
    deployment_max = replicas + max_surge(d)
    before = _max_replicas_annotation(rs)
    if before is None:
        before = int(((d.get("status") or {}).get("replicas")) or 0)
    if before == 0:
        return 0
    return _round_half_away(replicas_of(rs) * deployment_max / before) - replicas_of(rs)


def proportion(rs: Mapping, d: Mapping, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Mapping, rss: list[Mapping]) -> dict[str, int]:
    """New sizes for the active ReplicaSets of a rolling Deployment that was resized mid-rollout."""
    live = active(rss)
    replicas = replicas_of(d)
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - spec_replicas_sum(live)
    # Bigger first; ties go to the newer ReplicaSet when growing and to the older one when shrinking.
    if to_add > 0:
        live = sorted(live, key=lambda rs: _created(rs), reverse=True)
        live = sorted(live, key=lambda rs: -replicas_of(rs))
    elif to_add < 0:
        live = sorted(live, key=lambda rs: (-replicas_of(rs), _created(rs)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in live:
        name = rs["metadata"]["name"]
        if to_add != 0:
            share = proportion(rs, d, to_add, added)
            sizes[name] = replicas_of(rs) + share
            added += share
        else:
            sizes[name] = replicas_of(rs)
    if live and to_add != 0:
        first = live[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


# ---- conditions and status ---------------------------------------------------------------


def get_condition(status: Mapping, type_: str) -> dict | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: float | None = None) -> dict:
    stamp = now_rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def set_condition(status: dict, condition: dict) -> None:
    """Upstream SetDeploymentCondition: same status and reason is no change; same status keeps the
    transition time."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] and \
            current.get("reason") == condition["reason"]:
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [*(c for c in status.get("conditions") or () if c.get("type") != condition["type"]),
                            condition]


def remove_condition(status: dict, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Mapping) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def calculate_status(d: Mapping, all_rss: list[Mapping | None], new_rs: Mapping | None,
                     now: float | None = None) -> dict:
    rss = [rs for rs in all_rss if rs is not None]
    available = status_sum(rss, "availableReplicas")
    total = spec_replicas_sum(rss)
    old = d.get("status") or {}
    status: dict = {
        "observedGeneration": (d.get("metadata") or {}).get("generation", 0),
        "replicas": status_sum(rss, "replicas"),
        "updatedReplicas": rs_status(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": status_sum(rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(d: Mapping, status: Mapping) -> bool:
    replicas = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int((d.get("metadata") or {}).get("generation") or 0))


def deployment_progressing(d: Mapping, status: Mapping) -> bool:
    old = d.get("status") or {}

    def num(s: Mapping, k: str) -> int:
        return int(s.get(k) or 0)

    old_old = num(old, "replicas") - num(old, "updatedReplicas")
    new_old = num(status, "replicas") - num(status, "updatedReplicas")
    return (num(status, "updatedReplicas") > num(old, "updatedReplicas") or new_old < old_old
            or num(status, "readyReplicas") > num(old, "readyReplicas")
            or num(status, "availableReplicas") > num(old, "availableReplicas"))


def deployment_timed_out(d: Mapping, status: Mapping, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if condition.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_rfc3339(condition.get("lastUpdateTime"))
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    return since is not None and since + deadline < now
