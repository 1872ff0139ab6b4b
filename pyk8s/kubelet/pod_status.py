"""The pod status the kubelet reports, built from the spec and what the runtime has (pure).

Upstream's rules: phase from kubelet getPhase, container statuses from convertToAPIContainerStatuses (state from
the latest instance, lastState from the one before, or the latest while a restart waits), conditions from
pkg/kubelet/status/generate.go (PodReadyToStartContainers, Initialized, ContainersReady, Ready, plus PodScheduled
which the kubelet always reports True). Ephemeral containers get statuses of their own that play no part in the
phase or the conditions. Probes are a seam: a `ReadinessSource` answers readiness, startup and
liveness per container; `NO_PROBES` says what a pod without probes gets (ready and started once running).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..api.quota import qos_class
from .node_status import rfc3339
from .pod_actions import is_sidecar
from .runtime_state import ContainerState, PodRuntimeStatus

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
NOT_LOCATED_MESSAGE = "The container could not be located when the pod was terminated"


class ReadinessSource(Protocol):
    """Probe results (the prober implements this) for one container instance (its runtime ID: results of an
    earlier instance never apply to a restarted one); None means "no probe of that kind: use the default".
    The kubelet calls `add_pod` on every sync of a running pod (it must be idempotent) and `remove_pod` when the
    pod starts terminating; the prober calls `Kubelet.probe_result_changed(uid)` when a result changes."""

    def is_ready(self, pod_uid: str, container_name: str, container_id: str) -> bool | None: ...

    def started(self, pod_uid: str, container_name: str, container_id: str) -> bool | None: ...

    def liveness_failed(self, pod_uid: str, container_name: str, container_id: str) -> bool: ...

    def add_pod(self, pod: dict) -> None: ...

    def remove_pod(self, pod_uid: str) -> None: ...


class NoProbes:
    def add_pod(self, pod: dict) -> None:
        return None

    def remove_pod(self, pod_uid: str) -> None:
        return None

    def is_ready(self, pod_uid: str, container_name: str, container_id: str) -> bool | None:
        return None

    def started(self, pod_uid: str, container_name: str, container_id: str) -> bool | None:
        return None

    def liveness_failed(self, pod_uid: str, container_name: str, container_id: str) -> bool:
        return False


NO_PROBES = NoProbes()


@dataclass(frozen=True)
class Waiting:
    """Why a container is not running now, as the last sync found (CrashLoopBackOff, ErrImagePull, ...)."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class TerminalOverride:
    """A final status decided by the kubelet rather than by the containers: an eviction (phase Failed, reason
    `Evicted`, the eviction message, the DisruptionTarget condition) or an admission rejection."""

    phase: str
    reason: str
    message: str
    condition: Mapping | None = None  # e.g. DisruptionTarget; kept first, as upstream copies it over


def container_id(runtime_name: str, instance: ContainerState) -> str:
    return f"{runtime_name}://{instance.id}"


def _terminated(instance: ContainerState, runtime_name: str) -> dict:
    reason = instance.reason or ("Completed" if instance.exit_code == 0 else "Error")
    terminated: dict = {"exitCode": instance.exit_code, "reason": reason}
    if instance.message:
        terminated["message"] = instance.message
    # A container that never started has no start time; upstream reports the zero time as null.
    terminated["startedAt"] = rfc3339(instance.started_at) if instance.started_at else None
    terminated["finishedAt"] = rfc3339(instance.finished_at) if instance.finished_at else None
    terminated["containerID"] = container_id(runtime_name, instance)
    return {"terminated": terminated}


def container_status(container: Mapping, status: PodRuntimeStatus, waiting: Waiting | None,
                     default_waiting: str, runtime_name: str, probes: ReadinessSource, sidecar: bool = False,
                     init: bool = False) -> dict:
    name = container["name"]
    uid = status.uid
    latest = status.latest(name)
    previous = status.previous(name)
    last_state: dict = {}
    if latest is not None and latest.running:
        state: dict = {"running": {"startedAt": rfc3339(latest.started_at or latest.created_at)}}
        if previous is not None and previous.exited:
            last_state = _terminated(previous, runtime_name)
    elif latest is not None and latest.exited and waiting is None:
        state = _terminated(latest, runtime_name)
        if previous is not None and previous.exited:
            last_state = _terminated(previous, runtime_name)
    else:
        reason = waiting.reason if waiting is not None else default_waiting
        state = {"waiting": {"reason": reason}}
        if waiting is not None and waiting.message:
            state["waiting"]["message"] = waiting.message
        if latest is not None and latest.exited:
            last_state = _terminated(latest, runtime_name)
    running = latest is not None and latest.running
    started = running and probes.started(uid, name, latest.id) is not False
    if init and not sidecar:
        ready = latest is not None and latest.exited and latest.exit_code == 0 and "terminated" in state
    else:
        ready = started and probes.is_ready(uid, name, latest.id) is not False
    restart_count = latest.restart_count if latest is not None else 0
    result: dict = {"name": name, "state": state, "lastState": last_state, "ready": ready,
                    "restartCount": restart_count}
    if latest is not None:
        result["image"] = latest.image or container.get("image", "")
        result["imageID"] = latest.image_ref
        result["containerID"] = container_id(runtime_name, latest)
    else:
        result["image"] = container.get("image", "")
        result["imageID"] = ""
    result["started"] = started
    return result


