"""A real node's registration, status and Lease against a real apiserver (the CRI runtime is a stand-in here;
tests/e2e/test_agent.py runs the whole node on containerd)."""

from __future__ import annotations

import secrets
from pathlib import Path

import grpc
import pytest

from pyk8s.client import APIClient, is_not_found
from pyk8s.kubelet.node import LeaseController, NodeConfig, NodeRegistration, NodeStatusSource
from pyk8s.kubelet.node_status import NETWORK_NOT_READY, RUNTIME_DOWN
from pyk8s.kubelet.runtime.cri import CRIError, pb

from conftest import validate_tree


class StandInRuntime:
    """Answers the CRI calls node status makes: Version, ListImages, ImageFsInfo, Status."""

    def __init__(self) -> None:
        self.down = False
        self.conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True),
                           pb.RuntimeCondition(type="NetworkReady", status=True)]

    def _check(self, method: str) -> None:
        if self.down:
            raise CRIError(method, grpc.StatusCode.UNAVAILABLE, "connection refused")

    async def version(self, timeout: float | None = None) -> pb.VersionResponse:
        self._check("Version")
        return pb.VersionResponse(version="0.1.0", runtime_name="containerd", runtime_version="1.6.20~ds1",
                                  runtime_api_version="v1")

    async def list_images(self, image: str = "", timeout: float | None = None) -> list[pb.Image]:
        self._check("ListImages")
        return [pb.Image(id="sha256:aa", repo_tags=["registry.k8s.io/pause:3.10"], size=300_000),
                pb.Image(id="sha256:bb", repo_tags=["pyk8s.local/busybox:1"],
                         repo_digests=["pyk8s.local/busybox@sha256:bb"], size=1_000_000)]

    async def status(self, verbose: bool = False, timeout: float | None = None) -> pb.StatusResponse:
        self._check("Status")
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=self.conditions))

    async def image_fs_info(self, timeout: float | None = None) -> pb.ImageFsInfoResponse:
        self._check("ImageFsInfo")
        return pb.ImageFsInfoResponse()


def _node(tmp_path: Path, runtime: StandInRuntime, client: APIClient, *, network_ready: list[bool],
          pressure: dict[str, bool] | None = None, **config) -> NodeRegistration:
    """`pressure` stands in for the eviction manager's conditions (the node reports whatever it says now)."""
    name = f"node-{secrets.token_hex(3)}"
    node_config = NodeConfig(name=config.pop("name", name), node_ip="10.254.0.7", data_dir=tmp_path,
                             labels={"node-role.kubernetes.io/worker": "true"}, **config)
    conditions = pressure if pressure is not None else {}
    source = NodeStatusSource(node_config, runtime, network_ready=lambda: network_ready[0],
                              pressure=lambda: conditions)
    return NodeRegistration(client, source)


def _conditions(node: dict) -> dict[str, dict]:
    return {c["type"]: c for c in node["status"]["conditions"]}


