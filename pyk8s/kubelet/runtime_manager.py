"""The kubelet's side of CRI (upstream's kuberuntime manager): reads a pod's state from the runtime, carries out
`compute_pod_actions` for one sync (sandbox, init containers, sidecars, app containers, with crash-loop backoff,
image pulls, env, mounts, postStart hooks; ephemeral containers in their target's PID namespace) and kills
containers and pods (preStop, then StopContainer with what is left of the grace period). Every step is an Event with
upstream's reason and message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from ..client import NORMAL, WARNING, APIClient, EventRecorder
from . import cri_config
from .backoff import Backoff
from .config import KubeletConfig
from .images import ImageManager, ImagePullError
from .log_rotation import remove_container_logs
from .pod_actions import compute_pod_actions, container_hash, is_sidecar
from .pod_status import NO_PROBES, ReadinessSource, Waiting
from .runtime.cri import CRIClient, CRIError, pb
from .runtime_state import (
    CONTAINER_NAME_LABEL,
    CREATED,
    EXITED,
    HASH_ANNOTATION,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    RESTART_COUNT_ANNOTATION,
    RUNNING,
    TERMINATION_MESSAGE_PATH_ANNOTATION,
    TERMINATION_MESSAGE_POLICY_ANNOTATION,
    UNKNOWN,
    ContainerState,
    PodRuntimeStatus,
    SandboxState,
)

log = logging.getLogger(__name__)

MIN_GRACE_PERIOD = 2  # upstream's minimumGracePeriodInSeconds after a preStop hook
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
HOOK_HTTP_TIMEOUT = 30.0
_CRI_STATES = {pb.CONTAINER_CREATED: CREATED, pb.CONTAINER_RUNNING: RUNNING, pb.CONTAINER_EXITED: EXITED,
               pb.CONTAINER_UNKNOWN: UNKNOWN}


class VolumeMounter(Protocol):
    """The part of the VolumeManager (pyk8s/kubelet/volumes) the runtime manager needs."""

    def container_mounts(self, pod: dict, container: dict, *,
                         env: list[tuple[str, str]] | None = None) -> list[pb.Mount]: ...


class ContainerEnv(Protocol):
    """Resolves a container's environment (pyk8s/kubelet/envvars.container_env); `errors` are the exception types
    that mean "the config is wrong" (CreateContainerConfigError) rather than a bug."""

    errors: tuple[type[Exception], ...]

    async def __call__(self, client: APIClient, pod: dict, container: dict, *, pod_ips: list[str],
                       host_ips: list[str] | None) -> list[tuple[str, str]]: ...


@dataclass
class SyncResult:
    waiting: dict[str, Waiting] = field(default_factory=dict)
    requeue_after: float | None = None  # resync this soon (a backoff ends)
    error: str = ""  # set when the sync failed as a whole (e.g. the sandbox could not be created)

    def retry_in(self, seconds: float) -> None:
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def field_path(pod: Mapping, name: str) -> str:
    spec = pod.get("spec") or {}
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            if container.get("name") == name:
                return f"spec.{kind}{{{name}}}"
    return ""


def find_container(pod: Mapping, name: str) -> dict | None:
    spec = pod.get("spec") or {}
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            if container.get("name") == name:
                return container
    return None


def _seconds(nanos: int) -> float:
    return nanos / 1e9 if nanos > 0 else 0.0


def tail_log_message(path: Path, lines: int = FALLBACK_LOG_LINES, limit: int = FALLBACK_LOG_BYTES) -> str:
    """The last lines of a CRI log file without the timestamp/stream/tag prefix (FallbackToLogsOnError)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            raw = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    text = ""
    for line in raw[-lines:]:
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        text += parts[3] + ("\n" if parts[2] == "F" else "")
    return text[-limit:]


