"""DaemonSets on an all-in-one `pyk8s server --simulated-nodes 3`, through the real kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conftest import Cluster, eventually

NODES = ("sim-0", "sim-1", "sim-2")


@pytest.fixture(scope="module")
def ds_cluster(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("daemonset"), ("--simulated-nodes", "3"))
    cluster.start()
    eventually(lambda: len(cluster.kubectl_json("get", "nodes")["items"]) == 3, timeout=60)
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", timeout=90)
    yield cluster
    cluster.stop()


def daemonset(name: str, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "agent", "image": "busybox:1.36"}]}}, **spec}}


def setup_namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}}))
    return name


def live_pods(cluster: Cluster, ns: str, app: str) -> list[dict]:
    return [p for p in cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def rollout_status(cluster: Cluster, ns: str, name: str) -> None:
    out = cluster.kubectl("rollout", "status", f"ds/{name}", "-n", ns, "--timeout=120s", timeout=150, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'daemon set "{name}" successfully rolled out' in out.stdout


def test_one_pod_per_node_rolling_update_history_and_undo(ds_cluster: Cluster):
    c = ds_cluster
    ns = setup_namespace(c, "ds-rolling")
    c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(daemonset("agent")))
    rollout_status(c, ns, "agent")
    pods = live_pods(c, ns, "agent")
    assert sorted(p["spec"]["nodeName"] for p in pods) == list(NODES)
    ds = c.kubectl_json("get", "ds", "agent", "-n", ns)
    status = ds["status"]
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberReady"],
            status["updatedNumberScheduled"], status["numberAvailable"], status["numberMisscheduled"],
            status["observedGeneration"]) == (3, 3, 3, 3, 3, 0, ds["metadata"]["generation"])
    assert "numberUnavailable" not in status
    [revision] = c.kubectl_json("get", "controllerrevisions", "-n", ns)["items"]
    hash1 = revision["metadata"]["labels"]["controller-revision-hash"]
    assert revision["metadata"]["name"] == f"agent-{hash1}" and revision["revision"] == 1
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    for pod in pods:
        assert pod["metadata"]["labels"]["controller-revision-hash"] == hash1
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                           "values": [pod["spec"]["nodeName"]]}]}]
        keys = [(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]]
        assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
        assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in keys  # not hostNetwork

    c.kubectl("set", "image", "ds/agent", "agent=busybox:1.37", "-n", ns)
    rollout_status(c, ns, "agent")
    pods = eventually(lambda: (p := live_pods(c, ns, "agent")) and len(p) == 3 and all(
        x["spec"]["containers"][0]["image"] == "busybox:1.37" for x in p) and p, timeout=60)
    assert len({p["metadata"]["labels"]["controller-revision-hash"] for p in pods}) == 1
    history = c.kubectl("rollout", "history", "ds/agent", "-n", ns).stdout
    assert "REVISION" in history and "1" in history and "2" in history

    c.kubectl("rollout", "undo", "ds/agent", "-n", ns)
    rollout_status(c, ns, "agent")
    eventually(lambda: (p := live_pods(c, ns, "agent")) and len(p) == 3 and all(
        x["metadata"]["labels"]["controller-revision-hash"] == hash1 for x in p), timeout=60)
    revisions = {r["metadata"]["name"]: r["revision"]
                 for r in c.kubectl_json("get", "controllerrevisions", "-n", ns)["items"]}
    assert revisions[f"agent-{hash1}"] == 3  # the undone-to template is the newest revision again


def test_node_selector_taints_and_tolerations(ds_cluster: Cluster):
    c = ds_cluster
    ns = setup_namespace(c, "ds-placement")
    c.kubectl("label", "node", "sim-1", "disk=ssd")
    c.kubectl("taint", "node", "sim-2", "dedicated=infra:NoSchedule")
    try:
        only_ssd = daemonset("ssd")
        only_ssd["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
        c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(only_ssd))
        everywhere = daemonset("all")
        c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(everywhere))
        tolerant = daemonset("tolerant")
        tolerant["spec"]["template"]["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
        c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(tolerant))
        for name in ("ssd", "all", "tolerant"):
            rollout_status(c, ns, name)
        assert [p["spec"]["nodeName"] for p in live_pods(c, ns, "ssd")] == ["sim-1"]
        assert sorted(p["spec"]["nodeName"] for p in live_pods(c, ns, "all")) == ["sim-0", "sim-1"]
        assert sorted(p["spec"]["nodeName"] for p in live_pods(c, ns, "tolerant")) == list(NODES)
        assert c.kubectl_json("get", "ds", "all", "-n", ns)["status"]["desiredNumberScheduled"] == 2

        # The label goes: the pod on that node goes too. A cordoned node keeps its daemon pod.
        c.kubectl("label", "node", "sim-1", "disk-")
        eventually(lambda: live_pods(c, ns, "ssd") == [], timeout=60)
        c.kubectl("cordon", "sim-0")
        try:
            c.kubectl("delete", "pod", "-n", ns, "-l", "app=all", "--field-selector", "spec.nodeName=sim-0",
                      "--wait=false")
            # unschedulable is tolerated: the pod comes back on the cordoned node.
            eventually(lambda: "sim-0" in {p["spec"].get("nodeName") for p in live_pods(c, ns, "all")},
                       timeout=60)
        finally:
            c.kubectl("uncordon", "sim-0")
    finally:
        c.kubectl("taint", "node", "sim-2", "dedicated-", check=False)


def test_on_delete_strategy(ds_cluster: Cluster):
    c = ds_cluster
    ns = setup_namespace(c, "ds-ondelete")
    c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(daemonset("od", updateStrategy={"type": "OnDelete"})))
    eventually(lambda: len(live_pods(c, ns, "od")) == 3 and all(
        p["status"].get("phase") == "Running" for p in live_pods(c, ns, "od")), timeout=60)
    c.kubectl("set", "image", "ds/od", "agent=busybox:1.37", "-n", ns)
    eventually(lambda: c.kubectl_json("get", "ds", "od", "-n", ns)["status"].get("observedGeneration") == 2)
    assert all(p["spec"]["containers"][0]["image"] == "busybox:1.36" for p in live_pods(c, ns, "od"))
    assert c.kubectl_json("get", "ds", "od", "-n", ns)["status"].get("updatedNumberScheduled", 0) == 0
    victim = live_pods(c, ns, "od")[0]
    c.kubectl("delete", "pod", victim["metadata"]["name"], "-n", ns)
    eventually(lambda: sorted(p["spec"]["containers"][0]["image"] for p in live_pods(c, ns, "od"))
               == ["busybox:1.36", "busybox:1.36", "busybox:1.37"], timeout=60)
    eventually(lambda: c.kubectl_json("get", "ds", "od", "-n", ns)["status"].get("updatedNumberScheduled") == 1)
