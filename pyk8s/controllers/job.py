"""The Job controller (upstream pkg/controller/job, v1.32 behaviour).

Each sync of a Job looks at the pods it owns (pod informer, indexed by controller uid) and:

1. Tracks finished pods exactly once through the `batch.kubernetes.io/job-tracking` finalizer: a
   finished pod's uid is first written to status.uncountedTerminatedPods, then its finalizer is removed,
   then the uid is moved into the succeeded/failed counters. A crash between the steps repeats no
   count, because a uid is only counted once its pod has lost the finalizer (or is gone).
2. Decides whether the Job is done: podFailurePolicy FailJob, backoffLimit, activeDeadlineSeconds,
   backoffLimitPerIndex/maxFailedIndexes put the interim FailureTarget condition; completions or the
   successPolicy put SuccessCriteriaMet. The terminal Failed/Complete condition follows once no pod is
   terminating and nothing is left uncounted (upstream's delayed terminal condition).
3. Otherwise manages pods: creates missing ones (NonIndexed, or one per pending index for Indexed jobs)
   in slow-start batches after the failure backoff (10 s doubling, capped at 6 minutes), deletes surplus
   ones, and deletes every active pod of a suspended or finished Job.

Expectations (shared with the ReplicaSet controller) keep informer lag from creating pods twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Mapping

from ..api.validation import selector_matches
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
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock
from . import job_util as ju
from .replicaset import Expectations, controller_ref, is_pod_ready, pods_to_delete, slow_start_batch

log = logging.getLogger("pyk8s.controllers.job")

CONTROLLER_NAME = "job-controller"
MAX_POD_CREATE_DELETE_PER_SYNC = 500  # upstream MaxPodCreateDeletePerSync
DEFAULT_WORKERS = 5  # upstream --concurrent-job-syncs
# Index names are this controller's own: informers are shared, and another controller's index of the same
# name (with other values) would silently win.
CONTROLLER_UID_INDEX = "job-controller/by-controller-uid"
ORPHAN_INDEX = "job-controller/orphans-by-namespace"
JOB_CONTROLLER_MANAGER = "kubernetes.io/job-controller"  # spec.managedBy value meaning "this controller"
# Pod events wait this long before the Job syncs, so a burst of pod changes costs one status write
# (upstream syncJobBatchPeriod).
SYNC_BATCH_PERIOD = 1.0


def controller_uid_index(obj: Mapping) -> list[str]:
    ref = controller_ref(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


def orphan_index(obj: Mapping) -> list[str]:
    """Pods with no controller, by namespace: the candidates for adoption."""
    return [] if controller_ref(obj) else [(obj.get("metadata") or {}).get("namespace") or ""]


def has_tracking_finalizer(pod: Mapping) -> bool:
    return ju.JOB_TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def phase(pod: Mapping) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(pod: Mapping) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase(pod) not in ("Succeeded", "Failed")


def is_active(pod: Mapping) -> bool:
    return phase(pod) not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def only_replace_failed(job: Mapping) -> bool:
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Mapping, job: Mapping) -> bool:
    """Upstream isPodFailed: phase Failed, or (unless only failed pods are replaced) deleted before succeeding,
    which is how orphaned pods that never reach Failed (a lost node) are counted."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase(pod) != "Succeeded"


def restarts_of(pod: Mapping) -> int:
    status = pod.get("status") or {}
    return sum(int(cs.get("restartCount") or 0)
               for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []))


