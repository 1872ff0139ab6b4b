"""The scheduler process: informers feed the cache and the queue; one loop decides, bindings and preemption's
API calls run as tasks. One queue and cache serve every profile; a pod picks its profile by schedulerName."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pyk8s.client import NORMAL, WARNING, APIClient, EventRecorder, LeaderElector, SharedInformerFactory
from pyk8s.client.informer import DeletedFinalStateUnknown

from .cache import SchedulerCache, is_terminal, pod_key, pod_uid
from .config import DEFAULT_SCHEDULER_NAME, SchedulerConfig, build_framework, default_profile, load_config
from .framework import FitError, Framework, ScheduleResult
from .listers import ClusterListers
from .plugins import PluginHandle
from .plugins.scheduling_gates import GATED_MESSAGE, GATED_REASON
from .preemption import Candidate, priority
from .queue import GATED, QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-scheduler"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_changed(old: dict, new: dict) -> bool:
    """Node changes that can make a pod fit (not heartbeats)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    os_, ns = old.get("status") or {}, new.get("status") or {}
    return (old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels")
            or os_.get("allocatable") != ns.get("allocatable") or os_.get("images") != ns.get("images"))


def _nominated_node(pod: dict) -> str:
    return (pod.get("status") or {}).get("nominatedNodeName") or ""


