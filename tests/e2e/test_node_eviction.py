"""Node-pressure eviction on a whole cluster: `pyk8s server` whose node runs with
`--kubelet-arg eviction-hard=memory.available<99%` (relative to this machine's memory, so memory pressure is
certain without filling memory). The node reports MemoryPressure from its eviction manager, the node lifecycle
controller taints it, a running BestEffort pod is evicted (Failed, Evicted, upstream's message, DisruptionTarget)
and a new BestEffort pod bound to the node is rejected by the kubelet's admission without ever starting."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from pyk8s.kubelet.runtime.containerd import configured_snapshotter
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import NetnsCluster, eventually_async

IMAGE = "pyk8s.local/busybox-eviction:1.0"
MEMORY_PRESSURE_TAINT = "node.kubernetes.io/memory-pressure"
EVICTION_MESSAGE = re.compile(r"The node was low on resource: memory\. Threshold quantity: \S+, available: \S+\. "
                              r"Container sleeper was using \S+, request is 0, has larger consumption of memory\. ")


def best_effort_pod(name: str, node: str, *, tolerate_pressure: bool) -> dict:
    spec: dict = {"nodeName": node, "terminationGracePeriodSeconds": 2,
                  "containers": [{"name": "sleeper", "image": IMAGE, "command": ["sleep", "3600"]}]}
    if tolerate_pressure:
        # Under memory pressure alone, admission lets in a BestEffort pod that tolerates the memory-pressure taint.
        spec["tolerations"] = [{"key": MEMORY_PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.mark.parametrize("netns_cluster", [("--kubelet-arg", "eviction-hard=memory.available<99%")], indirect=True)
async def test_memory_pressure_evicts_and_rejects_best_effort_pods(netns_cluster: NetnsCluster,
                                                                  tmp_path: Path) -> None:
    c = netns_cluster

    async def node_conditions() -> dict | None:
        result = c.kubectl("get", "node", c.node_name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        node = json.loads(result.stdout)
        return {cond["type"]: cond for cond in node["status"].get("conditions") or []} | {"_node": node}

    async def under_pressure() -> dict | None:
        conditions = await node_conditions()
        return conditions if conditions and conditions["MemoryPressure"]["status"] == "True" else None

    conditions = await eventually_async(under_pressure, timeout=90, interval=1)
    pressure = conditions["MemoryPressure"]
    assert (pressure["reason"], pressure["message"]) == ("KubeletHasInsufficientMemory",
                                                         "kubelet has insufficient memory available")
    # The hard threshold keeps 99% of the memory back from allocatable.
    status = conditions["_node"]["status"]
    assert status["allocatable"]["memory"] != status["capacity"]["memory"]

    async def tainted() -> bool:
        node = (await node_conditions() or {}).get("_node") or {}
        return any(t["key"] == MEMORY_PRESSURE_TAINT and t["effect"] == "NoSchedule"
                   for t in node.get("spec", {}).get("taints") or [])
    await eventually_async(tainted, timeout=60, interval=1)

    build_oci_archive(busybox_image(IMAGE), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", c.agent_dir / "containerd" / "containerd.sock",
                         configured_snapshotter(c.agent_dir))
    await asyncio.to_thread(c.kubectl, "wait", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90)

    # Admitted (it tolerates the memory-pressure taint), started, then evicted by the eviction manager.
    c.kubectl("apply", "-f", "-", input=json.dumps(best_effort_pod("victim", c.node_name, tolerate_pressure=True)))
    # Not admitted: BestEffort under memory pressure.
    c.kubectl("apply", "-f", "-", input=json.dumps(best_effort_pod("refused", c.node_name, tolerate_pressure=False)))

    async def pod(name: str) -> dict:
        return json.loads(c.kubectl("get", "pod", name, "-o", "json").stdout)

    async def finished(name: str) -> dict | None:
        current = await pod(name)
        return current if current["status"].get("phase") == "Failed" else None

    refused = await eventually_async(lambda: finished("refused"), timeout=60, interval=1)
    assert refused["status"]["reason"] == "Evicted"
    assert refused["status"]["message"] == "Pod was rejected: The node had condition: [MemoryPressure]. "
    assert refused["status"]["qosClass"] == "BestEffort"
    assert not refused["status"].get("containerStatuses")  # never started

    victim = await eventually_async(lambda: finished("victim"), timeout=60, interval=1)
    status = victim["status"]
    assert status["reason"] == "Evicted"
    assert EVICTION_MESSAGE.fullmatch(status["message"]), status["message"]
    disruption = next(cond for cond in status["conditions"] if cond["type"] == "DisruptionTarget")
    assert (disruption["status"], disruption["reason"], disruption["message"]) == (
        "True", "TerminationByKubelet", status["message"])
    # It really ran: its container has an ID and ended when it was killed.
    (container,) = status["containerStatuses"]
    assert container["containerID"].startswith("containerd://") and "terminated" in container["state"]

    events = c.kubectl_json("get", "events", "--field-selector", "reason=Evicted")["items"]
    assert {(e["involvedObject"]["name"], e["type"]) for e in events} >= {("victim", "Warning"),
                                                                         ("refused", "Warning")}
