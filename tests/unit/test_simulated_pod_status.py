"""The simulated nodes' pure parts: pod lifecycle and status, crash-loop backoff, node objects."""

from __future__ import annotations

import ipaddress

import pytest

from pyk8s.client import FakeClock
from pyk8s.kubelet.node_status import (
    NodeIdentity,
    PodIPAllocator,
    fallback_pod_cidr,
    lease_object,
    node_conditions,
    node_object,
    node_status,
    rfc3339,
    status_needs_update,
    zone_name,
)
from pyk8s.kubelet.simulated import (
    CrashBackoff,
    PodRun,
    PodTiming,
    build_pod_status,
    go_duration,
    image_id,
    normalize_image,
    status_patch,
)

T0 = 1_750_000_000.0
HOST_IP = "10.200.0.1"
TIMING = PodTiming(start_seconds=0.5, init_seconds=0.2, stop_seconds=0.5)


def make_pod(*, annotations: dict | None = None, restart_policy: str = "Always", init: list[dict] | None = None,
             containers: list[dict] | None = None, gates: list[str] | None = None) -> dict:
    spec: dict = {"nodeName": "sim-0", "restartPolicy": restart_policy,
                  "containers": containers or [{"name": "main", "image": "nginx:1.27"}]}
    if init:
        spec["initContainers"] = init
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "annotations": annotations or {}},
            "spec": spec, "status": {"phase": "Pending"}}