class Scheduler:
    def __init__(self, client: APIClient, scheduler_name: str = DEFAULT_SCHEDULER_NAME, *,
                 recorder: EventRecorder | None = None, framework: Framework | None = None,
                 config: SchedulerConfig | None = None):
        self.client = client
        self.factory = SharedInformerFactory(client)
        self.nodes = self.factory.informer("nodes")
        self.pods = self.factory.informer("pods")
        self.listers = ClusterListers(self.factory)
        handle = PluginHandle(self.listers.namespace_labels, self.listers.default_selector)
        if framework is not None:
            self.profiles = {scheduler_name: framework}
        else:
            config = config or SchedulerConfig([default_profile(scheduler_name)])
            self.profiles = {p.scheduler_name: build_framework(p, handle, self.listers.pdbs,
                                                               config.percentage_of_nodes_to_score)
                             for p in config.profiles}
        self.scheduler_name = next(iter(self.profiles))
        self.recorders = {name: EventRecorder(client, name) for name in self.profiles}
        if recorder is not None:
            self.recorders[self.scheduler_name] = recorder
        self.recorder = self.recorders[self.scheduler_name]
        self.framework = self.profiles[self.scheduler_name]
        plugin_events: dict[str, frozenset[str]] = {}
        for fw in self.profiles.values():
            for plugin in (*fw.filters, *fw.scorers, *fw.pre_enqueue):
                plugin_events[plugin.name] = getattr(plugin, "events", frozenset())
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(pre_enqueue=self._pre_enqueue, plugin_events=plugin_events)
        self._nominated: dict[str, dict[str, dict]] = {}  # node -> uid -> pod nominated there by preemption
        self._nominated_to: dict[str, str] = {}  # uid -> node
        self._tasks: set[asyncio.Task] = set()

    # ---- profiles and nominations --------------------------------------------------------------

    def _profile_of(self, pod: dict) -> Framework | None:
        return self.profiles.get((pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME)

    def _pre_enqueue(self, pod: dict) -> tuple[str, str] | None:
        fw = self._profile_of(pod)
        status = fw.run_pre_enqueue(pod) if fw is not None else None
        return (status.plugin, status.reasons[0]) if status is not None else None

    def nominated_pods(self, node: str) -> list[dict]:
        return list(self._nominated.get(node, {}).values())

    def _nominate(self, pod: dict, node: str) -> None:
        uid = pod_uid(pod)
        self._unnominate(uid)
        if node:
            self._nominated.setdefault(node, {})[uid] = pod
            self._nominated_to[uid] = node

    def _unnominate(self, uid: str) -> None:
        node = self._nominated_to.pop(uid, None)
        if node is not None:
            pods = self._nominated.get(node, {})
            pods.pop(uid, None)
            if not pods:
                self._nominated.pop(node, None)

    # ---- informer handlers ----------------------------------------------------------------

    def _responsible(self, pod: dict) -> bool:
        spec = pod.get("spec") or {}
        return ((spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) in self.profiles
                and not spec.get("nodeName") and not (pod.get("metadata") or {}).get("deletionTimestamp")
                and not is_terminal(pod))

    @staticmethod
    def _assigned(pod: dict) -> bool:
        return bool((pod.get("spec") or {}).get("nodeName"))

    def _enqueue(self, pod: dict, old: dict | None = None) -> None:
        if old is None:
            self.queue.add(pod)
        else:
            self.queue.update(old, pod)
        if _nominated_node(pod):
            self._nominate(pod, _nominated_node(pod))
        qp = self.queue.get(pod_uid(pod))
        if qp is not None and qp.where == GATED:
            self._task(self._record_gated(pod))

    def _on_pod_add(self, pod: dict) -> None:
        if self._assigned(pod):
            if not is_terminal(pod):
                self.cache.add_pod(pod)
                self.queue.move_all_unschedulable("AssignedPodAdd")
        elif self._responsible(pod):
            self._enqueue(pod)

    def _on_pod_update(self, old: dict, new: dict) -> None:
        if self._assigned(new):
            self.queue.delete(new)
            self._unnominate(pod_uid(new))
            if is_terminal(new):
                self.cache.remove_pod(new)
                self.queue.move_all_unschedulable("AssignedPodDelete")
            else:
                self.cache.update_pod(new)
                if not self._assigned(old):
                    self.queue.move_all_unschedulable("AssignedPodAdd")
                elif (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
                    self.queue.move_all_unschedulable("AssignedPodUpdate")
        elif self._responsible(new):
            self._enqueue(new, old)
        else:
            self.queue.delete(new)
            self._unnominate(pod_uid(new))

    def _on_pod_delete(self, obj: dict | DeletedFinalStateUnknown) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if not isinstance(pod, dict):
            return
        self.queue.delete(pod)
        self._unnominate(pod_uid(pod))
        if self._assigned(pod) or self.cache.is_assumed(pod_uid(pod)):
            self.cache.remove_pod(pod)
            self.queue.move_all_unschedulable("AssignedPodDelete")

    def _on_node_add(self, node: dict) -> None:
        self.cache.add_node(node)
        self.queue.move_all_unschedulable("NodeAdd")

    def _on_node_update(self, old: dict, new: dict) -> None:
        self.cache.update_node(new)
        if _node_changed(old, new):
            self.queue.move_all_unschedulable("NodeUpdate")

    def _on_node_delete(self, obj: dict | DeletedFinalStateUnknown) -> None:
        node = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if isinstance(node, dict):
            self.cache.remove_node(node)
            self.queue.move_all_unschedulable("NodeDelete")

    # ---- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.factory.start()
        queue_task = asyncio.create_task(self.queue.run(), name="scheduling-queue")
        try:
            await self.factory.wait_for_sync()
            log.info("scheduler %s: caches synced (%d nodes), scheduling", ", ".join(self.profiles),
                     len(self.cache.node_infos()))
            while True:
                await self.schedule_one()
                # pop() does not suspend while pods wait: let bindings, events and informers run
                await asyncio.sleep(0)
        finally:
            queue_task.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(queue_task, *self._tasks, return_exceptions=True)
            await self.factory.stop()
            for recorder in self.recorders.values():
                await recorder.close()

    async def schedule_one(self) -> None:
        qp = await self.queue.pop()
        current = self.pods.get(pod_key(qp.pod))
        fw = self._profile_of(current) if current is not None else None
        if current is None or fw is None or not self._responsible(current) or self.cache.is_assumed(qp.uid):
            self.queue.done(qp)
            return
        pod = current
        nodes = self.cache.node_infos()
        try:
            result = fw.schedule(pod, nodes, self.nominated_pods if self._nominated else None)
        except Exception as exc:  # noqa: BLE001 - a plugin bug must not stop scheduling for everyone
            log.exception("scheduler: scheduling %s failed", pod_key(pod))
            self.queue.add_unschedulable(qp, error=True)
            self._task(self._record_failure(fw, pod, f"scheduling the pod failed: {exc}", reason="SchedulerError"))
            return
        if result.error is not None:
            self.queue.add_unschedulable(qp, error=True)
            message = f'running PreFilter plugin "{result.error.plugin}": {result.error.reasons[0]}'
            self._task(self._record_failure(fw, pod, message, reason="SchedulerError"))
            return
        if result.node is None:
            assert result.fit_error is not None
            self._handle_unschedulable(fw, qp, pod, result.fit_error, result, nodes)
            return
        assumed = self.cache.assume(pod, result.node)
        log.debug("scheduler: %s -> %s (%d/%d feasible)", pod_key(pod), result.node, result.feasible,
                  result.evaluated)
        self._task(self._bind(fw, qp, assumed, result.node))

    def _handle_unschedulable(self, fw: Framework, qp: QueuedPod, pod: dict, fit: FitError,
                              result: ScheduleResult, nodes: list) -> None:
        nominated = ""
        try:
            candidate = fw.post_filter(result, nodes, self.nominated_pods)
        except Exception:  # noqa: BLE001 - report the filter failure without preemption
            log.exception("scheduler: preemption for %s failed", pod_key(pod))
            candidate = None
        if candidate is not None:
            nominated = candidate.node
            self._nominate(pod, nominated)
            self._task(self._prepare_candidate(fw, pod, candidate))
        qp.unschedulable_plugins = fit.unschedulable_plugins
        self.queue.add_unschedulable(qp)
        message = fit.message()
        log.info("scheduler: unable to schedule %s: %s", pod_key(pod), message)
        self._task(self._record_failure(fw, pod, message, nominated=nominated))

    def _task(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- API writes ------------------------------------------------------------------------

    async def _bind(self, fw: Framework, qp: QueuedPod, pod: dict, node: str) -> None:
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.client.create_subresource("pods", meta["name"], "binding", binding, meta["namespace"])
        except Exception as exc:  # noqa: BLE001 - any failure: undo, retry after backoff
            log.warning("scheduler: binding %s to %s failed: %s", pod_key(pod), node, exc)
            self.cache.forget(pod)
            self.queue.add_unschedulable(qp, error=True)
            self.queue.move_all_unschedulable("BindFailed")
            return
        self.queue.done(qp)
        self._unnominate(meta["uid"])
        log.info("scheduler: bound %s to %s", pod_key(pod), node)
        self.recorders[fw.scheduler_name].event(pod, NORMAL, "Scheduled",
                                                f"Successfully assigned {pod_key(pod)} to {node}")

    async def _prepare_candidate(self, fw: Framework, preemptor: dict, candidate: Candidate) -> None:
        """Evict the victims (DisruptionTarget condition, then delete) and clear lower nominations there."""
        recorder = self.recorders[fw.scheduler_name]
        uid = pod_uid(preemptor)
        for victim in candidate.victims:
            meta = victim["metadata"]
            condition = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                         "message": f"{fw.scheduler_name}: preempting to accommodate a higher priority pod",
                         "lastTransitionTime": _now()}
            try:
                await self.client.patch_status("pods", meta["name"], {"status": {"conditions": [condition]}},
                                               meta["namespace"], patch_type="strategic")
                await self.client.delete("pods", meta["name"], meta["namespace"])
            except Exception as exc:  # noqa: BLE001 - gone already, or the next attempt preempts again
                log.warning("scheduler: preempting %s failed: %s", pod_key(victim), exc)
                continue
            log.info("scheduler: preempted %s on %s for %s", pod_key(victim), candidate.node, pod_key(preemptor))
            recorder.event(victim, NORMAL, "Preempted", f"Preempted by pod {uid} on node {candidate.node}")
        for other in self.nominated_pods(candidate.node):
            if priority(other) < priority(preemptor) and pod_uid(other) != uid:
                self._unnominate(pod_uid(other))
                meta = other["metadata"]
                try:
                    await self.client.patch_status("pods", meta["name"], {"status": {"nominatedNodeName": None}},
                                                   meta["namespace"], patch_type="merge")
                except Exception as exc:  # noqa: BLE001 - the nomination only guides the next attempt
                    log.warning("scheduler: clearing the nomination of %s failed: %s", pod_key(other), exc)

    async def _write_condition(self, pod: dict, condition: dict, extra_status: dict | None = None) -> None:
        existing = next((c for c in (pod.get("status") or {}).get("conditions") or []
                         if c.get("type") == condition["type"]), None)
        if (existing and existing.get("status") == condition["status"] and existing.get("reason")
                == condition["reason"] and existing.get("message") == condition["message"] and not extra_status):
            return
        if existing and existing.get("status") == condition["status"]:
            condition["lastTransitionTime"] = existing.get("lastTransitionTime") or condition["lastTransitionTime"]
        meta = pod["metadata"]
        try:
            await self.client.patch_status("pods", meta["name"], {"status": {"conditions": [condition],
                                                                             **(extra_status or {})}},
                                           meta["namespace"], patch_type="strategic")
        except Exception as exc:  # noqa: BLE001 - the next attempt writes it again
            log.warning("scheduler: updating PodScheduled of %s failed: %s", pod_key(pod), exc)

    async def _record_failure(self, fw: Framework, pod: dict, message: str, *, reason: str = "Unschedulable",
                              nominated: str = "") -> None:
        self.recorders[fw.scheduler_name].event(pod, WARNING, "FailedScheduling", message)
        condition = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                     "lastProbeTime": None, "lastTransitionTime": _now()}
        extra = {"nominatedNodeName": nominated} if nominated and nominated != _nominated_node(pod) else None
        await self._write_condition(pod, condition, extra)

    async def _record_gated(self, pod: dict) -> None:
        condition = {"type": "PodScheduled", "status": "False", "reason": GATED_REASON, "message": GATED_MESSAGE,
                     "lastProbeTime": None, "lastTransitionTime": _now()}
        await self._write_condition(pod, condition)


async def run_scheduler(kubeconfig: Path, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                        leader_elect: bool = True, config_file: Path | None = None) -> None:
    """Run the scheduler until cancelled (or, with leader election, until leadership is lost)."""
    config = load_config(config_file) if config_file else None
    client = APIClient.from_kubeconfig(str(kubeconfig))
    try:
        scheduler = Scheduler(client, scheduler_name, config=config)
        if not leader_elect:
            await scheduler.run()
            return
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(client, LEASE_NAMESPACE, LEASE_NAME, identity, on_started_leading=scheduler.run)
        await elector.run()
        log.info("scheduler %s: leadership lost, exiting", scheduler.scheduler_name)
    finally:
        await client.close()
