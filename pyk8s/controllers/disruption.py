"""The disruption controller (upstream pkg/controller/disruption): keeps every PodDisruptionBudget's
status current so the eviction subresource can decide.

For a PDB, its pods are those in its namespace its selector matches (an empty selector matches
none). minAvailable as an integer wants that many healthy out of the pods there are; a percentage,
and maxUnavailable in either form, are scaled against the pods the owning controllers want (the
replicas of each ReplicationController, ReplicaSet, Deployment or StatefulSet owning a matched
pod, counted once per controller). A pod counts as healthy when it is Ready, not being deleted and
not recently evicted: an eviction records the pod in status.disruptedPods, and the record is dropped
once the pod is being deleted or two minutes pass without it going. A pod whose eviction marked it
DisruptionTarget=True but which is still not being deleted two minutes later has that condition set
back to False.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api.disruption import (
    DISRUPTION_ALLOWED,
    DISRUPTION_TARGET,
    SYNC_FAILED,
    IntOrPercentError,
    disruption_allowed_condition,
    is_pod_ready,
    scaled_value,
    set_condition,
)
from ..api.validation import selector_matches
from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    EventRecorder,
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_not_found,
    object_key,
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter

log = logging.getLogger("pyk8s.controllers.disruption")

NAME = "disruption-controller"
# How long an eviction's entry in disruptedPods keeps the pod out of the healthy count.
DELETION_TIMEOUT = 120.0
# How long a pod may carry DisruptionTarget=True without being deleted before the condition is cleared.
STALE_POD_DISRUPTION_TIMEOUT = 120.0
UNMANAGED_PODS_MESSAGE = (
    "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, "
    "the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account "
    "for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.")


class SyncError(Exception):
    """The PDB's status cannot be computed; the controller reports it in a SyncFailed condition."""


# ---- the arithmetic (pure) ------------------------------------------------------------------


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def selects(pdb: Mapping, pod: Mapping) -> bool:
    selector = (pdb.get("spec") or {}).get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    return selector_matches(selector, (pod.get("metadata") or {}).get("labels") or {})


def expected_and_desired(spec: Mapping, pod_count: int, expected_scale: Callable[[], int]) -> tuple[int, int]:
    """(expectedPods, desiredHealthy) as upstream getExpectedPodCount; `expected_scale` is asked only
    when the spec needs the controllers' scale."""
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    try:
        if max_unavailable is not None:
            expected = expected_scale()
            return expected, max(0, expected - scaled_value(max_unavailable, expected, round_up=True))
        if min_available is not None:
            if isinstance(min_available, int) and not isinstance(min_available, bool):
                return pod_count, min_available
            expected = expected_scale()
            return expected, scaled_value(min_available, expected, round_up=True)
    except IntOrPercentError as exc:
        raise SyncError(str(exc)) from None
    return 0, 0


def live_disruptions(disrupted: Mapping[str, str] | None, pods: Iterable[Mapping], now: float) \
        -> tuple[dict[str, str], float | None, list[Mapping]]:
    """The disruptedPods entries still pending (pod present, not yet being deleted, under two minutes
    old), the earliest time one of them expires, and the pods whose eviction did not delete them."""
    kept: dict[str, str] = {}
    recheck: float | None = None
    overdue: list[Mapping] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or not disrupted or meta.get("name") not in disrupted:
            continue
        stamp = disrupted[meta["name"]]
        when = parse_time(stamp)
        expires = (when or 0.0) + DELETION_TIMEOUT
        if expires < now:
            overdue.append(pod)
            continue
        kept[meta["name"]] = stamp
        recheck = expires if recheck is None else min(recheck, expires)
    return kept, recheck, overdue


def count_healthy(pods: Iterable[Mapping], disrupted: Mapping[str, str], now: float) -> int:
    healthy = 0
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        when = parse_time(disrupted.get(meta.get("name", ""))) if meta.get("name") in disrupted else None
        if when is not None and when + DELETION_TIMEOUT > now:
            continue
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def next_status(pdb: Mapping, current_healthy: int, desired_healthy: int, expected: int,
                disrupted: dict[str, str], now: float) -> dict | None:
    """The PDB's new status (upstream updatePdbStatus), or None when the stored one is already it."""
    allowed = current_healthy - desired_healthy
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = dict(pdb.get("status") or {})
    generation = (pdb.get("metadata") or {}).get("generation", 0)
    new = {"currentHealthy": current_healthy, "desiredHealthy": desired_healthy, "expectedPods": expected,
           "disruptionsAllowed": allowed, "observedGeneration": generation,
           "conditions": copy.deepcopy(status.get("conditions") or [])}
    if disrupted:
        new["disruptedPods"] = dict(disrupted)
    disruption_allowed_condition(new, rfc3339(now))
    comparable = ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed", "observedGeneration")
    if all(status.get(k, 0) == new[k] for k in comparable) and (status.get("disruptedPods") or {}) == disrupted \
            and _same_conditions(status.get("conditions") or [], new["conditions"]):
        return None
    return new


