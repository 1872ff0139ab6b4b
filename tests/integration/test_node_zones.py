"""Zone-aware taint-based eviction against a real server and three simulated nodes (one zone):
when every node stops posting status the controller takes it for a control-plane fault and evicts
nothing; once one node is back, the others get their NoExecute taints and their pods go."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from test_controllers import eventually, get_or_none
from test_node_lifecycle import Agent

from pyk8s.client import APIClient
from pyk8s.controllers.manager import ControllerManager
from pyk8s.controllers.nodelifecycle import TAINT_UNREACHABLE

from conftest import Cluster

PREFIX = "nlc-"  # the node names Agent registers
GRACE = 6.0
OPTIONS = {"node_monitor_period": 1.0, "node_monitor_grace_period": GRACE, "cluster_cidr": "10.43.0.0/16",
           "node_eviction_rate": 1.0}
CONTROLLERS = "node-ipam-controller,node-lifecycle-controller"
# Without their own tolerations the pods would get DefaultTolerationSeconds' 300 s from admission.
EVICT_AT_ONCE = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0},
                 {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": 0}]


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


def taints(node: dict) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


def ready(node: dict) -> str:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), "")


async def test_full_disruption_evicts_nothing_until_a_node_is_back(client: APIClient, agent: Agent):
    names = [f"{PREFIX}{i}" for i in range(3)]
    for name in names:
        await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{name}",
                                                                             "namespace": "default"},
                             "spec": {"nodeName": name, "containers": [{"name": "c", "image": "nginx"}],
                                      "tolerations": EVICT_AT_ONCE}})

    async def all_running() -> bool:
        pods = [await client.get("pods", f"p-{n}", "default") for n in names]
        return all(p.get("status", {}).get("phase") == "Running" for p in pods)

    await eventually(all_running, timeout=30, what="pods running")
    for name in names:
        agent.fail(name)

    async def all_unreachable() -> bool:
        nodes = [await client.get("nodes", n) for n in names]
        return all(ready(n) == "Unknown" and (TAINT_UNREACHABLE, "NoSchedule") in taints(n) for n in nodes)

    await eventually(all_unreachable, timeout=GRACE + 15, what="every node unreachable")
    await asyncio.sleep(3)  # several monitor periods and tainting passes
    for name in names:
        node = await client.get("nodes", name)
        assert (TAINT_UNREACHABLE, "NoExecute") not in taints(node), node["spec"].get("taints")
        pod = await client.get("pods", f"p-{name}", "default")
        assert not pod["metadata"].get("deletionTimestamp")

    agent.recover(names[0])

    async def others_evicted() -> bool:
        for name in names[1:]:
            node = await client.get("nodes", name)
            if (TAINT_UNREACHABLE, "NoExecute") not in taints(node):
                return False
            pod = await get_or_none(client, "pods", f"p-{name}", "default")
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                return False
        return True

    await eventually(others_evicted, timeout=30, what="the still-failed nodes tainted NoExecute and drained")
    survivor = await client.get("pods", f"p-{names[0]}", "default")
    assert not survivor["metadata"].get("deletionTimestamp")
