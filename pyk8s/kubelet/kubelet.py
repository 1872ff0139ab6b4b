"""The kubelet core of a real node: runs the pods bound to it on a CRI runtime and reports their status.

Parts (upstream's shape, asyncio instead of goroutines):
- a pod informer (fieldSelector spec.nodeName=<node>) is the config source; its events go to the pod workers;
- `PodWorkers` (pod_workers.py): one task per pod UID, sync → terminating → terminated;
- `RuntimeManager` (runtime_manager.py): CRI sandboxes and containers, images (images.py), hooks, kills;
- `GenericPLEG` (pleg.py): relists the runtime every second and wakes the workers of pods that changed;
- `StatusManager` (status_manager.py): writes pods/status on change; the kubelet deletes a terminated pod that
  has a deletionTimestamp with grace 0, which is what finishes a graceful deletion;
- `ProbeManager` (prober/): liveness, readiness and startup probes; a changed result re-syncs the pod;
- housekeeping every 2 s: sandboxes of pods the API no longer binds here are stopped and removed, with their
  cgroups and logs, and workers of such pods are forgotten;
- admission: a pod seen for the first time is checked against the node's pressure conditions (admission.py)
  before it starts; a rejected pod never starts and is reported Failed (`Pod was rejected: ...`);
- the seams of the eviction manager and image GC (eviction/, image_gc.py, run beside the kubelet by the node
  agent): `active_pods()`, `evict_pod()` (kill with the eviction's grace period, final status Failed with its
  reason, message and DisruptionTarget condition), `pod_images()` and `delete_dead_containers()`.

A restarted kubelet needs no state of its own: the first relist finds the running sandboxes and containers by
their labels, and syncing a pod whose sandbox and containers run changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ..api.quota import qos_class
from ..client import (
    WARNING,
    APIClient,
    APIConnectionError,
    APIStatusError,
    EventRecorder,
    Informer,
    is_conflict,
    is_not_found,
)
from . import cri_config, envvars
from .admission import admit
from .config import KubeletConfig
from .images import ImageManager
from .node_status import rfc3339
from .object_cache import ObjectCache, ObjectSource
from .pleg import GenericPLEG
from .pod_status import ReadinessSource, TerminalOverride, Waiting, build_pod_status
from .pod_workers import PodWorkers, SyncOutcome
from .prober import ProbeManager
from .runtime.cri import CRIClient, CRIError, pb
from .runtime_manager import ContainerEnv, RuntimeManager
from .status_manager import StatusManager

__all__ = ["Kubelet", "KubeletConfig", "VolumeManagerLike"]

log = logging.getLogger(__name__)

MOUNT_RETRY = 2.0
# How long evict_pod waits past the grace period for the pod's containers to be stopped.
EVICTION_KILL_MARGIN = 30.0
EVICTION_POLL = 0.2
REJECTED_MESSAGE_PREFIX = "Pod was rejected: "
# How long a container start waits for the first list of Services (their env vars) before failing the sync.
SERVICES_SYNC_TIMEOUT = 5.0

PressureConditions = Callable[[], Mapping[str, bool]]  # EvictionManager.conditions


class VolumeManagerLike(Protocol):
    """What the kubelet calls on the VolumeManager (pyk8s/kubelet/volumes, the shared contract)."""

    async def mount_pod_volumes(self, pod: dict) -> None: ...

    def container_mounts(self, pod: dict, container: dict, *,
                         env: list[tuple[str, str]] | None = None) -> list[pb.Mount]: ...

    async def unmount_pod_volumes(self, pod_uid: str) -> None: ...

    async def run(self) -> None: ...


class _EnvVars:
    """The env resolver of pyk8s/kubelet/envvars.py behind the ContainerEnv protocol: Services come from the
    kubelet's informer, ConfigMaps and Secrets from its object cache."""

    def __init__(self, services: Informer, objects: ObjectSource) -> None:
        self.services = services
        self.objects = objects
        self.errors: tuple[type[Exception], ...] = (envvars.EnvVarError,)

    async def __call__(self, client: APIClient, pod: dict, container: dict, *, pod_ips: list[str],
                       host_ips: list[str] | None) -> list[tuple[str, str]]:
        if not await self.services.wait_for_sync(SERVICES_SYNC_TIMEOUT):
            raise envvars.EnvVarError("services have not yet been read at least once, cannot construct envvars")
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        services = self.services.list(namespace)
        if namespace != envvars.MASTER_NAMESPACE:
            services = [*services, *self.services.list(envvars.MASTER_NAMESPACE)]
        return await envvars.container_env(client, pod, container, pod_ips=pod_ips, host_ips=host_ips,
                                           services=services, objects=self.objects)


