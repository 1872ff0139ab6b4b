"""computePodActions: what one sync of a pod must do, from its spec and what the runtime has (pure).

Follows upstream's kuberuntime_manager.go computePodActions (with sidecars, i.e. restartable init containers,
enabled as in 1.32): recreate the sandbox when it is gone, not ready, or has lost its IP (killing whatever is left
first); otherwise start init containers one at a time in order, keep sidecars running, and once initialization is
complete start the app containers the restart policy allows and restart running ones whose spec changed or whose
liveness probe failed. Ephemeral containers (kubectl debug) start once, into an existing sandbox, even while
initialization is incomplete, and are never restarted. A pod whose containers are all done and none may restart is
killed (made terminal). Crash-loop backoff is applied when a start is attempted (runtime_manager), not here, as
upstream does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .runtime_state import ContainerState, PodRuntimeStatus


@dataclass
class ContainerToKill:
    container: ContainerState
    message: str  # the Killing event's, e.g. "Container web failed liveness probe, will be restarted"


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    init_containers_to_start: list[str] = field(default_factory=list)  # names, in start order
    containers_to_start: list[str] = field(default_factory=list)
    ephemeral_containers_to_start: list[str] = field(default_factory=list)
    containers_to_kill: list[ContainerToKill] = field(default_factory=list)


def is_sidecar(container: Mapping) -> bool:
    """A restartable init container (restartPolicy: Always on an init container)."""
    return container.get("restartPolicy") == "Always"


def container_hash(container: Mapping) -> str:
    """A stable digest of the parts of a container spec that need a restart to change (resources may be resized
    in place upstream, so they are left out as upstream's hash does)."""
    spec = {k: v for k, v in container.items() if k != "resources"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def should_restart(restart_policy: str, instance: ContainerState | None) -> bool:
    """Whether a container whose latest instance is `instance` (None: never created) is to be (re)started."""
    if instance is None:
        return True
    if not instance.exited:
        return False
    if restart_policy == "Always":
        return True
    return restart_policy == "OnFailure" and instance.exit_code != 0


def _succeeded(instance: ContainerState | None) -> bool:
    return instance is not None and instance.exited and instance.exit_code == 0


def sandbox_changed(pod: Mapping, status: PodRuntimeStatus) -> tuple[bool, int, str]:
    """(create a new sandbox?, its attempt, the current sandbox id): upstream's podSandboxChanged."""
    sandboxes = status.sandboxes
    if not sandboxes:
        return True, 0, ""
    latest = sandboxes[0]
    ready = [s for s in sandboxes if s.ready]
    if len(ready) > 1:
        return True, latest.attempt + 1, latest.id
    if not latest.ready:
        return True, latest.attempt + 1, latest.id
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    if not host_network and not latest.ips:
        return True, latest.attempt + 1, latest.id
    return False, latest.attempt, latest.id


LivenessFailed = Callable[[str, str], bool]  # (container name, container ID) -> its liveness probe says restart


def compute_pod_actions(pod: Mapping, status: PodRuntimeStatus,
                        liveness_failed: LivenessFailed = lambda _name, _id: False) -> PodActions:
    spec = pod.get("spec") or {}
    restart_policy = spec.get("restartPolicy") or "Always"
    init_containers = list(spec.get("initContainers") or [])
    containers = list(spec.get("containers") or [])

    create, attempt, sandbox_id = sandbox_changed(pod, status)
    actions = PodActions(kill_pod=create, create_sandbox=create, sandbox_id=sandbox_id, attempt=attempt)
    if create:
        if restart_policy == "Never" and attempt != 0 and status.containers:
            # The pod already ran and may not run again: kill what is left and create nothing.
            actions.create_sandbox = False
            return actions
        to_start = [c["name"] for c in containers
                    if not (restart_policy == "OnFailure" and _succeeded(status.latest(c["name"])))]
        if not to_start and status.containers:
            actions.create_sandbox = False
            return actions
        if init_containers:
            actions.init_containers_to_start = [init_containers[0]["name"]]
        else:
            actions.containers_to_start = to_start
        return actions

    # A new sandbox (above) never starts ephemeral containers: those that ran in the old one stay done.
    actions.ephemeral_containers_to_start = [c["name"] for c in spec.get("ephemeralContainers") or []
                                             if status.latest(c["name"]) is None]
    initialized = _init_actions(init_containers, status, restart_policy, actions, liveness_failed)
    if actions.kill_pod or not initialized:
        return actions

    keep = 0
    for container in containers:
        name = container["name"]
        instance = status.latest(name)
        if instance is None or not instance.running:
            if should_restart(restart_policy, instance):
                actions.containers_to_start.append(name)
            continue
        message = ""
        if instance.hash and instance.hash != container_hash(container):
            message = f"Container {name} definition changed, will be restarted"
        elif liveness_failed(name, instance.id):
            message = f"Container {name} failed liveness probe, will be restarted"
        if message:
            actions.containers_to_kill.append(ContainerToKill(instance, message))
            if restart_policy != "Never":
                actions.containers_to_start.append(name)
            continue
        keep += 1
    if keep == 0 and not actions.containers_to_start:
        # Nothing runs and nothing will: the pod is done. Sidecars do not keep it alive.
        actions.kill_pod = True
        actions.init_containers_to_start = []
        actions.ephemeral_containers_to_start = []
    return actions


def _init_actions(init_containers: list[dict], status: PodRuntimeStatus, restart_policy: str,
                  actions: PodActions, liveness_failed: LivenessFailed) -> bool:
    """Fill in init container actions; True when initialization is complete (app containers may run)."""
    for container in init_containers:
        name = container["name"]
        instance = status.latest(name)
        if is_sidecar(container):
            if instance is None:
                actions.init_containers_to_start.append(name)
                return False  # the next init container waits until this sidecar has started
            if instance.running:
                if liveness_failed(name, instance.id) or (instance.hash and instance.hash != container_hash(container)):
                    actions.containers_to_kill.append(ContainerToKill(
                        instance, f"Container {name} failed liveness probe, will be restarted"))
                    actions.init_containers_to_start.append(name)
                continue
            # Exited sidecars are always restarted, whatever the pod's restart policy.
            actions.init_containers_to_start.append(name)
            continue
        if instance is None:
            actions.init_containers_to_start.append(name)
            return False
        if instance.running or instance.state == "created":
            return False
        if instance.exit_code == 0:
            continue
        if restart_policy == "Never":
            actions.kill_pod = True  # a failed init container fails the pod
            return False
        actions.init_containers_to_start.append(name)
        return False
    return True
