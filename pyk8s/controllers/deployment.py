"""The Deployment controller (upstream pkg/controller/deployment).

Each Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`, one per distinct pod template;
the one whose template equals the Deployment's (ignoring the hash label) is the *new* ReplicaSet, the rest
are old. A sync claims ReplicaSets, then:
- paused, or only resized: scale (proportionally across active ReplicaSets during a rollout), clean up;
- RollingUpdate: grow the new ReplicaSet up to replicas+maxSurge, shrink old ones while at least
  replicas-maxUnavailable stay available;
- Recreate: shrink every old ReplicaSet to 0, wait until none of their pods run, then create the new one.
Revisions live in the `deployment.kubernetes.io/revision` annotation (a rollback makes an old ReplicaSet new
again with the next revision), and status carries the Available and Progressing conditions that
`kubectl rollout status` reads. Every write is conditional on the resourceVersion the informer showed, so a
stale cache or a racing writer gets a conflict and the key is retried.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping

from ..client import (
    NORMAL,
    WARNING,
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    EventRecorder,
    SharedInformerFactory,
    WorkQueue,
    is_already_exists,
    is_not_found,
    object_key,
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock
from . import deployment_util as du
from .ownership import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    claim_candidates,
    controller_index,
    controller_ref,
    owner_reference,
    selects,
)

log = logging.getLogger("pyk8s.controllers.deployment")

NAME = "deployment-controller"
DEFAULT_WORKERS = 5  # upstream --concurrent-deployment-syncs


def _selector(obj: Mapping) -> dict:
    return (obj.get("spec") or {}).get("selector") or {}




class DeploymentController:
    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK):
        self.name = NAME
        self.client = client
        self.recorder = recorder
        self.d_informer = factory.informer("deployments")
        self.rs_informer = factory.informer("replicasets", indexers={CONTROLLER_INDEX: controller_index})
        self.pod_informer = factory.informer("pods", indexers={CONTROLLER_INDEX: controller_index})
        self.queue: WorkQueue[str] = WorkQueue(NAME, clock=clock)
        self.controller: Controller[str] = Controller(
            NAME, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.d_informer.wait_for_sync, self.rs_informer.wait_for_sync,
                      self.pod_informer.wait_for_sync])
        self.d_informer.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                    on_delete=self._enqueue)
        self.rs_informer.add_handler(on_add=self._rs_changed, on_update=self._rs_updated,
                                     on_delete=self._rs_changed)
        self.pod_informer.add_handler(on_delete=self._pod_deleted)

    @classmethod
    def from_context(cls, ctx) -> DeploymentController:
        workers = int((ctx.options or {}).get("concurrent_deployment_syncs", DEFAULT_WORKERS))
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock, workers=workers)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers ---------------------------------------------------------------

    def _enqueue(self, d: dict | DeletedFinalStateUnknown) -> None:
        self.queue.add(object_key(d))

    def _owner_key(self, namespace: str, ref: Mapping | None) -> str | None:
        if not ref or ref.get("kind") != "Deployment":
            return None
        key = f"{namespace}/{ref.get('name')}"
        d = self.d_informer.get(key)
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _rs_changed(self, rs: dict | DeletedFinalStateUnknown) -> None:
        obj = rs.obj if isinstance(rs, DeletedFinalStateUnknown) else rs
        namespace = obj["metadata"].get("namespace") or ""
        key = self._owner_key(namespace, controller_ref(obj))
        if key is not None:
            self.queue.add(key)
            return
        if controller_ref(obj) is None:  # an orphan: every Deployment that would adopt it
            for d in self.d_informer.list(namespace):
                if selects(d, obj):
                    self.queue.add(object_key(d))

    def _rs_updated(self, old: dict, new: dict) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if controller_ref(old) != controller_ref(new):
            self._rs_changed(old)
        self._rs_changed(new)

    def _pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        """A Recreate rollout waits for the old pods to go: their deletion wakes it."""
        obj = pod.obj if isinstance(pod, DeletedFinalStateUnknown) else pod
        ref = controller_ref(obj)
        if not ref or ref.get("kind") != "ReplicaSet":
            return
        namespace = obj["metadata"].get("namespace") or ""
        rs = self.rs_informer.get(f"{namespace}/{ref.get('name')}")
        if rs is None:
            return
        key = self._owner_key(namespace, controller_ref(rs))
        d = self.d_informer.get(key) if key else None
        if d is not None and not du.is_rolling_update(d):
            self.queue.add(key)

    # ---- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.d_informer.get(key)
        if cached is None:
            log.debug("deployment %s has been deleted", key)
            return
        d = copy.deepcopy(cached)
        namespace, _ = split_key(key)
        selector = _selector(d)
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self._event(d, WARNING, "SelectingAll",
                        "This deployment is selecting all pods. A non-empty selector is required.")
            if int(d.get("status", {}).get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                d.setdefault("status", {})["observedGeneration"] = d["metadata"].get("generation")
                await self._update_status(d)
            return
        rss = await self._claim_replica_sets(d, claim_candidates(self.rs_informer, d))
        if d["metadata"].get("deletionTimestamp"):
            await self._sync_status_only(d, rss)
            return
        d = await self._check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            await self._sync(d, rss)
            return
        if self._is_scaling_event(d, rss):
            await self._sync(d, rss)
            return
        if du.is_rolling_update(d):
            await self._rollout_rolling(d, rss)
        else:
            await self._rollout_recreate(d, rss)

    async def _claim_replica_sets(self, d: dict, rss: list[dict]) -> list[dict]:
        manager = ControllerRefManager(self.client, d, "deployments", "apps/v1", "Deployment", "replicasets",
                                       lambda rs: selects(d, rs))
        return [copy.deepcopy(rs) for rs in await manager.claim(rss)]

    def _is_scaling_event(self, d: dict, rss: list[dict]) -> bool:
        new_rs, old_rss = self._split(d, rss)
        for rs in du.active([new_rs, *old_rss]):
            desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(du.DESIRED_REPLICAS_ANNOTATION)
            if desired is not None and desired != str(du.replicas_of(d)):
                return True
        return False

    @staticmethod
    def _split(d: Mapping, rss: list[dict]) -> tuple[dict | None, list[dict]]:
        new_rs = du.find_new_replica_set(d, rss)
        old = [rs for rs in rss if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        return new_rs, old  # type: ignore[return-value]

    async def _check_paused_conditions(self, d: dict) -> dict:
        if not du.has_progress_deadline(d):
            return d
        status = d.setdefault("status", {})
        cond = du.get_condition(status, du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT_REASON:
            return d  # a reported lack of progress is not overwritten by a pause
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED_REASON
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_cond:
            du.set_condition(status, du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED_REASON,
                                                      "Deployment is paused"))
        elif not paused and paused_cond:
            du.set_condition(status, du.new_condition(du.PROGRESSING, "Unknown", du.RESUMED_REASON,
                                                      "Deployment is resumed"))
        else:
            return d
        return await self._update_status(d)

    # ---- new / old ReplicaSets --------------------------------------------------------

    async def _get_all_rss_and_sync_revision(self, d: dict, rss: list[dict],
                                             create: bool) -> tuple[dict | None, list[dict]]:
        new_rs, old_rss = self._split(d, rss)
        new_rs = await self._get_new_replica_set(d, rss, new_rs, old_rss, create)
        return new_rs, old_rss

    async def _get_new_replica_set(self, d: dict, all_rss: list[dict], existing: dict | None,
                                   old_rss: list[dict], create: bool) -> dict | None:
        new_revision = du.max_revision(old_rss) + 1
        status = d.setdefault("status", {})
        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = du.set_new_replica_set_annotations(d, rs, new_revision, True)
            min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
            if changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                return await self.client.update(rs, resource="replicasets")
            needs_update = self._set_deployment_revision(d, du.revision_of(rs))
            if du.has_progress_deadline(d) and du.get_condition(status, du.PROGRESSING) is None:
                du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.FOUND_NEW_RS_REASON,
                                                          f'Found new replica set "{rs["metadata"]["name"]}"'))
                needs_update = True
            if needs_update:
                d.update(await self._update_status(d))
            return rs
        if not create:
            return None
        collision_count = status.get("collisionCount")
        template = copy.deepcopy((d.get("spec") or {}).get("template") or {})
        hash_ = du.pod_template_hash(template, collision_count)
        template.setdefault("metadata", {}).setdefault("labels", {})[du.POD_TEMPLATE_HASH_LABEL] = hash_
        selector = copy.deepcopy(_selector(d))
        selector.setdefault("matchLabels", {})[du.POD_TEMPLATE_HASH_LABEL] = hash_
        meta = d["metadata"]
        new_rs: dict = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta.get("namespace"),
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [owner_reference(d, "apps/v1", "Deployment")]},
            "spec": {"replicas": 0, "minReadySeconds": int((d.get("spec") or {}).get("minReadySeconds") or 0),
                     "selector": selector, "template": template}}
        replicas = du.new_rs_new_replicas(d, all_rss, new_rs)
        new_rs["spec"]["replicas"] = replicas
        du.set_new_replica_set_annotations(d, new_rs, new_revision, False)
        name = new_rs["metadata"]["name"]
        already_exists = False
        try:
            created = await self.client.create(new_rs)
        except APIStatusError as exc:
            created = None
            if not is_already_exists(exc):
                if du.has_progress_deadline(d):
                    du.set_condition(status, du.new_condition(du.PROGRESSING, "False", du.FAILED_RS_CREATE_REASON,
                                                              f'Failed to create new replica set "{name}": '
                                                              f'{exc.message}'))
                    await self._update_status(d)
                self._event(d, WARNING, du.FAILED_RS_CREATE_REASON, f'Failed to create new replica set "{name}": '
                            f"{exc.message}")
                raise
        if created is None:
            created = await self.client.get("replicasets", name, meta.get("namespace"))
            ref = controller_ref(created)
            if not (ref and ref.get("uid") == meta["uid"] and du.equal_ignore_hash(
                    created["spec"]["template"], d["spec"]["template"])):
                # A different ReplicaSet holds the name: hash again with a bigger collision count.
                status["collisionCount"] = int(collision_count or 0) + 1
                await self._update_status(d)
                raise RuntimeError(f"replica set {name} already exists with a different template; "
                                   f"collision count now {status['collisionCount']}")
            already_exists = True
        if not already_exists and replicas > 0:
            self._event(d, NORMAL, "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas} from 0")
        needs_update = self._set_deployment_revision(d, new_revision)
        if not already_exists and du.has_progress_deadline(d):
            du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_REASON,
                                                      f'Created new replica set "{name}"'))
            needs_update = True
        if needs_update:
            d.update(await self._update_status(d))
        return created

    @staticmethod
    def _set_deployment_revision(d: dict, revision: int) -> bool:
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(du.REVISION_ANNOTATION) == str(revision):
            return False
        annotations[du.REVISION_ANNOTATION] = str(revision)
        return True

    # ---- scaling -----------------------------------------------------------------------

    async def _scale_replica_set(self, d: dict, rs: dict, new_scale: int) -> tuple[bool, dict]:
        """Set rs's size and replica annotations (one conditional update); returns (resized, rs)."""
        desired = du.replicas_of(d)
        max_total = desired + du.max_surge(d)
        size_changes = du.replicas_of(rs) != new_scale
        if not size_changes and not du.replicas_annotations_need_update(rs, desired, max_total):
            return False, rs
        old_scale = du.replicas_of(rs)
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = new_scale
        du.set_replicas_annotations(updated, desired, max_total)
        updated = await self.client.update(updated, resource="replicasets")
        if size_changes:
            direction = "up" if old_scale < new_scale else "down"
            self._event(d, NORMAL, "ScalingReplicaSet",
                        f"Scaled {direction} replica set {rs['metadata']['name']} to {new_scale} from {old_scale}")
        return size_changes, updated

    async def _scale(self, d: dict, new_rs: dict | None, old_rss: list[dict]) -> None:
        """Upstream scale(): resize for a changed spec.replicas without starting a rollout."""
        target = du.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if du.replicas_of(target) != du.replicas_of(d):
                await self._scale_replica_set(d, target, du.replicas_of(d))  # type: ignore[arg-type]
            return
        if du.is_saturated(d, new_rs):
            for rs in du.active(old_rss):
                await self._scale_replica_set(d, rs, 0)  # type: ignore[arg-type]
            return
        if du.is_rolling_update(d):
            rss = [rs for rs in du.active([*old_rss, new_rs])]
            sizes = du.proportional_sizes(d, rss)  # type: ignore[arg-type]
            for rs in rss:
                await self._scale_replica_set(d, rs, sizes[rs["metadata"]["name"]])  # type: ignore[arg-type]

    async def _sync(self, d: dict, rss: list[dict]) -> None:
        """Paused deployments and scaling events: scale, clean up (when paused), write status."""
        new_rs, old_rss = await self._get_all_rss_and_sync_revision(d, rss, False)
        await self._scale(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status_only(d, self._fresh(d, rss))

    def _fresh(self, d: Mapping, rss: list[dict]) -> list[dict]:
        """The claimed ReplicaSets as the informer shows them now (status written since the sync began)."""
        out = []
        for rs in rss:
            live = self.rs_informer.get(object_key(rs))
            out.append(live if live is not None and live["metadata"].get("uid") == rs["metadata"]["uid"] else rs)
        return out

    async def _sync_status_only(self, d: dict, rss: list[dict]) -> None:
        new_rs, old_rss = self._split(d, rss)
        status = du.calculate_status(d, [*old_rss, new_rs], new_rs)
        if status != (d.get("status") or {}):
            d["status"] = status
            await self._update_status(d)

    # ---- rollouts ----------------------------------------------------------------------

    async def _rollout_rolling(self, d: dict, rss: list[dict]) -> None:
        new_rs, old_rss = await self._get_all_rss_and_sync_revision(d, rss, True)
        all_rss = [*old_rss, new_rs] if new_rs is not None else list(old_rss)
        if await self._reconcile_new_replica_set(d, all_rss, new_rs):
            await self._sync_rollout_status(d, rss, new_rs)
            return
        if await self._reconcile_old_replica_sets(d, all_rss, du.active(old_rss), new_rs):  # type: ignore[arg-type]
            await self._sync_rollout_status(d, rss, new_rs)
            return
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, rss, new_rs)

    async def _reconcile_new_replica_set(self, d: dict, all_rss: list[dict], new_rs: dict | None) -> bool:
        if new_rs is None:
            return False
        replicas = du.replicas_of(d)
        current = du.replicas_of(new_rs)
        if current == replicas:
            return False
        if current > replicas:
            scaled, _ = await self._scale_replica_set(d, new_rs, replicas)
            return scaled
        scaled, _ = await self._scale_replica_set(d, new_rs, du.new_rs_new_replicas(d, all_rss, new_rs))
        return scaled

    async def _reconcile_old_replica_sets(self, d: dict, all_rss: list[dict], old_rss: list[dict],
                                          new_rs: dict | None) -> bool:
        if du.spec_replicas_sum(old_rss) == 0:
            return False
        budget = du.old_scale_down_budget(d, all_rss, new_rs)
        if budget <= 0:
            return False
        by_name = {rs["metadata"]["name"]: rs for rs in old_rss}
        cleaned = 0
        for name, size in du.cleanup_unhealthy_plan(old_rss, budget).items():
            rs = by_name[name]
            cleaned += du.replicas_of(rs) - size
            _, by_name[name] = await self._scale_replica_set(d, rs, size)
        old_rss = list(by_name.values())
        all_now = [*old_rss, new_rs] if new_rs is not None else old_rss
        scaled_down = 0
        for name, size in du.old_rolling_scale_down_plan(d, all_now, old_rss).items():
            rs = by_name[name]
            scaled_down += du.replicas_of(rs) - size
            _, by_name[name] = await self._scale_replica_set(d, rs, size)
        return cleaned + scaled_down > 0

    async def _rollout_recreate(self, d: dict, rss: list[dict]) -> None:
        new_rs, old_rss = await self._get_all_rss_and_sync_revision(d, rss, False)
        scaled_down = False
        for rs in du.active(old_rss):
            scaled, _ = await self._scale_replica_set(d, rs, 0)  # type: ignore[arg-type]
            scaled_down = scaled_down or scaled
        if scaled_down or self._old_pods_running(new_rs, old_rss):
            await self._sync_rollout_status(d, rss, new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._get_all_rss_and_sync_revision(d, rss, True)
        if new_rs is not None and du.replicas_of(new_rs) != du.replicas_of(d):
            await self._scale_replica_set(d, new_rs, du.replicas_of(d))
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, rss, new_rs)

    def _old_pods_running(self, new_rs: dict | None, old_rss: list[dict]) -> bool:
        if du.status_sum(old_rss, "replicas") > 0:
            return True
        for rs in old_rss:
            if new_rs is not None and rs["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                continue
            owned = self.pod_informer.by_index(CONTROLLER_INDEX, f"{rs['metadata'].get('namespace') or ''}/"
                                                                 f"{rs['metadata']['uid']}")
            if any((pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for pod in owned):
                return True  # running, pending, unknown or still terminating
        return False

    async def _cleanup(self, d: dict, old_rss: list[dict]) -> None:
        """Delete the oldest empty ReplicaSets beyond revisionHistoryLimit."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(alive) - int(limit)
        if surplus <= 0:
            return
        ordered = sorted(alive, key=lambda rs: (du.revision_of(rs), rs["metadata"].get("creationTimestamp") or ""))
        for rs in ordered[:surplus]:
            live = self.rs_informer.get(object_key(rs)) or rs
            if (du.rs_status(live, "replicas") != 0 or du.replicas_of(live) != 0
                    or int(live["metadata"].get("generation") or 0) > du.rs_status(live, "observedGeneration")):
                continue
            log.info("deployment %s: deleting old replica set %s", object_key(d), rs["metadata"]["name"])
            try:
                await self.client.delete("replicasets", rs["metadata"]["name"], rs["metadata"].get("namespace"),
                                         preconditions={"uid": rs["metadata"]["uid"]})
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise

    # ---- status ------------------------------------------------------------------------

    async def _sync_rollout_status(self, d: dict, rss: list[dict], new_rs: dict | None) -> None:
        rss = self._fresh(d, rss)
        if new_rs is not None and not any(rs["metadata"]["uid"] == new_rs["metadata"]["uid"] for rs in rss):
            rss.append(self.rs_informer.get(object_key(new_rs)) or new_rs)
        new_rs, old_rss = self._split(d, rss)
        now = time.time()
        status = du.calculate_status(d, [*old_rss, new_rs], new_rs, now)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, du.PROGRESSING)
        current = du.get_condition(d.get("status") or {}, du.PROGRESSING)
        complete_already = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                            and current is not None and current.get("reason") == du.NEW_RS_AVAILABLE_REASON)
        name = d["metadata"]["name"]
        if du.has_progress_deadline(d) and not complete_already:
            if du.deployment_complete(d, status):
                message = (f'ReplicaSet "{new_rs["metadata"]["name"]}" has successfully progressed.' if new_rs
                           else f'Deployment "{name}" has successfully progressed.')
                du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_AVAILABLE_REASON,
                                                          message, now))
            elif du.deployment_progressing(d, status):
                message = (f'ReplicaSet "{new_rs["metadata"]["name"]}" is progressing.' if new_rs
                           else f'Deployment "{name}" is progressing.')
                condition = du.new_condition(du.PROGRESSING, "True", du.RS_UPDATED_REASON, message, now)
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, du.PROGRESSING)
                du.set_condition(status, condition)
            elif du.deployment_timed_out(d, status, now):
                message = (f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out progressing.' if new_rs
                           else f'Deployment "{name}" has timed out progressing.')
                du.set_condition(status, du.new_condition(du.PROGRESSING, "False", du.TIMED_OUT_REASON, message,
                                                          now))
        failure = self._replica_failure(old_rss, new_rs)
        if failure is not None:
            du.set_condition(status, failure)
        else:
            du.remove_condition(status, du.REPLICA_FAILURE)
        if status == (d.get("status") or {}):
            self._requeue_stuck(d, status, now)
            return
        d["status"] = status
        await self._update_status(d)

    @staticmethod
    def _replica_failure(old_rss: list[dict], new_rs: dict | None) -> dict | None:
        for rs in [new_rs, *old_rss]:
            if rs is None:
                continue
            cond = du.get_condition(rs.get("status") or {}, du.REPLICA_FAILURE)
            if cond is not None:
                return {"type": du.REPLICA_FAILURE, "status": cond.get("status"),
                        "lastUpdateTime": cond.get("lastTransitionTime"),
                        "lastTransitionTime": cond.get("lastTransitionTime"),
                        "reason": cond.get("reason"), "message": cond.get("message")}
        return None

    def _requeue_stuck(self, d: dict, status: dict, now: float) -> None:
        """Look again when the progress deadline passes, so ProgressDeadlineExceeded is reported on time."""
        cond = du.get_condition(status, du.PROGRESSING)
        if not du.has_progress_deadline(d) or cond is None:
            return
        if cond.get("reason") in (du.NEW_RS_AVAILABLE_REASON, du.TIMED_OUT_REASON):
            return
        if du.deployment_complete(d, status):
            return
        since = du.parse_rfc3339(cond.get("lastUpdateTime"))
        if since is None:
            return
        after = since + int(d["spec"]["progressDeadlineSeconds"]) - now
        self.queue.add_after(object_key(d), max(after, 0.0) + 1.0)

    async def _update_status(self, d: dict) -> dict:
        body = {**d, "apiVersion": "apps/v1", "kind": "Deployment"}
        updated = await self.client.update_status(body, resource="deployments")
        d["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")
        return updated

    def _event(self, d: dict, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event({**d, "apiVersion": "apps/v1", "kind": "Deployment"}, type_, reason, message)
