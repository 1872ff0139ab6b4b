"""The kubelet core's side of node-pressure eviction: the status of an evicted pod (an override of the phase the
containers would give), admission of new pods against the node's pressure conditions, and the seams the eviction
manager and image GC call (active_pods, evict_pod, pod_images). The runtime is stubbed; tests/e2e/test_node_eviction.py
runs the same path on a real node."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyk8s.client import APIClient, ClientConfig
from pyk8s.kubelet.eviction.manager import DISRUPTION_TARGET, TERMINATION_BY_KUBELET
from pyk8s.kubelet.kubelet import Kubelet, KubeletConfig
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.pod_status import NO_PROBES, TerminalOverride, build_pod_status
from pyk8s.kubelet.runtime_state import EXITED, RUNNING, ContainerState, PodRuntimeStatus, SandboxState
from pyk8s.kubelet.status_manager import status_patch

NOW = 1_700_000_000.0
EVICTION_MESSAGE = ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container app "
                    "was using 200Mi, request is 0, has larger consumption of memory. ")
DISRUPTION = {"type": DISRUPTION_TARGET, "status": "True", "reason": TERMINATION_BY_KUBELET,
              "message": EVICTION_MESSAGE}
NO_PRESSURE = {"MemoryPressure": False, "DiskPressure": False, "PIDPressure": False}


def make_pod(uid: str = "u1", name: str = "p", *, resources: dict | None = None, tolerations: list | None = None,
             restart_policy: str = "Always") -> dict:
    container = {"name": "app", "image": "busybox:1.35"}
    if resources:
        container["resources"] = resources
    spec = {"nodeName": "n1", "containers": [container], "restartPolicy": restart_policy}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "spec": spec,
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True",
                                                           "lastTransitionTime": "2023-01-01T00:00:00Z"}]}}


def runtime_status(state: str = RUNNING, exit_code: int = 0) -> PodRuntimeStatus:
    container = ContainerState(id="c1", name="app", restart_count=0, state=state, created_at=NOW - 10,
                               started_at=NOW - 9, finished_at=NOW - 1 if state == EXITED else 0.0,
                               exit_code=exit_code, image="docker.io/library/busybox:1.35", image_ref="sha256:abc")
    return PodRuntimeStatus(uid="u1", sandboxes=[SandboxState("sb", 0, state == RUNNING, NOW - 20, ("10.88.0.7",))],
                            containers=[container])


# ---- the status of an evicted pod ------------------------------------------------------------------------------

def test_an_eviction_overrides_the_phase_the_containers_would_give() -> None:
    pod = make_pod(restart_policy="Never")
    override = TerminalOverride("Failed", "Evicted", EVICTION_MESSAGE, DISRUPTION)
    # Exit code 0 under restartPolicy Never would be Succeeded: the eviction says Failed.
    status = build_pod_status(pod, runtime_status(EXITED, 0), waiting={}, host_ips=["192.0.2.1"], now=NOW,
                              terminal=True, override=override)
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "Evicted", EVICTION_MESSAGE)
    first = status["conditions"][0]
    assert first == {**DISRUPTION, "lastProbeTime": None, "lastTransitionTime": "2023-11-14T22:13:20Z"}
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["ContainersReady"]["reason"] == "PodFailed" and by_type["Ready"]["status"] == "False"
    assert by_type["PodReadyToStartContainers"]["status"] == "False"
    # Without the override the same containers give Succeeded and no reason.
    plain = build_pod_status(pod, runtime_status(EXITED, 0), waiting={}, host_ips=[], now=NOW, terminal=True)
    assert plain["phase"] == "Succeeded" and "reason" not in plain and DISRUPTION_TARGET not in {
        c["type"] for c in plain["conditions"]}


def test_the_disruption_condition_keeps_its_transition_time_and_is_written() -> None:
    pod = make_pod()
    override = TerminalOverride("Failed", "Evicted", EVICTION_MESSAGE, DISRUPTION)
    first = build_pod_status(pod, runtime_status(), waiting={}, host_ips=[], now=NOW, override=override)
    later = build_pod_status(pod, runtime_status(EXITED, 137), waiting={}, host_ips=[], now=NOW + 30,
                             terminal=True, previous=first, override=override)
    assert later["conditions"][0]["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]
    patch = status_patch(later, pod["status"])
    assert patch["phase"] == "Failed" and patch["reason"] == "Evicted" and patch["message"] == EVICTION_MESSAGE
    assert [c["type"] for c in patch["conditions"]].count(DISRUPTION_TARGET) == 1


# ---- the kubelet core with a stubbed runtime -----------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        self.events.append(((obj.get("metadata") or {}).get("name", ""), type_, reason, message))


class Volumes:
    async def mount_pod_volumes(self, pod: dict) -> None:
        return None

    def container_mounts(self, pod: dict, container: dict, *, env=None) -> list:
        return []

    async def unmount_pod_volumes(self, pod_uid: str) -> None:
        return None

    async def run(self) -> None:
        return None


class StubRuntime:
    """The runtime manager calls the kubelet makes around a pod: one running container until it is killed."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.killed: list[tuple[str, int]] = []

    async def pod_status(self, uid: str) -> PodRuntimeStatus:
        if uid in self.started and not any(k == uid for k, _ in self.killed):
            return runtime_status()
        if uid in self.started:
            return runtime_status(EXITED, 137)
        return PodRuntimeStatus(uid=uid)

    async def sync_pod(self, pod: dict, status: PodRuntimeStatus, secrets: list) -> object:
        self.started.append(pod["metadata"]["uid"])

        class Result:
            waiting: dict = {}
            error = None
            requeue_after = None
        return Result()

    async def kill_pod(self, pod: dict, status: PodRuntimeStatus, grace: int) -> None:
        self.killed.append((pod["metadata"]["uid"], grace))


