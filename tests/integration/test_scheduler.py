"""The scheduler against a real `pyk8s server` with simulated nodes of different shapes.

Nodes: sched-0 tainted dedicated=gpu:NoSchedule, sched-1 cordoned, sched-2 small (4 cpu), sched-3 big (16 cpu).
The nodes and the scheduler run in this process on one event loop thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest

from pyk8s.client import APIClient
from pyk8s.kubelet.simulated import SimulatedNodes, simulated_client_config
from pyk8s.scheduler import run_scheduler

from conftest import BARE, Cluster, eventually

PREFIX = "sched-"


class Background:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sched-test", daemon=True)
        self.client: APIClient | None = None
        self.groups: list[SimulatedNodes] = []
        self.tasks: list[asyncio.Future] = []

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.client = APIClient(simulated_client_config(self.cluster.kubeconfig, 4))
        self.groups = [
            SimulatedNodes(self.client, 3, name_prefix=PREFIX, capacity={"cpu": "4", "memory": "8Gi"},
                           ipam_wait=0.5),
            SimulatedNodes(self.client, 1, name_prefix=PREFIX, start_index=3,
                           capacity={"cpu": "16", "memory": "32Gi"}, ipam_wait=0.5),
        ]
        self.tasks = [asyncio.ensure_future(g.run()) for g in self.groups]
        for g in self.groups:
            await g.wait_registered(30)

    def start_scheduler(self) -> None:
        self.loop.call_soon_threadsafe(
            lambda: self.tasks.append(asyncio.ensure_future(run_scheduler(self.cluster.kubeconfig))))

    async def _stop(self) -> None:
        for task in self.tasks[len(self.groups):]:
            task.cancel()
        await asyncio.gather(*self.tasks[len(self.groups):], return_exceptions=True)
        for g in self.groups:
            await g.stop()
        assert self.client is not None
        await self.client.close()

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def sched_cluster(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("pyk8s-sched"), BARE)
    cluster.start()
    bg = Background(cluster)
    bg.start()
    cluster.kubectl("taint", "node", f"{PREFIX}0", "dedicated=gpu:NoSchedule")
    cluster.kubectl("cordon", f"{PREFIX}1")
    cluster.kubectl("label", "node", f"{PREFIX}2", "disk=ssd")
    bg.start_scheduler()
    yield cluster
    bg.stop()
    cluster.stop()


def create_pod(cluster: Cluster, name: str, cpu: str = "100m", **spec) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": [{"name": "main", "image": "nginx:1.27",
                                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def node_of(cluster: Cluster, name: str) -> str:
    return cluster.kubectl("get", "pod", name, "-o", "jsonpath={.spec.nodeName}").stdout


def test_pods_are_placed_by_resources_selectors_and_taints(sched_cluster: Cluster):
    create_pod(sched_cluster, "big", cpu="8")  # only the 16-cpu node has room
    create_pod(sched_cluster, "pinned", nodeSelector={"disk": "ssd"})
    create_pod(sched_cluster, "tolerant", nodeSelector={"kubernetes.io/hostname": f"{PREFIX}0"},
               tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    for i in range(4):
        create_pod(sched_cluster, f"web-{i}", cpu="1")
    assert eventually(lambda: node_of(sched_cluster, "big")) == f"{PREFIX}3"
    assert eventually(lambda: node_of(sched_cluster, "pinned")) == f"{PREFIX}2"
    assert eventually(lambda: node_of(sched_cluster, "tolerant")) == f"{PREFIX}0"
    for i in range(4):  # never the tainted or the cordoned node
        assert eventually(lambda i=i: node_of(sched_cluster, f"web-{i}")) in (f"{PREFIX}2", f"{PREFIX}3")
    sched_cluster.kubectl("wait", "--for=condition=Ready", "pod/big", "pod/pinned", "pod/tolerant",
                          "--timeout=20s")
    assert sched_cluster.kubectl_json("get", "pod", "big")["status"]["phase"] == "Running"
    events = sched_cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=big").stdout
    assert "Scheduled" in events and f"Successfully assigned default/big to {PREFIX}3" in events


def test_impossible_pod_reports_why(sched_cluster: Cluster):
    create_pod(sched_cluster, "huge", cpu="100")
    expected = ("0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                "1 node(s) were unschedulable, 2 Insufficient cpu. preemption: 0/4 nodes are available: "
                "2 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")

    def condition() -> dict | None:
        pod = sched_cluster.kubectl_json("get", "pod", "huge")
        return next((c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None)

    cond = eventually(condition)
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == expected
    assert node_of(sched_cluster, "huge") == ""
    describe = eventually(lambda: (out := sched_cluster.kubectl("describe", "pod", "huge").stdout)
                          and "FailedScheduling" in out and out)
    assert "Warning  FailedScheduling" in describe and "0/4 nodes are available" in describe
    events = sched_cluster.kubectl("get", "events", "--field-selector", "reason=FailedScheduling").stdout
    assert "huge" in events and "2 Insufficient cpu" in events
    # The scheduler ran under leader election.
    lease = sched_cluster.kubectl_json("get", "lease", "kube-scheduler", "-n", "kube-system")
    assert lease["spec"]["holderIdentity"]