class Sim:
    """One pod on one simulated node, driven by a fake clock as the agent drives it."""

    def __init__(self, pod: dict, ip: str = "10.42.0.2"):
        self.pod = pod
        self.clock = FakeClock(T0)
        self.run = PodRun.for_pod(pod, self.clock.now(), ip)
        self.status: dict | None = None
        self.wake: float | None = None

    def sync(self) -> dict:
        now = self.clock.now()
        self.wake = self.run.advance(self.pod, now, TIMING)
        self.status = build_pod_status(self.pod, self.run, HOST_IP, now, self.status)
        return self.status

    def at(self, seconds_after_start: float) -> dict:
        self.clock.step(T0 + seconds_after_start - self.clock.now())
        return self.sync()

    def delete(self, grace: int) -> None:
        self.pod["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now() + grace)
        self.pod["metadata"]["deletionGracePeriodSeconds"] = grace


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def container(status: dict, name: str = "main", init: bool = False) -> dict:
    key = "initContainerStatuses" if init else "containerStatuses"
    return next(c for c in status[key] if c["name"] == name)


# ---- plain pods ----------------------------------------------------------------------------


def test_bound_pod_is_pending_with_container_creating_then_running_and_ready():
    sim = Sim(make_pod())
    status = sim.sync()
    assert status["phase"] == "Pending"
    assert container(status)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert container(status)["ready"] is False and container(status)["started"] is False
    assert container(status)["imageID"] == "" and "containerID" not in container(status)
    assert status["hostIP"] == HOST_IP and status["hostIPs"] == [{"ip": HOST_IP}]
    assert status["podIP"] == "10.42.0.2" and status["podIPs"] == [{"ip": "10.42.0.2"}]
    assert status["startTime"] == rfc3339(T0)
    cond = conditions(status)
    assert [c["type"] for c in status["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                         "ContainersReady"]
    assert cond["PodReadyToStartContainers"]["status"] == "True"
    assert cond["Initialized"]["status"] == "True"
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "ContainersNotReady"
    assert cond["ContainersReady"]["message"] == "containers with unready status: [main]"
    assert sim.wake == T0 + 0.5

    status = sim.at(0.5)
    assert status["phase"] == "Running"
    main = container(status)
    assert main["state"] == {"running": {"startedAt": rfc3339(T0 + 0.5)}}
    assert main["ready"] is True and main["started"] is True and main["restartCount"] == 0
    assert main["containerID"].startswith("simulated://") and len(main["containerID"]) == len("simulated://") + 64
    assert main["image"] == "docker.io/library/nginx:1.27"
    assert main["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert main["lastState"] == {}
    cond = conditions(status)
    assert cond["Ready"]["status"] == "True" and "reason" not in cond["Ready"]
    assert cond["ContainersReady"]["status"] == "True"
    assert sim.wake is None  # nothing more happens until the pod is deleted


def test_condition_transition_times_only_move_on_change():
    sim = Sim(make_pod())
    first = conditions(sim.sync())
    sim.at(3)
    later = conditions(sim.at(30))
    assert later["PodReadyToStartContainers"]["lastTransitionTime"] == first["PodReadyToStartContainers"][
        "lastTransitionTime"] == rfc3339(T0)
    assert later["Ready"]["lastTransitionTime"] == rfc3339(T0 + 3)


def test_not_ready_annotation_keeps_the_pod_running_but_unready():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/ready": "false"}))
    status = sim.at(1)
    assert status["phase"] == "Running"
    assert container(status)["ready"] is False and container(status)["started"] is True
    cond = conditions(status)
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "ContainersNotReady"
    assert cond["ContainersReady"]["status"] == "False"


def test_readiness_gates_hold_ready_until_their_condition_is_true():
    pod = make_pod(gates=["example.com/lb"])
    sim = Sim(pod)
    cond = conditions(sim.at(1))
    assert cond["ContainersReady"]["status"] == "True"
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "ReadinessGatesNotReady"
    pod["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    assert conditions(sim.at(2))["Ready"]["status"] == "True"


# ---- init containers and sidecars ----------------------------------------------------------


def test_init_containers_run_one_after_another_before_the_app_containers():
    sim = Sim(make_pod(init=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]))
    status = sim.sync()
    assert status["phase"] == "Pending"
    assert container(status, "a", init=True)["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert container(status)["state"] == {"waiting": {"reason": "PodInitializing"}}
    init_cond = conditions(status)["Initialized"]
    assert init_cond["status"] == "False" and init_cond["reason"] == "ContainersNotInitialized"
    assert init_cond["message"] == "containers with incomplete status: [a b]"

    status = sim.at(0.6)  # a started at 0.5, runs 0.2 s
    assert "running" in container(status, "a", init=True)["state"]
    status = sim.at(0.7)
    a = container(status, "a", init=True)
    assert a["state"]["terminated"]["reason"] == "Completed" and a["state"]["terminated"]["exitCode"] == 0
    assert a["ready"] is True and a["started"] is False
    assert conditions(status)["Initialized"]["message"] == "containers with incomplete status: [b]"
    assert sim.wake == pytest.approx(T0 + 1.2)  # b starts 0.5 s after a completed

    status = sim.at(1.4)  # b: 1.2 → 1.4
    assert conditions(status)["Initialized"]["status"] == "True"
    assert container(status)["state"] == {"waiting": {"reason": "PodInitializing"}}
    status = sim.at(1.9)
    assert status["phase"] == "Running" and container(status)["ready"] is True


def test_sidecar_init_container_keeps_running_and_counts_for_readiness():
    sim = Sim(make_pod(init=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]))
    status = sim.at(0.5)
    assert "running" in container(status, "proxy", init=True)["state"]
    assert conditions(status)["Initialized"]["status"] == "True"
    status = sim.at(1.0)
    assert status["phase"] == "Running"
    assert container(status, "proxy", init=True)["ready"] is True
    assert conditions(status)["Ready"]["status"] == "True"


# ---- run-seconds and restart policies ------------------------------------------------------


def test_run_seconds_with_never_succeeds():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "2"}, restart_policy="Never"))
    sim.at(0.5)
    assert sim.wake == T0 + 2.5
    status = sim.at(2.5)
    assert status["phase"] == "Succeeded"
    terminated = container(status)["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0
    assert terminated["startedAt"] == rfc3339(T0 + 0.5) and terminated["finishedAt"] == rfc3339(T0 + 2.5)
    assert container(status)["ready"] is False and container(status)["started"] is False
    cond = conditions(status)
    assert cond["Ready"]["reason"] == "PodCompleted" and cond["ContainersReady"]["reason"] == "PodCompleted"
    assert cond["PodReadyToStartContainers"]["status"] == "False"
    assert sim.wake is None


def test_run_seconds_with_never_and_exit_code_fails():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1", "sim.pyk8s.io/exit-code": "3"},
                       restart_policy="Never"))
    status = sim.at(5)
    assert status["phase"] == "Failed"
    assert container(status)["state"]["terminated"]["reason"] == "Error"
    assert container(status)["state"]["terminated"]["exitCode"] == 3
    assert conditions(status)["ContainersReady"]["reason"] == "PodFailed"


def test_on_failure_with_success_completes():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1"}, restart_policy="OnFailure"))
    assert sim.at(10)["phase"] == "Succeeded"