def make_kubelet(tmp_path: Path, pressure: dict[str, bool]) -> tuple[Kubelet, StubRuntime, Recorder]:
    client = APIClient(ClientConfig(server="https://127.0.0.1:9"))  # never contacted: statuses stay local
    recorder = Recorder()
    kubelet = Kubelet(client, object(), KubeletConfig(node_name="n1", paths=KubeletPaths(tmp_path)), Volumes(),
                      recorder=recorder, probes=NO_PROBES, pressure=lambda: pressure)
    stub = StubRuntime()
    kubelet.runtime_manager.pod_status = stub.pod_status
    kubelet.runtime_manager.sync_pod = stub.sync_pod
    kubelet.runtime_manager.kill_pod = stub.kill_pod
    kubelet.host_ips = ["192.0.2.1"]
    return kubelet, stub, recorder


def add(kubelet: Kubelet, pod: dict) -> None:
    """As the pod informer delivers a new pod."""
    kubelet.informer.indexer.upsert(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}", pod)
    kubelet._on_pod_added(pod)


async def eventually(condition, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_best_effort_pod_under_memory_pressure_is_rejected_and_never_started(tmp_path: Path) -> None:
    kubelet, stub, recorder = make_kubelet(tmp_path, {**NO_PRESSURE, "MemoryPressure": True})
    try:
        add(kubelet, make_pod("u1", "besteffort"))
        # A Burstable pod (it requests memory) is still admitted under memory pressure alone.
        add(kubelet, make_pod("u2", "burstable", resources={"requests": {"memory": "10Mi"}}))
        await eventually(lambda: "u2" in stub.started)
        assert kubelet.pod_workers.get("u1") is None and "u1" not in stub.started
        status = kubelet.status_manager.get("u1")
        assert status is not None
        assert {k: status[k] for k in ("phase", "reason", "message", "qosClass")} == {
            "phase": "Failed", "reason": "Evicted",
            "message": "Pod was rejected: The node had condition: [MemoryPressure]. ", "qosClass": "BestEffort"}
        assert ("besteffort", "Warning", "Evicted", "The node had condition: [MemoryPressure]. ") in recorder.events
        # Our own status write comes back through the informer: the pod stays rejected, no worker starts.
        kubelet._on_pod_updated(make_pod("u1", "besteffort"), {**make_pod("u1", "besteffort"), "status": status})
        assert kubelet.pod_workers.get("u1") is None
        assert [p["metadata"]["name"] for p in kubelet.active_pods()] == ["burstable"]
    finally:
        await kubelet.pod_workers.stop()
        await kubelet.client.close()


async def test_disk_pressure_rejects_every_pod_and_a_tolerating_pod_passes_memory_pressure(tmp_path: Path) -> None:
    pressure = {**NO_PRESSURE, "MemoryPressure": True}
    kubelet, stub, _ = make_kubelet(tmp_path, pressure)
    try:
        tolerant = make_pod("u1", "tolerant", tolerations=[{"key": "node.kubernetes.io/memory-pressure",
                                                             "operator": "Exists", "effect": "NoSchedule"}])
        add(kubelet, tolerant)
        await eventually(lambda: "u1" in stub.started)
        pressure["DiskPressure"] = True
        add(kubelet, make_pod("u2", "burstable", resources={"requests": {"memory": "10Mi"}}))
        message = kubelet.status_manager.get("u2")["message"]
        assert message == "Pod was rejected: The node had condition: [MemoryPressure DiskPressure]. "
        assert "u2" not in stub.started
    finally:
        await kubelet.pod_workers.stop()
        await kubelet.client.close()


async def test_evict_pod_kills_with_the_grace_period_and_reports_the_eviction(tmp_path: Path) -> None:
    kubelet, stub, _ = make_kubelet(tmp_path, dict(NO_PRESSURE))
    try:
        pod = make_pod("u1", "victim")
        add(kubelet, pod)
        await eventually(lambda: "u1" in stub.started)
        assert [p["metadata"]["uid"] for p in kubelet.active_pods()] == ["u1"]
        assert kubelet.pod_images() == {"busybox:1.35"}

        done = await kubelet.evict_pod(pod, "Evicted", EVICTION_MESSAGE, grace_period_seconds=1,
                                       condition=DISRUPTION)
        assert done and stub.killed == [("u1", 1)]
        assert kubelet.active_pods() == [] and kubelet.pod_workers.get("u1").terminated
        status = kubelet.status_manager.get("u1")
        assert (status["phase"], status["reason"], status["message"]) == ("Failed", "Evicted", EVICTION_MESSAGE)
        assert status["conditions"][0]["type"] == DISRUPTION_TARGET
        assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
        # A finished pod's images are no longer kept from image GC on its account.
        assert kubelet.pod_images() == set()
        # A pod already gone cannot be evicted again.
        assert not await kubelet.evict_pod(pod, "Evicted", EVICTION_MESSAGE, grace_period_seconds=1,
                                           condition=DISRUPTION)
    finally:
        await kubelet.pod_workers.stop()
        await kubelet.client.close()


async def test_dead_container_cleanup_takes_all_of_finished_pods_and_old_instances_of_live_ones(
        tmp_path: Path) -> None:
    kubelet, stub, _ = make_kubelet(tmp_path, dict(NO_PRESSURE))
    calls: list[tuple[str, str]] = []

    async def remove_exited(status: PodRuntimeStatus) -> None:
        calls.append(("all exited", status.uid))

    async def remove_old(status: PodRuntimeStatus) -> None:
        calls.append(("old instances", status.uid))

    async def pod_status(uid: str) -> PodRuntimeStatus:
        return PodRuntimeStatus(uid=uid)
    kubelet.runtime_manager.remove_exited_containers = remove_exited
    kubelet.runtime_manager.remove_dead_instances = remove_old
    try:
        live, done = make_pod("live", "live"), make_pod("done", "done")
        add(kubelet, live)
        add(kubelet, done)
        await eventually(lambda: {"live", "done"} <= set(stub.started))
        assert await kubelet.evict_pod(done, "Evicted", EVICTION_MESSAGE, grace_period_seconds=0, condition=None)
        kubelet.runtime_manager.pod_status = pod_status
        # What the runtime still has: both pods, and one it no longer has a worker for (housekeeping's, later).
        kubelet.pleg.pods = {"live": ([], []), "done": ([], []), "orphan": ([], [])}
        await kubelet.delete_dead_containers()
        assert sorted(calls) == [("all exited", "done"), ("all exited", "orphan"), ("old instances", "live")]
    finally:
        await kubelet.pod_workers.stop()
        await kubelet.client.close()
