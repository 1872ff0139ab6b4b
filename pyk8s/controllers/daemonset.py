"""The DaemonSet controller (upstream pkg/controller/daemon).

One pod per eligible node: a node is eligible when the pod template's nodeSelector and required node
affinity match it and every NoSchedule/NoExecute taint on it is tolerated, counting the tolerations every
daemon pod gets (not-ready and unreachable NoExecute; disk, memory and PID pressure, unschedulable
NoSchedule; network-unavailable for hostNetwork pods). A node whose only untolerated taints are NoSchedule
keeps the pod it already runs. Pods are created unscheduled with a required node affinity on
`metadata.name In [node]`, as upstream does, so the scheduler binds them.

Each template is recorded as a ControllerRevision `<ds>-<hash>`; pods carry `controller-revision-hash`.
RollingUpdate replaces old pods within maxUnavailable (or creates the new pod first within maxSurge);
OnDelete replaces a pod only after someone deletes it.
"""

from __future__ import annotations

import asyncio
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
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
    object_key,
)
from ..client.workqueue import REAL_CLOCK, Clock
from ..scheduler.cache import NodeInfo
from ..scheduler.plugins import term_matches, tolerated
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
from .replicaset import Expectations, is_pod_available, is_pod_ready, slow_start_batch

log = logging.getLogger("pyk8s.controllers.daemonset")

NAME = "daemonset-controller"
DEFAULT_WORKERS = 2  # upstream --concurrent-daemonset-syncs
BURST_REPLICAS = 250  # upstream BurstReplicas for daemon sets
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
FAILED_POD_BACKOFF = (1.0, 900.0)  # seconds: first and longest wait before deleting another failed pod

# The tolerations upstream adds to every daemon pod (util.AddOrUpdateDaemonPodTolerations), in its order.
DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


# ---- pure helpers -------------------------------------------------------------------------


def with_daemon_tolerations(pod_spec: dict) -> dict:
    """The pod spec with the automatic daemon tolerations added (replacing equal ones)."""
    spec = copy.deepcopy(pod_spec)
    tolerations = list(spec.get("tolerations") or [])
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    for key, effect in wanted:
        toleration = {"key": key, "operator": "Exists", "effect": effect}
        tolerations = [t for t in tolerations if not (
            t.get("key") == key and t.get("effect") == effect and (t.get("operator") or "Equal") == "Exists")]
        tolerations.append(toleration)
    spec["tolerations"] = tolerations
    return spec


def node_name_affinity(affinity: Mapping | None, node_name: str) -> dict:
    """Required node affinity pinned to one node by metadata.name (ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    affinity = copy.deepcopy(dict(affinity or {}))
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return affinity


def target_node_name(pod: Mapping) -> str | None:
    """The node a daemon pod is for: its spec.nodeName, else the node its metadata.name affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and \
                    len(field.get("values") or ()) == 1:
                return field["values"][0]
    return None


def _matches_affinity(pod_spec: Mapping, node: Mapping) -> bool:
    info = NodeInfo(node["metadata"]["name"], dict(node))
    labels = info.labels
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        return any(term_matches(t, info) for t in required.get("nodeSelectorTerms") or ())
    return True


def should_run_on_node(ds: Mapping, node: Mapping) -> tuple[bool, bool]:
    """(should run a daemon pod here, should keep a running one): upstream NodeShouldRunDaemonPod."""
    template_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    node_name = node["metadata"]["name"]
    if template_spec.get("nodeName") and template_spec["nodeName"] != node_name:
        return False, False
    if not _matches_affinity(template_spec, node):
        return False, False
    tolerations = with_daemon_tolerations(template_spec)["tolerations"]
    taints = (node.get("spec") or {}).get("taints") or []
    untolerated = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(
        tolerations, t)]
    if untolerated:
        return False, not any(t.get("effect") == "NoExecute" for t in untolerated)
    return True, True


def surge_and_unavailable(ds: Mapping, desired: int) -> tuple[int, int]:
    """maxSurge and maxUnavailable of a rolling DaemonSet (both round up); both zero means unavailable 1."""
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", 1), desired, True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _created_key(pod: Mapping) -> tuple:
    meta = pod.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("name") or ""


def is_pod_updated(pod: Mapping, hash_: str, generation: int | None) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(history.CONTROLLER_REVISION_HASH_LABEL) == hash_:
        return True
    return generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(generation)


