"""The ReplicaSet controller (upstream pkg/controller/replicaset), also serving ReplicationControllers.

For every ReplicaSet it lists the pods in its namespace from the pod informer, claims them (adopts
matching orphans with a controller ownerReference, releases owned pods that stopped matching), then
creates missing pods from spec.template in slow-start batches (1, 2, 4, ...) or deletes the surplus,
worst-ranked pods first. Expectations record the creates and deletes in flight so that informer lag
never makes a later sync act twice; they are satisfied by informer events and expire after 5 minutes.
Each sync writes status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
observedGeneration and the ReplicaFailure condition) through the /status subresource.

ReplicationControllers (core/v1) run on the same code; their selector is a plain label map.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..client import (
    NORMAL,
    WARNING,
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    EventRecorder,
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
    object_key,
)
from ..client.workqueue import REAL_CLOCK, Clock
from .ownership import (
    CONTROLLER_INDEX,
    claim_candidates,
    controller_index,
    controller_ref,
    label_selector_selects,
)

log = logging.getLogger("pyk8s.controllers.replicaset")

BURST_REPLICAS = 500  # most creates or deletes per sync (upstream BurstReplicas)
EXPECTATIONS_TIMEOUT = 300.0  # seconds (upstream ExpectationsTimeout)
SLOW_START_INITIAL_BATCH = 1
DEFAULT_WORKERS = 5  # upstream --concurrent-replicaset-syncs


@dataclass(frozen=True)
class WorkloadKind:
    """What differs between ReplicaSets and ReplicationControllers."""

    controller_name: str
    resource: str
    api_version: str
    kind: str
    selector_matches: Callable[[object, Mapping[str, str]], bool]


def _map_selector_matches(selector: object, labels: Mapping[str, str]) -> bool:
    """A ReplicationController's selector: a plain map; an empty or missing one matches nothing."""
    if not isinstance(selector, dict) or not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


REPLICASET = WorkloadKind("replicaset-controller", "replicasets", "apps/v1", "ReplicaSet", label_selector_selects)
REPLICATIONCONTROLLER = WorkloadKind("replicationcontroller-controller", "replicationcontrollers", "v1",
                                     "ReplicationController", _map_selector_matches)


# ---- small helpers ------------------------------------------------------------------------


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_labels(pod: Mapping) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def is_pod_active(pod: Mapping) -> bool:
    """Upstream FilterActivePods: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def ready_condition(pod: Mapping) -> dict | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond
    return None


def is_pod_ready(pod: Mapping) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def is_pod_available(pod: Mapping, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds, measured from the Ready condition's lastTransitionTime."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Mapping) -> tuple:
    """Sort key: pods that sort first are deleted first (upstream ActivePods ordering, main keys):
    unassigned < assigned, Pending < Unknown < Running, not ready < ready, ready for less time first,
    more restarts first, newer first."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ready = is_pod_ready(pod)
    ready_since = parse_time((ready_condition(pod) or {}).get("lastTransitionTime")) if ready else None
    restarts = max((c.get("restartCount") or 0 for c in status.get("containerStatuses") or ()), default=0)
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_RANK.get(status.get("phase") or "Pending", 0),
        1 if ready else 0,
        -(ready_since or 0.0),  # later transition to ready (shorter ready time) first
        -restarts,
        -created,
    )


def pods_to_delete(pods: Iterable[dict], count: int) -> list[dict]:
    return sorted(pods, key=deletion_rank)[:max(count, 0)]


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """The batch sizes slow start uses for `count` calls: 1, 2, 4, ... capped by what remains."""
    sizes = []
    batch = min(count, initial)
    remaining = count
    while remaining > 0 and batch > 0:
        sizes.append(batch)
        remaining -= batch
        batch = min(2 * batch, remaining)
    return sizes


async def slow_start_batch(count: int, fn: Callable[[], Awaitable[object]],
                           initial: int = SLOW_START_INITIAL_BATCH) -> tuple[int, BaseException | None]:
    """Call fn `count` times in growing batches, stopping after the first batch with a failure.
    Returns (successes, first error)."""
    successes = 0
    for size in slow_start_batches(count, initial):
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if isinstance(err, asyncio.CancelledError):
                raise err
        successes += size - len(errors)
        if errors:
            return successes, errors[0]
    return successes, None


# ---- expectations -------------------------------------------------------------------------


@dataclass
class _Expectation:
    add: int = 0
    delete: int = 0
    timestamp: float = 0.0
    deleting: set[str] = field(default_factory=set)  # pod keys whose deletion we wait to observe


