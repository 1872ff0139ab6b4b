"""The scheduler process: informers feed the cache and the queue; one loop decides, bindings run as tasks."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pyk8s.client import NORMAL, WARNING, APIClient, EventRecorder, LeaderElector, SharedInformerFactory
from pyk8s.client.informer import DeletedFinalStateUnknown

from .cache import SchedulerCache, is_terminal, pod_key
from .framework import FitError, Framework
from .queue import QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-scheduler"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_changed(old: dict, new: dict) -> bool:
    """Node changes that can make a pod fit (not heartbeats)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    os_, ns = old.get("status") or {}, new.get("status") or {}
    return (old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels")
            or os_.get("allocatable") != ns.get("allocatable"))


class Scheduler:
    def __init__(self, client: APIClient, scheduler_name: str = DEFAULT_SCHEDULER_NAME, *,
                 recorder: EventRecorder | None = None, framework: Framework | None = None):
        self.client = client
        self.scheduler_name = scheduler_name
        self.recorder = recorder or EventRecorder(client, scheduler_name)
        self.framework = framework or Framework()
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        self.factory = SharedInformerFactory(client)
        self.nodes = self.factory.informer("nodes")
        self.pods = self.factory.informer("pods")
        self._bindings: set[asyncio.Task] = set()

    # ---- informer handlers ----------------------------------------------------------------

    def _responsible(self, pod: dict) -> bool:
        spec = pod.get("spec") or {}
        return ((spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name
                and not spec.get("nodeName") and not (pod.get("metadata") or {}).get("deletionTimestamp")
                and not is_terminal(pod))

    @staticmethod
    def _assigned(pod: dict) -> bool:
        return bool((pod.get("spec") or {}).get("nodeName"))

    def _on_pod_add(self, pod: dict) -> None:
        if self._assigned(pod):
            if not is_terminal(pod):
                self.cache.add_pod(pod)
        elif self._responsible(pod):
            self.queue.add(pod)

    def _on_pod_update(self, old: dict, new: dict) -> None:
        if self._assigned(new):
            self.queue.delete(new)
            if is_terminal(new):
                self.cache.remove_pod(new)
                self.queue.move_all_unschedulable("AssignedPodTerminated")
            else:
                self.cache.update_pod(new)
        elif self._responsible(new):
            self.queue.update(old, new)
        else:
            self.queue.delete(new)

    def _on_pod_delete(self, obj: dict | DeletedFinalStateUnknown) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        if not isinstance(pod, dict):
            return
        self.queue.delete(pod)
        if self._assigned(pod) or self.cache.is_assumed((pod.get("metadata") or {}).get("uid", "")):
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

    # ---- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.factory.start()
        queue_task = asyncio.create_task(self.queue.run(), name="scheduling-queue")
        try:
            await self.factory.wait_for_sync()
            log.info("scheduler %s: caches synced (%d nodes), scheduling", self.scheduler_name,
                     len(self.cache.node_infos()))
            while True:
                await self.schedule_one()
        finally:
            queue_task.cancel()
            for task in list(self._bindings):
                task.cancel()
            await asyncio.gather(queue_task, *self._bindings, return_exceptions=True)
            await self.factory.stop()
            await self.recorder.close()

    async def schedule_one(self) -> None:
        qp = await self.queue.pop()
        pod = qp.pod
        current = self.pods.get(pod_key(pod))
        if current is None or not self._responsible(current) or self.cache.is_assumed(qp.uid):
            self.queue.done(qp)
            return
        result = self.framework.schedule(current, self.cache.node_infos())
        if result.node is None:
            assert result.fit_error is not None
            self._task(self._record_failure(qp, current, result.fit_error))
            self.queue.add_unschedulable(qp)
            return
        assumed = self.cache.assume(current, result.node)
        log.debug("scheduler: %s -> %s (%d/%d feasible)", pod_key(pod), result.node, result.feasible,
                  result.evaluated)
        self._task(self._bind(qp, assumed, result.node))

    def _task(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._bindings.add(task)
        task.add_done_callback(self._bindings.discard)

    async def _bind(self, qp: QueuedPod, pod: dict, node: str) -> None:
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
        log.info("scheduler: bound %s to %s", pod_key(pod), node)
        self.recorder.event(pod, NORMAL, "Scheduled", f"Successfully assigned {pod_key(pod)} to {node}")

    async def _record_failure(self, qp: QueuedPod, pod: dict, fit: FitError) -> None:
        message = fit.message()
        qp.unschedulable_plugins = fit.unschedulable_plugins
        log.info("scheduler: unable to schedule %s: %s", pod_key(pod), message)
        self.recorder.event(pod, WARNING, "FailedScheduling", message)
        meta = pod["metadata"]
        existing = next((c for c in (pod.get("status") or {}).get("conditions") or []
                         if c.get("type") == "PodScheduled"), None)
        if existing and existing.get("status") == "False" and existing.get("message") == message:
            return
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                     "lastProbeTime": None, "lastTransitionTime": _now()}
        if existing and existing.get("status") == "False":
            condition["lastTransitionTime"] = existing.get("lastTransitionTime") or condition["lastTransitionTime"]
        try:
            await self.client.patch_status("pods", meta["name"], {"status": {"conditions": [condition]}},
                                           meta["namespace"], patch_type="strategic")
        except Exception as exc:  # noqa: BLE001 - the next attempt writes it again
            log.warning("scheduler: updating PodScheduled of %s failed: %s", pod_key(pod), exc)


async def run_scheduler(kubeconfig: Path, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                        leader_elect: bool = True) -> None:
    """Run the scheduler until cancelled (or, with leader election, until leadership is lost)."""
    client = APIClient.from_kubeconfig(str(kubeconfig))
    try:
        recorder = EventRecorder(client, scheduler_name)
        scheduler = Scheduler(client, scheduler_name, recorder=recorder)
        if not leader_elect:
            await scheduler.run()
            return
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(client, LEASE_NAMESPACE, LEASE_NAME, identity, on_started_leading=scheduler.run)
        await elector.run()
        log.info("scheduler %s: leadership lost, exiting", scheduler_name)
    finally:
        await client.close()
