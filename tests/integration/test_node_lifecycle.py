"""Node IPAM, node lifecycle (with taint-based eviction) and pod GC against a real server and three
simulated nodes, with short monitor and grace periods (1 s / 6 s) so a failure shows in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator

import pytest
from test_controllers import eventually, get_or_none
from test_simulated_nodes import AgentThread

from pyk8s.client import APIClient
from pyk8s.controllers.manager import ControllerManager
from pyk8s.controllers.nodelifecycle import TAINT_UNREACHABLE

from conftest import BARE, Cluster

PREFIX = "nlc-"
GRACE = 6.0
OPTIONS = {"node_monitor_period": 1.0, "node_monitor_grace_period": GRACE, "pod_gc_period": 1.0,
           "cluster_cidr": "10.42.0.0/16"}
CONTROLLERS = "node-ipam-controller,node-lifecycle-controller,pod-garbage-collector-controller,garbagecollector"


class Agent(AgentThread):
    """Three simulated nodes that wait long for node IPAM, so every pod CIDR is the controller's."""

    async def _start(self) -> None:
        from pyk8s.kubelet.simulated import SimulatedNodes, simulated_client_config

        self.client = APIClient(simulated_client_config(self.cluster.kubeconfig, 3))
        self.nodes = SimulatedNodes(self.client, 3, name_prefix=PREFIX, renew_interval=1.0, ipam_wait=30)
        self.task = asyncio.ensure_future(self.nodes.run())
        await self.nodes.wait_registered(30)


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory):
    """The module's component-less server, without DefaultTolerationSeconds: the pod "plain" must have no
    toleration of unreachable nodes at all (the plugin would give it 300 s)."""
    c = Cluster(tmp_path_factory.mktemp("bare"), (*BARE, "--disable-admission-plugins", "DefaultTolerationSeconds"))
    c.start()
    yield c
    if c.process is not None:
        c.stop()


@pytest.fixture
async def manager(client: APIClient) -> AsyncIterator[ControllerManager]:
    mgr = ControllerManager(client, controllers=CONTROLLERS, leader_elect=False, options=dict(OPTIONS))
    task = asyncio.create_task(mgr.run())
    try:
        await eventually(lambda: mgr.running.is_set(), what="controllers running")
        yield mgr
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def agent(bare_cluster: Cluster, manager: ControllerManager) -> AsyncIterator[Agent]:
    agent = Agent(bare_cluster)
    await asyncio.to_thread(agent.start)
    yield agent
    await asyncio.to_thread(agent.stop)


def pod(name: str, node: str, tolerations: list | None = None) -> dict:
    spec: dict = {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def evicted(client: APIClient, name: str) -> bool:
    obj = await get_or_none(client, "pods", name, "default")
    return obj is None or bool(obj["metadata"].get("deletionTimestamp"))


def ready(node: dict) -> str:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), "")


def taint_keys(node: dict) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


async def test_ipam_failure_eviction_recovery_and_pod_gc(client: APIClient, agent: Agent):
    names = [f"{PREFIX}{i}" for i in range(3)]

    async def cidrs() -> list[str] | None:
        nodes = [await client.get("nodes", n) for n in names]
        found = [n["spec"].get("podCIDR") for n in nodes]
        return found if all(found) else None

    await eventually(cidrs, timeout=10, what="pod CIDRs")
    found = await cidrs()
    assert found is not None and len(set(found)) == 3
    for cidr in found:
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.42.0.0/16"))
    for name, cidr in zip(names, found, strict=True):
        assert (await client.get("nodes", name))["spec"]["podCIDRs"] == [cidr]

    # Pods on the node that will fail: none, a 5 s and an unbounded toleration of unreachable.
    victim = names[1]
    tol = {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    await client.create(pod("plain", victim))
    await client.create(pod("tol5", victim, [{**tol, "tolerationSeconds": 5}]))
    await client.create(pod("forever", victim, [tol]))
    await client.create(pod("elsewhere", names[0]))

    async def running(name: str) -> bool:
        return (await client.get("pods", name, "default")).get("status", {}).get("phase") == "Running"

    for name in ("plain", "tol5", "forever", "elsewhere"):
        await eventually(lambda name=name: running(name), timeout=10, what=f"{name} running")

    loop = asyncio.get_running_loop()
    agent.fail(victim)
    failed_at = loop.time()

    async def unreachable() -> bool:
        node = await client.get("nodes", victim)
        return ready(node) == "Unknown" and (TAINT_UNREACHABLE, "NoExecute") in taint_keys(node)

    await eventually(unreachable, timeout=GRACE + 8, what="the node to turn unreachable")
    tainted_at = loop.time()
    assert tainted_at - failed_at <= GRACE + 6
    node = await client.get("nodes", victim)
    conditions = {c["type"]: c for c in node["status"]["conditions"]}
    for type_ in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        assert conditions[type_]["status"] == "Unknown"
        assert conditions[type_]["reason"] == "NodeStatusUnknown"
        assert conditions[type_]["message"] == "Kubelet stopped posting node status."
    assert (TAINT_UNREACHABLE, "NoSchedule") in taint_keys(node)
    assert all(t.get("timeAdded") for t in node["spec"]["taints"])

    await eventually(lambda: evicted(client, "plain"), timeout=3, what="the untolerating pod evicted")
    await asyncio.sleep(2.5)
    assert not await evicted(client, "tol5")
    await eventually(lambda: evicted(client, "tol5"), timeout=6, what="the 5 s pod evicted")
    assert loop.time() - tainted_at >= 4
    forever = await client.get("pods", "forever", "default")
    assert not forever["metadata"].get("deletionTimestamp")
    assert {c["type"]: c["status"] for c in forever["status"]["conditions"]}["Ready"] == "False"
    assert not await evicted(client, "elsewhere")

    agent.recover(victim)

    async def healthy() -> bool:
        node = await client.get("nodes", victim)
        return ready(node) == "True" and not taint_keys(node)

    await eventually(healthy, timeout=10, what="the node healthy and untainted")

    # Deleting a Node: the pod GC force-deletes what was bound to it.
    await client.delete("nodes", names[0])

    async def elsewhere_gone() -> bool:
        return await get_or_none(client, "pods", "elsewhere", "default") is None

    await eventually(elsewhere_gone, timeout=8, what="the deleted node's pod removed")
