"""kubectl's patch-based commands (strategic merge patch) and typed create commands (protobuf bodies)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import Cluster

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [
                              {"name": "app", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}],
                               "ports": [{"containerPort": 80}]},
                              {"name": "sidecar", "image": "busybox:1.36"}]}}},
}


def _deploy(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(DEPLOYMENT))


def _get(cluster: Cluster, namespace: str) -> dict:
    return cluster.kubectl_json("get", "deploy", "web", "-n", namespace)


def test_apply_again_computes_a_three_way_patch(cluster: Cluster, namespace: str):
    _deploy(cluster, namespace)
    modified = json.loads(json.dumps(DEPLOYMENT))
    containers = modified["spec"]["template"]["spec"]["containers"]
    containers[0]["image"] = "nginx:1.28"
    containers[0]["env"] = [{"name": "B", "value": "2"}]
    del containers[1]
    modified["spec"]["replicas"] = 3
    out = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(modified)).stdout
    assert "configured" in out
    obj = _get(cluster, namespace)
    live = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in live] == ["app"]
    assert live[0]["image"] == "nginx:1.28" and live[0]["env"] == [{"name": "B", "value": "2"}]
    assert live[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert obj["spec"]["replicas"] == 3 and obj["metadata"]["generation"] == 2
    unchanged = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(modified)).stdout
    assert "unchanged" in unchanged
    assert _get(cluster, namespace)["metadata"]["generation"] == 2


def test_set_and_rollout_commands(cluster: Cluster, namespace: str):
    _deploy(cluster, namespace)
    cluster.kubectl("set", "image", "-n", namespace, "deploy/web", "app=nginx:1.29")
    cluster.kubectl("set", "env", "-n", namespace, "deploy/web", "-c", "app", "C=3")
    cluster.kubectl("set", "resources", "-n", namespace, "deploy/web", "-c", "app", "--limits=cpu=200m")
    obj = _get(cluster, namespace)
    app = obj["spec"]["template"]["spec"]["containers"][0]
    assert app["image"] == "nginx:1.29"
    assert {"name": "C", "value": "3"} in app["env"] and {"name": "A", "value": "1"} in app["env"]
    assert app["resources"]["limits"] == {"cpu": "200m"}
    assert obj["spec"]["template"]["spec"]["containers"][1]["image"] == "busybox:1.36"
    cluster.kubectl("rollout", "restart", "-n", namespace, "deploy/web")
    annotations = _get(cluster, namespace)["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    cluster.kubectl("rollout", "pause", "-n", namespace, "deploy/web")
    assert _get(cluster, namespace)["spec"]["paused"] is True
    cluster.kubectl("rollout", "resume", "-n", namespace, "deploy/web")
    assert "paused" not in _get(cluster, namespace)["spec"]


def test_edit_with_an_editor(cluster: Cluster, namespace: str, tmp_path):
    _deploy(cluster, namespace)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/image: busybox:1.36/image: busybox:1.37/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    result = cluster.kubectl("edit", "-n", namespace, "deploy/web", env={**os.environ, "EDITOR": str(editor)})
    assert "edited" in result.stdout
    assert _get(cluster, namespace)["spec"]["template"]["spec"]["containers"][1]["image"] == "busybox:1.37"


def test_patch_default_type_and_directives(cluster: Cluster, namespace: str):
    _deploy(cluster, namespace)
    cluster.kubectl("patch", "-n", namespace, "deploy/web", "-p",
                    '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}')
    names = [c["name"] for c in _get(cluster, namespace)["spec"]["template"]["spec"]["containers"]]
    assert names == ["app"]
    bad = cluster.kubectl("patch", "-n", namespace, "deploy/web", "-p",
                          '{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}', check=False)
    assert bad.returncode != 0


def test_node_cordon_and_taint(cluster: Cluster):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "patch-node"}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(node))
    cluster.kubectl("cordon", "patch-node")
    cluster.kubectl("taint", "nodes", "patch-node", "dedicated=gpu:NoSchedule")
    obj = cluster.kubectl_json("get", "node", "patch-node")
    assert obj["spec"]["unschedulable"] is True
    dedicated = [t for t in obj["spec"]["taints"] if t["key"] == "dedicated"]
    assert dedicated == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    row = cluster.kubectl("get", "node", "patch-node").stdout.splitlines()[1].split()
    assert row[1].endswith("SchedulingDisabled")
    cluster.kubectl("uncordon", "patch-node")
    cluster.kubectl("taint", "nodes", "patch-node", "dedicated-")
    obj = cluster.kubectl_json("get", "node", "patch-node")
    # The node lifecycle controller manages its own taints (node.kubernetes.io/*); ours is gone.
    assert "unschedulable" not in obj["spec"]
    assert not [t for t in obj["spec"].get("taints") or [] if t["key"] == "dedicated"]
    cluster.kubectl("delete", "node", "patch-node")


def test_python_client_dict_patch_is_strategic(api_client, namespace: str):
    from kubernetes import client

    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, DEPLOYMENT)
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx:1.30"}]}}}})
    containers = apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("app", "nginx:1.30"), ("sidecar", "busybox:1.36")]


@pytest.mark.parametrize("args", [
    ["create", "deployment", "d1", "--image=nginx:1.27", "--replicas=2"],
    ["create", "configmap", "c1", "--from-literal=a=b"],
    ["create", "secret", "generic", "s1", "--from-literal=p=q"],
    ["create", "serviceaccount", "sa1"],
    ["create", "service", "nodeport", "svc1", "--tcp=80:8080"],
    ["create", "job", "j1", "--image=busybox:1.36"],
    ["create", "cronjob", "cj1", "--image=busybox:1.36", "--schedule=*/5 * * * *"],
    ["create", "quota", "q1", "--hard=pods=5"],
    ["create", "role", "r1", "--verb=get", "--resource=pods"],
    ["create", "rolebinding", "rb1", "--role=r1", "--user=u"],
    ["create", "pdb", "p1", "--selector=app=x", "--min-available=1"],
    ["create", "ingress", "i1", "--rule=a.test/=svc:80"],
])
def test_typed_create_commands_send_protobuf(cluster: Cluster, namespace: str, args: list[str]):
    result = cluster.kubectl(*args, "-n", namespace)
    assert "created" in result.stdout
    kind_and_name = result.stdout.split()[0]
    obj = cluster.kubectl_json("get", kind_and_name, "-n", namespace)
    assert obj["metadata"]["uid"]


def test_autoscale_and_cluster_scoped_creates(cluster: Cluster, namespace: str):
    cluster.kubectl("create", "deployment", "d", "--image=nginx:1.27", "-n", namespace)
    cluster.kubectl("autoscale", "deployment", "d", "--max=4", "--cpu-percent=60", "-n", namespace)
    hpa = cluster.kubectl_json("get", "hpa.v2.autoscaling", "d", "-n", namespace)
    assert hpa["spec"]["maxReplicas"] == 4
    name = f"pc-{namespace}"[:60]
    cluster.kubectl("create", "priorityclass", name, "--value=100")
    assert cluster.kubectl_json("get", "priorityclass", name)["value"] == 100
    cluster.kubectl("create", "clusterrole", name, "--verb=get", "--resource=nodes")
    cluster.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", "--user=u")
    for resource in ("priorityclass", "clusterrolebinding", "clusterrole"):
        cluster.kubectl("delete", resource, name)


def test_diff_replace_force_and_wait(cluster: Cluster, namespace: str, tmp_path):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace},
          "data": {"a": "1"}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(cm))
    changed = tmp_path / "c.json"
    changed.write_text(json.dumps({**cm, "data": {"a": "2"}}))
    diff = cluster.kubectl("diff", "-f", str(changed), check=False)
    assert diff.returncode == 1 and '-  a: "1"' in diff.stdout and '+  a: "2"' in diff.stdout
    assert cluster.kubectl_json("get", "cm", "c", "-n", namespace)["data"] == {"a": "1"}  # server dry run
    uid = cluster.kubectl_json("get", "cm", "c", "-n", namespace)["metadata"]["uid"]
    cluster.kubectl("replace", "--force", "-f", str(changed))
    replaced = cluster.kubectl_json("get", "cm", "c", "-n", namespace)
    assert replaced["data"] == {"a": "2"} and replaced["metadata"]["uid"] != uid
    cluster.kubectl("wait", "--for=jsonpath={.data.a}=2", "cm/c", "-n", namespace, "--timeout=10s")
    _deploy(cluster, namespace)
    # This cluster has no scheduler, so pods never become ready: with 0 replicas the deployment controller
    # reports Available (and observes the new generation), which is what `kubectl wait` waits for.
    cluster.kubectl("scale", "deploy/web", "-n", namespace, "--replicas=0")
    cluster.kubectl("wait", "--for=condition=Available", "deploy/web", "-n", namespace, "--timeout=30s",
                    timeout=60)


def test_server_side_apply(cluster: Cluster, namespace: str, tmp_path):
    manifest = tmp_path / "d.json"
    manifest.write_text(json.dumps(dict(DEPLOYMENT, metadata={"name": "web", "namespace": namespace})))
    assert "serverside-applied" in cluster.kubectl("apply", "--server-side", "-f", str(manifest)).stdout
    obj = cluster.kubectl_json("get", "deploy", "web", "-n", namespace, "--show-managed-fields")
    apply_entry = next(e for e in obj["metadata"]["managedFields"] if e["operation"] == "Apply")
    assert apply_entry["manager"] == "kubectl" and apply_entry["fieldsType"] == "FieldsV1"
    assert "f:replicas" in apply_entry["fieldsV1"]["f:spec"]
    rv = obj["metadata"]["resourceVersion"]
    cluster.kubectl("apply", "--server-side", "-f", str(manifest))
    assert _get(cluster, namespace)["metadata"]["resourceVersion"] == rv  # an identical apply changes nothing
    cluster.kubectl("scale", "deploy", "web", "-n", namespace, "--replicas=4")
    conflict = cluster.kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert conflict.returncode != 0 and "Apply failed with 1 conflict" in conflict.stderr
    assert ".spec.replicas" in conflict.stderr
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    assert _get(cluster, namespace)["spec"]["replicas"] == 1
    # A field the applier stops applying (and alone owned) is removed.
    trimmed = json.loads(manifest.read_text())
    del trimmed["spec"]["template"]["spec"]["containers"][1]
    manifest.write_text(json.dumps(trimmed))
    cluster.kubectl("apply", "--server-side", "-f", str(manifest))
    names = [c["name"] for c in _get(cluster, namespace)["spec"]["template"]["spec"]["containers"]]
    assert names == ["app"]


def test_client_side_apply_migrates_to_server_side(cluster: Cluster, namespace: str, tmp_path):
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "m", "namespace": namespace}, "data": {"a": "1"}}))
    cluster.kubectl("apply", "-f", str(manifest))
    managers = {e["manager"] for e in cluster.kubectl_json("get", "cm", "m", "-n", namespace,
                                                           "--show-managed-fields")["metadata"]["managedFields"]}
    assert managers == {"kubectl-client-side-apply"}
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "m", "namespace": namespace}, "data": {"a": "2"}}))
    cluster.kubectl("apply", "--server-side", "-f", str(manifest))
    obj = cluster.kubectl_json("get", "cm", "m", "-n", namespace, "--show-managed-fields")
    assert obj["data"] == {"a": "2"}
    assert "kubectl" in {e["manager"] for e in obj["metadata"]["managedFields"]}


def test_apply_patch_needs_a_field_manager(cluster: Cluster, namespace: str):
    from test_http import request

    code, _, body = request(cluster, f"/api/v1/namespaces/{namespace}/configmaps/x", method="PATCH",
                            body=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
                            headers={"Content-Type": "application/apply-patch+yaml"})
    assert code == 422 and "fieldManager: Required value" in json.loads(body)["message"]
    code, _, body = request(cluster, f"/api/v1/namespaces/{namespace}/configmaps/x?fieldManager=me", method="PATCH",
                            body=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: v}\n",
                            headers={"Content-Type": "application/apply-patch+yaml"})
    assert code == 201 and json.loads(body)["data"] == {"k": "v"}