class Expectations:
    """Creates and deletes each controller key waits to see (upstream UIDTrackingControllerExpectations).

    A key is satisfied when nothing is pending, when it has no record, or when its record is older than
    the timeout (a lost watch event must not wedge the controller forever)."""

    def __init__(self, clock: Clock = REAL_CLOCK, timeout: float = EXPECTATIONS_TIMEOUT):
        self.clock = clock
        self.timeout = timeout
        self._records: dict[str, _Expectation] = {}

    def get(self, key: str) -> _Expectation | None:
        return self._records.get(key)

    def satisfied(self, key: str) -> bool:
        record = self._records.get(key)
        if record is None:
            return True
        if record.add <= 0 and record.delete <= 0:
            return True
        return self.clock.now() - record.timestamp > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Expectation(add=count, timestamp=self.clock.now())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        keys = set(pod_keys)
        self._records[key] = _Expectation(delete=len(keys), timestamp=self.clock.now(), deleting=keys)

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        record = self._records.get(key)
        if record is not None and pod_key in record.deleting:
            record.deleting.discard(pod_key)
            record.delete -= 1

    def delete(self, key: str) -> None:
        self._records.pop(key, None)


# ---- the controller -----------------------------------------------------------------------


class ReplicaSetController:
    """Keeps spec.replicas pods running for each ReplicaSet (or ReplicationController)."""

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workload: WorkloadKind = REPLICASET, workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK,
                 burst_replicas: int = BURST_REPLICAS):
        self.name = workload.controller_name
        self.client = client
        self.workload = workload
        self.recorder = recorder
        self.clock = clock
        self.burst_replicas = burst_replicas
        self.expectations = Expectations(clock)
        self.rs_informer = factory.informer(workload.resource)
        self.pod_informer = factory.informer("pods", indexers={CONTROLLER_INDEX: controller_index})
        self.queue: WorkQueue[str] = WorkQueue(self.name, clock=clock)
        self.controller: Controller[str] = Controller(
            self.name, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.rs_informer.wait_for_sync, self.pod_informer.wait_for_sync])
        self.rs_informer.add_handler(on_add=self._enqueue, on_update=self._rs_updated, on_delete=self._rs_deleted)
        self.pod_informer.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                      on_delete=self._pod_deleted)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers (sync and cheap: they only enqueue and count expectations) ------------

    def _enqueue(self, rs: dict) -> None:
        self.queue.add(object_key(rs))

    def _rs_updated(self, old: dict, new: dict) -> None:
        self._enqueue(new)

    def _rs_deleted(self, rs: dict | DeletedFinalStateUnknown) -> None:
        key = object_key(rs)
        self.expectations.delete(key)
        self.queue.add(key)

    def _resolve_ref(self, namespace: str, ref: Mapping | None) -> str | None:
        """The key of our workload object a controllerRef points at, if it is of our kind and uid."""
        if not ref or ref.get("kind") != self.workload.kind:
            return None
        key = f"{namespace}/{ref.get('name')}"
        rs = self.rs_informer.get(key)
        if rs is None or (rs.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return key

    def _matching_keys(self, pod: Mapping) -> list[str]:
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        labels = pod_labels(pod)
        return [object_key(rs) for rs in self.rs_informer.list(namespace)
                if self.workload.selector_matches((rs.get("spec") or {}).get("selector"), labels)]

    def _pod_added(self, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            key = self._resolve_ref(meta.get("namespace") or "", ref)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for key in self._matching_keys(pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict, new: dict) -> None:
        old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
        if old_meta.get("resourceVersion") == new_meta.get("resourceVersion"):
            return  # a resync
        namespace = new_meta.get("namespace") or ""
        if new_meta.get("deletionTimestamp") and not old_meta.get("deletionTimestamp"):
            self._pod_deleted(new)
            if controller_ref(old) != controller_ref(new):
                key = self._resolve_ref(namespace, controller_ref(old))
                if key is not None:
                    self.queue.add(key)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            key = self._resolve_ref(namespace, old_ref)
            if key is not None:
                self.queue.add(key)
        if new_ref is not None:
            key = self._resolve_ref(namespace, new_ref)
            if key is not None:
                self.queue.add(key)
            return
        if pod_labels(old) != pod_labels(new) or old_ref != new_ref:
            for key in self._matching_keys(new):
                self.queue.add(key)

    def _pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        obj = pod.obj if isinstance(pod, DeletedFinalStateUnknown) else pod
        key = self._resolve_ref((obj.get("metadata") or {}).get("namespace") or "", controller_ref(obj))
        if key is None:
            return
        self.expectations.deletion_observed(key, object_key(obj))
        self.queue.add(key)

    # ---- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        rs = self.rs_informer.get(key)
        if rs is None:
            log.debug("%s: %s has been deleted", self.name, key)
            self.expectations.delete(key)
            return
        rs_needs_sync = self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp")
        active = [p for p in claim_candidates(self.pod_informer, rs) if is_pod_active(p)]
        pods = await self._claim_pods(rs, active)
        manage_error: BaseException | None = None
        if rs_needs_sync:
            manage_error = await self._manage_replicas(key, rs, pods)
        await self._update_status(rs, pods, manage_error)
        if manage_error is not None:
            raise manage_error
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0:
            now = self.clock_wall()
            if any(is_pod_ready(p) and not is_pod_available(p, min_ready, now) for p in pods):
                raise RequeueAfter(float(min_ready))

    def clock_wall(self) -> float:
        return datetime.now(UTC).timestamp()

    def _owner_ref(self, rs: Mapping) -> dict:
        meta = rs["metadata"]
        return {"apiVersion": self.workload.api_version, "kind": self.workload.kind, "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}

    async def _claim_pods(self, rs: dict, pods: list[dict]) -> list[dict]:
        """Upstream PodControllerRefManager.ClaimPods: owned+matching pods, adopting and releasing."""
        uid = rs["metadata"]["uid"]
        selector = (rs.get("spec") or {}).get("selector")
        deleting = bool(rs["metadata"].get("deletionTimestamp"))
        claimed: list[dict] = []
        can_adopt: bool | None = None
        for pod in pods:
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") != uid:
                continue  # someone else's
            matches = self.workload.selector_matches(selector, pod_labels(pod))
            if ref is not None:
                if matches:
                    claimed.append(pod)
                elif not deleting:
                    await self._release(rs, pod)
                continue
            if not matches or deleting or (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if can_adopt is None:
                can_adopt = await self._can_adopt(rs)
            if not can_adopt:
                continue
            adopted = await self._adopt(rs, pod)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _can_adopt(self, rs: dict) -> bool:
        """A live read: never adopt for an owner that is being deleted or was replaced."""
        meta = rs["metadata"]
        try:
            fresh = await self.client.get(self.workload.resource, meta["name"], meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc):
                return False
            raise
        fresh_meta = fresh.get("metadata") or {}
        return fresh_meta.get("uid") == meta["uid"] and not fresh_meta.get("deletionTimestamp")

    async def _adopt(self, rs: dict, pod: dict) -> dict | None:
        meta = pod["metadata"]
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != rs["metadata"]["uid"]]
        patch = {"metadata": {"uid": meta["uid"], "ownerReferences": [*refs, self._owner_ref(rs)]}}
        try:
            adopted = await self.client.patch("pods", meta["name"], patch, meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc) or is_conflict(exc) or exc.code == 422:
                log.info("%s: couldn't adopt pod %s: %s", self.name, meta["name"], exc)
                return None
            raise
        log.info("%s: %s adopted pod %s", self.name, object_key(rs), meta["name"])
        return adopted

    async def _release(self, rs: dict, pod: dict) -> None:
        meta = pod["metadata"]
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != rs["metadata"]["uid"]]
        patch = {"metadata": {"uid": meta["uid"], "ownerReferences": refs or None}}
        try:
            await self.client.patch("pods", meta["name"], patch, meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc) or is_conflict(exc) or exc.code == 422:
                return
            raise
        log.info("%s: %s released pod %s", self.name, object_key(rs), meta["name"])

    async def _manage_replicas(self, key: str, rs: dict, pods: list[dict]) -> BaseException | None:
        replicas = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(pods) - replicas
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            self.expectations.expect_creations(key, count)
            log.debug("%s: too few replicas for %s, need %d, creating %d", self.name, key, replicas, count)
            successes, error = await slow_start_batch(count, lambda: self._create_pod(rs))
            for _ in range(count - successes):
                self.expectations.creation_observed(key)  # the pods never made will never be seen
            return error
        if diff > 0:
            count = min(diff, self.burst_replicas)
            victims = pods_to_delete(pods, count)
            self.expectations.expect_deletions(key, [object_key(p) for p in victims])
            log.debug("%s: too many replicas for %s, need %d, deleting %d", self.name, key, replicas, count)
            results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in victims), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            for err in errors:
                if isinstance(err, asyncio.CancelledError):
                    raise err
            return errors[0] if errors else None
        return None

    def _pod_from_template(self, rs: dict) -> dict:
        template = (rs.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        meta: dict = {"generateName": f"{rs['metadata']['name']}-", "namespace": rs["metadata"].get("namespace"),
                      "labels": dict(tmeta.get("labels") or {}), "ownerReferences": [self._owner_ref(rs)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": copy.deepcopy(template.get("spec") or {})}

    def _event(self, rs: dict, type_: str, reason: str, message: str) -> None:
        if self.recorder is None:
            return
        obj = {**rs, "apiVersion": self.workload.api_version, "kind": self.workload.kind}
        self.recorder.event(obj, type_, reason, message)

    async def _create_pod(self, rs: dict) -> dict:
        try:
            pod = await self.client.create(self._pod_from_template(rs))
        except APIStatusError as exc:
            self._event(rs, WARNING, "FailedCreate", f"Error creating: {exc}")
            raise
        self._event(rs, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return pod

    async def _delete_pod(self, key: str, rs: dict, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta.get("namespace"),
                                     preconditions={"uid": meta["uid"]})
        except APIStatusError as exc:
            if is_not_found(exc):
                return  # gone already; its delete event settles the expectation
            self.expectations.deletion_observed(key, object_key(pod))
            self._event(rs, WARNING, "FailedDelete", f"Error deleting: {exc}")
            raise
        self._event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # ---- status ------------------------------------------------------------------------

    def calculate_status(self, rs: dict, pods: list[dict], manage_error: BaseException | None,
                         now: float | None = None) -> dict:
        now = self.clock_wall() if now is None else now
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        status = copy.deepcopy(rs.get("status") or {})
        status["replicas"] = len(pods)
        wanted_labels = template_labels.items()
        fully_labeled = ready = available = 0
        for pod in pods:  # one pass: this runs on every sync, over every pod of the ReplicaSet
            if wanted_labels <= ((pod.get("metadata") or {}).get("labels") or {}).items():
                fully_labeled += 1
            cond = ready_condition(pod)
            if cond is None or cond.get("status") != "True":
                continue
            ready += 1
            if min_ready <= 0:
                available += 1
            else:
                since = parse_time(cond.get("lastTransitionTime"))
                available += since is not None and since + min_ready <= now
        status["fullyLabeledReplicas"] = fully_labeled
        status["readyReplicas"] = ready
        status["availableReplicas"] = available
        status["observedGeneration"] = (rs.get("metadata") or {}).get("generation", 0)
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "ReplicaFailure"]
        existing = next((c for c in status.get("conditions") or () if c.get("type") == "ReplicaFailure"), None)
        replicas = int(spec.get("replicas", 1) or 0)
        if manage_error is not None and len(pods) < replicas:
            message = str(manage_error)
            if existing is None or existing.get("message") != message or existing.get("status") != "True":
                existing = {"type": "ReplicaFailure", "status": "True",
                            "lastTransitionTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "reason": "FailedCreate", "message": message}
            conditions.append(existing)
        elif manage_error is not None and existing is not None:
            conditions.append(existing)  # a delete failure neither sets nor clears it
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        return status

    async def _update_status(self, rs: dict, pods: list[dict], manage_error: BaseException | None) -> None:
        status = self.calculate_status(rs, pods, manage_error)
        if status == (rs.get("status") or {}):
            return
        updated = {**rs, "apiVersion": self.workload.api_version, "kind": self.workload.kind, "status": status}
        meta = rs["metadata"]
        for _ in range(2):
            try:
                await self.client.update_status(updated, resource=self.workload.resource)
                return
            except APIStatusError as exc:
                if is_not_found(exc):
                    return
                if not is_conflict(exc):
                    raise
            try:
                fresh = await self.client.get(self.workload.resource, meta["name"], meta.get("namespace"))
            except APIStatusError as exc:
                if is_not_found(exc):
                    return
                raise
            updated = {**fresh, "status": self.calculate_status(fresh, pods, manage_error)}
        raise RuntimeError(f"{self.name}: couldn't update status of {object_key(rs)}: conflicts")


def replication_controller(client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                           *, clock: Clock = REAL_CLOCK) -> ReplicaSetController:
    return ReplicaSetController(client, factory, recorder, workload=REPLICATIONCONTROLLER, clock=clock)
