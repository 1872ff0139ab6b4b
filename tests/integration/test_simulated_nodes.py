"""Simulated nodes against a real `pyk8s server`, seen through the real kubectl.

The agent runs in this process on its own event loop thread (as `pyk8s agent --simulated` would
run it in its own process), with a 2 s lease renewal so heartbeat checks stay short.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
import time
from collections.abc import Iterator

import pytest

from pyk8s.client import APIClient
from pyk8s.kubelet.simulated import SimulatedNodes, simulated_client_config

from conftest import Cluster, eventually

COUNT = 5
PREFIX = "simt-"
RENEW = 2.0


class AgentThread:
    """A SimulatedNodes agent on its own event loop in a daemon thread."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="simulated-nodes", daemon=True)
        self.client: APIClient | None = None
        self.nodes: SimulatedNodes | None = None
        self.task: asyncio.Future | None = None

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self._start(), timeout=60)

    async def _start(self) -> None:
        self.client = APIClient(simulated_client_config(self.cluster.kubeconfig, COUNT))
        self.nodes = SimulatedNodes(self.client, COUNT, name_prefix=PREFIX, renew_interval=RENEW, ipam_wait=0.5)
        self.task = asyncio.ensure_future(self.nodes.run())
        await self.nodes.wait_registered(30)

    async def _stop(self) -> None:
        assert self.nodes is not None and self.client is not None
        await self.nodes.stop()
        await self.client.close()

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def fail(self, name: str) -> None:
        assert self.nodes is not None
        self.loop.call_soon_threadsafe(self.nodes.fail, name)

    def recover(self, name: str) -> None:
        assert self.nodes is not None
        self.loop.call_soon_threadsafe(self.nodes.recover, name)

    def bind(self, namespace: str, pod: str, node: str) -> None:
        assert self.client is not None
        self.call(self.client.create_subresource("pods", pod, "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}, namespace))


@pytest.fixture(scope="module")
def agent(bare_cluster: Cluster) -> Iterator[AgentThread]:
    agent = AgentThread(bare_cluster)
    agent.start()
    yield agent
    agent.stop()


def apply_pod(cluster: Cluster, name: str, *, annotations: dict | None = None, restart_policy: str = "Always",
              namespace: str = "default") -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
           "spec": {"restartPolicy": restart_policy, "containers": [{"name": "main", "image": "nginx:1.27"}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def lease_renew_time(cluster: Cluster, node: str) -> str:
    return cluster.kubectl("get", "lease", node, "-n", "kube-node-lease", "-o",
                           "jsonpath={.spec.renewTime}").stdout


def pod_row(cluster: Cluster, name: str) -> list[str]:
    lines = cluster.kubectl("get", "pod", name).stdout.splitlines()
    return lines[1].split() if len(lines) > 1 else []


def test_nodes_register_and_show_ready_in_kubectl(bare_cluster: Cluster, agent: AgentThread):
    nodes = bare_cluster.kubectl_json("get", "nodes", "-l", "node.kubernetes.io/instance-type=simulated")
    names = sorted(n["metadata"]["name"] for n in nodes["items"])
    assert names == [f"{PREFIX}{i}" for i in range(COUNT)]
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes["items"]}
    assert zones == {"zone-a", "zone-b", "zone-c"}
    rows = [line.split() for line in bare_cluster.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()[1:]]
    assert len(rows) == COUNT
    for row in rows:
        assert row[1] == "Ready" and row[4] == "v1.32.0-pyk8s-sim", row
        assert row[5].startswith("10.200.") and row[-1] == "simulated://1.0", row
    # With no node IPAM controller running, every node gets a pod CIDR of its own.
    def pod_cidrs() -> list[str] | None:
        found = [n["spec"].get("podCIDR") for n in bare_cluster.kubectl_json("get", "nodes")["items"]
                 if n["metadata"]["name"].startswith(PREFIX)]
        return found if all(found) else None

    cidrs = eventually(pod_cidrs)
    assert len(set(cidrs)) == COUNT


def test_describe_node(bare_cluster: Cluster, agent: AgentThread):
    out = bare_cluster.kubectl("describe", "node", f"{PREFIX}0").stdout
    assert "KubeletReady" in out and "kubelet is posting ready status" in out
    assert f"HolderIdentity:  {PREFIX}0" in out
    assert "Container Runtime Version:  simulated://1.0" in out
    assert "InternalIP:  10.200.0.1" in out


def test_leases_renew(bare_cluster: Cluster, agent: AgentThread):
    lease = bare_cluster.kubectl_json("get", "lease", f"{PREFIX}1", "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == f"{PREFIX}1" and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    first = lease["spec"]["renewTime"]
    eventually(lambda: lease_renew_time(bare_cluster, f"{PREFIX}1") > first, timeout=3 * RENEW)


def test_bound_pod_becomes_running_and_ready(bare_cluster: Cluster, agent: AgentThread):
    apply_pod(bare_cluster, "web")
    agent.bind("default", "web", f"{PREFIX}2")
    bare_cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=20s")
    pod = bare_cluster.kubectl_json("get", "pod", "web")
    cidr = eventually(lambda: bare_cluster.kubectl("get", "node", f"{PREFIX}2", "-o",
                                                  "jsonpath={.spec.podCIDR}").stdout)
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(cidr)
    assert pod["status"]["phase"] == "Running" and pod["status"]["hostIP"] == "10.200.0.3"
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["started"] and status["containerID"].startswith("simulated://")
    row = pod_row(bare_cluster, "web")
    assert row[1:3] == ["1/1", "Running"]


def test_run_seconds_pod_with_restart_never_completes(bare_cluster: Cluster, agent: AgentThread):
    apply_pod(bare_cluster, "job", annotations={"sim.pyk8s.io/run-seconds": "1"}, restart_policy="Never")
    agent.bind("default", "job", f"{PREFIX}3")
    bare_cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/job", "--timeout=20s")
    assert pod_row(bare_cluster, "job")[1:3] == ["0/1", "Completed"]
    terminated = bare_cluster.kubectl_json("get", "pod", "job")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"


def test_failing_pod_with_restart_on_failure_restarts(bare_cluster: Cluster, agent: AgentThread):
    apply_pod(bare_cluster, "crash", annotations={"sim.pyk8s.io/run-seconds": "1", "sim.pyk8s.io/exit-code": "1"},
              restart_policy="OnFailure")
    agent.bind("default", "crash", f"{PREFIX}3")
    # First crash restarts at once; the second one waits out a 10 s back-off.
    row = eventually(lambda: (r := pod_row(bare_cluster, "crash")) and r[2] == "CrashLoopBackOff" and r)
    assert row[3] == "1"
    status = bare_cluster.kubectl_json("get", "pod", "crash")["status"]
    assert status["phase"] == "Running"
    container = status["containerStatuses"][0]
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert container["state"]["waiting"]["message"].startswith("back-off 10s restarting failed container=main")


def test_deletion_completes(bare_cluster: Cluster, agent: AgentThread):
    apply_pod(bare_cluster, "doomed")
    agent.bind("default", "doomed", f"{PREFIX}4")
    bare_cluster.kubectl("wait", "--for=condition=Ready", "pod/doomed", "--timeout=20s")
    started = time.monotonic()
    bare_cluster.kubectl("delete", "pod", "doomed", "--timeout=20s")  # waits until the pod is gone
    assert time.monotonic() - started < 10
    assert bare_cluster.kubectl("get", "pod", "doomed", check=False).returncode != 0


def test_heartbeat_failure_by_annotation_stops_lease_renewals(bare_cluster: Cluster, agent: AgentThread):
    node = f"{PREFIX}0"
    bare_cluster.kubectl("annotate", "node", node, "sim.pyk8s.io/heartbeat=stopped")
    time.sleep(0.5)  # a renewal already in flight may still land
    stopped_at = lease_renew_time(bare_cluster, node)
    time.sleep(2.5 * RENEW)
    assert lease_renew_time(bare_cluster, node) == stopped_at
    bare_cluster.kubectl("annotate", "node", node, "sim.pyk8s.io/heartbeat-")
    eventually(lambda: lease_renew_time(bare_cluster, node) > stopped_at, timeout=5)


def test_failed_node_leaves_its_pods_alone_until_it_recovers(bare_cluster: Cluster, agent: AgentThread):
    node = f"{PREFIX}1"
    agent.fail(node)
    time.sleep(0.5)
    stopped_at = lease_renew_time(bare_cluster, node)
    apply_pod(bare_cluster, "orphan")
    agent.bind("default", "orphan", node)
    time.sleep(2 * RENEW)
    assert lease_renew_time(bare_cluster, node) == stopped_at
    pod = bare_cluster.kubectl_json("get", "pod", "orphan")
    assert pod["status"]["phase"] == "Pending" and "containerStatuses" not in pod["status"]
    agent.recover(node)
    bare_cluster.kubectl("wait", "--for=condition=Ready", "pod/orphan", "--timeout=20s")
    assert lease_renew_time(bare_cluster, node) > stopped_at
