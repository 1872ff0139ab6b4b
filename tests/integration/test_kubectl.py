"""The real kubectl against pyk8s: discovery, output forms, selectors, paging, describe, scale, errors."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

import pytest
import yaml

from conftest import KUBECTL, KUBECTL_132, Cluster, eventually, kubectl_132_available

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
}


def _configmap(name: str, labels: dict | None = None, data: dict | None = None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}})


def test_version_reports_1_32(cluster: Cluster):
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["major"] == "1" and out["serverVersion"]["minor"] == "32"


def test_api_resources_and_versions(cluster: Cluster):
    resources = cluster.kubectl("api-resources").stdout
    for expected in ("pods", "deployments", "horizontalpodautoscalers", "leases", "priorityclasses",
                     "endpointslices", "poddisruptionbudgets", "clusterrolebindings"):
        assert expected in resources
    pods_line = next(line for line in resources.splitlines() if line.startswith("pods "))
    assert pods_line.split()[1:4] == ["po", "v1", "true"]
    versions = cluster.kubectl("api-versions").stdout.split()
    for gv in ("v1", "apps/v1", "autoscaling/v1", "autoscaling/v2", "events.k8s.io/v1", "scheduling.k8s.io/v1"):
        assert gv in versions


def test_system_namespaces_and_kubernetes_service(cluster: Cluster):
    names = [ns["metadata"]["name"] for ns in cluster.kubectl_json("get", "ns")["items"]]
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert ns in names
    svc = cluster.kubectl_json("get", "svc", "kubernetes", "-n", "default")
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443
    endpoints = cluster.kubectl_json("get", "endpoints", "kubernetes", "-n", "default")
    assert endpoints["subsets"][0]["ports"][0]["port"] == cluster.port


def test_get_output_forms(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(DEPLOYMENT))
    # The deployment controller creates the pods; with no scheduler in this cluster they never become ready.
    eventually(lambda: (cluster.kubectl_json("get", "deploy", "web", "-n", namespace).get("status") or {}).get(
        "updatedReplicas") == 2)
    table = cluster.kubectl("get", "deploy", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "0/2", "2", "0"]
    wide = cluster.kubectl("get", "deploy", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["nginx", "nginx:1.27", "app=web"]
    all_ns = cluster.kubectl("get", "deploy", "-A").stdout.splitlines()
    assert all_ns[0].split()[0] == "NAMESPACE" and any(line.split()[:2] == [namespace, "web"] for line in all_ns)
    labels = cluster.kubectl("get", "deploy", "-n", namespace, "--show-labels").stdout.splitlines()
    assert labels[0].split()[-1] == "LABELS" and labels[1].split()[-1] == "app=web"
    columns = cluster.kubectl("get", "deploy", "-n", namespace, "-L", "app,missing").stdout.splitlines()
    assert columns[0].split()[-2:] == ["APP", "MISSING"] and columns[1].split()[-1] == "web"
    assert cluster.kubectl("get", "deploy", "web", "-n", namespace, "-o",
                           "jsonpath={.spec.template.spec.containers[0].image}").stdout == "nginx:1.27"
    assert cluster.kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.strip() == \
        "deployment.apps/web"
    obj = yaml.safe_load(cluster.kubectl("get", "deploy", "web", "-n", namespace, "-o", "yaml").stdout)
    # Upstream defaulting is visible to clients (rollout history compares defaulted templates).
    assert obj["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert obj["spec"]["revisionHistoryLimit"] == 10 and obj["spec"]["progressDeadlineSeconds"] == 600
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert obj["metadata"]["generation"] == 1
    sorted_out = cluster.kubectl("get", "deploy", "-n", namespace, "--sort-by=.metadata.name").stdout
    assert "web" in sorted_out


def test_short_names_and_get_all(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(DEPLOYMENT))
    out = cluster.kubectl("get", "all", "-n", namespace).stdout
    assert "deployment.apps/web" in out
    assert "web" in cluster.kubectl("get", "deploy", "-n", namespace).stdout
    assert cluster.kubectl("get", "po", "-n", namespace).returncode == 0


def test_label_selectors_field_selectors_and_paging(cluster: Cluster, namespace: str):
    for i in range(7):
        labels = {"a": ["x", "y", "z"][i % 3]}
        if i % 2:
            labels["b"] = "1"
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_configmap(f"cm-{i}", labels))
    names = lambda *args: sorted(  # noqa: E731
        i["metadata"]["name"] for i in cluster.kubectl_json("get", "cm", "-n", namespace, *args)["items"])
    assert names("-l", "a in (x,y),!b") == ["cm-0", "cm-4", "cm-6"]
    assert names("-l", "a=z") == ["cm-2", "cm-5"]
    assert names("-l", "a!=z,b") == ["cm-1", "cm-3"]
    assert names("--field-selector", "metadata.name=cm-3") == ["cm-3"]
    assert names("--field-selector", "metadata.name!=cm-3", "-l", "b") == ["cm-1", "cm-5"]
    paged = names("--chunk-size=2")
    assert [n for n in paged if n.startswith("cm-")] == [f"cm-{i}" for i in range(7)]
    bad = cluster.kubectl("get", "cm", "-n", namespace, "--field-selector", "spec.nope=1", check=False)
    assert bad.returncode != 0 and '"spec.nope" is not a known field selector' in bad.stderr
    bad = cluster.kubectl("get", "cm", "-n", namespace, "-l", "a in (", check=False)
    assert bad.returncode != 0


def test_describe(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(DEPLOYMENT))
    out = cluster.kubectl("describe", "deployment", "web", "-n", namespace).stdout
    assert "Name:" in out and "web" in out and "RollingUpdate" in out and "nginx:1.27" in out
    out = cluster.kubectl("describe", "namespace", namespace).stdout
    assert "Status:" in out and "Active" in out
    out = cluster.kubectl("describe", "svc", "kubernetes", "-n", "default").stdout
    assert "10.43.0.1" in out


def test_label_and_annotate(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_configmap("cm"))
    cluster.kubectl("label", "cm", "cm", "-n", namespace, "color=blue")
    cluster.kubectl("annotate", "cm", "cm", "-n", namespace, "note=hello world")
    obj = cluster.kubectl_json("get", "cm", "cm", "-n", namespace)
    assert obj["metadata"]["labels"]["color"] == "blue"
    assert obj["metadata"]["annotations"]["note"] == "hello world"
    cluster.kubectl("label", "cm", "cm", "-n", namespace, "color-")
    assert "color" not in (cluster.kubectl_json("get", "cm", "cm", "-n", namespace)["metadata"].get("labels") or {})
    bad = cluster.kubectl("label", "cm", "cm", "-n", namespace, "bad key=x", check=False)
    assert bad.returncode != 0


def test_scale_and_generation(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(DEPLOYMENT))
    cluster.kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=5")
    obj = cluster.kubectl_json("get", "deploy", "web", "-n", namespace)
    assert obj["spec"]["replicas"] == 5 and obj["metadata"]["generation"] == 2
    failed = cluster.kubectl("scale", "deployment", "web", "-n", namespace, "--current-replicas=3",
                             "--replicas=1", check=False)
    assert failed.returncode != 0
    cluster.kubectl("scale", "deployment", "web", "-n", namespace, "--current-replicas=5", "--replicas=1")
    assert cluster.kubectl_json("get", "deploy", "web", "-n", namespace)["spec"]["replicas"] == 1
    # The deployment controller writes status too: let it settle at generation 3 and 1 replica first.
    eventually(lambda: (lambda d: d["status"].get("observedGeneration") == 3 and d["status"].get("replicas") == 1)(
        cluster.kubectl_json("get", "deploy", "web", "-n", namespace)), timeout=30)
    # Status writes go through /status only, and do not bump the generation.
    cluster.kubectl("patch", "deploy", "web", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", '{"status":{"observedGeneration":3,"replicas":1}}')
    obj = cluster.kubectl_json("get", "deploy", "web", "-n", namespace)
    assert obj["status"]["observedGeneration"] == 3 and obj["metadata"]["generation"] == 3
    cluster.kubectl("patch", "deploy", "web", "-n", namespace, "--type=merge", "-p", '{"status":{"replicas":9}}')
    assert cluster.kubectl_json("get", "deploy", "web", "-n", namespace)["status"]["replicas"] == 1


def test_replace_with_stale_resource_version_conflicts(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_configmap("cm"))
    stale = cluster.kubectl_json("get", "cm", "cm", "-n", namespace)
    cluster.kubectl("label", "cm", "cm", "-n", namespace, "x=1")
    stale["data"] = {"k": "changed"}
    result = cluster.kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
    assert result.returncode != 0
    assert "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified" in result.stderr
    assert cluster.kubectl_json("get", "cm", "cm", "-n", namespace)["data"] == {"k": "v"}


def test_delete_with_finalizer_waits_for_its_removal(cluster: Cluster, namespace: str):
    cm = json.loads(_configmap("held"))
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(cm))
    cluster.kubectl("delete", "cm", "held", "-n", namespace, "--wait=false")
    obj = cluster.kubectl_json("get", "cm", "held", "-n", namespace)
    assert obj["metadata"]["deletionTimestamp"]
    added = cluster.kubectl("patch", "cm", "held", "-n", namespace, "--type=json",
                            "-p", '[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/more"}]',
                            check=False)
    assert added.returncode != 0 and "no new finalizers can be added" in added.stderr
    cluster.kubectl("patch", "cm", "held", "-n", namespace, "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers/0"}]')
    assert cluster.kubectl("get", "cm", "held", "-n", namespace, check=False).returncode != 0


def test_dry_run_server_persists_nothing(cluster: Cluster, namespace: str):
    out = cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=_configmap("dry")).stdout
    assert "dry" in out and "server dry run" in out
    assert cluster.kubectl("get", "cm", "dry", "-n", namespace, check=False).returncode != 0
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_configmap("dry"))
    cluster.kubectl("delete", "cm", "dry", "-n", namespace, "--dry-run=server")
    assert cluster.kubectl("get", "cm", "dry", "-n", namespace).returncode == 0


def test_explain_uses_the_real_schemas(cluster: Cluster):
    out = cluster.kubectl("explain", "deployment.spec.replicas").stdout
    assert "replicas" in out and "integer" in out
    out = cluster.kubectl("explain", "pods.spec.containers.ports").stdout
    assert "containerPort" in out


class LineReader:
    """Lines of a child's stdout, read on a thread (select() on a buffered pipe misses lines)."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, needle: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r} from {self.proc.args}") from None
            if line is None:
                raise AssertionError(f"{self.proc.args} ended: {self.proc.stderr.read()}")
            if needle in line:
                return line

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_watch_streams_changes(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_configmap("first"))
    base = [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cluster.cache_dir)]
    watch = LineReader([*base, "get", "cm", "-n", namespace, "-w", "--output-watch-events"])
    single = LineReader([*base, "get", "cm", "first", "-n", namespace, "-w"])
    try:
        watch.wait_for("first")
        single.wait_for("first")  # the initial row
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_configmap("second"))
        assert watch.wait_for("second").split()[0] == "ADDED"
        cluster.kubectl("label", "cm", "first", "-n", namespace, "changed=yes")
        assert watch.wait_for("first").split()[0] == "MODIFIED"
        single.wait_for("first")  # the change of the watched object
        cluster.kubectl("delete", "cm", "second", "-n", namespace)
        assert watch.wait_for("second").split()[0] == "DELETED"
    finally:
        watch.stop()
        single.stop()


