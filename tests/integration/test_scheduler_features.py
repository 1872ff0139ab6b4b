"""Scheduler features against a real `pyk8s server`, driven through real kubectl: inter-pod anti-affinity,
topology spread over zones, preemption, scheduling gates, a second profile from a configuration file, and
pods that can never be placed.

Nodes: feat-0..feat-5, 4 cpu each, simulated (zones zone-a, zone-b, zone-c round-robin). The scheduler runs
with a KubeSchedulerConfiguration holding two profiles: default-scheduler and bin-packer (MostAllocated).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_scheduler import Background

from pyk8s.client import APIClient
from pyk8s.kubelet.simulated import SimulatedNodes, simulated_client_config
from pyk8s.scheduler import run_scheduler

from conftest import BARE, Cluster, eventually

PREFIX = "feat-"
ZONE = "topology.kubernetes.io/zone"
CONFIG = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"""


class FeatureNodes(Background):
    def __init__(self, cluster: Cluster, config_file: Path):
        super().__init__(cluster)
        self.config_file = config_file

    async def _start(self) -> None:
        self.client = APIClient(simulated_client_config(self.cluster.kubeconfig, 4))
        self.groups = [SimulatedNodes(self.client, 6, name_prefix=PREFIX, zones=3,
                                      capacity={"cpu": "4", "memory": "8Gi"}, ipam_wait=0.5)]
        self.tasks = [asyncio.ensure_future(g.run()) for g in self.groups]
        for g in self.groups:
            await g.wait_registered(30)

    def start_scheduler(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self.tasks.append(asyncio.ensure_future(
            run_scheduler(self.cluster.kubeconfig, config_file=self.config_file))))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("pyk8s-sched-features")
    config_file = root / "scheduler.yaml"
    config_file.write_text(CONFIG)
    cluster = Cluster(root / "server", BARE)
    cluster.start()
    nodes = FeatureNodes(cluster, config_file)
    nodes.start()
    nodes.start_scheduler()
    yield cluster
    nodes.stop()
    cluster.stop()


def apply_pod(cluster: Cluster, name: str, *, cpu: str = "100m", labels: dict | None = None, **spec) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                           "labels": labels or {}},
           "spec": {"containers": [{"name": "main", "image": "nginx:1.27",
                                    "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}}}], **spec}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def node_of(cluster: Cluster, name: str) -> str:
    return cluster.kubectl("get", "pod", name, "-o", "jsonpath={.spec.nodeName}").stdout


def zone_of(cluster: Cluster, node: str) -> str:
    return cluster.kubectl_json("get", "node", node)["metadata"]["labels"][ZONE]


def pod_scheduled_condition(cluster: Cluster, name: str) -> dict | None:
    pod = cluster.kubectl_json("get", "pod", name)
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"),
                None)


def failed_scheduling_message(cluster: Cluster, name: str) -> str | None:
    cond = pod_scheduled_condition(cluster, name)
    return cond["message"] if cond and cond["status"] == "False" and cond["reason"] == "Unschedulable" else None


def test_required_anti_affinity_puts_one_replica_per_zone(cluster: Cluster):
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": ZONE, "labelSelector": {"matchLabels": {"app": "anti"}}}]}}
    for i in range(4):
        apply_pod(cluster, f"anti-{i}", labels={"app": "anti"}, affinity=anti)
    placed = [eventually(lambda i=i: node_of(cluster, f"anti-{i}"), 60) for i in range(3)]
    assert len({zone_of(cluster, n) for n in placed}) == 3
    message = eventually(lambda: failed_scheduling_message(cluster, "anti-3"), 60)
    assert message.startswith("0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules.")
    assert node_of(cluster, "anti-3") == ""


def test_topology_spread_evens_out_zones(cluster: Cluster):
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    for i in range(6):
        apply_pod(cluster, f"spread-{i}", labels={"app": "spread"}, topologySpreadConstraints=spread)
    nodes = [eventually(lambda i=i: node_of(cluster, f"spread-{i}"), 60) for i in range(6)]
    assert sorted(Counter(zone_of(cluster, n) for n in nodes).values()) == [2, 2, 2]


def test_higher_priority_pod_preempts_a_lower_one(cluster: Cluster):
    target = f"{PREFIX}5"
    pin = {"nodeSelector": {"kubernetes.io/hostname": target}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "feat-high"},
        "value": 1000}))
    apply_pod(cluster, "victim", cpu="3", priority=0, **pin)
    assert eventually(lambda: node_of(cluster, "victim"), 60) == target
    victim_uid = cluster.kubectl_json("get", "pod", "victim")["metadata"]["uid"]
    apply_pod(cluster, "preemptor", cpu="3", priorityClassName="feat-high", **pin)
    preemptor_uid = cluster.kubectl_json("get", "pod", "preemptor")["metadata"]["uid"]
    assert eventually(lambda: node_of(cluster, "preemptor"), 90) == target

    def victim_gone() -> bool:
        result = cluster.kubectl("get", "pod", "victim", "-o", "jsonpath={.metadata.uid}", check=False)
        return result.returncode != 0 or result.stdout != victim_uid

    assert eventually(victim_gone, 60)
    events = cluster.kubectl("get", "events", "--field-selector", "reason=Preempted", "-o", "json").stdout
    messages = [e["message"] for e in json.loads(events)["items"] if e["involvedObject"]["name"] == "victim"]
    assert f"Preempted by pod {preemptor_uid} on node {target}" in messages


