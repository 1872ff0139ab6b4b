"""Pods' binding and graceful deletion, and a server restart keeping every object."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from conftest import Cluster


def _pod(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}],
                                "terminationGracePeriodSeconds": 30}})


def test_binding_and_graceful_pod_deletion(cluster: Cluster, namespace: str, api_client):
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_pod("p"))
    core.create_namespaced_pod_binding("p", namespace, {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}, _preload_content=False)
    pod = cluster.kubectl_json("get", "pod", "p", "-n", namespace)
    assert pod["spec"]["nodeName"] == "node-a"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in pod["status"]["conditions"])
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod_binding("p", namespace, {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-b"}}, _preload_content=False)
    assert exc.value.status == 409
    # A bound pod waits for its kubelet: deletion only marks it.
    cluster.kubectl("delete", "pod", "p", "-n", namespace, "--wait=false")
    pod = cluster.kubectl_json("get", "pod", "p", "-n", namespace)
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30 and pod["metadata"]["deletionTimestamp"]
    status = cluster.kubectl("get", "pod", "p", "-n", namespace).stdout.splitlines()[1].split()[2]
    assert status == "Terminating"
    cluster.kubectl("delete", "pod", "p", "-n", namespace, "--grace-period=0", "--force")
    assert cluster.kubectl("get", "pod", "p", "-n", namespace, check=False).returncode != 0


def test_restart_keeps_every_object(tmp_path):
    cluster = Cluster(tmp_path)
    cluster.start()
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "default"},
             "data": {"a": "1"}}))
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
               "spec": {"ports": [{"port": 80}]}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(svc))
        before = cluster.kubectl_json("get", "cm", "kept", "-n", "default")
        ip = cluster.kubectl_json("get", "svc", "s", "-n", "default")["spec"]["clusterIP"]
        assert cluster.stop() == 0
        cluster.start()
        after = cluster.kubectl_json("get", "cm", "kept", "-n", "default")
        assert after == before
        assert cluster.kubectl_json("get", "svc", "s", "-n", "default")["spec"]["clusterIP"] == ip
        # The allocator remembers what is taken: asking for that IP again is refused.
        clash = dict(svc, metadata={"name": "s2", "namespace": "default"}, spec={"clusterIP": ip,
                                                                                "ports": [{"port": 80}]})
        result = cluster.kubectl("apply", "-f", "-", input=json.dumps(clash), check=False)
        assert result.returncode != 0 and "already allocated" in result.stderr
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later", "namespace": "default"}}))
        later = cluster.kubectl_json("get", "cm", "later", "-n", "default")
        assert int(later["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
        # History from before the restart is gone: a watch from there is told to relist (410).
        from test_http import request

        code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1")
        event = json.loads(body.splitlines()[0])
        assert code == 200 and event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    finally:
        if cluster.process is not None:
            cluster.stop()


def test_static_token_authentication(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cr3t-token,alice,uid-1,"devs,system:masters"\n')
    cluster = Cluster(tmp_path / "data", ("--token-file", str(tokens)))
    cluster.start()
    try:
        config = cluster.kubeconfig.read_text()
        kubeconfig = tmp_path / "token.kubeconfig"
        import yaml

        doc = yaml.safe_load(config)
        doc["users"][0]["user"] = {"token": "s3cr3t-token"}
        kubeconfig.write_text(yaml.safe_dump(doc))
        import subprocess

        from conftest import KUBECTL

        ok = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "ns", "default", "-o", "name"],
                            capture_output=True, text=True)
        assert ok.returncode == 0 and ok.stdout.strip() == "namespace/default"
        doc["users"][0]["user"] = {"token": "wrong"}
        kubeconfig.write_text(yaml.safe_dump(doc))
        bad = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "ns"], capture_output=True, text=True)
        assert bad.returncode != 0 and "You must be logged in to the server" in bad.stderr
    finally:
        cluster.stop()


def test_pyk8s_kubectl_uses_the_cluster_kubeconfig(cluster: Cluster):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pyk8s.cli", "kubectl", "--data-dir", str(cluster.data_dir),
                          "get", "ns", "kube-system", "-o", "name", "--cache-dir", str(cluster.cache_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "namespace/kube-system"