class JobController:
    """Runs pods to completion for every Job."""

    name = CONTROLLER_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK,
                 wall: Callable[[], float] = time.time):
        self.client = client
        self.recorder = recorder
        self.clock = clock
        self.wall = wall
        self.expectations = Expectations(clock)
        # uids whose finalizer removal we sent and have not yet seen: never counted twice meanwhile.
        self.finalizer_removals: dict[str, set[str]] = {}
        self.job_informer = factory.informer("jobs")
        self.pod_informer = factory.informer("pods", indexers={CONTROLLER_UID_INDEX: controller_uid_index,
                                                               ORPHAN_INDEX: orphan_index})
        self.queue: WorkQueue[str] = WorkQueue(self.name, clock=clock)
        self.controller: Controller[str] = Controller(
            self.name, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.job_informer.wait_for_sync, self.pod_informer.wait_for_sync])
        self.job_informer.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                                      on_delete=self._job_deleted)
        self.pod_informer.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                      on_delete=self._pod_deleted)

    @classmethod
    def from_context(cls, ctx) -> JobController:
        workers = int((ctx.options or {}).get("concurrent_job_syncs", DEFAULT_WORKERS))
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock, workers=workers)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers ------------------------------------------------------------------

    def _enqueue(self, job: dict) -> None:
        self.queue.add(object_key(job))

    def _job_deleted(self, job: dict | DeletedFinalStateUnknown) -> None:
        key = object_key(job)
        self.expectations.delete(key)
        self.queue.add(key)  # its pods may still carry our finalizer

    def _job_key_of(self, pod: Mapping) -> str | None:
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != "Job" or ref.get("apiVersion", "").split("/")[0] != "batch":
            return None
        return f"{(pod.get('metadata') or {}).get('namespace', '')}/{ref.get('name')}"

    def _owning_job_key(self, pod: Mapping) -> str | None:
        """The key of the Job that controls this pod, only if that very Job (same uid) exists."""
        key = self._job_key_of(pod)
        if key is None:
            return None
        job = self.job_informer.get(key)
        if job is None or job["metadata"].get("uid") != controller_ref(pod).get("uid"):
            return None
        return key

    def _pod_added(self, pod: dict) -> None:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        key = self._owning_job_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add_after(key, SYNC_BATCH_PERIOD)
        elif has_tracking_finalizer(pod) and self._job_key_of(pod):
            self.queue.add_after(self._job_key_of(pod), SYNC_BATCH_PERIOD)  # an orphan holding our finalizer
        elif controller_ref(pod) is None:
            self._enqueue_matching_jobs(pod)

    def _enqueue_matching_jobs(self, pod: Mapping) -> None:
        """A pod without a controller: the Jobs whose selector matches it may adopt it."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        for job in self.job_informer.list(meta.get("namespace") or ""):
            selector = (job.get("spec") or {}).get("selector") or {}
            if (selector.get("matchLabels") or selector.get("matchExpressions")) and selector_matches(selector,
                                                                                                      labels):
                self.queue.add_after(object_key(job), SYNC_BATCH_PERIOD)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get("resourceVersion"):
            return
        if (new.get("metadata") or {}).get("deletionTimestamp") and not (old.get("metadata") or {}).get(
                "deletionTimestamp"):
            self._pod_deleted(new)
            return
        key = self._job_key_of(new)
        if key is not None:
            self.queue.add_after(key, SYNC_BATCH_PERIOD)
        old_key = self._job_key_of(old)
        if old_key is not None and old_key != key:
            self.queue.add_after(old_key, SYNC_BATCH_PERIOD)  # released: the old owner recounts
        if controller_ref(new) is None and (old.get("metadata") or {}).get("labels") != (new.get(
                "metadata") or {}).get("labels"):
            self._enqueue_matching_jobs(new)

    def _pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        obj = pod.obj if isinstance(pod, DeletedFinalStateUnknown) else pod
        key = self._owning_job_key(obj)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(obj))
        key = key or self._job_key_of(obj)
        if key is not None:
            self.queue.add_after(key, SYNC_BATCH_PERIOD)

    # ---- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        job = self.job_informer.get(key)
        if job is None:
            self.expectations.delete(key)
            self.finalizer_removals.pop(key, None)
            await self._release_orphans(key, None)
            return
        manager = (job.get("spec") or {}).get("managedBy")
        if manager not in (None, JOB_CONTROLLER_MANAGER):
            return  # another controller (e.g. Kueue's MultiKueue) reconciles this Job
        await self._release_orphans(key, job["metadata"]["uid"])
        job = {**job, "apiVersion": "batch/v1", "kind": "Job"}
        pods = await self._claim_pods(key, job)
        if ju.is_job_finished(job):
            # Counted already; what may be left is a finalizer on a pod (e.g. after a crash).
            await self.remove_finalizers(key, [p for p in pods if has_tracking_finalizer(p)])
            return
        requeue = await JobSync(self, key, job, pods).run()
        if requeue is not None:
            raise RequeueAfter(requeue)

    async def _claim_pods(self, key: str, job: dict) -> list[dict]:
        """Upstream ClaimPods with the tracking finalizer: the owned pods that match the selector, plus
        matching orphans adopted (ownerReference and finalizer added); owned pods that stopped matching
        are released."""
        meta = job["metadata"]
        selector = (job.get("spec") or {}).get("selector") or {}
        deleting = bool(meta.get("deletionTimestamp"))
        claimed: list[dict] = []
        for pod in self.pod_informer.by_index(CONTROLLER_UID_INDEX, meta["uid"]):
            if self._job_key_of(pod) != key:
                continue
            if selector_matches(selector, (pod.get("metadata") or {}).get("labels") or {}):
                claimed.append(pod)
            elif not deleting:
                await self._set_ownership(job, pod, own=False)
        if deleting or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            return claimed
        orphans = [p for p in self.pod_informer.by_index(ORPHAN_INDEX, meta.get("namespace", ""))
                   if not p["metadata"].get("deletionTimestamp")
                   and selector_matches(selector, p["metadata"].get("labels") or {})]
        if orphans and await self._can_adopt(job):
            for pod in orphans:
                adopted = await self._set_ownership(job, pod, own=True)
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _can_adopt(self, job: dict) -> bool:
        """A live read: never adopt for a Job that is being deleted or was replaced under the same name."""
        meta = job["metadata"]
        try:
            fresh = await self.client.get("jobs", meta["name"], meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc):
                return False
            raise
        return fresh["metadata"].get("uid") == meta["uid"] and not fresh["metadata"].get("deletionTimestamp")

    async def _set_ownership(self, job: dict, pod: dict, *, own: bool) -> dict | None:
        """Adopt (controller ownerReference and tracking finalizer added) or release (both removed) a pod."""
        meta = pod["metadata"]
        uid = job["metadata"]["uid"]
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid]
        finalizers = [f for f in meta.get("finalizers") or () if f != ju.JOB_TRACKING_FINALIZER]
        if own:
            refs.append({"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": uid,
                         "controller": True, "blockOwnerDeletion": True})
            finalizers.append(ju.JOB_TRACKING_FINALIZER)
        patch = {"metadata": {"uid": meta["uid"], "ownerReferences": refs or None, "finalizers": finalizers or None}}
        try:
            updated = await self.client.patch("pods", meta["name"], patch, meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc) or is_conflict(exc) or exc.code == 422:
                return None
            raise
        log.info("%s: job %s %s pod %s", self.name, object_key(job), "adopted" if own else "released", meta["name"])
        return updated

    async def _release_orphans(self, key: str, live_uid: str | None) -> None:
        """Pods of a deleted (or replaced) Job named `key` that still hold our finalizer: let them go."""
        namespace, name = split_key(key)
        orphans = []
        for pod in self.pod_informer.list(namespace):
            ref = controller_ref(pod)
            if (ref and ref.get("kind") == "Job" and ref.get("name") == name and ref.get("uid") != live_uid
                    and has_tracking_finalizer(pod)):
                orphans.append(pod)
        await self.remove_finalizers(key, orphans)

    async def remove_finalizers(self, key: str, pods: list[dict]) -> list[str]:
        """Remove the tracking finalizer; returns the uids whose pods no longer hold it (or are gone)."""
        if not pods:
            return []
        pending = self.finalizer_removals.setdefault(key, set())

        async def remove(pod: dict) -> str | None:
            meta = pod["metadata"]
            pending.add(meta["uid"])
            patch = {"metadata": {"uid": meta["uid"],
                                  "$deleteFromPrimitiveList/finalizers": [ju.JOB_TRACKING_FINALIZER]}}
            try:
                await self.client.patch("pods", meta["name"], patch, meta.get("namespace"), patch_type="strategic")
            except APIStatusError as exc:
                if is_not_found(exc) or is_conflict(exc) or exc.code == 422:
                    return meta["uid"]  # gone, or replaced by a pod with another uid: nothing holds it
                pending.discard(meta["uid"])
                raise
            return meta["uid"]

        results = await asyncio.gather(*(remove(p) for p in pods), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if isinstance(err, asyncio.CancelledError):
                raise err
        if errors:
            raise errors[0]
        return [r for r in results if isinstance(r, str)]

    # ---- writes used by JobSync ----------------------------------------------------------

    def event(self, job: dict, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(job, type_, reason, message)

    async def create_pods(self, key: str, job: dict, specs: list[tuple[int | None, int, int]]
                          ) -> tuple[int, BaseException | None]:
        """Create one pod per (index, index failures, ignored failures), slow-start batched; returns how many
        were created and the first error."""
        self.expectations.expect_creations(key, len(specs))
        remaining = list(specs)

        async def create_one() -> None:
            index, failures, ignored = remaining.pop(0)
            body = ju.pod_from_template(job, index, failures, ignored)
            try:
                pod = await self.client.create(body)
            except APIStatusError as exc:
                self.expectations.creation_observed(key)
                if exc.code == 403 and "being terminated" in str(exc):
                    return  # the namespace is going away: nothing to report
                self.event(job, WARNING, "FailedCreate", f"Error creating: {exc}")
                raise
            except BaseException:
                self.expectations.creation_observed(key)
                raise
            self.event(job, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

        successes, error = await slow_start_batch(len(specs), create_one)
        for _ in range(len(remaining)):
            self.expectations.creation_observed(key)  # batches never started will never be seen
        return successes, error

    async def delete_pods(self, key: str, job: dict, pods: list[dict]) -> BaseException | None:
        if not pods:
            return None
        self.expectations.expect_deletions(key, [object_key(p) for p in pods])

        async def delete_one(pod: dict) -> None:
            meta = pod["metadata"]
            try:
                await self.client.delete("pods", meta["name"], meta.get("namespace"),
                                         preconditions={"uid": meta["uid"]})
            except APIStatusError as exc:
                self.expectations.deletion_observed(key, object_key(pod))
                if is_not_found(exc):
                    return
                self.event(job, WARNING, "FailedDelete", f"Error deleting: {exc}")
                raise
            self.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        results = await asyncio.gather(*(delete_one(p) for p in pods), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if isinstance(err, asyncio.CancelledError):
                raise err
        return errors[0] if errors else None

    async def write_status(self, job: dict, status: dict) -> dict:
        """PUT /status; a conflict raises so the key is retried from the (newer) informer copy."""
        if status == (job.get("status") or {}):
            return job
        updated = await self.client.update_status({**job, "status": status}, resource="jobs")
        return {**updated, "apiVersion": "batch/v1", "kind": "Job"}


class JobSync:
    """One reconciliation of one Job: a plain object so each step reads the same snapshot."""

    def __init__(self, ctl: JobController, key: str, job: dict, pods: list[dict]):
        self.ctl = ctl
        self.key = key
        self.job = job
        self.spec = job.get("spec") or {}
        self.pods = pods
        self.now = ctl.wall()
        self.indexed = ju.is_indexed(job)
        self.completions = self.spec.get("completions")
        self.per_index_limit = self.spec.get("backoffLimitPerIndex") if self.indexed else None
        self.requeue: float | None = None
        self.deleted = 0
        self.created = 0

    async def _delete(self, pods: list[dict]) -> BaseException | None:
        # Deleted pods are terminating from now on, even before the informer shows it.
        self.deleted += len(pods)
        return await self.ctl.delete_pods(self.key, self.job, pods)

    async def _create(self, specs: list[tuple[int | None, int, int]]) -> BaseException | None:
        # Created pods are active from now on, even before the informer shows them (upstream active += diff).
        created, error = await self.ctl.create_pods(self.key, self.job, specs)
        self.created += created
        return error

    def _requeue_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    def _valid_index(self, index: int | None) -> bool:
        return index is not None and (self.completions is None or index < self.completions)

    async def run(self) -> float | None:
        ctl, job, key = self.ctl, self.job, self.key
        status = copy.deepcopy(job.get("status") or {})
        uncounted = status.get("uncountedTerminatedPods") or {}
        unc_succeeded: list[str] = list(uncounted.get("succeeded") or [])
        unc_failed: list[str] = list(uncounted.get("failed") or [])
        pending_removal = ctl.finalizer_removals.setdefault(key, set())
        by_uid = {p["metadata"]["uid"]: p for p in self.pods}
        # Forget removals that the informer now shows as done.
        for uid in list(pending_removal):
            if uid not in by_uid or not has_tracking_finalizer(by_uid[uid]):
                pending_removal.discard(uid)

        succeeded_indexes = ju.parse_indexes(status.get("completedIndexes"), self.completions) if self.indexed \
            else set()
        failed_indexes = ju.parse_indexes(status.get("failedIndexes"), self.completions) \
            if self.per_index_limit is not None else set()
        interim = self._interim_condition(status)
        fail_message: str | None = None
        new_succeeded: list[str] = []
        new_failed: list[str] = []
        finished_with_finalizer: list[dict] = []
        for pod in self.pods:
            uid = pod["metadata"]["uid"]
            if not has_tracking_finalizer(pod) or uid in pending_removal:
                continue
            if uid in unc_succeeded or uid in unc_failed:
                finished_with_finalizer.append(pod)
                continue
            index = ju.pod_index(pod)
            if phase(pod) == "Succeeded":
                finished_with_finalizer.append(pod)
                if not self.indexed:
                    new_succeeded.append(uid)
                elif self._valid_index(index) and index not in succeeded_indexes:
                    succeeded_indexes.add(index)
                    new_succeeded.append(uid)
                continue
            # Once the Job is decided, every pod that stops running counts as failed.
            if not (is_pod_failed(pod, job) or (interim is not None and is_terminating(pod))):
                continue
            finished_with_finalizer.append(pod)
            if self.indexed and not self._valid_index(index):
                continue
            match = ju.match_pod_failure_policy(self.spec.get("podFailurePolicy"), pod) \
                if phase(pod) == "Failed" else None
            if match is not None and match.action == "FailJob" and fail_message is None:
                fail_message = match.message
            if match is not None and match.action == "Ignore":
                continue
            new_failed.append(uid)
            if self.per_index_limit is not None and index not in succeeded_indexes:
                if (match is not None and match.action == "FailIndex") or \
                        ju.index_failure_count(pod) + 1 > self.per_index_limit:
                    failed_indexes.add(index)

        status.setdefault("uncountedTerminatedPods", {})
        if self.indexed:
            status["completedIndexes"] = ju.format_indexes(succeeded_indexes)
        if self.per_index_limit is not None:
            status["failedIndexes"] = ju.format_indexes(failed_indexes)
        unc_succeeded += new_succeeded
        unc_failed += new_failed
        succeeded_total = int(status.get("succeeded") or 0) + len(unc_succeeded)
        failed_total = int(status.get("failed") or 0) + len(unc_failed)

        active = [p for p in self.pods if is_active(p)]
        if interim is None and not self.spec.get("suspend"):
            interim = self._decide(status, active, fail_message, failed_total, succeeded_total,
                                   succeeded_indexes, failed_indexes)

        # Pods: only act when our earlier creates and deletes have been observed.
        manage_error: BaseException | None = None
        if interim is not None:
            if ctl.expectations.satisfied(key):
                manage_error = await self._delete(active)
            active = []
        elif ctl.expectations.satisfied(key) and not job["metadata"].get("deletionTimestamp"):
            active, manage_error = await self._manage(active, succeeded_total, succeeded_indexes,
                                                      failed_indexes)
            if interim is None and not self.spec.get("suspend") and self._completed(
                    active, succeeded_total, succeeded_indexes):
                interim = self._set_interim(status, "SuccessCriteriaMet", ju.REASON_COMPLETIONS_REACHED,
                                            ju.MESSAGE_COMPLETIONS_REACHED)
                manage_error = await self._delete(active) or manage_error
                active = []

        self._suspension(status, active)
        terminating = sum(1 for p in self.pods if is_terminating(p)) + self.deleted
        status["active"] = len(active) + self.created
        status["ready"] = sum(1 for p in active if is_pod_ready(p))
        status["terminating"] = terminating

        # 1. Record newly finished pods as uncounted, before any finalizer goes.
        if new_succeeded or new_failed:
            status["uncountedTerminatedPods"] = self._uncounted(unc_succeeded, unc_failed)
            job = await ctl.write_status(job, self._clean(status))
            status = copy.deepcopy(job["status"])
        # 2. Remove the finalizers of every finished pod we recorded.
        released = set(await ctl.remove_finalizers(key, finished_with_finalizer))
        # 3. Count the uids whose pods no longer hold the finalizer.
        gone_or_free = {uid for uid in unc_succeeded + unc_failed
                        if uid in released or uid not in by_uid or not has_tracking_finalizer(by_uid[uid])}
        counted_succeeded = [u for u in unc_succeeded if u in gone_or_free]
        counted_failed = [u for u in unc_failed if u in gone_or_free]
        status["succeeded"] = int(status.get("succeeded") or 0) + len(counted_succeeded)
        status["failed"] = int(status.get("failed") or 0) + len(counted_failed)
        status["uncountedTerminatedPods"] = self._uncounted(
            [u for u in unc_succeeded if u not in gone_or_free], [u for u in unc_failed if u not in gone_or_free])
        finished = interim is not None and not status["uncountedTerminatedPods"] and terminating == 0
        if finished:
            self._finish(status, interim)
        await ctl.write_status(job, self._clean(status))
        if finished:
            if interim["type"] == "SuccessCriteriaMet":
                ctl.event(job, NORMAL, "Completed", "Job completed")
            else:
                ctl.event(job, WARNING, interim["reason"], interim["message"])
        if manage_error is not None:
            raise manage_error
        return self.requeue

    # ---- decisions -------------------------------------------------------------------------

    @staticmethod
    def _interim_condition(status: Mapping) -> dict | None:
        for type_ in ("FailureTarget", "SuccessCriteriaMet"):
            cond = ju.find_condition(status, type_)
            if cond is not None and cond.get("status") == "True":
                return cond
        return None

    def _set_interim(self, status: dict, type_: str, reason: str, message: str) -> dict:
        ju.set_condition(status, type_, "True", reason, message, self.now)
        return ju.find_condition(status, type_)

    def _decide(self, status: dict, active: list[dict], fail_message: str | None, failed_total: int,
                succeeded_total: int, succeeded_indexes: set[int], failed_indexes: set[int]) -> dict | None:
        spec = self.spec
        if fail_message is not None:
            return self._set_interim(status, "FailureTarget", ju.REASON_POD_FAILURE_POLICY, fail_message)
        backoff_limit = int(spec.get("backoffLimit", 6))
        if self.per_index_limit is None and (failed_total > backoff_limit or self._past_backoff_on_failure(active)):
            return self._set_interim(status, "FailureTarget", ju.REASON_BACKOFF_LIMIT, ju.MESSAGE_BACKOFF_LIMIT)
        deadline = spec.get("activeDeadlineSeconds")
        started = ju.parse_time(status.get("startTime"))
        if deadline is not None and started is not None:
            left = started + int(deadline) - self.now
            if left <= 0:
                return self._set_interim(status, "FailureTarget", ju.REASON_DEADLINE, ju.MESSAGE_DEADLINE)
            self._requeue_in(left)
        if self.per_index_limit is not None:
            max_failed = spec.get("maxFailedIndexes")
            if max_failed is not None and len(failed_indexes) > int(max_failed):
                return self._set_interim(status, "FailureTarget", ju.REASON_MAX_FAILED_INDEXES,
                                         ju.MESSAGE_MAX_FAILED_INDEXES)
            if failed_indexes and len(succeeded_indexes | failed_indexes) >= int(self.completions or 0):
                return self._set_interim(status, "FailureTarget", ju.REASON_FAILED_INDEXES, ju.MESSAGE_FAILED_INDEXES)
        if self.indexed:
            message = ju.match_success_policy(spec.get("successPolicy"), succeeded_indexes,
                                              int(self.completions or 0))
            if message is not None:
                return self._set_interim(status, "SuccessCriteriaMet", ju.REASON_SUCCESS_POLICY, message)
        return None

    def _past_backoff_on_failure(self, active: list[dict]) -> bool:
        """Upstream pastBackoffLimitOnFailure: with restartPolicy OnFailure, container restarts count."""
        template_spec = (self.spec.get("template") or {}).get("spec") or {}
        if template_spec.get("restartPolicy") != "OnFailure":
            return False
        limit = int(self.spec.get("backoffLimit", 6))
        restarts = sum(restarts_of(p) for p in active)
        return restarts > 0 if limit == 0 else restarts >= limit

    def _completed(self, active: list[dict], succeeded_total: int, succeeded_indexes: set[int]) -> bool:
        if self.indexed:
            return len(succeeded_indexes) >= int(self.completions or 0)
        if self.completions is None:
            return succeeded_total > 0 and not active
        return succeeded_total >= int(self.completions) and not active

    def _suspension(self, status: dict, active: list[dict]) -> None:
        """Suspended/resumed conditions and events; resuming restarts startTime (and the deadline with it)."""
        job = self.job
        if self.spec.get("suspend") and self._interim_condition(status) is None:
            if ju.set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", self.now):
                self.ctl.event(job, NORMAL, "Suspended", "Job suspended")
            if not active:
                status.pop("startTime", None)
            return
        if ju.set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", self.now):
            self.ctl.event(job, NORMAL, "Resumed", "Job resumed")
            status["startTime"] = ju.rfc3339(self.now)
        elif not self.spec.get("suspend") and not status.get("startTime"):
            status["startTime"] = ju.rfc3339(self.now)
            deadline = self.spec.get("activeDeadlineSeconds")
            if deadline is not None:
                self._requeue_in(int(deadline))

    def _finish(self, status: dict, interim: dict) -> None:
        if interim["type"] == "SuccessCriteriaMet":
            ju.set_condition(status, "Complete", "True", interim["reason"], interim["message"], self.now)
            status["completionTime"] = ju.rfc3339(self.now)
        else:
            ju.set_condition(status, "Failed", "True", interim["reason"], interim["message"], self.now)

    @staticmethod
    def _uncounted(succeeded: list[str], failed: list[str]) -> dict:
        result = {}
        if succeeded:
            result["succeeded"] = succeeded
        if failed:
            result["failed"] = failed
        return result

    @staticmethod
    def _clean(status: dict) -> dict:
        """JobStatus omits zero active/succeeded/failed (omitempty); ready and terminating are pointers."""
        for key in ("active", "succeeded", "failed"):
            if not status.get(key):
                status.pop(key, None)
        return status

    # ---- pods --------------------------------------------------------------------------

    async def _manage(self, active: list[dict], succeeded_total: int, succeeded_indexes: set[int],
                      failed_indexes: set[int]) -> tuple[list[dict], BaseException | None]:
        spec = self.spec
        if spec.get("suspend"):
            error = await self._delete(active[:MAX_POD_CREATE_DELETE_PER_SYNC])
            return [], error
        parallelism = int(spec.get("parallelism", 1))
        terminating = [p for p in self.pods if is_terminating(p)]
        if self.indexed:
            return await self._manage_indexed(active, terminating, parallelism, succeeded_indexes, failed_indexes)
        if self.completions is None:
            want = len(active) if succeeded_total > 0 else parallelism
        else:
            want = max(min(parallelism, int(self.completions) - succeeded_total), 0)
        if len(active) > want:
            victims = pods_to_delete(active, min(len(active) - want, MAX_POD_CREATE_DELETE_PER_SYNC))
            error = await self._delete(victims)
            return [p for p in active if p not in victims], error
        missing = want - len(active) - (len(terminating) if only_replace_failed(self.job) else 0)
        if missing <= 0:
            return active, None
        wait = ju.backoff_remaining(self._finish_history(), self.now)
        if wait > 0:
            self._requeue_in(wait)
            return active, None
        count = min(missing, MAX_POD_CREATE_DELETE_PER_SYNC)
        return active, await self._create([(None, 0, 0)] * count)

    def _finish_history(self, index: int | None = None) -> list[tuple[float, bool]]:
        history = []
        for pod in self.pods:
            if index is not None and ju.pod_index(pod) != index:
                continue
            if phase(pod) == "Succeeded":
                history.append((ju.pod_finish_time(pod), True))
            elif is_pod_failed(pod, self.job):
                history.append((ju.pod_finish_time(pod), False))
        return history

    async def _manage_indexed(self, active: list[dict], terminating: list[dict], parallelism: int,
                              succeeded_indexes: set[int], failed_indexes: set[int]
                              ) -> tuple[list[dict], BaseException | None]:
        completions = int(self.completions or 0)
        keep: dict[int, dict] = {}
        surplus: list[dict] = []
        for pod in sorted(active, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
            index = ju.pod_index(pod)
            if not self._valid_index(index) or index in keep or index in succeeded_indexes \
                    or index in failed_indexes:
                surplus.append(pod)
            else:
                keep[index] = pod
        if len(keep) > parallelism:
            for index in sorted(keep, reverse=True)[:len(keep) - parallelism]:
                surplus.append(keep.pop(index))
        if surplus:
            error = await self._delete(surplus[:MAX_POD_CREATE_DELETE_PER_SYNC])
            return list(keep.values()), error
        busy = set(keep)
        if only_replace_failed(self.job):
            busy |= {ju.pod_index(p) for p in terminating}
        wanted: list[tuple[int | None, int, int]] = []
        for index in range(completions):
            if len(keep) + len(wanted) >= parallelism or len(wanted) >= MAX_POD_CREATE_DELETE_PER_SYNC:
                break
            if index in busy or index in succeeded_indexes or index in failed_indexes:
                continue
            failures, ignored = self._index_failures(index)
            wait = ju.backoff_remaining(self._finish_history(index), self.now) if self.per_index_limit is not None \
                else 0.0
            if wait > 0:
                self._requeue_in(wait)
                continue
            wanted.append((index, failures, ignored))
        if not wanted:
            return list(keep.values()), None
        if self.per_index_limit is None:
            wait = ju.backoff_remaining(self._finish_history(), self.now)
            if wait > 0:
                self._requeue_in(wait)
                return list(keep.values()), None
        return list(keep.values()), await self._create(wanted)

    def _index_failures(self, index: int) -> tuple[int, int]:
        """The failure and ignored-failure counts a replacement pod for `index` carries (upstream keeps them
        on the pods: the latest failed pod's count plus one)."""
        failures = ignored = 0
        for pod in self.pods:
            if ju.pod_index(pod) != index or not is_pod_failed(pod, self.job):
                continue
            match = ju.match_pod_failure_policy(self.spec.get("podFailurePolicy"), pod) \
                if phase(pod) == "Failed" else None
            if match is not None and match.action == "Ignore":
                ignored = max(ignored, ju.index_ignored_failure_count(pod) + 1)
                failures = max(failures, ju.index_failure_count(pod))
            else:
                failures = max(failures, ju.index_failure_count(pod) + 1)
                ignored = max(ignored, ju.index_ignored_failure_count(pod))
        return failures, ignored

