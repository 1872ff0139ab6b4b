"""`--container-runtime-endpoint`: the node agent uses a CRI runtime someone else runs (here a containerd the test
starts in its own network namespace) instead of starting its own: pods run there with the runtime's own pod
network, the node's readiness follows the runtime's CRI Status, and stopping the agent leaves the runtime and
its pods alone."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path

from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import NetnsCluster, Node, eventually_async, remove_all_sandboxes, running_cluster

IMAGE = "pyk8s.local/busybox-external:1.0"


def _pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", "echo hello from the external runtime; sleep 3600"]}]}}


async def test_agent_runs_pods_on_an_existing_runtime(containerd_node: Node, tmp_path: Path) -> None:
    runtime = containerd_node.containerd
    build_oci_archive(busybox_image(IMAGE), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", runtime.config.socket, runtime.config.snapshotter)
    endpoint = runtime.config.endpoint
    async with running_cluster(containerd_node.netns, ("--container-runtime-endpoint", endpoint)) as cluster:
        try:
            await _run_pod_and_stop_agent(cluster, containerd_node)
        finally:
            # The cluster's teardown knows only its own containerd: this runtime's pods go first.
            await remove_all_sandboxes(containerd_node.cri)


async def _run_pod_and_stop_agent(cluster: NetnsCluster, containerd_node: Node) -> None:
    runtime = containerd_node.containerd

    async def ready() -> dict | None:
        result = cluster.kubectl("get", "node", cluster.node_name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        node = json.loads(result.stdout)
        conditions = {c["type"]: c for c in node["status"].get("conditions") or []}
        return node if conditions.get("Ready", {}).get("status") == "True" else None

    node = await eventually_async(ready, timeout=120, interval=1)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert any(IMAGE in image["names"] for image in node["status"]["images"])
    # The agent started no containerd of its own.
    assert not (cluster.agent_dir / "containerd").exists()

    await asyncio.to_thread(cluster.kubectl, "apply", "-f", "-", input=json.dumps(_pod()))
    await asyncio.to_thread(cluster.kubectl, "wait", "--for=condition=Ready", "pod/hello", "--timeout=120s",
                            timeout=150)
    pod = cluster.kubectl_json("get", "pod", "hello")
    # The address comes from the runtime's CNI network, not from the node's podCIDR.
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(runtime.config.pod_cidr)
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")

    async def logged() -> bool:
        result = cluster.kubectl("logs", "hello", check=False)
        return "hello from the external runtime" in result.stdout

    await eventually_async(logged, timeout=30, interval=0.5)
    assert cluster.kubectl("exec", "hello", "--", "echo", "exec works").stdout == "exec works\n"

    # Stopping the server (and its agent) stops nothing of the runtime's: it still runs the pod.
    await asyncio.to_thread(cluster.stop)
    assert runtime.process is not None and runtime.process.returncode is None
    running = [c for c in await containerd_node.cri.list_containers() if c.state == pb.CONTAINER_RUNNING]
    assert [c.metadata.name for c in running] == ["app"]
