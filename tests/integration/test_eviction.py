"""pods/eviction, the disruption controller and `kubectl drain`, through the real kubectl against
`pyk8s server --simulated-nodes 2` with the ReplicaSet controller switched on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conftest import Cluster, eventually

NS = "evict"


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("evict"),
                      ("--simulated-nodes", "2", "--controllers", "*,replicaset-controller"))
    cluster.start()
    try:
        eventually(lambda: len(cluster.kubectl_json("get", "nodes")["items"]) == 2, timeout=60)
        cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        yield cluster
    finally:
        cluster.stop()


def apply(cluster: Cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(obj))


def replicaset(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}],
                                           "terminationGracePeriodSeconds": 1}}}}


def pdb(name: str, app: str, **spec) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": app}}, **spec}}


def ready_pods(cluster: Cluster, app: str) -> list[dict]:
    pods = cluster.kubectl_json("get", "pods", "-n", NS, "-l", f"app={app}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def pdb_status(cluster: Cluster, name: str) -> dict:
    return cluster.kubectl_json("get", "pdb", name, "-n", NS).get("status") or {}


def evict(cluster: Cluster, pod: str, body_extra: dict | None = None, version: str = "policy/v1"):
    body = {"apiVersion": version, "kind": "Eviction", "metadata": {"name": pod, "namespace": NS},
            **(body_extra or {})}
    return cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod}/eviction", "-f", "-",
                           input=json.dumps(body), check=False)


def test_evicting_a_pod_without_a_budget_deletes_it(sim: Cluster):
    sim.kubectl("run", "lonely", "--image=nginx", "-n", NS, "--overrides",
                json.dumps({"spec": {"terminationGracePeriodSeconds": 30}}))
    sim.kubectl("wait", "--for=condition=Ready", "pod/lonely", "-n", NS, "--timeout=60s")
    dry = evict(sim, "lonely", {"deleteOptions": {"dryRun": ["All"]}}, version="policy/v1beta1")
    assert dry.returncode == 0, dry.stderr
    assert not sim.kubectl_json("get", "pod", "lonely", "-n", NS)["metadata"].get("deletionTimestamp")

    result = evict(sim, "lonely")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                         "code": 201}
    got = sim.kubectl("get", "pod", "lonely", "-n", NS, "-o", "json", check=False)
    if got.returncode == 0:  # still terminating: it carries the reason it goes
        pod = json.loads(got.stdout)
        assert pod["metadata"].get("deletionTimestamp")
        target = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert target and target[0]["reason"] == "EvictionByEvictionAPI" and target[0]["status"] == "True"
    eventually(lambda: sim.kubectl("get", "pod", "lonely", "-n", NS, check=False).returncode != 0, timeout=60)

    mismatched = evict(sim, "lonely", {"metadata": {"name": "other"}})
    assert mismatched.returncode != 0 and "name in URL does not match name in Eviction object" in mismatched.stderr
    missing = evict(sim, "nonexistent")
    assert missing.returncode != 0 and 'pods "nonexistent" not found' in missing.stderr


def test_budget_refuses_with_429_until_scaled_up(sim: Cluster):
    apply(sim, replicaset("guarded", 2))
    apply(sim, pdb("guarded", "guarded", minAvailable=2))
    eventually(lambda: len(ready_pods(sim, "guarded")) == 2, timeout=60)
    eventually(lambda: pdb_status(sim, "guarded").get("currentHealthy") == 2, timeout=60)
    status = pdb_status(sim, "guarded")
    assert status["desiredHealthy"] == 2 and status["expectedPods"] == 2 and status["disruptionsAllowed"] == 0
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("DisruptionAllowed", "False", "InsufficientPods")]

    victim = ready_pods(sim, "guarded")[0]["metadata"]["name"]
    refused = evict(sim, victim)
    assert refused.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in refused.stderr

    sim.kubectl("scale", "rs/guarded", "-n", NS, "--replicas=3")
    eventually(lambda: pdb_status(sim, "guarded").get("disruptionsAllowed") == 1, timeout=60)
    assert pdb_status(sim, "guarded")["conditions"][0]["reason"] == "SufficientPods"
    allowed = evict(sim, victim)
    assert allowed.returncode == 0, allowed.stderr
    # The eviction took the disruption at once; the controller then sees the pod go and a replacement come.
    eventually(lambda: victim not in {p["metadata"]["name"] for p in ready_pods(sim, "guarded")}, timeout=60)
    eventually(lambda: len(ready_pods(sim, "guarded")) == 3 and pdb_status(sim, "guarded").get(
        "disruptionsAllowed") == 1 and not pdb_status(sim, "guarded").get("disruptedPods"), timeout=90)


def test_drain_respects_the_budget(sim: Cluster):
    apply(sim, replicaset("drained", 4))
    apply(sim, pdb("drained", "drained", maxUnavailable=1))
    eventually(lambda: len(ready_pods(sim, "drained")) == 4, timeout=60)
    eventually(lambda: pdb_status(sim, "drained").get("disruptionsAllowed") == 1, timeout=60)
    on_node = {}
    for pod in ready_pods(sim, "drained"):
        on_node.setdefault(pod["spec"]["nodeName"], []).append(pod["metadata"]["name"])
    node = max(on_node, key=lambda n: len(on_node[n]))

    dry = sim.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--dry-run=server",
                      "--timeout=60s", timeout=90)
    assert f"node/{node} cordoned (server dry run)" in dry.stdout, dry.stdout
    assert not sim.kubectl_json("get", "node", node)["spec"].get("unschedulable")
    assert len(ready_pods(sim, "drained")) == 4

    try:
        drained = sim.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s",
                              timeout=180)
        assert f"node/{node} drained" in drained.stdout, drained.stdout
        for name in on_node[node]:
            assert f"pod/{name} evicted" in drained.stdout
        assert sim.kubectl_json("get", "node", node)["spec"].get("unschedulable") is True
        eventually(lambda: len(ready_pods(sim, "drained")) == 4 and all(
            p["spec"]["nodeName"] != node for p in ready_pods(sim, "drained")), timeout=90)
    finally:
        sim.kubectl("uncordon", node)


def test_drain_needs_force_for_bare_pods_and_can_delete_instead_of_evicting(sim: Cluster):
    node = sim.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"]
    sim.kubectl("run", "bare", "--image=nginx", "-n", NS, "--overrides", json.dumps(
        {"spec": {"nodeName": node, "terminationGracePeriodSeconds": 1}}))
    sim.kubectl("wait", "--for=condition=Ready", "pod/bare", "-n", NS, "--timeout=60s")
    try:
        refused = sim.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s",
                              check=False, timeout=60)
        assert refused.returncode != 0
        assert "cannot delete Pods that declare no controller (use --force to override): evict/bare" in \
            refused.stderr
        drained = sim.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                              "--disable-eviction", "--timeout=90s", timeout=120)
        assert "pod/bare deleted" in drained.stdout and f"node/{node} drained" in drained.stdout, drained.stdout
        assert sim.kubectl("get", "pod", "bare", "-n", NS, check=False).returncode != 0
    finally:
        sim.kubectl("uncordon", node)


def test_a_pod_under_two_budgets_cannot_be_evicted(sim: Cluster):
    sim.kubectl("run", "twice", "--image=nginx", "-n", NS, "--labels=app=twice")
    sim.kubectl("wait", "--for=condition=Ready", "pod/twice", "-n", NS, "--timeout=60s")  # pending pods bypass PDBs
    apply(sim, pdb("twice-a", "twice", maxUnavailable=1))
    apply(sim, pdb("twice-b", "twice", minAvailable=0))
    result = evict(sim, "twice")
    assert result.returncode != 0
    assert "Internal error occurred: This pod has more than one PodDisruptionBudget, which the eviction " \
           "subresource does not support." in result.stderr
    assert sim.kubectl("get", "pod", "twice", "-n", NS, check=False).returncode == 0


def test_the_kubernetes_client_evicts_and_sees_the_429(sim: Cluster):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    sim.kubectl("run", "viaclient", "--image=nginx", "-n", NS, "--labels=app=viaclient")
    sim.kubectl("wait", "--for=condition=Ready", "pod/viaclient", "-n", NS, "--timeout=60s")
    apply(sim, pdb("viaclient", "viaclient", minAvailable=1))
    eventually(lambda: pdb_status(sim, "viaclient").get("currentHealthy") == 1, timeout=60)
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(sim.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="viaclient", namespace=NS))
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod_eviction("viaclient", NS, eviction)
        assert refused.value.status == 429
        assert json.loads(refused.value.body)["details"]["causes"][0]["reason"] == "DisruptionBudget"
        sim.kubectl("delete", "pdb", "viaclient", "-n", NS)
        core.create_namespaced_pod_eviction("viaclient", NS, eviction)
    eventually(lambda: sim.kubectl("get", "pod", "viaclient", "-n", NS, check=False).returncode != 0, timeout=60)