@pytest.mark.parametrize(("body", "needle"), [
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}},
     'metadata.name: Invalid value: "Bad_Name"'),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}, "spec": {"x": 1}},
     'unknown field "spec"'),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
               "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}}},
     "spec.template.spec.containers[0].image: Required value"),
])
def test_bad_input_is_rejected_with_field_causes(cluster: Cluster, namespace: str, body: dict, needle: str):
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert needle in result.stderr
    name = body["metadata"]["name"]
    assert cluster.kubectl("get", body["kind"].lower(), name, "-n", namespace, check=False).returncode != 0


def test_writes_into_a_missing_namespace_are_refused(cluster: Cluster):
    result = cluster.kubectl("apply", "-n", "does-not-exist", "-f", "-", input=_configmap("x"), check=False)
    assert result.returncode != 0 and 'namespaces "does-not-exist" not found' in result.stderr


def test_services_get_cluster_ips_and_node_ports(cluster: Cluster, namespace: str):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
           "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(svc))
    obj = cluster.kubectl_json("get", "svc", "np", "-n", namespace)
    assert obj["spec"]["clusterIP"].startswith("10.43.") and obj["spec"]["clusterIPs"] == [obj["spec"]["clusterIP"]]
    node_port = obj["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    row = cluster.kubectl("get", "svc", "np", "-n", namespace).stdout.splitlines()[1].split()
    assert row[1] == "NodePort" and row[4] == f"80:{node_port}/TCP"
    clash = dict(svc, metadata={"name": "np2"})
    clash["spec"] = dict(svc["spec"], clusterIP=obj["spec"]["clusterIP"])
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(clash), check=False)
    assert result.returncode != 0 and "provided IP is already allocated" in result.stderr
    cluster.kubectl("delete", "svc", "np", "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(clash))


@pytest.mark.skipif(not kubectl_132_available(), reason="kubectl 1.32 is not on this machine")
def test_kubectl_1_32_basics(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(DEPLOYMENT), binary=KUBECTL_132)
    table = cluster.kubectl("get", "deploy", "-n", namespace, binary=KUBECTL_132).stdout.splitlines()
    assert table[1].split()[0] == "web"
    out = cluster.kubectl("get", "all", "-n", namespace, binary=KUBECTL_132).stdout
    assert "deployment.apps/web" in out
    out = cluster.kubectl("explain", "deployment.spec.strategy", binary=KUBECTL_132).stdout
    assert "rollingUpdate" in out
    cluster.kubectl("scale", "deploy", "web", "-n", namespace, "--replicas=3", binary=KUBECTL_132)
    cluster.kubectl("delete", "deploy", "web", "-n", namespace, binary=KUBECTL_132)