def test_on_failure_crash_loop_follows_upstream_backoff():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1", "sim.pyk8s.io/exit-code": "1"},
                       restart_policy="OnFailure"))
    sim.at(0.5)  # running; exits at 1.5
    status = sim.at(1.5)
    # The first crash restarts at once.
    main = container(status)
    assert status["phase"] == "Running" and main["restartCount"] == 1 and "running" in main["state"]
    assert main["lastState"]["terminated"]["exitCode"] == 1 and main["lastState"]["terminated"]["reason"] == "Error"
    assert main["lastState"]["terminated"]["containerID"] != main["containerID"]

    status = sim.at(2.5)  # the second crash waits 10 s
    main = container(status)
    assert main["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert main["state"]["waiting"]["message"] == "back-off 10s restarting failed container=main pod=p_ns(uid-1)"
    assert main["restartCount"] == 1 and main["ready"] is False
    assert status["phase"] == "Running"
    assert conditions(status)["Ready"]["status"] == "False"
    assert sim.wake == pytest.approx(T0 + 12.5)

    status = sim.at(12.5)
    assert container(status)["restartCount"] == 2 and "running" in container(status)["state"]
    status = sim.at(13.5)  # third crash: 20 s
    assert container(status)["state"]["waiting"]["message"].startswith("back-off 20s ")
    assert sim.wake == pytest.approx(T0 + 33.5)


def test_always_restarts_successful_containers_too():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1"}, restart_policy="Always"))
    status = sim.at(2.5)
    assert status["phase"] == "Running"
    assert container(status)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container(status)["lastState"]["terminated"]["reason"] == "Completed"


def test_catching_up_replays_every_transition():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1", "sim.pyk8s.io/exit-code": "1"},
                       restart_policy="Always"))
    # Crashes at 1.5 (restart at once), 2.5 (+10), 13.5 (+20), 34.5 (+40), 75.5 (+80)...
    status = sim.at(76)
    assert container(status)["restartCount"] == 4
    assert container(status)["state"]["waiting"]["message"].startswith("back-off 1m20s ")


def test_crash_backoff_doubles_to_five_minutes_and_resets_after_a_quiet_spell():
    backoff = CrashBackoff()
    t, waits = 0.0, []
    for _ in range(9):
        delay = backoff.delay(t)
        waits.append(delay)
        backoff.record_restart(t, t + delay)
        t += delay + 1
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    # A crash more than 10 minutes after the last restart starts over.
    assert backoff.delay(t + 601) == 0


# ---- deletion ------------------------------------------------------------------------------


def test_graceful_deletion_stops_containers_after_the_simulated_stop_time():
    sim = Sim(make_pod())
    sim.at(1)
    sim.delete(grace=30)
    status = sim.sync()
    assert status["phase"] == "Running" and not sim.run.stopped
    assert sim.wake == pytest.approx(T0 + 1.5)  # min(30, stop_seconds)
    status = sim.at(1.5)
    assert sim.run.stopped and sim.wake is None
    terminated = container(status)["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0
    assert status["phase"] == "Succeeded"


def test_deletion_with_zero_grace_stops_at_once():
    sim = Sim(make_pod())
    sim.at(1)
    sim.delete(grace=0)
    sim.sync()
    assert sim.run.stopped


def test_deleting_a_pod_before_its_containers_started_reports_them_unknown():
    sim = Sim(make_pod())
    sim.delete(grace=0)
    status = sim.sync()
    terminated = container(status)["state"]["terminated"]
    assert terminated["reason"] == "ContainerStatusUnknown" and terminated["exitCode"] == 137
    assert status["phase"] == "Failed"


def test_deleting_a_pod_during_init_fails_it():
    sim = Sim(make_pod(init=[{"name": "setup", "image": "busybox"}]))
    sim.at(0.6)
    sim.delete(grace=0)
    status = sim.sync()
    assert status["phase"] == "Failed"
    main = container(status)
    assert main["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert main["imageID"] == "" and "containerID" not in main


def test_deleting_a_crash_looping_pod_keeps_its_last_run():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1", "sim.pyk8s.io/exit-code": "1"},
                       restart_policy="Always"))
    sim.at(3)
    sim.delete(grace=0)
    status = sim.sync()
    assert container(status)["state"]["terminated"]["exitCode"] == 1
    assert status["phase"] == "Failed"


# ---- resuming after an agent restart -------------------------------------------------------


def test_resume_keeps_running_containers_and_does_not_replay_the_past():
    sim = Sim(make_pod())
    before = sim.at(1)
    later = T0 + 100
    run = PodRun.for_pod(sim.pod, later, "10.42.0.2")
    run.resume_from(before, later)
    run.advance(sim.pod, later, TIMING)
    status = build_pod_status(sim.pod, run, HOST_IP, later, before)
    assert status == before


def test_resume_restarts_a_crash_looping_container_now():
    sim = Sim(make_pod(annotations={"sim.pyk8s.io/run-seconds": "1", "sim.pyk8s.io/exit-code": "1"},
                       restart_policy="Always"))
    before = sim.at(3)
    assert container(before)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    later = T0 + 5
    run = PodRun.for_pod(sim.pod, later, "10.42.0.2")
    run.resume_from(before, later)
    run.advance(sim.pod, later, TIMING)
    status = build_pod_status(sim.pod, run, HOST_IP, later, before)
    assert container(status)["restartCount"] == 2
    assert container(status)["state"] == {"running": {"startedAt": rfc3339(later)}}