class RuntimeManager:
    def __init__(self, runtime: CRIClient, config: KubeletConfig, client: APIClient, images: ImageManager,
                 volumes: VolumeMounter, env: ContainerEnv, recorder: EventRecorder | None = None,
                 probes: ReadinessSource = NO_PROBES, wall: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.config = config
        self.client = client
        self.images = images
        self.volumes = volumes
        self.env = env
        self.recorder = recorder
        self.probes = probes
        self.wall = wall
        self.runtime_name = "containerd"
        self.crash_backoff = Backoff()
        # The CPU-heavy runtime calls (RunPodSandbox, StartContainer) a few at a time; see KubeletConfig.
        limit = config.max_parallel_runtime_starts
        self._start_slots: contextlib.AbstractAsyncContextManager = (
            asyncio.Semaphore(limit) if limit > 0 else contextlib.nullcontext())

    async def start(self) -> None:
        version = await self.runtime.version()
        self.runtime_name = version.runtime_name or self.runtime_name

    def _event(self, pod: Mapping, type_: str, reason: str, message: str, name: str | None = None) -> None:
        if self.recorder is not None:
            self.recorder.event(pod, type_, reason, message, field_path=field_path(pod, name) if name else None)

    # ---- reading the runtime ----------------------------------------------------------------------------

    async def pod_status(self, uid: str) -> PodRuntimeStatus:
        # Every sync reads the pod's state two or three times: the independent CRI reads go out together, so one
        # read costs the slowest call rather than the sum (the runtime is busiest exactly when pods start).
        sandboxes, containers = await asyncio.gather(
            self.runtime.list_pod_sandbox(pb.PodSandboxFilter(label_selector={POD_UID_LABEL: uid})),
            self.runtime.list_containers(pb.ContainerFilter(label_selector={POD_UID_LABEL: uid})))
        status = PodRuntimeStatus(uid=uid)
        for sandbox in sorted(sandboxes, key=lambda s: s.created_at, reverse=True):
            status.name = status.name or sandbox.metadata.name
            status.namespace = status.namespace or sandbox.metadata.namespace
            ips: tuple[str, ...] = ()
            ready = sandbox.state == pb.SANDBOX_READY
            if ready and not status.sandboxes:
                try:
                    network = (await self.runtime.pod_sandbox_status(sandbox.id)).status.network
                    ips = tuple(ip for ip in [network.ip, *(extra.ip for extra in network.additional_ips)] if ip)
                except CRIError as exc:
                    if not exc.not_found:
                        raise
                    continue
            status.sandboxes.append(SandboxState(sandbox.id, sandbox.metadata.attempt, ready,
                                                 _seconds(sandbox.created_at), ips))
        states = await asyncio.gather(*(self._container_state_if_present(c) for c in containers))
        status.containers = sorted((s for s in states if s is not None), key=lambda c: (c.created_at, c.restart_count),
                                   reverse=True)
        return status

    async def _container_state_if_present(self, container: pb.Container) -> ContainerState | None:
        try:
            return await self._container_state(container)
        except CRIError as exc:
            if exc.not_found:  # removed meanwhile
                return None
            raise

    async def _container_state(self, container: pb.Container) -> ContainerState:
        status = (await self.runtime.container_status(container.id)).status
        annotations = dict(container.annotations)
        state = _CRI_STATES.get(status.state, UNKNOWN)
        message = status.message
        if state in (EXITED, UNKNOWN):
            message = self._termination_message(status, annotations) or message
        try:
            restart_count = int(annotations.get(RESTART_COUNT_ANNOTATION, "0"))
        except ValueError:
            restart_count = 0
        return ContainerState(
            id=container.id, name=container.labels.get(CONTAINER_NAME_LABEL, container.metadata.name),
            restart_count=restart_count, state=state, created_at=_seconds(status.created_at),
            started_at=_seconds(status.started_at), finished_at=_seconds(status.finished_at),
            exit_code=status.exit_code, reason=status.reason, message=message,
            image=status.image.image, image_ref=status.image_ref, hash=annotations.get(HASH_ANNOTATION, ""),
            sandbox_id=container.pod_sandbox_id)

    def _termination_message(self, status: pb.ContainerStatus, annotations: Mapping[str, str]) -> str:
        """What the container wrote to its terminationMessagePath, or (FallbackToLogsOnError, failed, nothing
        written) the tail of its log."""
        path = annotations.get(TERMINATION_MESSAGE_PATH_ANNOTATION, "")
        message = ""
        if path:
            for mount in status.mounts:
                if mount.container_path == path:
                    try:
                        with open(mount.host_path, "rb") as f:
                            message = f.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
                    except OSError as exc:
                        message = f"Error on reading termination message from logs: {exc}"
                    break
        policy = annotations.get(TERMINATION_MESSAGE_POLICY_ANNOTATION, "File")
        if not message and policy == "FallbackToLogsOnError" and status.exit_code != 0 and status.log_path:
            message = tail_log_message(Path(status.log_path))
        return message

    async def runtime_pods(self) -> dict[str, tuple[list[pb.PodSandbox], list[pb.Container]]]:
        """Every pod the runtime has, by UID (what the PLEG relists and housekeeping cleans up)."""
        pods: dict[str, tuple[list[pb.PodSandbox], list[pb.Container]]] = {}
        for sandbox in await self.runtime.list_pod_sandbox():
            uid = sandbox.labels.get(POD_UID_LABEL) or sandbox.metadata.uid
            pods.setdefault(uid, ([], []))[0].append(sandbox)
        for container in await self.runtime.list_containers():
            uid = container.labels.get(POD_UID_LABEL)
            if uid:
                pods.setdefault(uid, ([], []))[1].append(container)
        return pods

    # ---- SyncPod ----------------------------------------------------------------------------------------

    async def sync_pod(self, pod: dict, status: PodRuntimeStatus, pull_secrets: list[dict]) -> SyncResult:
        namespace, name, uid = cri_config.pod_meta(pod)
        result = SyncResult()
        actions = compute_pod_actions(pod, status, lambda c, cid: self.probes.liveness_failed(uid, c, cid))
        log.debug("pod %s/%s: %s", namespace, name, actions)
        if actions.kill_pod:
            if actions.create_sandbox and status.sandboxes:
                self._event(pod, NORMAL, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            await self.kill_pod(pod, status, cri_config.grace_period(pod))
            if not actions.create_sandbox:
                return result
            status = await self.pod_status(uid)  # what the kill left: every container has exited
        else:
            for kill in actions.containers_to_kill:
                await self.kill_container(pod, kill.container, cri_config.grace_period(pod), kill.message)

        host_resolv = _read(self.config.resolv_conf)
        if actions.create_sandbox:
            await self._prune_init_containers(pod, status)
            config = cri_config.sandbox_config(pod, actions.attempt, self.config, host_resolv)
            try:
                sandbox_id = await self._create_sandbox(pod, config)
            except CRIError as exc:
                message = f"Failed to create pod sandbox: {exc.details}"
                self._event(pod, WARNING, "FailedCreatePodSandBox", message)
                result.error = message
                return result
            status = await self.pod_status(uid)
        else:
            sandbox_id = actions.sandbox_id
            config = cri_config.sandbox_config(pod, actions.attempt, self.config, host_resolv)
        pod_ips = list(status.ips)

        # Before init containers, as upstream: a debug container must start even when an init container cannot.
        for container_name in actions.ephemeral_containers_to_start:
            container = find_container(pod, container_name)
            assert container is not None
            waiting = await self._start_ephemeral_container(pod, container, sandbox_id, config, status, pull_secrets,
                                                            pod_ips, result)
            if waiting is not None:
                result.waiting[container_name] = waiting
        for container_name in actions.init_containers_to_start:
            container = find_container(pod, container_name)
            assert container is not None
            waiting = await self.start_container(pod, container, sandbox_id, config, status, pull_secrets, pod_ips,
                                                 result)
            if waiting is not None:
                result.waiting[container_name] = waiting
                if not is_sidecar(container):
                    return result
        for container_name in actions.containers_to_start:
            container = find_container(pod, container_name)
            assert container is not None
            waiting = await self.start_container(pod, container, sandbox_id, config, status, pull_secrets, pod_ips,
                                                 result)
            if waiting is not None:
                result.waiting[container_name] = waiting
        await self.remove_dead_instances(status)
        return result

    async def _create_sandbox(self, pod: dict, config: pb.PodSandboxConfig) -> str:
        _, _, uid = cri_config.pod_meta(pod)
        Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        async with self._start_slots:
            sandbox_id = await self.runtime.run_pod_sandbox(config, self.config.runtime_handler)
        try:
            network = (await self.runtime.pod_sandbox_status(sandbox_id)).status.network
            ips = [ip for ip in [network.ip, *(extra.ip for extra in network.additional_ips)] if ip]
        except CRIError:
            ips = []
        hosts = self.config.paths.etc_hosts(uid)
        hosts.parent.mkdir(parents=True, exist_ok=True)
        content = cri_config.managed_hosts_file(pod, ips, self.config, _read(self.config.host_etc_hosts))
        tmp = hosts.with_suffix(".tmp")
        tmp.write_text(content)
        tmp.chmod(0o644)
        tmp.replace(hosts)
        return sandbox_id

    async def _prune_init_containers(self, pod: Mapping, status: PodRuntimeStatus) -> None:
        """A new sandbox runs every init container again: the old sandbox's exited ones go (upstream's
        purgeInitContainers), so they do not count as done."""
        init_names = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []}
        for instance in status.containers:
            if instance.name in init_names and instance.exited:
                await self._remove_container(instance.id)

    async def remove_dead_instances(self, status: PodRuntimeStatus) -> None:
        """Keep the newest instance of each container and the one before it (lastState); remove older dead ones
        (upstream's container GC keeps one dead container per name), then stopped sandboxes other than the newest
        that no longer hold a kept container."""
        seen: dict[str, int] = {}
        kept_sandboxes = set()
        for instance in status.containers:
            seen[instance.name] = seen.get(instance.name, 0) + 1
            if seen[instance.name] > 2 and instance.exited:
                await self._remove_container(instance.id)
            else:
                kept_sandboxes.add(instance.sandbox_id)
        for sandbox in status.sandboxes[1:]:
            if not sandbox.ready and sandbox.id not in kept_sandboxes:
                try:
                    await self.runtime.remove_pod_sandbox(sandbox.id)
                except CRIError as exc:
                    if not exc.not_found:
                        log.warning("removing sandbox %s: %s", sandbox.id, exc)

    async def remove_exited_containers(self, status: PodRuntimeStatus) -> None:
        """Every exited container of a pod that has terminated (container GC under disk pressure)."""
        for instance in status.containers:
            if instance.exited:
                await self._remove_container(instance.id)

    async def _remove_container(self, container_id: str) -> None:
        """Remove the container and its log files, rotated ones included (upstream's removeContainerLog)."""
        try:
            log_path = (await self.runtime.container_status(container_id)).status.log_path
            await self.runtime.remove_container(container_id)
        except CRIError as exc:
            if not exc.not_found:
                log.warning("removing container %s: %s", container_id, exc)
            return
        if log_path:
            await asyncio.to_thread(remove_container_logs, log_path)

    # ---- starting a container ------------------------------------------------------------------------

    async def _start_ephemeral_container(self, pod: dict, container: dict, sandbox_id: str,
                                         sandbox: pb.PodSandboxConfig, status: PodRuntimeStatus,
                                         pull_secrets: list[dict], pod_ips: list[str],
                                         result: SyncResult) -> Waiting | None:
        """An ephemeral container joins its target container's PID namespace (upstream's getTargetID): the target
        must be running now; if it is not, the start is retried on a later sync."""
        target = container.get("targetContainerName") or ""
        target_id = ""
        if target:
            instance = status.latest(target)
            if instance is None or not instance.running:
                result.retry_in(10.0)
                return Waiting("RunContainerError", f"unable to find target container {target}")
            target_id = instance.id
        return await self.start_container(pod, container, sandbox_id, sandbox, status, pull_secrets, pod_ips,
                                          result, target_id=target_id)

    async def start_container(self, pod: dict, container: dict, sandbox_id: str, sandbox: pb.PodSandboxConfig,
                              status: PodRuntimeStatus, pull_secrets: list[dict], pod_ips: list[str],
                              result: SyncResult, target_id: str = "") -> Waiting | None:
        """Upstream's startContainer: backoff → pull → create → start → postStart. A Waiting when it did not.
        `target_id`: the container whose PID namespace this one (an ephemeral container) shares."""
        uid = cri_config.pod_meta(pod)[2]
        name = container["name"]
        latest = status.latest(name)
        restart_count = latest.restart_count + 1 if latest is not None else 0
        hash_ = container_hash(container)
        if latest is not None and latest.exited:
            key = f"{uid}_{name}_{hash_}"
            now = self.wall()
            finished = latest.finished_at or now
            if self.crash_backoff.in_backoff_since(key, finished, now):
                duration = self.crash_backoff.duration(key)
                self._event(pod, WARNING, "BackOff",
                            f"Back-off restarting failed container {name} in pod {cri_config.pod_ref(pod)}", name)
                result.retry_in(self.crash_backoff.remaining(key, finished, now))
                return Waiting("CrashLoopBackOff", f"back-off {_go_seconds(duration)} restarting failed "
                                                   f"container={name} pod={cri_config.pod_ref(pod)}")
            self.crash_backoff.next(key, finished, now)

        path = field_path(pod, name)
        try:
            image_ref = await self.images.ensure_image_exists(pod, container, path, pull_secrets, sandbox)
        except ImagePullError as exc:
            self._event(pod, WARNING, "Failed", f"Error: {exc.reason}", name)
            if exc.reason == "ImagePullBackOff":
                pull_key = f"{uid}_{container.get('image', '')}"
                result.retry_in(max(self.images.backoff.remaining_since_update(pull_key, self.images.clock()), 0.1))
            elif exc.reason == "ErrImagePull":
                # Report the back-off state soon after a failed pull, as upstream's next sync would.
                result.retry_in(1.0)
            else:
                result.retry_in(10.0)
            return Waiting(exc.reason, exc.message)

        try:
            # The sandbox's IPs: the pod's status may not have them yet (status.podIP in env, as upstream).
            env = await self.env(self.client, pod, container, pod_ips=pod_ips, host_ips=self.config.node_ips or None)
        except self.env.errors as exc:
            message = str(getattr(exc, "message", exc))
            self._event(pod, WARNING, "Failed", f"Error: {message}", name)
            result.retry_in(10.0)
            return Waiting("CreateContainerConfigError", message)
        image = await self._image_user(image_ref)
        if (refusal := cri_config.verify_run_as_non_root(pod, container, *image)) is not None:
            self._event(pod, WARNING, "Failed", f"Error: {refusal}", name)
            result.retry_in(10.0)
            return Waiting("CreateContainerConfigError", refusal)

        mounts = list(self.volumes.container_mounts(pod, container, env=env))
        if not (pod.get("spec") or {}).get("hostNetwork") or self.config.host_etc_hosts.exists():
            hosts = self.config.paths.etc_hosts(uid)
            if hosts.exists() and not cri_config.mounts_etc_hosts(container):
                mounts.append(pb.Mount(container_path="/etc/hosts", host_path=str(hosts)))
        message_path = cri_config.termination_message_path(container)
        if message_path:
            mounts.append(pb.Mount(container_path=message_path,
                                   host_path=str(self._termination_message_file(uid, name))))
        config = cri_config.container_config(pod, container, image_ref=image_ref, restart_count=restart_count,
                                             hash_=hash_, env=env, mounts=mounts, config=self.config,
                                             target_id=target_id)
        try:
            # Shielded: once asked for, a container is always recorded (a cancelled sync must not lose it).
            container_id = await asyncio.shield(self.runtime.create_container(sandbox_id, config, sandbox))
        except CRIError as exc:
            self._event(pod, WARNING, "Failed", f"Error: {exc.details}", name)
            result.retry_in(10.0)
            return Waiting("CreateContainerError", exc.details)
        self._event(pod, NORMAL, "Created", f"Created container: {name}", name)
        try:
            async with self._start_slots:
                await asyncio.shield(self.runtime.start_container(container_id))
        except CRIError as exc:
            self._event(pod, WARNING, "Failed", f"Error: {exc.details}", name)
            result.retry_in(10.0)
            return Waiting("RunContainerError", exc.details)
        self._event(pod, NORMAL, "Started", f"Started container {name}", name)

        post_start = (container.get("lifecycle") or {}).get("postStart")
        if post_start:
            failure = await self.run_hook(pod, container, container_id, post_start, pod_ips, "PostStart")
            if failure:
                self._event(pod, WARNING, "FailedPostStartHook", failure, name)
                instance = ContainerState(container_id, name, restart_count, RUNNING)
                await self.kill_container(pod, instance, cri_config.grace_period(pod), run_pre_stop=False)
                return Waiting("PostStartHookError", failure)
        return None

    async def _image_user(self, image_ref: str) -> tuple[int | None, str]:
        try:
            image = await self.runtime.image_status(image_ref)
        except CRIError:
            return None, ""
        if image is None:
            return None, ""
        return (image.uid.value if image.HasField("uid") else None), image.username

    def _termination_message_file(self, uid: str, name: str) -> Path:
        directory = self.config.paths.termination_message_dir(uid, name)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / secrets.token_hex(4)
        path.touch()
        path.chmod(0o666)  # writable by a container running as any user
        return path

    # ---- hooks ------------------------------------------------------------------------------------------

    async def run_hook(self, pod: Mapping, container: Mapping, container_id: str, handler: Mapping,
                       pod_ips: list[str], kind: str, timeout: float | None = None) -> str:
        """Run a lifecycle handler; the failure message ("" on success). Upstream's handlers.go messages."""
        name = container.get("name", "")
        ref = cri_config.pod_ref(pod)
        try:
            async with asyncio.timeout(timeout):
                if "exec" in handler:
                    command = list((handler["exec"] or {}).get("command") or [])
                    answer = await self.runtime.exec_sync(container_id, command,
                                                          timeout_seconds=int(timeout) if timeout else 0)
                    if answer.exit_code != 0:
                        output = (answer.stdout + answer.stderr).decode(errors="replace")
                        return (f"Exec lifecycle hook ({command}) for Container \"{name}\" in Pod \"{ref}\" failed - "
                                f"error: command '{' '.join(command)}' exited with {answer.exit_code}: {output}, "
                                f"message: \"{output}\"")
                elif "httpGet" in handler:
                    return await self._http_hook(pod, container, handler["httpGet"] or {}, pod_ips, ref)
                elif "sleep" in handler:
                    await asyncio.sleep(float((handler["sleep"] or {}).get("seconds") or 0))
        except TimeoutError:
            return f"{kind} hook for Container \"{name}\" in Pod \"{ref}\" timed out"
        except CRIError as exc:
            return f"Exec lifecycle hook for Container \"{name}\" in Pod \"{ref}\" failed - error: {exc.details}"
        return ""

    async def _http_hook(self, pod: Mapping, container: Mapping, action: Mapping, pod_ips: list[str],
                         ref: str) -> str:
        host = action.get("host") or (pod_ips[0] if pod_ips else "")
        port = action.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = next((p.get("containerPort") for p in container.get("ports") or [] if p.get("name") == port),
                        None)
        scheme = (action.get("scheme") or "HTTP").lower()
        path = action.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme}://{host}:{port}{path}"
        headers = {h.get("name", ""): h.get("value", "") for h in action.get("httpHeaders") or []}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HOOK_HTTP_TIMEOUT),
                                             connector=aiohttp.TCPConnector(force_close=True, ssl=False)) as s:
                async with s.get(url, headers=headers) as resp:
                    if resp.status < 200 or resp.status >= 400:
                        body = (await resp.content.read(10240)).decode(errors="replace")
                        return (f"HTTP lifecycle hook ({path}) for Container \"{container.get('name')}\" in Pod "
                                f"\"{ref}\" failed - error: HTTP status code {resp.status}, message: \"{body}\"")
        except (aiohttp.ClientError, OSError) as exc:
            return (f"HTTP lifecycle hook ({path}) for Container \"{container.get('name')}\" in Pod \"{ref}\" "
                    f"failed - error: {exc}, message: \"\"")
        return ""

    # ---- killing ------------------------------------------------------------------------------------------

    async def kill_container(self, pod: Mapping | None, instance: ContainerState, grace: int, message: str = "",
                             run_pre_stop: bool = True) -> None:
        """preStop (within the grace period), then StopContainer with the rest: SIGTERM, SIGKILL at the end.
        `message` is the Killing event's when the kill has a reason (e.g. a failed liveness probe)."""
        container = find_container(pod, instance.name) if pod is not None else None
        if pod is not None:
            self._event(pod, NORMAL, "Killing", message or f"Stopping container {instance.name}", instance.name)
        remaining = float(max(grace, 0))
        pre_stop = ((container or {}).get("lifecycle") or {}).get("preStop")
        if pre_stop and run_pre_stop and instance.running and pod is not None and remaining > 0:
            started = time.monotonic()
            failure = await self.run_hook(pod, container or {}, instance.id, pre_stop, [], "PreStop",
                                          timeout=remaining)
            if failure:
                self._event(pod, WARNING, "FailedPreStopHook", failure, instance.name)
            remaining = max(remaining - (time.monotonic() - started), MIN_GRACE_PERIOD)
        try:
            await self.runtime.stop_container(instance.id, int(round(remaining)))
        except CRIError as exc:
            if not exc.not_found:
                raise

    async def kill_pod(self, pod: Mapping | None, status: PodRuntimeStatus, grace: int) -> None:
        """Stop every running container (app containers first, then sidecars in reverse start order), then every
        sandbox of the pod (upstream's killPodWithSyncResult). Not-ready ones too: a sandbox whose processes died
        under the runtime (a node reboot, a killed pause) still holds its pod network (the CNI IPAM address) until
        StopPodSandbox tears that down."""
        running = status.running_containers
        sidecar_names = [c.get("name") for c in ((pod or {}).get("spec") or {}).get("initContainers") or []
                         if is_sidecar(c)]
        apps = [c for c in running if c.name not in sidecar_names]
        sidecars = sorted((c for c in running if c.name in sidecar_names),
                          key=lambda c: sidecar_names.index(c.name), reverse=True)
        started = time.monotonic()
        await asyncio.gather(*(self.kill_container(pod, c, grace) for c in apps))
        left = max(int(grace - (time.monotonic() - started)), MIN_GRACE_PERIOD if grace > 0 else 0)
        for sidecar in sidecars:
            await self.kill_container(pod, sidecar, left)
        for sandbox in status.sandboxes:
            try:
                await self.runtime.stop_pod_sandbox(sandbox.id)
            except CRIError as exc:
                if not exc.not_found:
                    raise

    async def remove_pod(self, uid: str) -> None:
        """Stop and remove the pod's sandboxes (their containers go with them), then its cgroup, logs and the
        kubelet's files for it (volumes are the volume manager's)."""
        sandboxes = await self.runtime.list_pod_sandbox(pb.PodSandboxFilter(label_selector={POD_UID_LABEL: uid}))
        for container in await self.runtime.list_containers(pb.ContainerFilter(label_selector={POD_UID_LABEL: uid})):
            if container.state == pb.CONTAINER_RUNNING:
                try:
                    await self.runtime.stop_container(container.id, 0)
                except CRIError as exc:
                    if not exc.not_found:
                        raise
            await self._remove_container(container.id)
        log_dirs = set()
        for sandbox in sandboxes:
            log_dirs.add(self.config.paths.pod_log_dir(sandbox.labels.get(POD_NAMESPACE_LABEL, ""),
                                                       sandbox.labels.get(POD_NAME_LABEL, ""), uid))
            for step in (self.runtime.stop_pod_sandbox, self.runtime.remove_pod_sandbox):
                try:
                    await step(sandbox.id)
                except CRIError as exc:
                    if not exc.not_found:
                        raise
        remove_pod_cgroups(f"{self.config.cgroup_parent.rstrip('/')}/pod{uid}")
        for directory in log_dirs:
            _remove_tree(directory)
        pod_dir = self.config.paths.pod_dir(uid)
        self.config.paths.etc_hosts(uid).unlink(missing_ok=True)
        _remove_tree(pod_dir / "containers")
        try:
            pod_dir.rmdir()  # only when the volume manager left nothing behind
        except OSError:
            pass
        self.images.forget_pod(uid)
        self.crash_backoff.forget_prefix(f"{uid}_")


CGROUP_ROOT = Path("/sys/fs/cgroup")


def remove_pod_cgroups(relative: str, root: Path = CGROUP_ROOT) -> None:
    """runc leaves a pod's parent cgroup directories behind in every v1 hierarchy (and the v2 tree): rmdir them,
    leaves first. Only empty cgroups can be removed, so a still-running process keeps its cgroup."""
    if not root.is_dir():
        return
    for hierarchy in root.iterdir():
        top = hierarchy / relative.lstrip("/")
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                reverse=True):
            try:
                directory.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError:
            pass


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _go_seconds(seconds: float) -> str:
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