def ephemeral_container_status(container: Mapping, status: PodRuntimeStatus, waiting: Waiting | None,
                               default_waiting: str, runtime_name: str) -> dict:
    """An ephemeral container's status: like any container's, but it is never ready, has no started flag (no
    probes) and, never restarted, a Waiting reason only until its one instance exists."""
    if status.latest(container["name"]) is not None:
        waiting = None
    result = container_status(container, status, waiting, default_waiting, runtime_name, NO_PROBES)
    result["ready"] = False
    del result["started"]
    return result


def _phase(spec: Mapping, init_statuses: list[dict], app_statuses: list[dict], terminal: bool) -> str:
    """Upstream getPhase."""
    restart_policy = spec.get("restartPolicy") or "Always"
    pending_init = pending_sidecars = failed_init = 0
    for container, s in zip(spec.get("initContainers") or [], init_statuses, strict=True):
        state = s["state"]
        if is_sidecar(container):
            if "running" not in state:
                pending_sidecars += 1
            continue
        if "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"]["exitCode"] != 0:
                failed_init += 1
        elif "terminated" in (s.get("lastState") or {}):
            if s["lastState"]["terminated"]["exitCode"] != 0:
                failed_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for s in app_statuses:
        state = s["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"]["exitCode"] == 0:
                succeeded += 1
        elif "terminated" in (s.get("lastState") or {}):
            stopped += 1
        elif "waiting" in state:
            waiting += 1
        else:
            unknown += 1
    if failed_init and (restart_policy == "Never" or terminal):
        return "Failed"
    if pending_init or (pending_sidecars and not running and not stopped):
        return "Pending"
    if waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def pod_condition(type_: str, ok: bool, now: float, before: Mapping[str, dict], reason: str = "",
                  message: str = "") -> dict:
    """A kubelet-owned pod condition; its transition time is kept while its status stays (real and simulated nodes)."""
    status = "True" if ok else "False"
    old = before.get(type_)
    transition = old.get("lastTransitionTime") if old and old.get("status") == status else None
    condition: dict = {"type": type_, "status": status, "lastProbeTime": None,
                       "lastTransitionTime": transition or rfc3339(now)}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _override_condition(override: TerminalOverride, now: float, before: Mapping[str, dict]) -> dict:
    condition = dict(override.condition or {})
    old = before.get(condition.get("type"))
    same = old is not None and old.get("status") == condition.get("status")
    condition.setdefault("lastProbeTime", None)
    condition["lastTransitionTime"] = (old.get("lastTransitionTime") if same else None) or rfc3339(now)
    return condition


def readiness_gates_message(pod: Mapping, conditions: Mapping[str, dict]) -> str:
    problems = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        type_ = gate.get("conditionType", "")
        condition = conditions.get(type_)
        if condition is None:
            problems.append(f"corresponding condition of pod readiness gate \"{type_}\" does not exist.")
        elif condition.get("status") != "True":
            problems.append(f"the status of pod readiness gate \"{type_}\" is not \"True\", but "
                            f"{condition.get('status')}")
    return ", ".join(problems)


def _initialized(init_containers: list[dict], init_statuses: list[dict], app_statuses: list[dict], phase: str,
                 now: float, before: Mapping[str, dict]) -> dict:
    """Upstream's GeneratePodInitializedCondition."""
    if not init_containers:
        return pod_condition("Initialized", True, now, before)
    if phase == "Succeeded":
        return pod_condition("Initialized", True, now, before, "PodCompleted")
    if any("running" in s["state"] or "terminated" in s["state"] or s["lastState"] for s in app_statuses):
        return pod_condition("Initialized", True, now, before)  # initialized before: app containers have run
    unready = [c["name"] for c, s in zip(init_containers, init_statuses, strict=True) if not s["ready"]]
    if unready:
        return pod_condition("Initialized", False, now, before, "ContainersNotInitialized",
                          f"containers with incomplete status: [{' '.join(unready)}]")
    return pod_condition("Initialized", True, now, before)