# ---- small helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "reference"), [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
    ("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
])
def test_images_are_normalized_as_containerd_reports_them(image, reference):
    assert normalize_image(image)[0] == reference


def test_image_id_is_stable_and_derived_from_the_image():
    assert image_id("nginx") == image_id("docker.io/library/nginx:latest")
    assert image_id("nginx") != image_id("nginx:1.27")
    repo, _, digest = image_id("nginx").partition("@sha256:")
    assert repo == "docker.io/library/nginx" and len(digest) == 64


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (3700, "1h1m40s")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_status_patch_deletes_reasons_that_no_longer_apply():
    sim = Sim(make_pod())
    patch = status_patch(sim.at(1))
    ready = next(c for c in patch["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] is None and ready["message"] is None and ready["status"] == "True"


# ---- nodes ---------------------------------------------------------------------------------


def test_node_object_looks_like_a_registering_kubelet():
    identity = NodeIdentity.make("sim-4", 4, zones=3)
    node = node_object(identity, T0)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-4"
    assert labels["topology.kubernetes.io/zone"] == "zone-b"
    assert labels["node.kubernetes.io/instance-type"] == "simulated"
    assert labels["kubernetes.io/os"] == labels["beta.kubernetes.io/os"] == "linux"
    assert node["metadata"]["annotations"] == {"node.alpha.kubernetes.io/ttl": "0"}
    status = node["status"]
    assert status["capacity"] == status["allocatable"] == {"cpu": "32", "memory": "256Gi", "pods": "110"}
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.200.0.5"},
                                   {"type": "Hostname", "address": "sim-4"}]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0-pyk8s-sim"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "simulated://1.0"
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "KubeletReady",
                                                                     "kubelet is posting ready status")
    assert NodeIdentity.make("sim-4", 4).machine_id == identity.machine_id  # stable across restarts


def test_zones_spread_round_robin():
    assert [zone_name(i, 3) for i in range(4)] == ["zone-a", "zone-b", "zone-c", "zone-a"]


def test_node_status_needs_a_write_only_when_more_than_heartbeats_changed():
    identity = NodeIdentity.make("sim-0", 0)
    reported = node_status(identity, T0)
    later = node_status(identity, T0 + 10, reported)
    assert later["conditions"][0]["lastHeartbeatTime"] == rfc3339(T0 + 10)
    assert later["conditions"][0]["lastTransitionTime"] == rfc3339(T0)
    assert not status_needs_update(reported, later)
    # The node lifecycle controller marked it Unknown while heartbeats were stopped.
    unknown = dict(reported, conditions=[dict(c, status="Unknown", reason="NodeStatusUnknown")
                                         for c in reported["conditions"]])
    assert status_needs_update(unknown, node_status(identity, T0 + 60, unknown))
    recovered = node_conditions(T0 + 60, unknown["conditions"])
    assert all(c["lastTransitionTime"] == rfc3339(T0 + 60) for c in recovered)


def test_lease_is_owned_by_its_node():
    lease = lease_object("sim-0", "node-uid", T0)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["spec"]["holderIdentity"] == "sim-0" and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["spec"]["renewTime"].endswith(".000000Z")
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "node-uid"


def test_fallback_pod_cidrs_are_unique_per_node_and_inside_the_cluster_cidr():
    cluster = ipaddress.ip_network("10.42.0.0/16")
    small = [fallback_pod_cidr("10.42.0.0/16", i, 5) for i in range(5)]
    assert small[0] == "10.42.255.0/24" and small[1] == "10.42.254.0/24"
    many = [ipaddress.ip_network(fallback_pod_cidr("10.42.0.0/16", i, 1000)) for i in range(1000)]
    assert len(set(many)) == 1000 and all(n.subnet_of(cluster) and n.prefixlen == 26 for n in many)
    assert fallback_pod_cidr("fd00:42::/56", 3, 10) == "fd00:42:0:fc::/64"


def test_pod_ip_allocator_skips_gateway_and_broadcast_and_reuses_released_addresses():
    ips = PodIPAllocator("10.42.7.0/30")
    assert ips.capacity == 1
    first = ips.allocate()
    assert first == "10.42.7.2" and ips.allocate() is None
    ips.release(first)
    assert ips.allocate() == "10.42.7.2"
    big = PodIPAllocator("10.42.8.0/24")
    got = {big.allocate() for _ in range(253)}
    assert len(got) == 253 and "10.42.8.1" not in got and "10.42.8.255" not in got
    assert big.claim("10.42.9.1") is False
