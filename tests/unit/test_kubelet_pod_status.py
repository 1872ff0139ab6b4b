"""The kubelet's pod status from runtime state (pure): phase, container states, conditions, IPs."""

from __future__ import annotations

from pyk8s.kubelet.node_status import rfc3339
from pyk8s.kubelet.pod_status import Waiting, build_pod_status, merge_conditions
from pyk8s.kubelet.runtime_state import EXITED, RUNNING, ContainerState, PodRuntimeStatus, SandboxState
from pyk8s.kubelet.status_manager import status_patch

NOW = 1_700_000_000.0


def make_pod(containers=("app",), init=(), sidecars=(), restart_policy="Always", **spec) -> dict:
    init_containers = [{"name": n, "image": "busybox"} for n in init]
    init_containers += [{"name": n, "image": "busybox", "restartPolicy": "Always"} for n in sidecars]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": n, "image": "busybox:1.35"} for n in containers],
                     "initContainers": init_containers, "restartPolicy": restart_policy, **spec},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "True",
                                       "lastTransitionTime": "2023-01-01T00:00:00Z"}]}}


def c(name: str, state: str = RUNNING, exit_code: int = 0, restarts: int = 0, created: float = NOW - 10,
      reason: str = "", message: str = "") -> ContainerState:
    return ContainerState(id=f"{name}{restarts}", name=name, restart_count=restarts, state=state, created_at=created,
                          started_at=created + 1, finished_at=created + 2 if state == EXITED else 0.0,
                          exit_code=exit_code, reason=reason, message=message,
                          image="docker.io/library/busybox:1.35", image_ref="sha256:abc")


def runtime(*containers: ContainerState, ready: bool = True) -> PodRuntimeStatus:
    return PodRuntimeStatus(uid="u1", sandboxes=[SandboxState("sb", 0, ready, NOW - 20, ("10.88.0.7",) if ready
                                                              else ())],
                            containers=sorted(containers, key=lambda x: x.created_at, reverse=True))


def build(pod: dict, status: PodRuntimeStatus, waiting: dict | None = None, **kwargs) -> dict:
    return build_pod_status(pod, status, waiting=waiting or {}, host_ips=["192.0.2.10"], now=NOW, **kwargs)


def conditions(status: dict) -> dict[str, tuple[str, str | None]]:
    return {x["type"]: (x["status"], x.get("reason")) for x in status["conditions"]}


def test_running_pod() -> None:
    status = build(make_pod(), runtime(c("app")), start_time=NOW - 30)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.88.0.7" and status["podIPs"] == [{"ip": "10.88.0.7"}]
    assert status["hostIP"] == "192.0.2.10" and status["hostIPs"] == [{"ip": "192.0.2.10"}]
    assert status["startTime"] == rfc3339(NOW - 30) and status["qosClass"] == "BestEffort"
    app = status["containerStatuses"][0]
    assert app == {"name": "app", "state": {"running": {"startedAt": rfc3339(NOW - 9)}}, "lastState": {},
                   "ready": True, "restartCount": 0, "image": "docker.io/library/busybox:1.35",
                   "imageID": "sha256:abc", "containerID": "containerd://app0", "started": True}
    assert conditions(status) == {"PodReadyToStartContainers": ("True", None), "Initialized": ("True", None),
                                  "Ready": ("True", None), "ContainersReady": ("True", None),
                                  "PodScheduled": ("True", None)}
    scheduled = next(x for x in status["conditions"] if x["type"] == "PodScheduled")
    assert scheduled["lastTransitionTime"] == "2023-01-01T00:00:00Z"  # kept from the server


def test_pending_before_anything_runs() -> None:
    status = build(make_pod(), PodRuntimeStatus(uid="u1"))
    assert status["phase"] == "Pending" and "podIP" not in status
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert status["containerStatuses"][0]["imageID"] == "" and "containerID" not in status["containerStatuses"][0]
    assert conditions(status)["PodReadyToStartContainers"] == ("False", None)
    assert conditions(status)["Ready"] == ("False", "ContainersNotReady")


def test_crash_loop_shows_waiting_with_last_state() -> None:
    pod = make_pod()
    status = runtime(c("app", EXITED, 1, restarts=0, created=NOW - 20), c("app", EXITED, 1, restarts=1))
    waiting = {"app": Waiting("CrashLoopBackOff", "back-off 10s restarting failed container=app pod=p_ns(u1)")}
    result = build(pod, status, waiting)
    app = result["containerStatuses"][0]
    assert app["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": waiting["app"].message}}
    assert app["lastState"]["terminated"]["exitCode"] == 1
    assert app["lastState"]["terminated"]["containerID"] == "containerd://app1"
    assert app["restartCount"] == 1 and not app["ready"]
    assert result["phase"] == "Running"


def test_running_after_restart_keeps_the_previous_run_as_last_state() -> None:
    result = build(make_pod(), runtime(c("app", EXITED, 2, created=NOW - 20), c("app", restarts=1)))
    app = result["containerStatuses"][0]
    assert "running" in app["state"] and app["lastState"]["terminated"]["reason"] == "Error"