def build_pod_status(pod: Mapping, status: PodRuntimeStatus, *, waiting: Mapping[str, Waiting], host_ips: list[str],
                     now: float, runtime_name: str = "containerd", probes: ReadinessSource = NO_PROBES,
                     terminal: bool = False, start_time: float | None = None,
                     previous: Mapping | None = None, override: TerminalOverride | None = None) -> dict:
    """The kubelet-owned pod status. `terminal`: the pod is being (or has been) terminated, so nothing will
    restart; `previous` (the last reported or the server's status) keeps unchanged conditions' transition times
    and the startTime; `override` (an eviction) sets phase, reason and message whatever the containers say."""
    spec = pod.get("spec") or {}
    server_status = pod.get("status") or {}
    previous = previous if previous is not None else server_status
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    server_conditions = {c.get("type"): c for c in server_status.get("conditions") or []}
    init_containers = list(spec.get("initContainers") or [])
    has_init = bool(init_containers)
    init_statuses = [container_status(c, status, waiting.get(c["name"]), "PodInitializing", runtime_name,
                                      probes, sidecar=is_sidecar(c), init=True) for c in init_containers]
    app_waiting = "PodInitializing" if has_init else "ContainerCreating"
    app_statuses = [container_status(c, status, waiting.get(c["name"]), app_waiting, runtime_name, probes)
                    for c in spec.get("containers") or []]
    if terminal:
        for s in app_statuses:
            # Upstream's final status for containers that never ran (or whose restart will not come).
            if "waiting" in s["state"] and not s["lastState"]:
                s["state"] = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                             "message": NOT_LOCATED_MESSAGE, "startedAt": None, "finishedAt": None}}
    phase = override.phase if override is not None else _phase(spec, init_statuses, app_statuses, terminal)

    sandbox = status.latest_sandbox
    sandbox_ready = sandbox is not None and sandbox.ready and (bool(sandbox.ips) or bool(spec.get("hostNetwork")))
    conditions = [] if override is None or override.condition is None else [_override_condition(override, now,
                                                                                                   before)]
    conditions.append(pod_condition("PodReadyToStartContainers",
                                 sandbox_ready and phase not in ("Succeeded", "Failed"), now, before))

    conditions.append(_initialized(init_containers, init_statuses, app_statuses, phase, now, before))

    if phase == "Succeeded":
        containers_ready = pod_condition("ContainersReady", False, now, before, "PodCompleted")
    elif phase == "Failed":
        containers_ready = pod_condition("ContainersReady", False, now, before, "PodFailed")
    else:
        unready = [s["name"] for c, s in zip(init_containers, init_statuses, strict=True)
                   if is_sidecar(c) and not s["ready"]]
        unready += [s["name"] for s in app_statuses if not s["ready"]]
        if unready:
            containers_ready = pod_condition("ContainersReady", False, now, before, "ContainersNotReady",
                                          f"containers with unready status: [{' '.join(unready)}]")
        else:
            containers_ready = pod_condition("ContainersReady", True, now, before)
    if containers_ready["status"] != "True":
        ready = pod_condition("Ready", False, now, before, containers_ready.get("reason", ""),
                           containers_ready.get("message", ""))
    elif gates := readiness_gates_message(pod, server_conditions):
        ready = pod_condition("Ready", False, now, before, "ReadinessGatesNotReady", gates)
    else:
        ready = pod_condition("Ready", True, now, before)
    conditions += [ready, containers_ready, pod_condition("PodScheduled", True, now, server_conditions)]

    result: dict = {"phase": phase, "conditions": conditions}
    if override is not None:
        result["reason"] = override.reason
        result["message"] = override.message
    if host_ips:
        result["hostIP"] = host_ips[0]
        result["hostIPs"] = [{"ip": ip} for ip in host_ips]
    ips = list(status.ips) or (host_ips[:1] if spec.get("hostNetwork") else [])
    if not ips and phase in ("Succeeded", "Failed"):
        # A finished pod keeps the addresses it had (its sandbox is gone).
        ips = [entry["ip"] for entry in previous.get("podIPs") or [] if entry.get("ip")]
    if ips:
        result["podIP"] = ips[0]
        result["podIPs"] = [{"ip": ip} for ip in ips]
    start = previous.get("startTime") or server_status.get("startTime")
    if start:
        result["startTime"] = start
    elif start_time is not None:
        result["startTime"] = rfc3339(start_time)
    if init_statuses:
        result["initContainerStatuses"] = init_statuses
    result["containerStatuses"] = app_statuses
    ephemeral = [ephemeral_container_status(c, status, waiting.get(c["name"]), app_waiting, runtime_name)
                 for c in spec.get("ephemeralContainers") or []]
    if ephemeral:
        result["ephemeralContainerStatuses"] = ephemeral
    result["qosClass"] = qos_class(dict(spec))
    return result


def merge_conditions(ours: list[dict], server: list[dict]) -> list[dict]:
    """Our (kubelet-owned) conditions plus every other condition the server has (readiness gates, DisruptionTarget,
    ...), in upstream's order: ours first, then the others as the server had them."""
    owned = {c["type"] for c in ours}
    return list(ours) + [c for c in server if c.get("type") not in owned and c.get("type") not in KUBELET_CONDITIONS]
