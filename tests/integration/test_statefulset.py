"""StatefulSets on an all-in-one `pyk8s server --simulated-nodes 2`, through the real kubectl.

The claims stay Pending (no volume provisioner yet); the simulated nodes run the pods anyway."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conftest import Cluster, eventually


@pytest.fixture(scope="module")
def sts_cluster(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("statefulset"), ("--simulated-nodes", "2"))
    cluster.start()
    eventually(lambda: len(cluster.kubectl_json("get", "nodes")["items"]) == 2, timeout=60)
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", timeout=90)
    yield cluster
    cluster.stop()


def statefulset(name: str, replicas: int, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}, **spec}}


def claim_template(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}}


def setup_namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}}))
    return name


def live_pods(cluster: Cluster, ns: str, app: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")[
        "items"] if not p["metadata"].get("deletionTimestamp")}


def rollout_status(cluster: Cluster, ns: str, name: str) -> str:
    out = cluster.kubectl("rollout", "status", f"sts/{name}", "-n", ns, "--timeout=120s", timeout=150, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_ordered_creation_identity_claims_and_rolling_update(sts_cluster: Cluster):
    c = sts_cluster
    ns = setup_namespace(c, "sts-ordered")
    spec = statefulset("db", 3, volumeClaimTemplates=[claim_template("data")],
                       persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"})
    c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(spec))
    rollout_status(c, ns, "db")
    pods = live_pods(c, ns, "db")
    assert sorted(pods) == ["db-0", "db-1", "db-2"]
    # OrderedReady: each pod was created after its predecessor was ready.
    created = [pods[f"db-{i}"]["metadata"]["creationTimestamp"] for i in range(3)]
    assert created == sorted(created)
    sts = c.kubectl_json("get", "sts", "db", "-n", ns)
    for i in range(3):
        pod = pods[f"db-{i}"]
        assert pod["spec"]["hostname"] == f"db-{i}" and pod["spec"]["subdomain"] == "db"
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == f"db-{i}"
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == str(i)
        assert pod["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["updateRevision"]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-db-{i}"}} in pod["spec"]["volumes"]
        assert pod["status"]["phase"] == "Running"
    claims = {p["metadata"]["name"]: p for p in c.kubectl_json("get", "pvc", "-n", ns)["items"]}
    assert sorted(claims) == ["data-db-0", "data-db-1", "data-db-2"]
    for claim in claims.values():
        assert claim["metadata"]["labels"] == {"app": "db"}
        [ref] = claim["metadata"]["ownerReferences"]  # whenDeleted: Delete → owned by the set
        assert ref["kind"] == "StatefulSet" and ref["uid"] == sts["metadata"]["uid"]
    status = sts["status"]
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"], status["updatedReplicas"],
            status["availableReplicas"], status["observedGeneration"]) == (3, 3, 3, 3, 3, 1)
    assert status["currentRevision"] == status["updateRevision"]

    # A rolling update replaces pods from the highest ordinal down; names and claims survive.
    c.kubectl("set", "image", "sts/db", "db=postgres:17", "-n", ns)
    rollout_status(c, ns, "db")
    pods = eventually(lambda: (p := live_pods(c, ns, "db")) and len(p) == 3 and all(
        x["spec"]["containers"][0]["image"] == "postgres:17" and x["status"].get("phase") == "Running"
        for x in p.values()) and p, timeout=90)
    sts = c.kubectl_json("get", "sts", "db", "-n", ns)
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    assert len(c.kubectl_json("get", "controllerrevisions", "-n", ns)["items"]) == 2
    assert sorted(pods) == ["db-0", "db-1", "db-2"]
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["updateRevision"]
               for p in pods.values())
    history = c.kubectl("rollout", "history", "sts/db", "-n", ns).stdout
    assert "REVISION" in history

    # Scale down removes the highest ordinals; their claims stay (whenScaled: Retain).
    c.kubectl("scale", "sts/db", "-n", ns, "--replicas=1")
    eventually(lambda: sorted(live_pods(c, ns, "db")) == ["db-0"], timeout=60)
    assert len(c.kubectl_json("get", "pvc", "-n", ns)["items"]) == 3
    # Deleting the set deletes the claims it owns (whenDeleted: Delete).
    c.kubectl("delete", "sts", "db", "-n", ns)
    eventually(lambda: c.kubectl_json("get", "pvc", "-n", ns)["items"] == [], timeout=60)


def test_parallel_partition_ordinals_start_and_on_delete(sts_cluster: Cluster):
    c = sts_cluster
    ns = setup_namespace(c, "sts-parallel")
    spec = statefulset("web", 4, podManagementPolicy="Parallel", ordinals={"start": 5},
                       updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(spec))
    eventually(lambda: sorted(live_pods(c, ns, "web")) == ["web-5", "web-6", "web-7", "web-8"], timeout=60)
    eventually(lambda: c.kubectl_json("get", "sts", "web", "-n", ns)["status"].get("readyReplicas") == 4,
               timeout=60)
    assert live_pods(c, ns, "web")["web-5"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "5"

    # Partition 2: only the pods at index >= 2 (ordinals 7 and 8) move to the new revision.
    c.kubectl("set", "image", "sts/web", "db=postgres:17", "-n", ns)

    def images() -> dict[str, str]:
        return {n: p["spec"]["containers"][0]["image"] for n, p in live_pods(c, ns, "web").items()}

    eventually(lambda: images() == {"web-5": "postgres:16", "web-6": "postgres:16", "web-7": "postgres:17",
                                    "web-8": "postgres:17"}, timeout=90)
    eventually(lambda: (s := c.kubectl_json("get", "sts", "web", "-n", ns)["status"]).get("updatedReplicas") == 2
               and s.get("currentReplicas") == 2 and s["currentRevision"] != s["updateRevision"], timeout=60)
    out = c.kubectl("rollout", "status", "sts/web", "-n", ns, "--timeout=60s", timeout=90, check=False)
    assert out.returncode == 0 and "partitioned roll out complete: 2 new pods have been updated" in out.stdout

    # OnDelete: a template change waits for pods to be deleted by hand.
    c.kubectl("patch", "sts", "web", "-n", ns, "--type=merge", "-p",
              json.dumps({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}))
    c.kubectl("set", "image", "sts/web", "db=postgres:18", "-n", ns)
    eventually(lambda: c.kubectl_json("get", "sts", "web", "-n", ns)["status"].get("observedGeneration") == 4)
    assert "postgres:18" not in images().values()
    c.kubectl("delete", "pod", "web-6", "-n", ns)
    eventually(lambda: images().get("web-6") == "postgres:18", timeout=60)
    assert images()["web-8"] == "postgres:17"


def test_scale_down_with_when_scaled_delete(sts_cluster: Cluster):
    c = sts_cluster
    ns = setup_namespace(c, "sts-scaled")
    spec = statefulset("cache", 2, volumeClaimTemplates=[claim_template("data")],
                       persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(spec))
    rollout_status(c, ns, "cache")
    claims = c.kubectl_json("get", "pvc", "-n", ns)["items"]
    assert sorted(p["metadata"]["name"] for p in claims) == ["data-cache-0", "data-cache-1"]
    assert all(not p["metadata"].get("ownerReferences") for p in claims)  # nothing owns them while in range
    c.kubectl("scale", "sts/cache", "-n", ns, "--replicas=1")
    eventually(lambda: sorted(p["metadata"]["name"] for p in c.kubectl_json("get", "pvc", "-n", ns)["items"])
               == ["data-cache-0"], timeout=60)