async def test_register_report_and_adopt(client: APIClient, tmp_path: Path) -> None:
    runtime, network = StandInRuntime(), [False]
    registration = _node(tmp_path, runtime, client, network_ready=network)
    name = registration.config.name
    await registration.register()

    node = await client.get("nodes", name)
    validate_tree(node)
    assert node["metadata"]["labels"]["node-role.kubernetes.io/worker"] == "true"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
    status = node["status"]
    assert status["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6.20~ds1"
    assert status["images"][0] == {"names": ["pyk8s.local/busybox@sha256:bb", "pyk8s.local/busybox:1"],
                                   "sizeBytes": 1_000_000}
    assert {"type": "InternalIP", "address": "10.254.0.7"} in status["addresses"]
    ready = _conditions(node)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "KubeletNotReady", NETWORK_NOT_READY)

    # Nothing changed: no write. The pod network came up: written at once, Ready.
    assert not await registration.update_status()
    network[0] = True
    assert await registration.update_status()
    node = await client.get("nodes", name)
    assert _conditions(node)["Ready"]["status"] == "True"
    assert _conditions(node)["Ready"]["message"] == "kubelet is posting ready status"

    # The runtime went away: NotReady, and the node keeps the runtime version it last saw.
    runtime.down = True
    assert await registration.update_status()
    node = await client.get("nodes", name)
    assert _conditions(node)["Ready"]["message"] == RUNTIME_DOWN
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6.20~ds1"
    runtime.down = False

    # The runtime's own CRI Status: its conditions' reasons and messages, runtime first, as upstream.
    runtime.conditions = [pb.RuntimeCondition(type="RuntimeReady", status=False, reason="Starting", message="wait"),
                          pb.RuntimeCondition(type="NetworkReady", status=False, reason="NetworkPluginNotReady",
                                              message="Network plugin returns error: cni plugin not initialized")]
    assert await registration.update_status()
    node = await client.get("nodes", name)
    assert _conditions(node)["Ready"]["message"] == (
        f"[container runtime not ready: RuntimeReady=false reason:Starting message:wait, {NETWORK_NOT_READY}]")
    runtime.conditions = runtime.conditions[:1]
    runtime.conditions[0].status = True
    assert await registration.update_status()
    node = await client.get("nodes", name)
    assert _conditions(node)["Ready"]["message"] == "container runtime network not ready: <nil>"
    runtime.conditions.append(pb.RuntimeCondition(type="NetworkReady", status=True))
    assert await registration.update_status()
    assert _conditions(await client.get("nodes", name))["Ready"]["status"] == "True"

    # A restarted agent adopts its Node (same uid) and puts back labels someone removed.
    await client.patch("nodes", name, {"metadata": {"labels": {"kubernetes.io/os": None}}})
    again = _node(tmp_path, runtime, client, network_ready=network, name=name)
    await again.register()
    adopted = await client.get("nodes", name)
    assert adopted["metadata"]["uid"] == node["metadata"]["uid"] == again.uid
    assert adopted["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert _conditions(adopted)["Ready"]["status"] == "True"


class RecordedEvents:
    """An EventRecorder stand-in that keeps (type, reason, message)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: dict, type: str, reason: str, message: str, *, field_path: str | None = None) -> None:
        self.events.append((type, reason, message))


async def test_an_agent_started_after_a_reboot_records_it(client: APIClient, tmp_path: Path) -> None:
    """The Node last reported another boot ID: the adopting agent records upstream's Rebooted event; an agent
    restarted within the same boot does not."""
    registration = _node(tmp_path, StandInRuntime(), client, network_ready=[True])
    name = registration.config.name
    await registration.register()
    boot_id = (await client.get("nodes", name))["status"]["nodeInfo"]["bootID"]
    assert boot_id

    restarted = _node(tmp_path, StandInRuntime(), client, network_ready=[True], name=name)
    restarted.recorder = RecordedEvents()  # type: ignore[assignment]
    await restarted.register()
    assert not [e for e in restarted.recorder.events if e[1] == "Rebooted"]

    await client.patch_status("nodes", name, {"status": {"nodeInfo": {"bootID": "an-earlier-boot"}}},
                              patch_type="strategic")
    rebooted = _node(tmp_path, StandInRuntime(), client, network_ready=[True], name=name)
    rebooted.recorder = RecordedEvents()  # type: ignore[assignment]
    await rebooted.register()
    assert ("Warning", "Rebooted", f"Node {name} has been rebooted, boot id: {boot_id}") in rebooted.recorder.events
    assert (await client.get("nodes", name))["status"]["nodeInfo"]["bootID"] == boot_id


async def test_a_deleted_node_registers_again(client: APIClient, tmp_path: Path) -> None:
    registration = _node(tmp_path, StandInRuntime(), client, network_ready=[True], status_report_frequency=0)
    await registration.register()
    first_uid = registration.uid
    await client.delete("nodes", registration.config.name)
    assert await registration.update_status()
    node = await client.get("nodes", registration.config.name)
    assert node["metadata"]["uid"] == registration.uid != first_uid


async def test_pod_cidr_from_ipam_else_the_fallback(client: APIClient, tmp_path: Path) -> None:
    assigned = _node(tmp_path, StandInRuntime(), client, network_ready=[True], pod_cidr_fallback="10.42.255.0/24",
                     pod_cidr_wait=60)
    await assigned.register()
    # The node IPAM controller's write (done by hand here) is what the node uses.
    await client.patch("nodes", assigned.config.name, {"spec": {"podCIDR": "10.42.3.0/24",
                                                                "podCIDRs": ["10.42.3.0/24"]}})
    assert await assigned.wait_pod_cidr(poll=0.05) == "10.42.3.0/24"

    unassigned = _node(tmp_path, StandInRuntime(), client, network_ready=[True], pod_cidr_fallback="10.42.255.0/24",
                       pod_cidr_wait=0)
    await unassigned.register()
    assert await unassigned.wait_pod_cidr(poll=0.05) == "10.42.255.0/24"
    node = await client.get("nodes", unassigned.config.name)
    assert node["spec"]["podCIDR"] == "10.42.255.0/24" and node["spec"]["podCIDRs"] == ["10.42.255.0/24"]


async def test_lease_is_created_owned_renewed_and_recreated(client: APIClient, tmp_path: Path) -> None:
    registration = _node(tmp_path, StandInRuntime(), client, network_ready=[True])
    await registration.register()
    now = [1_800_000_000.0]
    lease = LeaseController(client, registration.config.name, lambda: registration.uid, wall=lambda: now[0])
    created = await lease.renew()
    validate_tree(created)
    assert created["spec"]["holderIdentity"] == registration.config.name
    assert created["spec"]["leaseDurationSeconds"] == 40
    assert created["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node",
                                                       "name": registration.config.name, "uid": registration.uid}]
    now[0] += 10
    renewed = await lease.renew()
    assert renewed["spec"]["renewTime"] > created["spec"]["renewTime"]
    assert renewed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]

    await client.delete("leases", registration.config.name, "kube-node-lease")
    with pytest.raises(Exception) as missing:
        await client.get("leases", registration.config.name, "kube-node-lease")
    assert is_not_found(missing.value)
    now[0] += 10
    recreated = await lease.renew()
    assert recreated["metadata"]["uid"] != created["metadata"]["uid"]
    assert lease.renewals == 3


async def test_a_status_changed_by_someone_else_is_written_back(client: APIClient, tmp_path: Path) -> None:
    """The node lifecycle controller sets Ready=Unknown when heartbeats stop; the next update puts it back."""
    registration = _node(tmp_path, StandInRuntime(), client, network_ready=[True])
    await registration.register()
    node = await client.get("nodes", registration.config.name)
    conditions = [{**c, "status": "Unknown", "reason": "NodeStatusUnknown",
                   "message": "Kubelet stopped posting node status."} if c["type"] == "Ready" else c
                  for c in node["status"]["conditions"]]
    await client.patch_status("nodes", registration.config.name, {"status": {"conditions": conditions}},
                              patch_type="strategic")
    assert await registration.update_status()
    ready = _conditions(await client.get("nodes", registration.config.name))["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert not await registration.update_status()


async def test_pressure_conditions_are_the_eviction_managers(client: APIClient, tmp_path: Path) -> None:
    pressure = {"MemoryPressure": False, "DiskPressure": False, "PIDPressure": False}
    registration = _node(tmp_path, StandInRuntime(), client, network_ready=[True], pressure=pressure)
    await registration.register()
    assert _conditions(registration.node)["DiskPressure"]["status"] == "False"

    pressure["DiskPressure"] = True
    assert await registration.update_status()  # a changed condition is written at once
    node = await client.get("nodes", registration.config.name)
    disk = _conditions(node)["DiskPressure"]
    assert (disk["status"], disk["reason"], disk["message"]) == ("True", "KubeletHasDiskPressure",
                                                                 "kubelet has disk pressure")
    assert _conditions(node)["MemoryPressure"]["status"] == "False"