def _uid(pod: Mapping) -> str:
    return (pod.get("metadata") or {}).get("uid", "")


def _needs_sync(old: Mapping, new: Mapping) -> bool:
    """Changes the kubelet acts on; status-only updates (mostly our own writes) are not, except conditions of a
    pod with readiness gates (another controller sets those)."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return (old.get("spec") != new.get("spec")
            or any(old_meta.get(k) != new_meta.get(k) for k in ("uid", "deletionTimestamp", "generation",
                                                                   "deletionGracePeriodSeconds", "annotations"))
            or (bool((new.get("spec") or {}).get("readinessGates"))
                and (old.get("status") or {}).get("conditions") != (new.get("status") or {}).get("conditions")))


def _terminal_phase(pod: Mapping) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _deletion_grace(pod: Mapping) -> int | None:
    meta = pod.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return None
    value = meta.get("deletionGracePeriodSeconds")
    return int(value) if value is not None else cri_config.grace_period(pod)


class Kubelet:
    def __init__(self, client: APIClient, runtime: CRIClient, config: KubeletConfig, volumes: VolumeManagerLike, *,
                 recorder: EventRecorder | None = None, env: ContainerEnv | None = None,
                 probes: ReadinessSource | None = None, pressure: PressureConditions | None = None,
                 objects: ObjectCache | None = None) -> None:
        """`probes` None: the real prober (ProbeManager); tests may pass another ReadinessSource (NO_PROBES).
        `pressure`: the node's pressure conditions (the eviction manager's) new pods are admitted against; None
        admits every pod. `objects`: the cache of the ConfigMaps and Secrets the node's pods name (shared with the
        volume manager); None: the kubelet's own."""
        self.client = client
        self.runtime = runtime
        self.config = config
        self.volumes = volumes
        self._own_recorder = recorder is None
        self.recorder = recorder or EventRecorder(client, "kubelet", host=config.node_name)
        self.status_manager = StatusManager(client, self._server_pod, config.status_update_period)
        self.probes: ReadinessSource = probes if probes is not None else ProbeManager(
            runtime, self.probe_result_changed, self.status_manager.get, self.recorder)
        self.images = ImageManager(runtime, self.recorder)
        self.objects = objects if objects is not None else ObjectCache(client)
        self.services = Informer(client, "services")
        self.runtime_manager = RuntimeManager(runtime, config, client, self.images, volumes,
                                              env or _EnvVars(self.services, self.objects), self.recorder, self.probes)
        self.informer = Informer(client, "pods", field_selector=f"spec.nodeName={config.node_name}")
        self.pod_workers = PodWorkers(self, resync_interval=config.sync_frequency)
        self.pleg = GenericPLEG(self.runtime_manager.runtime_pods, self._on_runtime_change, config.relist_period)
        self.host_ips: list[str] = list(config.node_ips)
        self._waiting: dict[str, dict[str, Waiting]] = {}
        self._by_uid: dict[str, str] = {}  # uid -> informer key
        self._start_times: dict[str, float] = {}
        self.pressure = pressure
        # Final statuses the kubelet decided (evictions, rejections), by pod UID; `_rejected` never started.
        self._overrides: dict[str, TerminalOverride] = {}
        self._rejected: set[str] = set()

    # ---- the probe seam -------------------------------------------------------------------------------

    def probe_result_changed(self, pod_uid: str) -> None:
        """The prober calls this when a probe result changed: the pod syncs (restart on liveness failure) and its
        status is rebuilt (readiness)."""
        pod = self._server_pod(pod_uid)
        if pod is not None:
            self.pod_workers.update_pod(pod)

    # ---- lifecycle ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the pods bound to this node until cancelled."""
        await self._wait_for_runtime()
        if not self.host_ips:
            self.host_ips = await self._node_internal_ips()
        self.informer.add_handler(self._on_pod_added, self._on_pod_updated, self._on_pod_deleted)
        tasks = [asyncio.create_task(self.pleg.run(), name="kubelet-pleg"),
                 asyncio.create_task(self.status_manager.run(), name="kubelet-status"),
                 asyncio.create_task(self._housekeeping(), name="kubelet-housekeeping"),
                 asyncio.create_task(self.volumes.run(), name="kubelet-volumes")]
        try:
            # The runtime first: workers of adopted pods must see what already runs.
            await self.pleg.relisted.wait()
            self.services.start()
            self.informer.start()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.pod_workers.stop()
            if isinstance(self.probes, ProbeManager):
                await self.probes.stop()
            await self.informer.stop()
            await self.services.stop()
            await self.objects.stop()
            if self._own_recorder:
                await self.recorder.close()

    async def _wait_for_runtime(self) -> None:
        """The runtime may still be starting (or restarting): wait for it, as upstream's kubelet does."""
        delay = 0.2
        while True:
            try:
                await self.runtime_manager.start()
                return
            except CRIError as exc:
                log.warning("container runtime not ready (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _node_internal_ips(self) -> list[str]:
        try:
            node = await self.client.get("nodes", self.config.node_name)
        except (APIStatusError, APIConnectionError):
            return []
        addresses = (node.get("status") or {}).get("addresses") or []
        return [a["address"] for a in addresses if a.get("type") == "InternalIP" and a.get("address")]

    def _pod(self, uid: str) -> dict | None:
        key = self._by_uid.get(uid)
        return self.informer.get(key) if key is not None else None

    def _server_pod(self, uid: str) -> dict | None:
        pod = self._pod(uid)
        return pod if pod is not None and _uid(pod) == uid else None

    # ---- config source -------------------------------------------------------------------------------------

    def _dispatch(self, pod: dict, wake: bool = True) -> None:
        uid = _uid(pod)
        meta = pod.get("metadata") or {}
        self._by_uid[uid] = f"{meta.get('namespace')}/{meta.get('name')}"
        self.objects.register_pod(pod)
        grace = _deletion_grace(pod)
        if grace is not None:
            self.pod_workers.kill_pod(pod, grace)
        elif uid in self._rejected:
            return  # rejected at admission: it never runs
        elif _terminal_phase(pod) and self.pod_workers.get(uid) is None:
            # Finished before we saw it (or before a restart): terminate, never run it again.
            self.pod_workers.kill_pod(pod, cri_config.grace_period(pod))
        elif self.pod_workers.get(uid) is None and not self._admitted(pod):
            return
        else:
            self.pod_workers.update_pod(pod, wake=wake)

    def _admitted(self, pod: dict) -> bool:
        """Admission of a pod seen for the first time (upstream's HandlePodAdditions → canAdmitPod). A pod the
        runtime already runs (adopted after a restart) is not admitted again. A rejected pod is reported Failed
        with the reason and `Pod was rejected: <message>`, and never started."""
        uid = _uid(pod)
        if self.pressure is None or uid in self.pleg.pods:
            return True
        result = admit(pod, self.pressure())
        if result.admit:
            return True
        message = REJECTED_MESSAGE_PREFIX + result.message
        log.info("pod %s rejected: %s", self._by_uid.get(uid), message)
        self.recorder.event(pod, WARNING, result.reason, result.message)
        self._rejected.add(uid)
        self._overrides[uid] = TerminalOverride("Failed", result.reason, message)
        self.status_manager.set_pod_status(uid, rejected_status(pod, result.reason, message, time.time()))
        return False

    def _on_pod_added(self, pod: dict) -> None:
        self._dispatch(pod)

    def _on_pod_updated(self, old: dict, new: dict) -> None:
        self._dispatch(new, wake=_needs_sync(old, new))

    def _on_pod_deleted(self, pod: object) -> None:
        obj = getattr(pod, "obj", pod)
        if not isinstance(obj, dict):
            return
        uid = _uid(obj)
        if uid in self._rejected and self.pod_workers.get(uid) is None:
            self._forget_state(uid)
            return
        worker = self.pod_workers.get(uid)
        if worker is not None and not worker.terminated:
            grace = _deletion_grace(obj)
            self.pod_workers.kill_pod(obj, grace if grace is not None else cri_config.grace_period(obj))

    def _on_runtime_change(self, uid: str) -> None:
        pod = self._server_pod(uid)
        if pod is not None and self.pod_workers.get(uid) is not None:
            self.pod_workers.update_pod(pod)

    # ---- the syncer the pod workers drive ----------------------------------------------------------------

    async def sync_pod(self, pod: dict) -> SyncOutcome:
        uid = _uid(pod)
        self._start_times.setdefault(uid, time.time())
        status = await self.runtime_manager.pod_status(uid)
        try:
            await self.volumes.mount_pod_volumes(pod)
        except Exception as exc:  # VolumeError(reason, message) from the volume manager, or a bug there
            message = getattr(exc, "message", None) or str(exc)
            self.recorder.event(pod, WARNING, getattr(exc, "reason", None) or "FailedMount",
                                f"Unable to attach or mount volumes: {message}")
            self._report(pod, status)
            return SyncOutcome(requeue_after=MOUNT_RETRY)
        self.probes.add_pod(pod)
        secrets = await self._pull_secrets(pod)
        result = await self.runtime_manager.sync_pod(pod, status, secrets)
        waiting = self._waiting.setdefault(uid, {})
        attempted = set(result.waiting)
        waiting.update(result.waiting)
        status = await self.runtime_manager.pod_status(uid)
        for name in list(waiting):
            instance = status.latest(name)
            if name not in attempted and instance is not None and instance.running:
                del waiting[name]  # started since: the reason no longer applies
        api_status = self._report(pod, status)
        terminal = api_status["phase"] in ("Succeeded", "Failed")
        if result.error:
            return SyncOutcome(terminal=terminal, requeue_after=self.pod_workers.error_backoff)
        return SyncOutcome(terminal=terminal, requeue_after=result.requeue_after)

    def _report(self, pod: dict, status, terminal: bool = False) -> dict:
        uid = _uid(pod)
        waiting = {} if terminal else self._waiting.get(uid, {})
        api_status = build_pod_status(pod, status, waiting=waiting, host_ips=self.host_ips, now=time.time(),
                                      runtime_name=self.runtime_manager.runtime_name, probes=self.probes,
                                      terminal=terminal, start_time=self._start_times.get(uid),
                                      previous=self.status_manager.get(uid), override=self._overrides.get(uid))
        self.status_manager.set_pod_status(uid, api_status)
        return api_status

    async def sync_terminating_pod(self, pod: dict, grace: int | None) -> None:
        uid = _uid(pod)
        self.probes.remove_pod(uid)
        status = await self.runtime_manager.pod_status(uid)
        await self.runtime_manager.kill_pod(pod, status, cri_config.grace_period(pod) if grace is None else grace)
        if _terminal_phase(self._server_pod(uid) or pod) and self.status_manager.get(uid) is None:
            # Finished before this kubelet saw it: the apiserver's final status stands (the runtime may no longer
            # have the containers it describes).
            return
        status = await self.runtime_manager.pod_status(uid)
        self._report(pod, status, terminal=True)

    async def sync_terminated_pod(self, pod: dict) -> None:
        uid = _uid(pod)
        await self.volumes.unmount_pod_volumes(uid)
        current = self._server_pod(uid) or pod
        await self.status_manager.flush(uid)
        meta = current.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            return
        # Containers are gone and the final status is written: finish the graceful deletion (upstream's status
        # manager does this once the pod can be deleted).
        try:
            await self.client.delete("pods", meta.get("name", ""), meta.get("namespace"), grace_period_seconds=0,
                                     preconditions={"uid": uid})
        except APIStatusError as exc:
            if not (is_not_found(exc) or is_conflict(exc)):
                raise

    # ---- what the eviction manager and image GC call ---------------------------------------------------------

    def active_pods(self) -> list[dict]:
        """Pods admitted here and not terminating or terminated (upstream GetActivePods): the eviction
        manager's candidates. An evicted pod leaves this list once its kill starts."""
        active = []
        for pod in self.informer.list():
            worker = self.pod_workers.get(_uid(pod))
            if worker is None or worker.kill_requested or worker.terminal or worker.terminated:
                continue
            if _terminal_phase(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            active.append(pod)
        return active

    async def evict_pod(self, pod: dict, reason: str, message: str, *, grace_period_seconds: int,
                        condition: dict | None) -> bool:
        """Kill the pod with `grace_period_seconds` and report it Failed with `reason` and `message` (and
        `condition`, DisruptionTarget), whatever its containers' exit codes say (upstream's killPodNow with the
        eviction manager's status function). True once its containers are stopped and the status is set."""
        uid = _uid(pod)
        worker = self.pod_workers.get(uid)
        if worker is None or worker.terminated:
            return False
        self._overrides[uid] = TerminalOverride("Failed", reason, message, condition)
        self.pod_workers.kill_pod(worker.pod, grace_period_seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_period_seconds + EVICTION_KILL_MARGIN
        while not worker.terminated:
            if loop.time() >= deadline or self.pod_workers.get(uid) is not worker:
                return worker.terminated
            await asyncio.sleep(EVICTION_POLL)
        return True

    def pod_images(self) -> set[str]:
        """Images of the pods bound here that have not finished: image GC must keep them (they may be about to
        start, or restart)."""
        images = set()
        for pod in self.informer.list():
            worker = self.pod_workers.get(_uid(pod))
            if _terminal_phase(pod) or (worker is not None and worker.terminated):
                continue
            spec = pod.get("spec") or {}
            for key in ("initContainers", "containers", "ephemeralContainers"):
                images.update(c["image"] for c in spec.get(key) or [] if c.get("image"))
        return images

    async def delete_dead_containers(self) -> None:
        """Container GC under disk pressure (upstream DeleteAllUnusedContainers): every exited container of a
        pod that has terminated goes (its final status is already reported); a live pod keeps the newest
        instance of each container and the one before it, which its status shows."""
        for uid in list(self.pleg.pods):
            worker = self.pod_workers.get(uid)
            status = await self.runtime_manager.pod_status(uid)
            if worker is None or worker.terminated:
                await self.runtime_manager.remove_exited_containers(status)
            else:
                await self.runtime_manager.remove_dead_instances(status)

    async def _pull_secrets(self, pod: dict) -> list[dict]:
        namespace = (pod.get("metadata") or {}).get("namespace")
        found, missing = [], []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            name = ref.get("name")
            if not name:
                continue
            try:
                found.append(await self.objects.get("secrets", name, namespace))
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise
                missing.append(name)
        if missing:
            self.recorder.event(pod, WARNING, "FailedToRetrieveImagePullSecret",
                                f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to "
                                "pull the image may not succeed.")
        return found

    # ---- housekeeping ----------------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.config.housekeeping_period)
            try:
                await self.housekeeping()
            except (CRIError, APIStatusError, APIConnectionError) as exc:
                log.warning("kubelet housekeeping: %s", exc)

    async def housekeeping(self) -> None:
        """Remove what runs for pods the API no longer binds to this node; forget their workers."""
        if not self.informer.has_synced or self.pleg.last_relist is None:
            return
        bound = {_uid(pod) for pod in self.informer.list()}
        for uid in list(self.pleg.pods):
            if uid in bound:
                continue
            worker = self.pod_workers.get(uid)
            if worker is not None and not worker.terminated:
                if not worker.kill_requested:
                    self.pod_workers.kill_pod(worker.pod, _deletion_grace(worker.pod))
                continue
            log.info("removing pod %s from the runtime: no longer bound to %s", uid, self.config.node_name)
            await self.runtime_manager.remove_pod(uid)
            await self.volumes.unmount_pod_volumes(uid)
            self.pleg.pods.pop(uid, None)
            await self._forget(uid)
        for uid in list(self.pod_workers.workers):
            worker = self.pod_workers.workers[uid]
            if uid not in bound and uid not in self.pleg.pods and worker.terminated:
                await self._forget(uid)

    async def _forget(self, uid: str) -> None:
        await self.pod_workers.forget(uid)
        self._forget_state(uid)

    def _forget_state(self, uid: str) -> None:
        self.objects.unregister_pod(uid)
        self.status_manager.forget(uid)
        self._waiting.pop(uid, None)
        self._by_uid.pop(uid, None)
        self._start_times.pop(uid, None)
        self._overrides.pop(uid, None)
        self._rejected.discard(uid)


def rejected_status(pod: Mapping, reason: str, message: str, now: float) -> dict:
    """The status of a pod refused at admission (upstream's rejectPod): Failed with the reason and message, its
    QoS class kept, and the start time the status manager gives any pod it first reports."""
    status = pod.get("status") or {}
    return {"phase": "Failed", "reason": reason, "message": message,
            "qosClass": qos_class(dict(pod.get("spec") or {})), "startTime": status.get("startTime") or rfc3339(now)}
