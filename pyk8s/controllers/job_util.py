"""Pure pieces of the Job controller (upstream pkg/controller/job): no I/O, easy to test.

- completed/failed index sets and their compressed text form ("1,3-5,7"),
- the exponential pod-creation backoff after failures (10 s doubling, capped at 6 minutes),
- podFailurePolicy and successPolicy matching with upstream's messages,
- the pod a Job creates from its template (labels, finalizer, index annotation, hostname, env).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT_ANNOTATION = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT_ANNOTATION = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

DEFAULT_BACKOFF = 10.0  # seconds (upstream DefaultJobPodFailureBackOff)
MAX_BACKOFF = 360.0  # 6 minutes (upstream MaxJobPodFailureBackOff)

# Condition reasons and messages, as upstream writes them.
REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
MESSAGE_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
REASON_DEADLINE = "DeadlineExceeded"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_MAX_FAILED_INDEXES = "MaxFailedIndexesExceeded"
MESSAGE_MAX_FAILED_INDEXES = "Job has exceeded the specified maximal number of failed indexes"
REASON_FAILED_INDEXES = "FailedIndexes"
MESSAGE_FAILED_INDEXES = "Job has failed indexes"
REASON_COMPLETIONS_REACHED = "CompletionsReached"
MESSAGE_COMPLETIONS_REACHED = "Reached expected number of succeeded pods"
REASON_SUCCESS_POLICY = "SuccessPolicy"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# ---- index sets -----------------------------------------------------------------------------


def parse_indexes(text: str | None, limit: int | None = None) -> set[int]:
    """"1,3-5,7" → {1, 3, 4, 5, 7}; malformed parts and indexes at or above `limit` are skipped."""
    result: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low_text, _, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if high_text else low
        except ValueError:
            continue
        for index in range(max(low, 0), high + 1 if limit is None else min(high + 1, limit)):
            result.add(index)
    return result


def format_indexes(indexes: Iterable[int]) -> str:
    """{1, 3, 4, 5, 7} → "1,3-5,7": three or more consecutive numbers become "first-last"."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}-{ordered[j]}")
        else:
            parts.extend(str(n) for n in ordered[i:j + 1])
        i = j + 1
    return ",".join(parts)


def pod_index(pod: Mapping) -> int | None:
    """A pod's completion index, from the annotation (or the label when the annotation is missing)."""
    meta = pod.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(COMPLETION_INDEX_KEY)
    if text is None:
        text = (meta.get("labels") or {}).get(COMPLETION_INDEX_KEY)
    try:
        index = int(text) if text is not None else None
    except ValueError:
        return None
    return index if index is not None and index >= 0 else None


def _int_annotation(pod: Mapping, key: str) -> int:
    try:
        return max(int(((pod.get("metadata") or {}).get("annotations") or {}).get(key, "0")), 0)
    except ValueError:
        return 0


def index_failure_count(pod: Mapping) -> int:
    return _int_annotation(pod, INDEX_FAILURE_COUNT_ANNOTATION)


def index_ignored_failure_count(pod: Mapping) -> int:
    return _int_annotation(pod, INDEX_IGNORED_FAILURE_COUNT_ANNOTATION)


# ---- backoff -------------------------------------------------------------------------------