def failed_status(pdb: Mapping, error: str, now: float) -> dict:
    """upstream failSafe: no disruptions allowed, and why."""
    status = copy.deepcopy(dict(pdb.get("status") or {}))
    status["disruptionsAllowed"] = 0
    status["conditions"] = set_condition(list(status.get("conditions") or []), {
        "type": DISRUPTION_ALLOWED, "status": "False", "reason": SYNC_FAILED, "message": error,
        "observedGeneration": status.get("observedGeneration", 0)}, rfc3339(now))
    return status


def _same_conditions(old: list[dict], new: list[dict]) -> bool:
    def key(conditions: list[dict]) -> list[tuple]:
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message") or "",
                       c.get("observedGeneration", 0)) for c in conditions)

    return key(old) == key(new)


def stale_disruption_wait(pod: Mapping, now: float) -> float | None:
    """Seconds until a pod's DisruptionTarget=True condition counts as stale (0: it does now), or None
    when there is nothing to clear: no such condition, the pod is going or finished, or the kubelet set
    it (upstream nonTerminatingPodHasStaleDisruptionCondition)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == DISRUPTION_TARGET), None)
    if condition is None or condition.get("status") != "True" or condition.get("reason") == "TerminationByKubelet":
        return None
    since = parse_time(condition.get("lastTransitionTime")) or 0.0
    return max(0.0, since + STALE_POD_DISRUPTION_TIMEOUT - now)


def controller_of(obj: Mapping) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


# ---- the controller -------------------------------------------------------------------------


@dataclass
class _ScaleSources:
    """Listers of the controllers whose replicas give a PDB's expected pod count, by kind."""

    informers: dict[str, Any] = field(default_factory=dict)

    def find(self, ref: Mapping, namespace: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller a pod's controllerRef names, walking a ReplicaSet up to
        its Deployment as upstream's finders do; None when it is none of these."""
        kind = ref.get("kind")
        if kind == "ReplicaSet":
            rs = self._owned(("ReplicaSet", "apps"), ref, namespace)
            if rs is None:
                return None
            parent = controller_of(rs)
            if parent is not None and parent.get("kind") == "Deployment":
                return self._scale(self._owned(("Deployment", "apps"), parent, namespace))
            return self._scale(rs)
        for kind_group in (("ReplicationController", ""), ("StatefulSet", "apps"), ("Deployment", "apps")):
            if kind == kind_group[0]:
                return self._scale(self._owned(kind_group, ref, namespace))
        return None

    def _owned(self, kind_group: tuple[str, str], ref: Mapping, namespace: str) -> dict | None:
        api_version = ref.get("apiVersion") or ""
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        if group != kind_group[1]:
            return None
        obj = self.informers[kind_group[0]].get(f"{namespace}/{ref.get('name')}")
        if obj is None or obj["metadata"].get("uid") != ref.get("uid"):
            return None
        return obj

    @staticmethod
    def _scale(obj: Mapping | None) -> tuple[str, int] | None:
        if obj is None:
            return None
        return obj["metadata"]["uid"], int((obj.get("spec") or {}).get("replicas", 1))


class DisruptionController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 clock: Clock = REAL_CLOCK, wall_clock: Callable[[], float] = time.time):
        self.client = client
        self.recorder = recorder
        self.wall = wall_clock
        self.pdbs = factory.informer("poddisruptionbudgets")
        self.pods = factory.informer("pods")
        self.sources = _ScaleSources({
            "ReplicationController": factory.informer("replicationcontrollers"),
            "ReplicaSet": factory.informer("replicasets"),
            "Deployment": factory.informer("deployments"),
            "StatefulSet": factory.informer("statefulsets"),
        })
        self.queue: WorkQueue[str] = WorkQueue(NAME, rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        waits = [i.wait_for_sync for i in (self.pdbs, self.pods, *self.sources.informers.values())]
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=2, queue=self.queue, clock=clock,
                                                      wait_for=waits)
        self.stale_queue: WorkQueue[str] = WorkQueue(f"{NAME}-stale-pods",
                                                     rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        self.stale_controller: Controller[str] = Controller(f"{NAME}-stale-pods", self.sync_stale_pod, workers=1,
                                                            queue=self.stale_queue, clock=clock,
                                                            wait_for=[self.pods.wait_for_sync])
        self.pdbs.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                              on_delete=self._enqueue)
        self.pods.add_handler(on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod)
        for informer in self.sources.informers.values():
            informer.add_handler(on_update=self._on_scale_update)

    @classmethod
    def from_context(cls, ctx: Any) -> DisruptionController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    # -- events --

    def _enqueue(self, pdb: dict | DeletedFinalStateUnknown) -> None:
        if isinstance(pdb, DeletedFinalStateUnknown):
            self.queue.add(pdb.key)
            return
        self.queue.add(object_key(pdb))

    def _enqueue_for(self, pod: dict) -> None:
        for pdb in self.pdbs.list(pod["metadata"].get("namespace", "")):
            if selects(pdb, pod):
                self.queue.add(object_key(pdb))

    def _on_pod(self, pod: dict | DeletedFinalStateUnknown) -> None:
        if isinstance(pod, DeletedFinalStateUnknown):
            pod = pod.obj
            if not isinstance(pod, dict):
                return
        self._enqueue_for(pod)
        self._watch_stale(pod)

    def _watch_stale(self, pod: dict) -> None:
        wait = stale_disruption_wait(pod, self.wall())
        if wait is not None:
            self.stale_queue.add_after(object_key(pod), wait)

    def _on_pod_update(self, old: dict, new: dict) -> None:
        self._enqueue_for(new)
        self._watch_stale(new)
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            self._enqueue_for(old)

    def _on_scale_update(self, old: dict, new: dict) -> None:
        if (old.get("spec") or {}).get("replicas") == (new.get("spec") or {}).get("replicas"):
            return
        namespace = new["metadata"].get("namespace", "")
        uid = new["metadata"].get("uid")
        for pod in self.pods.list(namespace):
            ref = controller_of(pod)
            owner = self.sources.find(ref, namespace) if ref else None
            if ref and (ref.get("uid") == uid or (owner and owner[0] == uid)):
                self._enqueue_for(pod)

    # -- sync --

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.run(), name=NAME)
            group.create_task(self.stale_controller.run(), name=f"{NAME}-stale-pods")

    async def sync_stale_pod(self, key: str) -> None:
        """Set a stale DisruptionTarget=True back to False: the eviction that set it did not delete the pod."""
        pod = self.pods.get(key)
        if pod is None:
            return
        now = self.wall()
        wait = stale_disruption_wait(pod, now)
        if wait is None:
            return
        if wait > 0:
            raise RequeueAfter(wait)
        namespace, name = split_key(key)
        patch = {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
                 "status": {"conditions": [{"type": DISRUPTION_TARGET, "status": "False",
                                            "lastTransitionTime": rfc3339(now)}]}}
        log.info("disruption: clearing the stale DisruptionTarget condition of pod %s", key)
        try:
            await self.client.patch_status("pods", name, patch, namespace, patch_type="strategic")
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise

    def _expected_scale(self, pdb: dict, pods: list[dict]) -> int:
        scales: dict[str, int] = {}
        unmanaged = []
        namespace = pdb["metadata"].get("namespace", "")
        for pod in pods:
            ref = controller_of(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = self.sources.find(ref, namespace)
            if found is None:
                raise SyncError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[ref.get("uid", "")] = found[1]
        if unmanaged and self.recorder is not None:
            self.recorder.event(pdb, "Warning", "UnmanagedPods",
                                UNMANAGED_PODS_MESSAGE.format(selector=(pdb.get("spec") or {}).get("selector")))
        return sum(scales.values())

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        now = self.wall()
        namespace = pdb["metadata"].get("namespace", "")
        pods = [p for p in self.pods.list(namespace) if selects(pdb, p)]
        if not pods and self.recorder is not None:
            self.recorder.event(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired = expected_and_desired(pdb.get("spec") or {}, len(pods),
                                                     lambda: self._expected_scale(pdb, pods))
        except SyncError as exc:
            log.warning("disruption: PDB %s: %s", key, exc)
            await self._write(pdb, failed_status(pdb, str(exc), now))
            return
        disrupted, recheck, overdue = live_disruptions((pdb.get("status") or {}).get("disruptedPods"), pods, now)
        for pod in overdue:
            log.info("disruption: pod %s was expected to be deleted but it wasn't, updating PDB %s",
                     object_key(pod), key)
            if self.recorder is not None:
                self.recorder.event(pod, "Warning", "NotDeleted",
                                    f"Pod was expected by PDB {key} to be deleted but it wasn't")
        status = next_status(pdb, count_healthy(pods, disrupted, now), desired, expected, disrupted, now)
        if status is not None:
            await self._write(pdb, status)
        if recheck is not None:
            raise RequeueAfter(max(recheck - now, 0.0) + 0.5)

    async def _write(self, pdb: dict, status: dict) -> None:
        updated = copy.deepcopy(pdb)
        updated["status"] = status
        try:
            await self.client.update_status(updated)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise  # a conflict retries with the informer's newer copy
