"""Ephemeral containers (kubectl debug) on the kubelet side and their API rules: computePodActions starts them
once into an existing sandbox, the runtime manager puts them in their target's PID namespace (or waits for the
target), the pod status gets ephemeralContainerStatuses, and pods/ephemeralcontainers validates like upstream."""

from __future__ import annotations

import copy
from pathlib import Path

from test_kubelet_runtime_manager import make_manager

from pyk8s.api import validation
from pyk8s.api.kinds import REGISTRY
from pyk8s.apiserver import strategy
from pyk8s.kubelet import cri_config
from pyk8s.kubelet.pod_actions import compute_pod_actions
from pyk8s.kubelet.pod_status import Waiting, build_pod_status
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime_state import EXITED, RUNNING, ContainerState, PodRuntimeStatus, SandboxState
from pyk8s.kubelet.status_manager import status_patch

NOW = 1_700_000_000.0
DEBUGGER = {"name": "debugger", "image": "busybox:1", "imagePullPolicy": "IfNotPresent", "stdin": True, "tty": True,
            "targetContainerName": "app", "terminationMessagePolicy": "File"}


def make_pod(*ephemeral: dict, init: tuple[str, ...] = (), restart_policy: str = "Always") -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1", "imagePullPolicy": "IfNotPresent"}],
                     "initContainers": [{"name": n, "image": "busybox:1"} for n in init],
                     "ephemeralContainers": list(ephemeral), "restartPolicy": restart_policy,
                     "terminationGracePeriodSeconds": 1},
            "status": {"phase": "Running"}}


def instance(name: str, state: str = RUNNING, exit_code: int = 0, created: float = NOW - 10) -> ContainerState:
    return ContainerState(id=f"{name}-id", name=name, restart_count=0, state=state, created_at=created,
                          started_at=created + 1, finished_at=created + 2 if state == EXITED else 0.0,
                          exit_code=exit_code, image="docker.io/library/busybox:1", image_ref="sha256:abc")


def runtime(*containers: ContainerState, sandbox: bool = True) -> PodRuntimeStatus:
    sandboxes = [SandboxState("sb", 0, True, NOW - 20, ("10.88.0.7",))] if sandbox else []
    return PodRuntimeStatus(uid="u1", sandboxes=sandboxes,
                            containers=sorted(containers, key=lambda x: x.created_at, reverse=True))


# ---- computePodActions ---------------------------------------------------------------------------------


def test_ephemeral_container_starts_once_in_the_existing_sandbox() -> None:
    pod = make_pod(DEBUGGER)
    actions = compute_pod_actions(pod, runtime(instance("app")))
    assert actions.ephemeral_containers_to_start == ["debugger"] and not actions.kill_pod
    # Running, then exited (whatever its exit code): never started again.
    assert compute_pod_actions(pod, runtime(instance("app"), instance("debugger"))).ephemeral_containers_to_start \
        == []
    done = runtime(instance("app"), instance("debugger", EXITED, exit_code=1))
    actions = compute_pod_actions(pod, done)
    assert actions.ephemeral_containers_to_start == [] and actions.containers_to_start == []


def test_ephemeral_container_does_not_wait_for_initialization() -> None:
    pod = make_pod(DEBUGGER, init=("setup",))
    actions = compute_pod_actions(pod, runtime(instance("setup")))
    assert actions.ephemeral_containers_to_start == ["debugger"] and actions.containers_to_start == []


def test_new_sandbox_does_not_start_ephemeral_containers() -> None:
    actions = compute_pod_actions(make_pod(DEBUGGER), runtime(sandbox=False))
    assert actions.create_sandbox and actions.containers_to_start == ["app"]
    assert actions.ephemeral_containers_to_start == []


def test_finished_pod_starts_no_ephemeral_container() -> None:
    pod = make_pod(DEBUGGER, restart_policy="Never")
    actions = compute_pod_actions(pod, runtime(instance("app", EXITED)))
    assert actions.kill_pod and actions.ephemeral_containers_to_start == []


# ---- CRI config ----------------------------------------------------------------------------------------