def updated_and_old_pod(pods: list[dict], hash_: str, generation: int | None) -> tuple[dict | None, dict | None,
                                                                                         bool]:
    """(new pod, old pod, ok) on one node; not ok when the node has two of either kind (manage fixes it)."""
    new = old = None
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if is_pod_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update_plan(ds: Mapping, node_pods: Mapping[str, list[dict]], desired: int, hash_: str,
                        now: float) -> tuple[list[dict], list[str]]:
    """(old pods to delete, nodes that get a new pod now) for one rolling-update step."""
    surge, unavailable = surge_and_unavailable(ds, desired)
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    generation = (ds.get("metadata") or {}).get("generation")
    if surge == 0:
        count_unavailable = 0
        replace_now: list[dict] = []
        candidates: list[dict] = []
        for node in sorted(node_pods):
            new, old, ok = updated_and_old_pod(node_pods[node], hash_, generation)
            if not ok or (new is None) == (old is None):
                count_unavailable += 1
            elif new is not None:
                if not is_pod_available(new, min_ready, now):
                    count_unavailable += 1
            elif not is_pod_available(old, min_ready, now):
                replace_now.append(old)
            elif count_unavailable < unavailable:
                candidates.append(old)
        budget = max(0, min(unavailable - count_unavailable, len(candidates)))
        return replace_now + candidates[:budget], []
    count_surge = 0
    surge_now: list[str] = []
    surge_candidates: list[str] = []
    to_delete: list[dict] = []
    for node in sorted(node_pods):
        new, old, ok = updated_and_old_pod(node_pods[node], hash_, generation)
        if not ok:
            count_surge += 1
        elif old is None:
            continue
        elif new is None:
            if not is_pod_available(old, min_ready, now):
                surge_now.append(node)
            elif count_surge < surge:
                surge_candidates.append(node)
        elif not is_pod_available(new, min_ready, now):
            count_surge += 1
        else:
            to_delete.append(old)
    budget = max(0, min(surge - count_surge, len(surge_candidates)))
    return to_delete, surge_now + surge_candidates[:budget]


# ---- the controller -----------------------------------------------------------------------




def _labels(obj: Mapping) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _node_shape(node: Mapping) -> tuple:
    """What of a node decides daemon placement: labels, taints, unschedulable and condition statuses."""
    spec = node.get("spec") or {}
    conditions = sorted((c.get("type"), c.get("status")) for c in (node.get("status") or {}).get("conditions") or ())
    return (sorted(_labels(node).items()), repr(spec.get("taints")), bool(spec.get("unschedulable")), conditions)


