"""Deployments on an all-in-one `pyk8s server --simulated-nodes 3` (scheduler, controller-manager and simulated
nodes supervised by the server), driven through the real kubectl and the Python client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator

import psutil
import pytest

from conftest import Cluster, eventually

IMAGE = "nginx:1.27"


@pytest.fixture(scope="module")
def workload_cluster(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("deploy"), ("--simulated-nodes", "3"))
    cluster.start()
    eventually(lambda: len(cluster.kubectl_json("get", "nodes")["items"]) == 3, timeout=60)
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", timeout=90)
    yield cluster
    cluster.stop()


def make_namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}}))
    return name


def deployment(name: str, replicas: int, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": IMAGE}]}}, **spec}}


def apply(cluster: Cluster, ns: str, obj: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def get(cluster: Cluster, ns: str, *args: str) -> dict:
    return cluster.kubectl_json("get", "-n", ns, *args)


def owned_replica_sets(cluster: Cluster, ns: str, name: str) -> list[dict]:
    uid = get(cluster, ns, "deployment", name)["metadata"]["uid"]
    return [rs for rs in get(cluster, ns, "rs")["items"]
            if any(r["uid"] == uid for r in rs["metadata"].get("ownerReferences") or ())]


def live_pods(cluster: Cluster, ns: str, selector: str) -> list[dict]:
    return [p for p in get(cluster, ns, "pods", "-l", selector)["items"] if not p["metadata"].get("deletionTimestamp")]


def rollout_status(cluster: Cluster, ns: str, resource: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return cluster.kubectl("rollout", "status", resource, "-n", ns, f"--timeout={timeout}s", timeout=timeout + 30,
                           check=False)


def condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"].get("conditions") or () if c["type"] == type_)


def test_rolling_update_history_undo_and_status(workload_cluster: Cluster):
    c = workload_cluster
    ns = make_namespace(c, "deploy-rolling")
    apply(c, ns, deployment("web", 4))
    out = rollout_status(c, ns, "deployment/web")
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'deployment "web" successfully rolled out' in out.stdout

    d = get(c, ns, "deployment", "web")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = d["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"],
            status["observedGeneration"]) == (4, 4, 4, 4, d["metadata"]["generation"])
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    [rs1] = owned_replica_sets(c, ns, "web")
    hash1 = rs1["metadata"]["labels"]["pod-template-hash"]
    assert rs1["metadata"]["name"] == f"web-{hash1}"
    assert rs1["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash1}
    assert rs1["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "4"
    assert rs1["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "5"  # 4 + 25% rounded up
    assert all(p["metadata"]["labels"]["pod-template-hash"] == hash1 for p in live_pods(c, ns, "app=web"))

    # A new image: a second ReplicaSet takes over, the change cause is recorded, the old one scales to 0.
    c.kubectl("set", "image", "deployment/web", "web=nginx:1.28", "-n", ns)
    c.kubectl("annotate", "deployment/web", "-n", ns, "kubernetes.io/change-cause=image 1.28")
    out = rollout_status(c, ns, "deployment/web")
    assert out.returncode == 0, out.stdout + out.stderr
    rss = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
           for rs in owned_replica_sets(c, ns, "web")}
    assert set(rss) == {"1", "2"}
    assert rss["1"]["spec"]["replicas"] == 0 and rss["2"]["spec"]["replicas"] == 4
    assert rss["2"]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "image 1.28"
    pods = eventually(lambda: (p := live_pods(c, ns, "app=web")) and len(p) == 4 and all(
        x["spec"]["containers"][0]["image"] == "nginx:1.28" for x in p) and p, timeout=60)
    assert len(pods) == 4
    events = get(c, ns, "events", "--field-selector", "involvedObject.kind=Deployment")["items"]
    messages = {e["message"] for e in events if e["reason"] == "ScalingReplicaSet"}
    name1 = rss["1"]["metadata"]["name"]
    assert f"Scaled up replica set {name1} to 4 from 0" in messages
    assert any(m.startswith(f"Scaled down replica set {name1} to ") for m in messages)

    history = c.kubectl("rollout", "history", "deployment/web", "-n", ns).stdout
    assert "REVISION" in history and "image 1.28" in history

    # Undo goes back to revision 1's template, which becomes revision 3.
    c.kubectl("rollout", "undo", "deployment/web", "-n", ns)
    out = rollout_status(c, ns, "deployment/web")
    assert out.returncode == 0, out.stdout + out.stderr
    d = get(c, ns, "deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    rs = next(rs for rs in owned_replica_sets(c, ns, "web") if rs["metadata"]["name"] == name1)
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert rs["spec"]["replicas"] == 4

    # Undo to an explicit revision, then restart (a new template annotation: a new ReplicaSet).
    c.kubectl("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=2")
    assert rollout_status(c, ns, "deployment/web").returncode == 0
    assert get(c, ns, "deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    c.kubectl("rollout", "restart", "deployment/web", "-n", ns)
    assert rollout_status(c, ns, "deployment/web").returncode == 0
    assert len(owned_replica_sets(c, ns, "web")) == 3

    describe = c.kubectl("describe", "deployment", "web", "-n", ns).stdout
    assert "NewReplicaSet:" in describe and "ScalingReplicaSet" in describe
    assert "4 desired | 4 updated | 4 total | 4 available | 0 unavailable" in describe


def test_scale_pause_resume_and_proportional_scaling(workload_cluster: Cluster):
    c = workload_cluster
    ns = make_namespace(c, "deploy-scale")
    apply(c, ns, deployment("api", 2))
    assert rollout_status(c, ns, "deployment/api").returncode == 0
    c.kubectl("scale", "deployment/api", "-n", ns, "--replicas=5")
    assert rollout_status(c, ns, "deployment/api").returncode == 0
    assert len(live_pods(c, ns, "app=api")) == 5

    c.kubectl("rollout", "pause", "deployment/api", "-n", ns)
    eventually(lambda: condition(get(c, ns, "deployment", "api"), "Progressing")["reason"] == "DeploymentPaused")
    c.kubectl("set", "image", "deployment/api", "web=nginx:1.28", "-n", ns)
    # Paused: the template change starts no rollout.
    eventually(lambda: get(c, ns, "deployment", "api")["status"]["observedGeneration"]
               == get(c, ns, "deployment", "api")["metadata"]["generation"])
    assert len(owned_replica_sets(c, ns, "api")) == 1

    c.kubectl("rollout", "resume", "deployment/api", "-n", ns)
    # Mid-rollout resize: both ReplicaSets grow in proportion; in the end the new one holds all 10.
    c.kubectl("scale", "deployment/api", "-n", ns, "--replicas=10")
    assert rollout_status(c, ns, "deployment/api").returncode == 0
    d = get(c, ns, "deployment", "api")
    assert d["status"]["updatedReplicas"] == 10 and d["status"]["availableReplicas"] == 10
    reasons = [cond["reason"] for cond in d["status"]["conditions"]]
    assert "NewReplicaSetAvailable" in reasons
    assert len(live_pods(c, ns, "app=api")) == 10


def test_recreate_strategy(workload_cluster: Cluster):
    c = workload_cluster
    ns = make_namespace(c, "deploy-recreate")
    apply(c, ns, deployment("db", 3, strategy={"type": "Recreate"}))
    assert rollout_status(c, ns, "deployment/db").returncode == 0
    old_pods = {p["metadata"]["name"] for p in live_pods(c, ns, "app=db")}
    c.kubectl("set", "image", "deployment/db", "web=nginx:1.28", "-n", ns)
    assert rollout_status(c, ns, "deployment/db").returncode == 0
    new_pods = live_pods(c, ns, "app=db")
    assert len(new_pods) == 3 and not old_pods & {p["metadata"]["name"] for p in new_pods}
    # Recreate never runs old and new pods together: every new pod started after the last old one was deleted.
    rss = owned_replica_sets(c, ns, "db")
    assert sorted(rs["spec"]["replicas"] for rs in rss) == [0, 3]


def test_progress_deadline_exceeded(workload_cluster: Cluster):
    c = workload_cluster
    ns = make_namespace(c, "deploy-deadline")
    stuck = deployment("stuck", 2, progressDeadlineSeconds=3)
    # No node has this label: the pods stay Pending and the rollout cannot progress.
    stuck["spec"]["template"]["spec"]["nodeSelector"] = {"pyk8s.test/none": "true"}
    apply(c, ns, stuck)
    eventually(lambda: condition(get(c, ns, "deployment", "stuck"), "Progressing")["reason"]
               == "ProgressDeadlineExceeded", timeout=60)
    d = get(c, ns, "deployment", "stuck")
    assert condition(d, "Progressing")["status"] == "False"
    assert condition(d, "Available")["status"] == "False"
    assert condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"
    out = rollout_status(c, ns, "deployment/stuck", timeout=30)
    assert out.returncode != 0 and 'deployment "stuck" exceeded its progress deadline' in out.stderr


def test_controller_manager_killed_mid_rollout(workload_cluster: Cluster):
    """The server restarts a killed controller-manager; the new one finishes the rollout without extra pods."""
    c = workload_cluster
    ns = make_namespace(c, "deploy-fault")
    apply(c, ns, deployment("big", 12, strategy={"type": "RollingUpdate",
                                                  "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}))
    assert rollout_status(c, ns, "deployment/big", timeout=180).returncode == 0
    c.kubectl("set", "image", "deployment/big", "web=nginx:1.28", "-n", ns)
    eventually(lambda: len(owned_replica_sets(c, ns, "big")) == 2)
    children = psutil.Process(c.process.pid).children()
    [manager] = [p for p in children if "controller-manager" in p.cmdline()]
    os.kill(manager.pid, signal.SIGKILL)
    # maxUnavailable 0 and maxSurge 2: at no point more than 14 live pods.
    seen_max = 0

    def done() -> bool:
        nonlocal seen_max
        seen_max = max(seen_max, len(live_pods(c, ns, "app=big")))
        d = get(c, ns, "deployment", "big")
        return d["status"].get("updatedReplicas") == 12 and d["status"].get("replicas") == 12 and \
            d["status"].get("availableReplicas") == 12

    eventually(done, timeout=180, interval=0.5)
    assert seen_max <= 14
    pods = live_pods(c, ns, "app=big")
    assert len(pods) == 12 and all(p["spec"]["containers"][0]["image"] == "nginx:1.28" for p in pods)
    assert psutil.Process(c.process.pid).children() != children  # a fresh controller-manager runs


def test_python_client_scale_subresource_races_are_retried(workload_cluster: Cluster):
    """Two writers (the controller and a client scaling through /scale) race on the same objects."""
    from kubernetes import client, config

    c = workload_cluster
    ns = make_namespace(c, "deploy-race")
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(c.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment(ns, deployment("race", 1))
        for replicas in (6, 2, 8, 3, 5):
            apps.patch_namespaced_deployment("race", ns, {"spec": {"replicas": replicas}})
        eventually(lambda: (s := apps.read_namespaced_deployment("race", ns).status) is not None
                   and s.available_replicas == 5 and s.replicas == 5, timeout=90)
        assert len(live_pods(c, ns, "app=race")) == 5
        # A second writer resizes the Deployment's ReplicaSet behind its back: the controller sizes it back.
        [rs] = apps.list_namespaced_replica_set(ns, label_selector="app=race").items
        apps.patch_namespaced_replica_set(rs.metadata.name, ns, {"spec": {"replicas": 9}})
        eventually(lambda: apps.read_namespaced_replica_set(rs.metadata.name, ns).spec.replicas == 5
                   and len(live_pods(c, ns, "app=race")) == 5, timeout=90)
        eventually(lambda: (d := apps.read_namespaced_deployment("race", ns)).status.observed_generation
                   == d.metadata.generation and d.status.updated_replicas == 5 and d.status.replicas == 5,
                   timeout=60)


def test_node_lost_mid_rollout(workload_cluster: Cluster):
    """A node stops heartbeating in the middle of a rolling update: its pods are evicted and replaced on the
    remaining nodes, and the rollout completes with every replica available on a live node."""
    c = workload_cluster
    ns = make_namespace(c, "deploy-node-lost")
    spec = deployment("spread", 9, strategy={"type": "RollingUpdate",
                                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})
    # Evicted as soon as the node is unreachable (admission would otherwise give the pods 300 s).
    spec["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]
    apply(c, ns, spec)
    assert rollout_status(c, ns, "deployment/spread", timeout=120).returncode == 0
    pods = live_pods(c, ns, "app=spread")
    lost = pods[0]["spec"]["nodeName"]
    c.kubectl("set", "image", "deployment/spread", "web=nginx:1.28", "-n", ns)
    eventually(lambda: len(owned_replica_sets(c, ns, "spread")) == 2)
    c.kubectl("annotate", "node", lost, "sim.pyk8s.io/heartbeat=stopped")
    try:
        def rolled_out_on_live_nodes() -> bool:
            d = get(c, ns, "deployment", "spread")
            status = d["status"]
            current = live_pods(c, ns, "app=spread")
            return (status.get("observedGeneration") == d["metadata"]["generation"]
                    and status.get("updatedReplicas") == 9 and status.get("availableReplicas") == 9
                    and status.get("replicas") == 9 and len(current) == 9
                    and all(p["spec"]["nodeName"] != lost for p in current)
                    and all(p["spec"]["containers"][0]["image"] == "nginx:1.28" for p in current))

        # The node lifecycle controller needs the 40 s grace period to call the node unreachable.
        eventually(rolled_out_on_live_nodes, timeout=180, interval=1)
        assert rollout_status(c, ns, "deployment/spread", timeout=60).returncode == 0
        d = get(c, ns, "deployment", "spread")
        assert condition(d, "Available")["status"] == "True"
        assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    finally:
        c.kubectl("annotate", "node", lost, "sim.pyk8s.io/heartbeat-")
    # Back alive, the node's kubelet finishes the evicted pods' deletions.
    eventually(lambda: all(p["spec"]["nodeName"] != lost for p in get(c, ns, "pods")["items"]), timeout=120,
               interval=1)