def test_preemption_policy_never_waits(cluster: Cluster):
    # Priority admission takes preemptionPolicy from the class, as upstream.
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "feat-polite"},
        "value": 2000, "preemptionPolicy": "Never"}))
    apply_pod(cluster, "polite", cpu="4", priorityClassName="feat-polite")
    message = eventually(lambda: failed_scheduling_message(cluster, "polite"), 60)
    assert message.endswith("preemption: not eligible due to preemptionPolicy=Never.")


def test_scheduling_gates_hold_the_pod_until_removed(cluster: Cluster):
    apply_pod(cluster, "gated", schedulingGates=[{"name": "example.com/wait"}])
    cond = eventually(lambda: (c := pod_scheduled_condition(cluster, "gated")) and c["reason"] == "SchedulingGated"
                      and c, 60)
    assert cond["status"] == "False" and cond["message"] == "Scheduling is blocked due to non-empty scheduling gates"
    assert "SchedulingGated" in cluster.kubectl("get", "pod", "gated").stdout
    assert node_of(cluster, "gated") == ""
    cluster.kubectl("patch", "pod", "gated", "--type=json", "-p",
                    json.dumps([{"op": "remove", "path": "/spec/schedulingGates"}]))
    assert eventually(lambda: node_of(cluster, "gated"), 60).startswith(PREFIX)


def test_second_profile_and_unknown_scheduler(cluster: Cluster):
    apply_pod(cluster, "packed", schedulerName="bin-packer")
    apply_pod(cluster, "orphan", schedulerName="nobody")
    assert eventually(lambda: node_of(cluster, "packed"), 60).startswith(PREFIX)
    events = json.loads(cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=packed",
                                        "-o", "json").stdout)["items"]
    scheduled = [e for e in events if e["reason"] == "Scheduled"]
    assert scheduled and (scheduled[0].get("reportingComponent") == "bin-packer"
                          or (scheduled[0].get("source") or {}).get("component") == "bin-packer")
    # a pod for a scheduler that does not exist is left alone: no node, no condition, no events
    assert node_of(cluster, "orphan") == "" and pod_scheduled_condition(cluster, "orphan") is None


def test_pod_for_an_unknown_node_reports_why(cluster: Cluster):
    apply_pod(cluster, "nowhere", nodeSelector={"kubernetes.io/hostname": "no-such-node"})
    message = eventually(lambda: failed_scheduling_message(cluster, "nowhere"), 60)
    assert message == ("0/6 nodes are available: 6 node(s) didn't match Pod's node affinity/selector. "
                       "preemption: 0/6 nodes are available: 6 Preemption is not helpful for scheduling.")
    describe = cluster.kubectl("describe", "pod", "nowhere").stdout
    assert "FailedScheduling" in describe


def test_invalid_affinity_term_is_reported_and_scheduling_goes_on(cluster: Cluster):
    bad = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": ZONE, "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}}]}}
    apply_pod(cluster, "bad-affinity", affinity=bad)
    cond = eventually(lambda: (c := pod_scheduled_condition(cluster, "bad-affinity")) and c["status"] == "False"
                      and c, 60)
    assert cond["reason"] == "SchedulerError"
    assert cond["message"].startswith('running PreFilter plugin "InterPodAffinity": parsing pod affinity terms:')
    assert '"Bogus" is not a valid label selector operator' in cond["message"]
    apply_pod(cluster, "after-bad")
    assert eventually(lambda: node_of(cluster, "after-bad"), 60).startswith(PREFIX)