def test_terminated_states_and_phases() -> None:
    done = build(make_pod(restart_policy="Never"), runtime(c("app", EXITED, 0), ready=False),
                 previous={"podIPs": [{"ip": "10.88.0.7"}]})
    assert done["phase"] == "Succeeded" and done["podIP"] == "10.88.0.7"
    assert done["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert conditions(done)["ContainersReady"] == ("False", "PodCompleted")
    assert conditions(done)["PodReadyToStartContainers"] == ("False", None)
    failed = build(make_pod(restart_policy="Never"), runtime(c("app", EXITED, 137, reason="OOMKilled")))
    assert failed["phase"] == "Failed"
    assert failed["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    assert conditions(failed)["Ready"] == ("False", "PodFailed")
    message = build(make_pod(restart_policy="Never"), runtime(c("app", EXITED, 2, message="bad input")))
    assert message["containerStatuses"][0]["state"]["terminated"]["message"] == "bad input"
    on_failure = build(make_pod(restart_policy="OnFailure"), runtime(c("app", EXITED, 1)))
    assert on_failure["phase"] == "Running"


def test_terminal_pod_of_restart_policy_always() -> None:
    pod = make_pod(containers=("a", "b"))
    result = build(pod, runtime(c("a", EXITED, 0)), terminal=True)
    assert result["phase"] == "Failed"  # b never ran
    b = result["containerStatuses"][1]
    assert b["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert b["state"]["terminated"]["exitCode"] == 137
    ok = build(make_pod(), runtime(c("app", EXITED, 0)), terminal=True)
    assert ok["phase"] == "Succeeded"


def test_init_containers_and_sidecars() -> None:
    pod = make_pod(init=("init1",), sidecars=("proxy",))
    pending = build(pod, runtime(c("init1")))
    assert pending["phase"] == "Pending"
    assert conditions(pending)["Initialized"] == ("False", "ContainersNotInitialized")
    init_message = next(x for x in pending["conditions"] if x["type"] == "Initialized")["message"]
    assert init_message == "containers with incomplete status: [init1 proxy]"
    assert pending["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pending["initContainerStatuses"][1]["state"] == {"waiting": {"reason": "PodInitializing"}}

    running = build(pod, runtime(c("init1", EXITED, 0, created=NOW - 30), c("proxy", created=NOW - 20), c("app")))
    assert running["phase"] == "Running"
    assert conditions(running)["Initialized"] == ("True", None) and conditions(running)["Ready"] == ("True", None)
    init1, proxy = running["initContainerStatuses"]
    assert init1["ready"] and "terminated" in init1["state"] and not init1["started"]
    assert proxy["ready"] and proxy["started"]

    failed_init = build(make_pod(init=("init1",), restart_policy="Never"), runtime(c("init1", EXITED, 1)))
    assert failed_init["phase"] == "Failed"


def test_readiness_from_the_probe_seam_and_gates() -> None:
    class Probes:
        def is_ready(self, uid: str, name: str, container_id: str) -> bool | None:
            return False

        def started(self, uid: str, name: str, container_id: str) -> bool | None:
            return None

        def liveness_failed(self, uid: str, name: str, container_id: str) -> bool:
            return False

        def add_pod(self, pod: dict) -> None:
            pass

        def remove_pod(self, uid: str) -> None:
            pass

    result = build(make_pod(), runtime(c("app")), probes=Probes())
    assert result["containerStatuses"][0]["ready"] is False and result["containerStatuses"][0]["started"]
    assert conditions(result)["Ready"] == ("False", "ContainersNotReady")

    gated = make_pod(readinessGates=[{"conditionType": "example.com/lb"}])
    result = build(gated, runtime(c("app")))
    assert conditions(result)["Ready"] == ("False", "ReadinessGatesNotReady")
    gated["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    assert conditions(build(gated, runtime(c("app"))))["Ready"] == ("True", None)


def test_unchanged_conditions_keep_their_transition_time() -> None:
    pod = make_pod()
    first = build(pod, runtime(c("app")))
    later = build_pod_status(pod, runtime(c("app")), waiting={}, host_ips=[], now=NOW + 100, previous=first)
    assert [x["lastTransitionTime"] for x in later["conditions"]] == [x["lastTransitionTime"]
                                                                      for x in first["conditions"]]


def test_status_patch_keeps_other_conditions_and_sends_only_changes() -> None:
    pod = make_pod()
    ours = build(pod, runtime(c("app")))
    server = {"phase": "Pending", "qosClass": "BestEffort",
              "conditions": [{"type": "DisruptionTarget", "status": "True"},
                             {"type": "Ready", "status": "False"}]}
    patch = status_patch(ours, server)
    assert patch["phase"] == "Running" and "qosClass" not in patch
    assert [x["type"] for x in patch["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                        "ContainersReady", "PodScheduled", "DisruptionTarget"]
    applied = {**server, **patch}
    assert status_patch(ours, applied) == {}
    assert merge_conditions([], [{"type": "Ready", "status": "True"}]) == []
    # A field we no longer report is removed (null in a merge patch).
    assert status_patch({"phase": "Running"}, {"phase": "Running", "podIP": "10.0.0.1"})["podIP"] is None