def test_target_joins_the_target_pid_namespace() -> None:
    pod = make_pod(DEBUGGER)
    options = cri_config.container_security_context(pod, DEBUGGER, "target-id").namespace_options
    assert options.pid == pb.TARGET and options.target_id == "target-id" and options.ipc == pb.POD
    assert cri_config.container_security_context(pod, DEBUGGER).namespace_options.pid == pb.CONTAINER
    # A pod that shares one PID namespace already keeps it.
    pod["spec"]["shareProcessNamespace"] = True
    options = cri_config.container_security_context(pod, DEBUGGER, "target-id").namespace_options
    assert options.pid == pb.POD and options.target_id == ""


# ---- the runtime manager -------------------------------------------------------------------------------


async def test_runtime_manager_starts_the_debugger_in_its_target(tmp_path: Path) -> None:
    manager, cri, _ = make_manager(tmp_path)
    pod = make_pod()
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    [app_id] = cri.containers
    pod["spec"]["ephemeralContainers"] = [DEBUGGER]
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting == {} and cri.calls[-1] == ("start", "debugger")
    debugger_id = next(cid for cid in cri.configs if cri.configs[cid][1].metadata.name == "debugger")
    sandbox_id, config = cri.configs[debugger_id]
    assert sandbox_id == cri.configs[app_id][0]
    assert config.stdin and config.tty and config.metadata.attempt == 0
    options = config.linux.security_context.namespace_options
    assert options.pid == pb.TARGET and options.target_id == app_id
    # It exits: it stays exited (no restart, no backoff) while the app keeps running.
    cri.exit_container(debugger_id, 0)
    starts = len(cri.calls)
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting == {} and len(cri.calls) == starts


async def test_runtime_manager_waits_for_a_running_target(tmp_path: Path) -> None:
    manager, cri, _ = make_manager(tmp_path)
    pod = make_pod(init=("setup",))
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    [setup_id] = cri.containers
    cri.exit_container(setup_id, 0)
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert cri.calls[-1] == ("start", "app")
    # Its target (the init container) has exited: the debugger waits, and the next sync tries again.
    pod["spec"]["ephemeralContainers"] = [{**DEBUGGER, "targetContainerName": "setup"}]
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting == {"debugger": Waiting("RunContainerError", "unable to find target container setup")}
    assert result.requeue_after is not None and cri.calls[-1] == ("start", "app")
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert "debugger" in result.waiting


# ---- status ------------------------------------------------------------------------------------------


def build(pod: dict, status: PodRuntimeStatus, waiting: dict | None = None) -> dict:
    return build_pod_status(pod, status, waiting=waiting or {}, host_ips=["192.0.2.10"], now=NOW)