class DaemonSetController:
    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK, burst_replicas: int = BURST_REPLICAS):
        self.name = NAME
        self.client = client
        self.recorder = recorder
        self.clock = clock
        self.burst_replicas = burst_replicas
        self.expectations = Expectations(clock)
        self.failed_backoff: dict[tuple[str, str], tuple[float, float]] = {}  # (ds, node) -> (next ok, delay)
        self.ds_informer = factory.informer("daemonsets")
        self.pod_informer = factory.informer("pods", indexers={CONTROLLER_INDEX: controller_index})
        self.node_informer = factory.informer("nodes")
        self.history_informer = factory.informer("controllerrevisions",
                                                 indexers={CONTROLLER_INDEX: controller_index})
        self.queue: WorkQueue[str] = WorkQueue(NAME, clock=clock)
        self.controller: Controller[str] = Controller(
            NAME, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[i.wait_for_sync for i in (self.ds_informer, self.pod_informer, self.node_informer,
                                                self.history_informer)])
        self.ds_informer.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                     on_delete=self._ds_deleted)
        self.pod_informer.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                      on_delete=self._pod_deleted)
        self.node_informer.add_handler(on_add=lambda node: self._enqueue_all(), on_update=self._node_updated)
        self.history_informer.add_handler(on_add=self._owner_changed, on_update=lambda old, new:
                                          self._owner_changed(new), on_delete=self._owner_changed)

    @classmethod
    def from_context(cls, ctx) -> DaemonSetController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers ----------------------------------------------------------------

    def _enqueue(self, ds: dict) -> None:
        self.queue.add(object_key(ds))

    def _enqueue_all(self) -> None:
        for ds in self.ds_informer.list():
            self._enqueue(ds)

    def _ds_deleted(self, ds: dict | DeletedFinalStateUnknown) -> None:
        key = object_key(ds)
        self.expectations.delete(key)
        self.queue.add(key)

    def _node_updated(self, old: dict, new: dict) -> None:
        if _node_shape(old) != _node_shape(new):
            self._enqueue_all()

    def _owner_key(self, obj: Mapping) -> str | None:
        ref = controller_ref(obj)
        if not ref or ref.get("kind") != "DaemonSet":
            return None
        key = f"{(obj.get('metadata') or {}).get('namespace') or ''}/{ref.get('name')}"
        ds = self.ds_informer.get(key)
        if ds is None or ds["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _owner_changed(self, obj: dict | DeletedFinalStateUnknown) -> None:
        obj = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        key = self._owner_key(obj)
        if key is not None:
            self.queue.add(key)
        elif controller_ref(obj) is None:
            namespace = obj["metadata"].get("namespace") or ""
            for ds in self.ds_informer.list(namespace):
                if selects(ds, obj):
                    self._enqueue(ds)

    def _pod_added(self, pod: dict) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
        self._owner_changed(pod)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if controller_ref(old) != controller_ref(new):
            self._owner_changed(old)
        self._owner_changed(new)

    def _pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        obj = pod.obj if isinstance(pod, DeletedFinalStateUnknown) else pod
        key = self._owner_key(obj)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(obj))
            self.queue.add(key)

    # ---- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.ds_informer.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        ds = copy.deepcopy(cached)
        nodes = self.node_informer.list()
        selector = ds["spec"].get("selector") or {}
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self._event(ds, WARNING, "SelectingAll",
                        "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        current, old = await self._construct_history(ds)
        hash_ = current["metadata"]["labels"][history.CONTROLLER_REVISION_HASH_LABEL]
        if not self.expectations.satisfied(key):
            await self._update_status(ds, nodes, hash_, await self._node_pods(ds), observed=False)
            return
        error = await self._manage(key, ds, nodes, hash_)
        if error is None and self.expectations.satisfied(key) and \
                (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            error = await self._rolling_update(key, ds, nodes, hash_)
        await self._cleanup_history(ds, old)
        status = await self._update_status(ds, nodes, hash_, await self._node_pods(ds), observed=True)
        if error is not None:
            raise error
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if min_ready > 0 and status.get("numberReady", 0) != status.get("numberAvailable", 0):
            raise RequeueAfter(float(min_ready))  # look again when the ready pods become available

    async def _node_pods(self, ds: dict) -> dict[str, list[dict]]:
        manager = ControllerRefManager(self.client, ds, "daemonsets", "apps/v1", "DaemonSet", "pods",
                                       lambda pod: selects(ds, pod))
        pods = await manager.claim(claim_candidates(self.pod_informer, ds))
        by_node: dict[str, list[dict]] = {}
        for pod in pods:
            node = target_node_name(pod)
            if node is not None:
                by_node.setdefault(node, []).append(pod)
        return by_node

    async def _manage(self, key: str, ds: dict, nodes: list[dict], hash_: str) -> BaseException | None:
        node_pods = await self._node_pods(ds)
        needing: list[str] = []
        to_delete: list[dict] = []
        surge_allowed = surge_and_unavailable(ds, len(nodes))[0] > 0 and \
            (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        now = time.time()
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        node_names = set()
        for node in nodes:
            name = node["metadata"]["name"]
            node_names.add(name)
            run, keep = should_run_on_node(ds, node)
            pods = node_pods.get(name, [])
            if run and not pods:
                needing.append(name)
            elif keep:
                running = []
                for pod in pods:
                    if pod["metadata"].get("deletionTimestamp"):
                        continue
                    if (pod.get("status") or {}).get("phase") == "Failed":
                        if self._failed_pod_may_go(key, name):
                            self._event(ds, WARNING, "FailedDaemonPod", f"Found failed daemon pod "
                                        f"{pod['metadata']['namespace']}/{pod['metadata']['name']} on node {name}, "
                                        "will try to kill it")
                            to_delete.append(pod)
                        continue
                    running.append(pod)
                running.sort(key=_created_key)
                if not surge_allowed:
                    to_delete.extend(running[1:])
                else:
                    to_delete.extend(self._surplus_with_surge(running, hash_, ds, min_ready, now))
            else:
                to_delete.extend(p for p in pods if not p["metadata"].get("deletionTimestamp"))
        for node, pods in node_pods.items():  # pods for nodes that are gone and were never scheduled
            if node not in node_names:
                to_delete.extend(p for p in pods if not (p.get("spec") or {}).get("nodeName")
                                 and not p["metadata"].get("deletionTimestamp"))
        return await self._sync_nodes(key, ds, to_delete, needing, hash_)

    @staticmethod
    def _surplus_with_surge(running: list[dict], hash_: str, ds: dict, min_ready: int, now: float) -> list[dict]:
        """With surge a node may hold the oldest new pod and the oldest old pod, and the old one only while
        it is ready and the new one is not yet available."""
        generation = ds["metadata"].get("generation")
        oldest_new = oldest_old = None
        surplus = []
        for pod in running:
            if is_pod_updated(pod, hash_, generation):
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            surplus.append(pod)
        if oldest_new is not None and oldest_old is not None and (
                not is_pod_ready(oldest_old) or is_pod_available(oldest_new, min_ready, now)):
            surplus.append(oldest_old)
        return surplus

    def _failed_pod_may_go(self, key: str, node: str) -> bool:
        now = self.clock.now()
        ready_at, delay = self.failed_backoff.get((key, node), (0.0, 0.0))
        if now < ready_at:
            self.queue.add_after(key, ready_at - now)
            return False
        delay = min(FAILED_POD_BACKOFF[1], delay * 2 if delay else FAILED_POD_BACKOFF[0])
        self.failed_backoff[(key, node)] = (now + delay, delay)
        return True

    async def _sync_nodes(self, key: str, ds: dict, to_delete: list[dict], nodes: list[str],
                          hash_: str) -> BaseException | None:
        nodes = nodes[:self.burst_replicas]
        to_delete = to_delete[:self.burst_replicas]
        error: BaseException | None = None
        if nodes:
            self.expectations.expect_creations(key, len(nodes))
            pending = iter(nodes)

            async def create() -> None:
                await self._create_pod(ds, next(pending), hash_)

            successes, error = await slow_start_batch(len(nodes), create)
            for _ in range(len(nodes) - successes):
                self.expectations.creation_observed(key)
        if to_delete:
            self.expectations.expect_deletions(key, [object_key(p) for p in to_delete])
            results = await asyncio.gather(*(self._delete_pod(key, ds, p) for p in to_delete),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException) and error is None:
                    error = result
        return error

    def _pod_for_node(self, ds: dict, node: str, hash_: str) -> dict:
        template = ds["spec"].get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = {**(tmeta.get("labels") or {}), history.CONTROLLER_REVISION_HASH_LABEL: hash_}
        if ds["metadata"].get("generation") is not None:
            labels[TEMPLATE_GENERATION_LABEL] = str(ds["metadata"]["generation"])
        spec = with_daemon_tolerations(template.get("spec") or {})
        spec["affinity"] = node_name_affinity(spec.get("affinity"), node)
        meta: dict = {"generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"].get("namespace"),
                      "labels": labels, "ownerReferences": [owner_reference(ds, "apps/v1", "DaemonSet")]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    async def _create_pod(self, ds: dict, node: str, hash_: str) -> None:
        try:
            pod = await self.client.create(self._pod_for_node(ds, node, hash_))
        except APIStatusError as exc:
            self._event(ds, WARNING, "FailedCreate", f"Error creating: {exc.message}")
            raise
        self._event(ds, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    async def _delete_pod(self, key: str, ds: dict, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta.get("namespace"), preconditions={"uid": meta["uid"]})
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            self.expectations.deletion_observed(key, object_key(pod))
            self._event(ds, WARNING, "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self._event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    async def _rolling_update(self, key: str, ds: dict, nodes: list[dict], hash_: str) -> BaseException | None:
        node_pods = await self._node_pods(ds)
        wanted: dict[str, list[dict]] = {}
        for node in nodes:
            if should_run_on_node(ds, node)[0]:
                wanted[node["metadata"]["name"]] = node_pods.get(node["metadata"]["name"], [])
        to_delete, surge_nodes = rolling_update_plan(ds, wanted, len(wanted), hash_, time.time())
        if not to_delete and not surge_nodes:
            return None
        return await self._sync_nodes(key, ds, to_delete, surge_nodes, hash_)

    # ---- history -----------------------------------------------------------------------

    async def _construct_history(self, ds: dict) -> tuple[dict, list[dict]]:
        manager = ControllerRefManager(self.client, ds, "daemonsets", "apps/v1", "DaemonSet", "controllerrevisions",
                                       lambda rev: selects(ds, rev))
        revisions = await manager.claim(claim_candidates(self.history_informer, ds))
        data = history.template_patch(ds["spec"].get("template") or {})
        wanted = history.canonical_json(data)
        current = [r for r in revisions if history.canonical_json(r.get("data")) == wanted]
        old = [r for r in revisions if history.canonical_json(r.get("data")) != wanted]
        next_revision = history.max_revision(old) + 1
        if not current:
            collision_count = int((ds.get("status") or {}).get("collisionCount") or 0)
            template = ds["spec"].get("template") or {}

            def hash_of(count: int) -> str:
                return history.compute_hash(template, count)

            revision = history.new_revision(ds, "apps/v1", "DaemonSet", data, next_revision,
                                            hash_=hash_of(collision_count),
                                            labels=(template.get("metadata") or {}).get("labels"),
                                            annotations=ds["metadata"].get("annotations"))
            cur, count = await history.create_revision(self.client, revision, ds, hash_of=hash_of,
                                                       collision_count=collision_count)
            if count != collision_count:
                ds.setdefault("status", {})["collisionCount"] = count
            return cur, old
        current = history.sort_revisions(current)
        cur = current[-1]
        for duplicate in current[:-1]:  # keep the newest equal revision
            await self._delete_revision(duplicate)
        if history.revision_number(cur) < next_revision:
            cur = copy.deepcopy(cur)
            cur["revision"] = next_revision
            cur = await self.client.update(cur, resource="controllerrevisions")
        return cur, old

    async def _delete_revision(self, revision: dict) -> None:
        meta = revision["metadata"]
        try:
            await self.client.delete("controllerrevisions", meta["name"], meta.get("namespace"),
                                     preconditions={"uid": meta["uid"]})
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise

    async def _cleanup_history(self, ds: dict, old: list[dict]) -> None:
        limit = int(ds["spec"].get("revisionHistoryLimit", 10) or 0)
        surplus = len(old) - limit
        if surplus <= 0:
            return
        live = {_labels(p).get(history.CONTROLLER_REVISION_HASH_LABEL)
                for pods in (await self._node_pods(ds)).values() for p in pods}
        for revision in history.sort_revisions(old):
            if surplus <= 0:
                break
            if _labels(revision).get(history.CONTROLLER_REVISION_HASH_LABEL) in live:
                continue
            await self._delete_revision(revision)
            surplus -= 1

    # ---- status ------------------------------------------------------------------------

    def calculate_status(self, ds: dict, nodes: list[dict], hash_: str, node_pods: Mapping[str, list[dict]],
                         now: float) -> dict:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        generation = ds["metadata"].get("generation")
        desired = current = misscheduled = ready = available = updated = 0
        for node in nodes:
            run, _ = should_run_on_node(ds, node)
            pods = node_pods.get(node["metadata"]["name"]) or []
            if run:
                desired += 1
                if not pods:
                    continue
                current += 1
                pod = sorted(pods, key=_created_key)[0]
                if is_pod_ready(pod):
                    ready += 1
                    if is_pod_available(pod, min_ready, now):
                        available += 1
                if is_pod_updated(pod, hash_, generation):
                    updated += 1
            elif pods:
                misscheduled += 1
        status = dict(ds.get("status") or {})
        status.update({"currentNumberScheduled": current, "desiredNumberScheduled": desired,
                       "numberMisscheduled": misscheduled, "numberReady": ready, "updatedNumberScheduled": updated,
                       "numberAvailable": available, "numberUnavailable": desired - available})
        for field in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
            if status[field] == 0:
                status.pop(field)  # optional fields upstream leaves out when zero
        return status

    async def _update_status(self, ds: dict, nodes: list[dict], hash_: str, node_pods: Mapping[str, list[dict]], *,
                             observed: bool) -> dict:
        status = self.calculate_status(ds, nodes, hash_, node_pods, time.time())
        if observed:
            status["observedGeneration"] = ds["metadata"].get("generation")
        for _ in range(2):
            if status == (ds.get("status") or {}):
                break
            try:
                await self.client.update_status({**ds, "apiVersion": "apps/v1", "kind": "DaemonSet",
                                                 "status": status}, resource="daemonsets")
                break
            except APIStatusError as exc:
                if is_not_found(exc):
                    return status
                if not is_conflict(exc):
                    raise
            ds = await self.client.get("daemonsets", ds["metadata"]["name"], ds["metadata"].get("namespace"))
            status = {**status, "collisionCount": (ds.get("status") or {}).get("collisionCount")}
            if status["collisionCount"] is None:
                status.pop("collisionCount")
        else:
            raise RuntimeError(f"daemon set {object_key(ds)}: status update kept conflicting")
        return status

    def _event(self, ds: dict, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event({**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}, type_, reason, message)