def backoff_delay(consecutive_failures: int, base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """How long to wait after the n-th failure in a row before creating a replacement: 0, 10, 20, 40 ... 360."""
    if consecutive_failures <= 0:
        return 0.0
    # 2**(n-1) overflows nothing here: the exponent is bounded before the power is taken.
    exponent = min(consecutive_failures - 1, 32)
    return min(base * (2 ** exponent), cap)


def backoff_remaining(finished_pods: Iterable[tuple[float, bool]], now: float) -> float:
    """Seconds until new pods may be created, from (finish time, succeeded) of the job's finished pods.

    Failures count from the last success on (a success resets the backoff); the wait runs from the
    last failure's finish time."""
    consecutive = 0
    last_failure = None
    for finished_at, succeeded in sorted(finished_pods):
        if succeeded:
            consecutive, last_failure = 0, None
        else:
            consecutive += 1
            last_failure = finished_at
    if last_failure is None:
        return 0.0
    return max(last_failure + backoff_delay(consecutive) - now, 0.0)


def pod_finish_time(pod: Mapping) -> float:
    """When a finished pod finished: its latest container termination, else its Ready transition, else creation."""
    status = pod.get("status") or {}
    latest = None
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        finished = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (latest is None or finished > latest):
            latest = finished
    if latest is not None:
        return latest
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            ts = parse_time(cond.get("lastTransitionTime"))
            if ts is not None:
                return ts
    meta = pod.get("metadata") or {}
    return parse_time(meta.get("deletionTimestamp")) or parse_time(meta.get("creationTimestamp")) or 0.0


# ---- pod failure policy ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyMatch:
    action: str  # FailJob, FailIndex, Ignore or Count
    message: str


def _exit_code_matches(requirement: Mapping, code: int) -> bool:
    values = requirement.get("values") or []
    operator = requirement.get("operator")
    if operator == "In":
        return code in values
    if operator == "NotIn":
        return code not in values
    return False


def match_pod_failure_policy(policy: Mapping | None, pod: Mapping) -> PolicyMatch | None:
    """The first rule of spec.podFailurePolicy that a failed pod matches, with upstream's message; None if none
    does (the failure then counts towards backoffLimit as usual)."""
    if not policy:
        return None
    meta = pod.get("metadata") or {}
    pod_name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    status = pod.get("status") or {}
    for index, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        if action not in ("FailJob", "FailIndex", "Ignore", "Count"):
            continue  # an action this version does not know is skipped, as upstream does
        exit_codes = rule.get("onExitCodes")
        if exit_codes:
            container = exit_codes.get("containerName")
            statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
            for cs in statuses:
                if container and cs.get("name") != container:
                    continue
                terminated = (cs.get("state") or {}).get("terminated") or {}
                code = terminated.get("exitCode")
                # Exit code 0 never matches a rule: a container that succeeded is not why a pod failed.
                if code is None or code == 0:
                    continue
                if _exit_code_matches(exit_codes, code):
                    return PolicyMatch(action, f"Container {cs.get('name')} for pod {pod_name} failed with exit "
                                               f"code {code} matching {action} rule at index {index}")
            continue
        for pattern in rule.get("onPodConditions") or ():
            wanted_status = pattern.get("status") or "True"
            for cond in status.get("conditions") or ():
                if cond.get("type") == pattern.get("type") and cond.get("status") == wanted_status:
                    return PolicyMatch(action, f"Pod {pod_name} has condition {cond.get('type')} matching "
                                               f"{action} rule at index {index}")
    return None


# ---- success policy ------------------------------------------------------------------------


def match_success_policy(policy: Mapping | None, succeeded: set[int], completions: int) -> str | None:
    """The SuccessCriteriaMet message ("Matched rules at index N") for the first rule the succeeded
    indexes satisfy, or None."""
    if not policy:
        return None
    for index, rule in enumerate(policy.get("rules") or ()):
        wanted_text = rule.get("succeededIndexes")
        count = rule.get("succeededCount")
        if wanted_text is not None:
            wanted = parse_indexes(wanted_text, completions)
            matched = succeeded & wanted
            if count is None and wanted and matched == wanted:
                return f"Matched rules at index {index}"
            if count is not None and len(matched) >= count:
                return f"Matched rules at index {index}"
        elif count is not None and len(succeeded) >= count:
            return f"Matched rules at index {index}"
    return None


# ---- conditions ------------------------------------------------------------------------------


def find_condition(status: Mapping, type_: str) -> dict | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def has_true_condition(status: Mapping, type_: str) -> bool:
    cond = find_condition(status, type_)
    return cond is not None and cond.get("status") == "True"


def is_job_finished(job: Mapping) -> bool:
    status = job.get("status") or {}
    return has_true_condition(status, "Complete") or has_true_condition(status, "Failed")


def set_condition(status: dict, type_: str, cond_status: str, reason: str, message: str, now: float) -> bool:
    """Upstream ensureJobConditionStatus: add or update a condition; returns whether anything changed.
    A False condition that does not exist yet is not added."""
    conditions = status.setdefault("conditions", [])
    existing = find_condition(status, type_)
    if existing is None:
        if cond_status != "True":
            if not conditions:
                status.pop("conditions")
            return False
        conditions.append({"type": type_, "status": cond_status, "lastProbeTime": rfc3339(now),
                           "lastTransitionTime": rfc3339(now), "reason": reason, "message": message})
        return True
    if existing.get("status") == cond_status and existing.get("reason") == reason \
            and existing.get("message") == message:
        return False
    if existing.get("status") != cond_status:
        existing["lastTransitionTime"] = rfc3339(now)
    existing.update({"status": cond_status, "reason": reason, "message": message, "lastProbeTime": rfc3339(now)})
    return True


# ---- pods from the template ------------------------------------------------------------------


def is_indexed(job: Mapping) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def pod_from_template(job: Mapping, index: int | None, index_failures: int = 0, ignored_failures: int = 0) -> dict:
    """The pod the Job controller creates: the template with a controller ownerReference and the tracking
    finalizer; for Indexed jobs also the index annotation and label, the hostname `<job>-<index>` and the
    JOB_COMPLETION_INDEX env var (downward API on the annotation) in every container."""
    meta = job["metadata"]
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    name = meta["name"]
    generate = f"{name}-"
    if index is not None:
        generate = f"{name}-{index}-"
        annotations[COMPLETION_INDEX_KEY] = str(index)
        labels[COMPLETION_INDEX_KEY] = str(index)
        if (job.get("spec") or {}).get("backoffLimitPerIndex") is not None:
            annotations[INDEX_FAILURE_COUNT_ANNOTATION] = str(index_failures)
            if ignored_failures:
                annotations[INDEX_IGNORED_FAILURE_COUNT_ANNOTATION] = str(ignored_failures)
        spec.setdefault("hostname", f"{name}-{index}")
        env_var = {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_KEY}']"}}}
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or ():
                env = container.setdefault("env", [])
                if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                    env.append(dict(env_var))
    pod_meta: dict = {"generateName": generate, "namespace": meta.get("namespace"), "labels": labels,
                      "finalizers": [*(tmeta.get("finalizers") or ()), JOB_TRACKING_FINALIZER],
                      "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": meta["uid"],
                                           "controller": True, "blockOwnerDeletion": True}]}
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