def test_ephemeral_container_statuses() -> None:
    pod = make_pod(DEBUGGER)
    # Not created yet: waiting like an app container of a pod without init containers; never ready.
    result = build(pod, runtime(instance("app")))
    [waiting] = result["ephemeralContainerStatuses"]
    assert waiting == {"name": "debugger", "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
                       "ready": False, "restartCount": 0, "image": "busybox:1", "imageID": ""}
    failed = build(pod, runtime(instance("app")), {"debugger": Waiting("ErrImagePull", "no such image")})
    assert failed["ephemeralContainerStatuses"][0]["state"] == {"waiting": {"reason": "ErrImagePull",
                                                                            "message": "no such image"}}
    running = build(pod, runtime(instance("app"), instance("debugger")))
    [status] = running["ephemeralContainerStatuses"]
    assert status["state"] == {"running": {"startedAt": "2023-11-14T22:13:11Z"}}
    assert status["containerID"] == "containerd://debugger-id" and status["imageID"] == "sha256:abc"
    assert status["image"] == "docker.io/library/busybox:1" and status["ready"] is False and "started" not in status
    # An old Waiting reason no longer applies once its one instance exists; the pod stays Ready without it.
    done = build(pod, runtime(instance("app"), instance("debugger", EXITED, exit_code=3)),
                 {"debugger": Waiting("RunContainerError", "unable to find target container app")})
    terminated = done["ephemeralContainerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert done["phase"] == "Running"
    assert {c["type"]: c["status"] for c in done["conditions"]}["Ready"] == "True"
    assert "ephemeralContainerStatuses" not in build(make_pod(), runtime(instance("app")))


def test_status_patch_carries_ephemeral_statuses() -> None:
    ours = build(make_pod(DEBUGGER), runtime(instance("app"), instance("debugger")))
    patch = status_patch(ours, {})
    assert patch["ephemeralContainerStatuses"] == ours["ephemeralContainerStatuses"]


# ---- API: pods/ephemeralcontainers ----------------------------------------------------------------------


def messages(errs) -> list[str]:
    return [f"{e.field}: {e.type}" for e in errs]


def running_pod() -> dict:
    pod = make_pod()
    del pod["spec"]["ephemeralContainers"], pod["spec"]["initContainers"]
    pod["spec"]["containers"][0]["terminationMessagePolicy"] = "File"
    return pod


def test_pod_create_may_not_have_ephemeral_containers() -> None:
    pod = running_pod()
    pod["spec"]["ephemeralContainers"] = [DEBUGGER]
    kind = REGISTRY.lookup("", "v1", "pods")
    errs = strategy.validate_create(kind, pod)
    assert [(e.field, e.detail) for e in errs if e.field == "spec.ephemeralContainers"] == [
        ("spec.ephemeralContainers", "cannot be set on create")]


def test_ephemeral_container_spec_rules() -> None:
    pod = running_pod()
    pod["spec"]["ephemeralContainers"] = [
        {**DEBUGGER, "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {"limits": {"cpu": "1"}},
         "readinessProbe": {"exec": {"command": ["true"]}}, "targetContainerName": "nope"},
        {**DEBUGGER, "name": "app", "targetContainerName": "",
         "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "x"}]},
    ]
    pod["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    errs = [e for e in validation.pod(pod) if "ephemeralContainers" in e.field]
    assert messages(errs) == [
        "spec.ephemeralContainers[0].targetContainerName: NotFound",
        "spec.ephemeralContainers[0].ports: Forbidden",
        "spec.ephemeralContainers[0].readinessProbe: Forbidden",
        "spec.ephemeralContainers[0].resources: Forbidden",
        "spec.ephemeralContainers[1].name: Duplicate",
        "spec.ephemeralContainers[1].volumeMounts[0].subPath: Forbidden",
    ]
    assert all(e.detail == "cannot be set for an Ephemeral Container" for e in errs if e.type == "Forbidden")


def test_ephemeral_containers_update_adds_only() -> None:
    kind = REGISTRY.lookup("", "v1", "pods")
    old = running_pod()
    old["metadata"]["resourceVersion"] = "5"
    request = copy.deepcopy(old)
    request["spec"]["ephemeralContainers"] = [DEBUGGER]
    request["spec"]["containers"][0]["image"] = "other:2"  # not this subresource's to change: dropped
    new = strategy.prepare_for_ephemeral_containers_update(kind, request, old)
    assert new["spec"]["containers"][0]["image"] == "busybox:1"
    assert new["spec"]["ephemeralContainers"][0]["name"] == "debugger"
    assert strategy.validate_ephemeral_containers_update(kind, new, old) == []
    # Existing ones may not be removed or changed.
    removed = strategy.prepare_for_ephemeral_containers_update(kind, old, new)
    assert [(e.field, e.type) for e in strategy.validate_ephemeral_containers_update(kind, removed, new)] == [
        ("spec.ephemeralContainers", "Forbidden")]
    changed = copy.deepcopy(new)
    changed["spec"]["ephemeralContainers"][0]["image"] = "busybox:2"
    errs = strategy.validate_ephemeral_containers_update(kind, changed, new)
    assert [(e.field, e.type) for e in errs] == [("spec.ephemeralContainers[debugger]", "Forbidden")]
    assert 'existing ephemeral containers "debugger" may not be changed' in errs[0].detail
    # Static (mirror) pods get none.
    mirror = copy.deepcopy(old)
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    errs = validation.ephemeral_containers_update(new, mirror)
    assert [(e.field, e.detail) for e in errs] == [("", "static pods do not support ephemeral containers")]
