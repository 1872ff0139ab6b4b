"""The StatefulSet controller (upstream pkg/controller/statefulset).

A StatefulSet owns pods with stable identities `<set>-<ordinal>` for ordinals start..start+replicas-1
(spec.ordinals.start), each with hostname = its name, subdomain = spec.serviceName, the labels
`statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`, and one PersistentVolumeClaim per
volumeClaimTemplate named `<template>-<set>-<ordinal>`, which outlives the pod unless
persistentVolumeClaimRetentionPolicy says Delete (done with ownerReferences the garbage collector follows:
to the set for whenDeleted, to the pod for whenScaled).

OrderedReady creates pods one at a time in ordinal order, each after its predecessors are Running and
Ready (and available for minReadySeconds), and removes surplus pods from the highest ordinal down; Parallel
does both at once. Templates are recorded as ControllerRevisions: status.updateRevision is the set's current
template, status.currentRevision the one the pods below the partition run. RollingUpdate deletes the
highest-ordinal pod not on the update revision once every pod is healthy (maxUnavailable at a time when
set, as upstream's MaxUnavailableStatefulSet gate does); OnDelete waits for pods to be deleted by hand.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping

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
    is_already_exists,
    is_conflict,
    is_not_found,
    object_key,
)
from ..client.workqueue import REAL_CLOCK, Clock
from . import history
from .deployment_util import scaled_value
from .ownership import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    claim_candidates,
    controller_index,
    controller_ref,
    owner_reference,
    selects,
)
from .replicaset import is_pod_available, is_pod_ready, slow_start_batch

log = logging.getLogger("pyk8s.controllers.statefulset")

NAME = "statefulset-controller"
DEFAULT_WORKERS = 5  # upstream --concurrent-statefulset-syncs
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# ---- pure helpers -------------------------------------------------------------------------


def parse_ordinal(name: str) -> tuple[str, int]:
    """(parent name, ordinal) of `<parent>-<ordinal>`; ordinal -1 when the name has no ordinal."""
    match = _ORDINAL.match(name)
    if match is None:
        return "", -1
    return match.group(1), int(match.group(2))


def start_ordinal(sts: Mapping) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: Mapping) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def end_ordinal(sts: Mapping) -> int:
    return start_ordinal(sts) + replicas_of(sts) - 1


def pod_ordinal(pod: Mapping) -> int:
    return parse_ordinal(pod["metadata"]["name"])[1]


def in_ordinal_range(pod: Mapping, sts: Mapping) -> bool:
    ordinal = pod_ordinal(pod)
    return start_ordinal(sts) <= ordinal <= end_ordinal(sts)


def is_member_of(sts: Mapping, pod: Mapping) -> bool:
    return parse_ordinal(pod["metadata"]["name"])[0] == sts["metadata"]["name"]


def claim_name(template_name: str, sts: Mapping, ordinal: int) -> str:
    return f"{template_name}-{sts['metadata']['name']}-{ordinal}"


def is_created(pod: Mapping) -> bool:
    return bool((pod.get("status") or {}).get("phase"))


def phase(pod: Mapping) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(pod: Mapping) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_running_and_ready(pod: Mapping) -> bool:
    return phase(pod) == "Running" and is_pod_ready(pod)


def is_running_and_available(pod: Mapping, min_ready: int, now: float) -> bool:
    return phase(pod) == "Running" and is_pod_available(pod, min_ready, now)


def is_healthy(pod: Mapping) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def pod_revision(pod: Mapping) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(history.CONTROLLER_REVISION_HASH_LABEL, "")


def claim_templates(sts: Mapping) -> list[dict]:
    return list((sts.get("spec") or {}).get("volumeClaimTemplates") or [])


def new_pod(sts: Mapping, ordinal: int, revision: str) -> dict:
    """The pod for one ordinal of `sts` (whose template is the revision's), not yet created."""
    meta_s = sts["metadata"]
    template = (sts.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = f"{meta_s['name']}-{ordinal}"
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
              history.CONTROLLER_REVISION_HASH_LABEL: revision}
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if (sts.get("spec") or {}).get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claims = {t["metadata"]["name"]: claim_name(t["metadata"]["name"], sts, ordinal) for t in claim_templates(sts)}
    volumes = [{"name": tname, "persistentVolumeClaim": {"claimName": cname}} for tname, cname in claims.items()]
    volumes += [v for v in spec.get("volumes") or () if v.get("name") not in claims]
    if volumes:
        spec["volumes"] = volumes
    meta: dict = {"name": name, "namespace": meta_s.get("namespace"), "labels": labels,
                  "ownerReferences": [owner_reference(sts, "apps/v1", "StatefulSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def identity_matches(sts: Mapping, pod: Mapping) -> bool:
    parent, ordinal = parse_ordinal(pod["metadata"]["name"])
    labels = pod["metadata"].get("labels") or {}
    return (ordinal >= 0 and parent == sts["metadata"]["name"]
            and pod["metadata"].get("namespace") == sts["metadata"].get("namespace")
            and labels.get(POD_NAME_LABEL) == pod["metadata"]["name"] and labels.get(POD_INDEX_LABEL) == str(ordinal))


def retention_policy(sts: Mapping) -> tuple[str, str]:
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted", "Retain"), policy.get("whenScaled", "Retain")


def claim_owner_refs(claim: Mapping, sts: Mapping, pod: Mapping) -> list[dict]:
    """A claim's ownerReferences under the retention policy: the set's for whenDeleted=Delete (while the pod is
    in range), the pod's for whenScaled=Delete once the pod is scaled away."""
    when_deleted, when_scaled = retention_policy(sts)
    set_uid, pod_uid = sts["metadata"]["uid"], (pod.get("metadata") or {}).get("uid")
    refs = [r for r in (claim.get("metadata") or {}).get("ownerReferences") or ()
            if r.get("uid") not in (set_uid, pod_uid)]
    scaled_down = not in_ordinal_range(pod, sts)
    if when_deleted == "Delete" and not (when_scaled == "Delete" and scaled_down):
        refs.append(owner_reference(sts, "apps/v1", "StatefulSet", controller=False))
    if when_scaled == "Delete" and scaled_down and pod_uid:
        refs.append({"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod_uid,
                     "blockOwnerDeletion": True})
    return refs


def max_unavailable(sts: Mapping) -> int:
    rolling = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    return max(1, scaled_value(rolling.get("maxUnavailable", 1), replicas_of(sts), False))


def with_template(sts: Mapping, revision: Mapping) -> dict:
    """The set as the revision describes it (upstream ApplyRevision)."""
    applied = copy.deepcopy(dict(sts))
    applied.setdefault("spec", {})["template"] = history.template_from_patch(revision.get("data") or {})
    return applied


# ---- the controller -----------------------------------------------------------------------




async def run_for_all(items: list, fn: Callable[[int], Awaitable[bool]], monotonic: bool) -> bool:
    """Upstream runForAll: in order, stopping at the first that says stop (monotonic), or all at once in
    slow-start batches. Returns whether to stop this sync; raises the first failure."""
    if monotonic:
        for i in range(len(items)):
            if await fn(i):
                return True
        return False
    indexes = iter(range(len(items)))
    stops = []

    async def step() -> None:
        stops.append(await fn(next(indexes)))

    _, error = await slow_start_batch(len(items), step)
    if error is not None:
        raise error
    return any(stops)


class StatefulSetController:
    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK):
        self.name = NAME
        self.client = client
        self.recorder = recorder
        self.sts_informer = factory.informer("statefulsets")
        self.pod_informer = factory.informer("pods", indexers={CONTROLLER_INDEX: controller_index})
        self.history_informer = factory.informer("controllerrevisions",
                                                 indexers={CONTROLLER_INDEX: controller_index})
        self.pvc_informer = factory.informer("persistentvolumeclaims")
        self.queue: WorkQueue[str] = WorkQueue(NAME, clock=clock)
        self.controller: Controller[str] = Controller(
            NAME, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[i.wait_for_sync for i in (self.sts_informer, self.pod_informer, self.history_informer,
                                                self.pvc_informer)])
        self.sts_informer.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                      on_delete=self._enqueue)
        self.pod_informer.add_handler(on_add=self._child_changed, on_update=self._child_updated,
                                      on_delete=self._child_changed)
        self.history_informer.add_handler(on_add=self._child_changed, on_update=self._child_updated,
                                          on_delete=self._child_changed)

    @classmethod
    def from_context(cls, ctx) -> StatefulSetController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers ----------------------------------------------------------------

    def _enqueue(self, sts: dict | DeletedFinalStateUnknown) -> None:
        self.queue.add(object_key(sts))

    def _child_changed(self, obj: dict | DeletedFinalStateUnknown) -> None:
        obj = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        namespace = obj["metadata"].get("namespace") or ""
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("kind") != "StatefulSet":
                return
            key = f"{namespace}/{ref.get('name')}"
            sts = self.sts_informer.get(key)
            if sts is not None and sts["metadata"].get("uid") == ref.get("uid"):
                self.queue.add(key)
            return
        for sts in self.sts_informer.list(namespace):
            if selects(sts, obj):
                self._enqueue(sts)

    def _child_updated(self, old: dict, new: dict) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if controller_ref(old) != controller_ref(new):
            self._child_changed(old)
        self._child_changed(new)

    # ---- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.sts_informer.get(key)
        if cached is None:
            return
        sts = copy.deepcopy(cached)
        selector = sts["spec"].get("selector") or {}
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self._event(sts, WARNING, "SelectingAll",
                        "This statefulset is selecting all pods. A non-empty selector is required.")
            return
        pods = await ControllerRefManager(
            self.client, sts, "statefulsets", "apps/v1", "StatefulSet", "pods",
            lambda pod: selects(sts, pod) and is_member_of(sts, pod),
        ).claim(claim_candidates(self.pod_informer, sts))
        revisions = await ControllerRefManager(
            self.client, sts, "statefulsets", "apps/v1", "StatefulSet", "controllerrevisions",
            lambda rev: selects(sts, rev),
        ).claim(claim_candidates(self.history_informer, sts))
        current, update, collision_count, revisions = await self._revisions(sts, revisions)
        status = await self._update_set(sts, current, update, collision_count, pods)
        await self._write_status(sts, status)
        await self._truncate_history(sts, revisions, current, update)
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        if min_ready > 0 and status.get("readyReplicas", 0) != status.get("availableReplicas", 0):
            raise RequeueAfter(float(min_ready))

    async def _revisions(self, sts: dict, revisions: list[dict]) -> tuple[dict, dict, int, list[dict]]:
        revisions = history.sort_revisions(revisions)
        collision_count = int((sts.get("status") or {}).get("collisionCount") or 0)
        data = history.template_patch(sts["spec"].get("template") or {})
        labels = ((sts["spec"].get("template") or {}).get("metadata") or {}).get("labels")

        def hash_of(count: int) -> str:
            return history.compute_hash(data, count)

        candidate = history.new_revision(sts, "apps/v1", "StatefulSet", data, history.max_revision(revisions) + 1,
                                         hash_=hash_of(collision_count), labels=labels)
        equal = [r for r in revisions if history.equal_revisions(r, candidate)]
        if equal and revisions and equal[-1]["metadata"]["uid"] == revisions[-1]["metadata"]["uid"]:
            update = revisions[-1]
        elif equal:
            update = copy.deepcopy(equal[-1])
            update["revision"] = candidate["revision"]  # a rollback: the old revision becomes the newest
            update = await self.client.update(update, resource="controllerrevisions")
            revisions = [r for r in revisions if r["metadata"]["uid"] != update["metadata"]["uid"]] + [update]
        else:
            update, collision_count = await history.create_revision(self.client, candidate, sts, hash_of=hash_of,
                                                                    collision_count=collision_count)
            revisions = [*revisions, update]
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
        return current, update, collision_count, revisions

    async def _update_set(self, sts: dict, current: dict, update: dict, collision_count: int,
                          pods: list[dict]) -> dict:
        current_set, update_set = with_template(sts, current), with_template(sts, update)
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        start, count = start_ordinal(sts), replicas_of(sts)
        replicas: list[dict | None] = [None] * count
        condemned: list[dict] = []
        for pod in pods:
            ordinal = pod_ordinal(pod)
            if start <= ordinal <= start + count - 1:
                replicas[ordinal - start] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        for i in range(count):
            if replicas[i] is None:
                replicas[i] = self._versioned_pod(current_set, update_set, current_name, update_name, start + i)
        condemned.sort(key=pod_ordinal, reverse=True)
        live: list[dict] = [p for p in replicas if p is not None]
        first_unhealthy = next((p for p in live if not is_healthy(p)), None) or next(
            (p for p in reversed(condemned) if not is_healthy(p)), None)
        status_args = (sts, collision_count, current_name, update_name)
        if sts["metadata"].get("deletionTimestamp"):
            return self._status(*status_args, live, condemned)
        monotonic = (sts["spec"].get("podManagementPolicy") or "OrderedReady") != "Parallel"
        now = time.time()
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)

        async def process_replica(i: int) -> bool:
            return await self._process_replica(sts, current_set, update_set, current_name, update_name, monotonic,
                                               live, i, min_ready, now)

        if await run_for_all(live, process_replica, monotonic):
            return self._status(*status_args, live, condemned)

        async def fix_claims(i: int) -> bool:
            await self._fix_claim_refs(update_set, condemned[i])
            return False

        await run_for_all(condemned, fix_claims, monotonic)

        async def process_condemned(i: int) -> bool:
            pod = condemned[i]
            if is_terminating(pod):
                return monotonic
            if monotonic and pod is not first_unhealthy and (
                    not is_running_and_ready(pod) or not is_running_and_available(pod, min_ready, now)):
                return True
            await self._delete_pod(sts, pod)
            return monotonic

        if await run_for_all(condemned, process_condemned, monotonic):
            return self._status(*status_args, live, condemned)
        status = self._status(*status_args, live, condemned)
        strategy = sts["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "OnDelete":
            return status
        rolling = strategy.get("rollingUpdate") or {}
        partition = int(rolling.get("partition") or 0)
        if rolling.get("maxUnavailable") is not None:
            await self._update_with_max_unavailable(sts, live, update_name, partition, status)
            return status
        for target in range(len(live) - 1, partition - 1, -1):
            pod = live[target]
            if pod_revision(pod) != update_name and not is_terminating(pod):
                await self._delete_pod(sts, pod)
                status["currentReplicas"] = status.get("currentReplicas", 0) - 1
                return status
            if not is_healthy(pod):
                return status
        return status

    async def _update_with_max_unavailable(self, sts: dict, live: list[dict], update_name: str, partition: int,
                                           status: dict) -> None:
        budget = max_unavailable(sts) - sum(1 for p in live if not is_healthy(p))
        for target in range(len(live) - 1, partition - 1, -1):
            if budget <= 0:
                return
            pod = live[target]
            if pod_revision(pod) != update_name and not is_terminating(pod):
                await self._delete_pod(sts, pod)
                status["currentReplicas"] = status.get("currentReplicas", 0) - 1
                budget -= 1

    @staticmethod
    def _versioned_pod(current_set: dict, update_set: dict, current_name: str, update_name: str,
                       ordinal: int) -> dict:
        """Below the partition (or, without rollingUpdate settings, below currentReplicas) a recreated pod keeps
        the current revision; everything else gets the update revision."""
        strategy = current_set["spec"].get("updateStrategy") or {}
        start = start_ordinal(current_set)
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if rolling is None:
                below = ordinal < start + int((current_set.get("status") or {}).get("currentReplicas") or 0)
            else:
                below = ordinal < start + int(rolling.get("partition") or 0)
            if below:
                return new_pod(current_set, ordinal, current_name)
        return new_pod(update_set, ordinal, update_name)

    async def _process_replica(self, sts: dict, current_set: dict, update_set: dict, current_name: str,
                               update_name: str, monotonic: bool, live: list[dict], i: int, min_ready: int,
                               now: float) -> bool:
        pod = live[i]
        if phase(pod) in ("Failed", "Succeeded"):
            reason = "RecreatingFailedPod" if phase(pod) == "Failed" else "RecreatingTerminatedPod"
            what = "failed" if phase(pod) == "Failed" else "terminated"
            self._event(sts, WARNING, reason, f"StatefulSet {sts['metadata']['namespace']}/{sts['metadata']['name']}"
                        f" is recreating {what} Pod {pod['metadata']['name']}")
            if not is_terminating(pod):
                await self._delete_pod(sts, pod)
            live[i] = pod = self._versioned_pod(current_set, update_set, current_name, update_name, pod_ordinal(pod))
            return True  # its replacement is created once the deletion is observed
        if not is_created(pod):
            await self._create_pod(update_set, pod)
            return monotonic
        if phase(pod) == "Pending":
            await self._create_claims(update_set, pod)
        if monotonic and (is_terminating(pod) or not is_running_and_ready(pod)
                          or not is_running_and_available(pod, min_ready, now)):
            return True
        if not identity_matches(sts, pod):
            await self._fix_identity(sts, pod)
        await self._fix_claim_refs(update_set, pod)
        return False

    # ---- pods and claims ---------------------------------------------------------------

    async def _create_claims(self, sts: dict, pod: dict) -> None:
        ordinal = pod_ordinal(pod)
        selector_labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
        for template in claim_templates(sts):
            name = claim_name(template["metadata"]["name"], sts, ordinal)
            if self.pvc_informer.get(f"{sts['metadata']['namespace']}/{name}") is not None:
                continue
            claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {**copy.deepcopy(template.get("metadata") or {}), "name": name,
                                  "namespace": sts["metadata"]["namespace"]},
                     "spec": copy.deepcopy(template.get("spec") or {})}
            claim["metadata"]["labels"] = {**(claim["metadata"].get("labels") or {}), **selector_labels}
            refs = claim_owner_refs(claim, sts, pod)
            if refs:
                claim["metadata"]["ownerReferences"] = refs
            try:
                await self.client.create(claim)
            except APIStatusError as exc:
                if is_already_exists(exc):
                    continue
                self._event(sts, WARNING, "FailedCreate", f"create Claim {name} for Pod {pod['metadata']['name']} "
                            f"in StatefulSet {sts['metadata']['name']} failed error: {exc.message}")
                raise
            self._event(sts, NORMAL, "SuccessfulCreate", f"create Claim {name} Pod {pod['metadata']['name']} in "
                        f"StatefulSet {sts['metadata']['name']} success")

    async def _create_pod(self, sts: dict, pod: dict) -> None:
        await self._create_claims(sts, pod)
        name = pod["metadata"]["name"]
        try:
            await self.client.create(pod)
        except APIStatusError as exc:
            if not is_already_exists(exc):
                self._event(sts, WARNING, "FailedCreate",
                            f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed error: {exc.message}")
            raise
        self._event(sts, NORMAL, "SuccessfulCreate", f"create Pod {name} in StatefulSet {sts['metadata']['name']} "
                    "successful")

    async def _delete_pod(self, sts: dict, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta.get("namespace"), preconditions={"uid": meta["uid"]})
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            self._event(sts, WARNING, "FailedDelete", f"delete Pod {meta['name']} in StatefulSet "
                        f"{sts['metadata']['name']} failed error: {exc.message}")
            raise
        self._event(sts, NORMAL, "SuccessfulDelete", f"delete Pod {meta['name']} in StatefulSet "
                    f"{sts['metadata']['name']} successful")

    async def _fix_identity(self, sts: dict, pod: dict) -> None:
        name = pod["metadata"]["name"]
        patch = {"metadata": {"labels": {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(pod_ordinal(pod))},
                              "resourceVersion": pod["metadata"].get("resourceVersion")}}
        try:
            await self.client.patch("pods", name, patch, pod["metadata"].get("namespace"))
        except APIStatusError as exc:
            if not (is_conflict(exc) or is_not_found(exc)):
                raise
            raise RuntimeError(f"pod {name} changed while its identity was fixed; retrying") from exc
        self._event(sts, NORMAL, "SuccessfulUpdate", f"update Pod {name} in StatefulSet {sts['metadata']['name']} "
                    "successful")

    async def _fix_claim_refs(self, sts: dict, pod: dict) -> None:
        """Bring the claims' ownerReferences in line with the retention policy."""
        for template in claim_templates(sts):
            key = f"{sts['metadata']['namespace']}/{claim_name(template['metadata']['name'], sts, pod_ordinal(pod))}"
            claim = self.pvc_informer.get(key)
            if claim is None:
                continue
            refs = claim_owner_refs(claim, sts, pod)
            if refs == list(claim["metadata"].get("ownerReferences") or []):
                continue
            patch = {"metadata": {"ownerReferences": refs or None,
                                  "resourceVersion": claim["metadata"].get("resourceVersion")}}
            try:
                await self.client.patch("persistentvolumeclaims", claim["metadata"]["name"], patch,
                                        claim["metadata"]["namespace"])
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise

    # ---- status and history ------------------------------------------------------------

    @staticmethod
    def _status(sts: dict, collision_count: int, current_name: str, update_name: str, live: list[dict],
                condemned: list[dict]) -> dict:
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        now = time.time()
        counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
                  "updatedReplicas": 0}
        for pod in [*live, *condemned]:
            created = is_created(pod)
            if created:
                counts["replicas"] += 1
            if is_running_and_ready(pod):
                counts["readyReplicas"] += 1
                if is_running_and_available(pod, min_ready, now):
                    counts["availableReplicas"] += 1
            if created and not is_terminating(pod):
                if pod_revision(pod) == current_name:
                    counts["currentReplicas"] += 1
                if pod_revision(pod) == update_name:
                    counts["updatedReplicas"] += 1
        return {"observedGeneration": sts["metadata"].get("generation"), "currentRevision": current_name,
                "updateRevision": update_name, "collisionCount": collision_count, **counts}

    async def _write_status(self, sts: dict, status: dict) -> None:
        strategy = (sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and status["updatedReplicas"] == status["replicas"] and \
                status["readyReplicas"] == status["replicas"]:
            status["currentReplicas"] = status["updatedReplicas"]  # the rollout is complete
            status["currentRevision"] = status["updateRevision"]
        old = sts.get("status") or {}
        merged = {**old, **status}
        for field in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if merged.get(field) == 0:
                merged.pop(field)  # omitempty upstream
        if merged == old:
            return
        body = {**sts, "apiVersion": "apps/v1", "kind": "StatefulSet", "status": merged}
        try:
            await self.client.update_status(body, resource="statefulsets")
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise

    async def _truncate_history(self, sts: dict, revisions: list[dict], current: dict, update: dict) -> None:
        namespace = sts["metadata"].get("namespace") or ""
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live |= {pod_revision(p) for p in self.pod_informer.list(namespace) if is_member_of(sts, p)}
        history_ = [r for r in history.sort_revisions(revisions) if r["metadata"]["name"] not in live]
        surplus = len(history_) - int(sts["spec"].get("revisionHistoryLimit", 10) or 0)
        deletes = []
        for revision in history_[:max(surplus, 0)]:
            deletes.append(self.client.delete("controllerrevisions", revision["metadata"]["name"], namespace,
                                              preconditions={"uid": revision["metadata"]["uid"]}))
        for result in await asyncio.gather(*deletes, return_exceptions=True):
            if isinstance(result, BaseException) and not is_not_found(result):
                raise result

    def _event(self, sts: dict, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event({**sts, "apiVersion": "apps/v1", "kind": "StatefulSet"}, type_, reason, message)
