"""A whole single-machine cluster on real containers: `pyk8s server` with its own node (containerd, kubelet,
service proxy, cluster DNS), all inside a network namespace the test creates, driven by the real kubectl and
the `kubernetes` Python client from outside it (through the fixture's loopback forwarder)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream

from pyk8s.kubelet.runtime.containerd import configured_snapshotter
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import KUBECTL, NetnsCluster, eventually_async

IMAGE = "pyk8s.local/busybox-cluster:1.0"


@pytest.fixture
async def cluster(netns_cluster: NetnsCluster, tmp_path: Path) -> NetnsCluster:
    """The cluster with its node Ready and a busybox image in the node's containerd."""
    c = netns_cluster

    async def registered() -> bool:
        return c.kubectl("get", "node", c.node_name, check=False).returncode == 0
    await eventually_async(registered, timeout=90, interval=1)
    await asyncio.to_thread(c.kubectl, "wait", "--for=condition=Ready", f"node/{c.node_name}", "--timeout=120s",
                            timeout=150)
    # The server labels its own node (a kubelet may not give itself node-role labels under NodeRestriction).
    await asyncio.to_thread(c.kubectl, "wait", "--for=jsonpath={.metadata.labels.node-role\\.kubernetes\\.io/"
                            "control-plane}=true", f"node/{c.node_name}", "--timeout=60s", timeout=90)
    build_oci_archive(busybox_image(IMAGE), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", c.agent_dir / "containerd" / "containerd.sock",
                         configured_snapshotter(c.agent_dir))
    await asyncio.to_thread(c.kubectl, "wait", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90)
    return c


def apply(c: NetnsCluster, *objects: dict) -> None:
    c.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objects))


def deployment(name: str, script: str, **pod_spec) -> dict:
    container = {"name": name, "image": IMAGE, "command": ["sh", "-c", script]}
    container.update(pod_spec.pop("container", {}))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container], "terminationGracePeriodSeconds": 2,
                                           **pod_spec}}}}


def pod_of(c: NetnsCluster, app: str) -> str:
    pods = [p for p in c.kubectl_json("get", "pods", "-l", f"app={app}")["items"]
            if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 1, pods
    return pods[0]["metadata"]["name"]


def rollout(c: NetnsCluster, name: str) -> None:
    result = c.kubectl("rollout", "status", f"deployment/{name}", "--timeout=150s", timeout=180, check=False)
    if result.returncode != 0:
        pods = c.kubectl("get", "pods", "-o", "wide", check=False).stdout
        events = c.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout
        raise AssertionError(f"rollout of {name} failed: {result.stderr}\n{pods}\n{events}\n{c.server_log()}")


async def test_deployment_logs_exec_cp_and_live_config(cluster: NetnsCluster, tmp_path: Path) -> None:
    c = cluster
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
                  "data": {"greeting": "hello"}}
    web = deployment("web", "echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
                     volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}],
                     container={"volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                                "env": [{"name": "POD_NAME",
                                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                "readinessProbe": {"exec": {"command": ["cat", "/etc/cfg/greeting"]},
                                                   "periodSeconds": 1}})
    await asyncio.to_thread(apply, c, config_map, web)
    await asyncio.to_thread(rollout, c, "web")
    pod = pod_of(c, "web")

    logs = c.kubectl("logs", pod).stdout
    assert logs.startswith("started\ntick 0\n")
    assert len(c.kubectl("logs", pod, "--tail", "1").stdout.splitlines()) == 1
    assert c.kubectl("exec", pod, "--", "cat", "/etc/cfg/greeting").stdout == "hello"
    assert c.kubectl("exec", pod, "--", "sh", "-c", "echo $POD_NAME").stdout.strip() == pod
    failed = c.kubectl("exec", pod, "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3 and "command terminated with exit code 3" in failed.stderr
    echoed = c.kubectl("exec", "-i", pod, "--", "sh", "-c", "cat | wc -c", input="four")
    assert echoed.stdout.strip() == "4"

    # kubectl cp both ways (tar over exec).
    (tmp_path / "up.txt").write_text("copied up\n")
    c.kubectl("cp", str(tmp_path / "up.txt"), f"default/{pod}:/tmp/up.txt")
    c.kubectl("cp", f"default/{pod}:/tmp/up.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "copied up\n"

    # The Python client's exec (WebSocket v4.channel.k8s.io) through the same path.
    k8s_config.load_kube_config(str(c.kubeconfig))
    core = k8s.CoreV1Api()
    out = stream(core.connect_get_namespaced_pod_exec, pod, "default", command=["cat", "/etc/cfg/greeting"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "hello"

    # A ConfigMap update reaches the mounted file without a restart.
    c.kubectl("patch", "configmap", "cfg", "-p", json.dumps({"data": {"greeting": "bye"}}))

    async def updated() -> bool:
        return c.kubectl("exec", pod, "--", "cat", "/etc/cfg/greeting").stdout == "bye"
    await eventually_async(updated, timeout=90, interval=2)
    status = c.kubectl_json("get", "pod", pod)["status"]
    assert status["containerStatuses"][0]["restartCount"] == 0 and status["phase"] == "Running"


async def test_service_dns_port_forward_and_job(cluster: NetnsCluster, tmp_path: Path) -> None:
    c = cluster
    serve = "mkdir -p /www; echo hi-from-$(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www"
    echo = deployment("echo", serve,
                      container={"ports": [{"containerPort": 8080, "name": "http"}]})
    client = deployment("client", "exec sleep 3600")
    await asyncio.to_thread(apply, c, echo, client)
    await asyncio.to_thread(rollout, c, "echo")
    await asyncio.to_thread(rollout, c, "client")
    c.kubectl("expose", "deployment", "echo", "--port", "80", "--target-port", "http")
    echo_pod, client_pod = pod_of(c, "echo"), pod_of(c, "client")

    # From another pod: the Service by its DNS name (cluster DNS behind 10.43.0.10, routed by the proxy).
    async def reached() -> str | None:
        result = c.kubectl("exec", client_pod, "--", "timeout", "5", "wget", "-qO-",
                           "http://echo.default.svc.cluster.local/", check=False)
        return result.stdout if result.returncode == 0 else None
    assert await eventually_async(reached, timeout=90, interval=2) == f"hi-from-{echo_pod}\n"
    lookup = c.kubectl("exec", client_pod, "--", "nslookup", "kubernetes.default.svc.cluster.local").stdout
    assert "10.43.0.1" in lookup

    # The pod's projected ServiceAccount token (written by the node's volume manager) is the pod's identity:
    # the API takes it as the pod's ServiceAccount, bound to this pod, and RBAC decides what it may do.
    # (busybox's wget fails the apiserver's TLS handshake, so the token is used from the test.)
    token = c.kubectl("exec", client_pod, "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token").stdout
    assert c.kubectl("exec", client_pod, "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
                     ).stdout == "default"
    admin = yaml.safe_load(c.kubeconfig.read_text())
    pod_config = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
                  "users": [{"name": "pod", "user": {"token": token}}],
                  "contexts": [{"name": "pod", "context": {"cluster": admin["clusters"][0]["name"], "user": "pod"}}],
                  "current-context": "pod"}
    (tmp_path / "pod-kubeconfig.yaml").write_text(yaml.safe_dump(pod_config))
    as_pod = ("--kubeconfig", str(tmp_path / "pod-kubeconfig.yaml"))
    whoami = json.loads(c.kubectl("auth", "whoami", "-o", "json", *as_pod).stdout)["status"]["userInfo"]
    assert whoami["username"] == "system:serviceaccount:default:default"
    assert whoami["extra"]["authentication.kubernetes.io/pod-name"] == [client_pod]
    assert "forbidden" in c.kubectl("get", "pods", *as_pod, check=False).stderr
    c.kubectl("create", "rolebinding", "default-view", "--clusterrole=view", "--serviceaccount=default:default")

    async def listed() -> bool:
        return client_pod in c.kubectl("get", "pods", "-o", "name", *as_pod, check=False).stdout
    await eventually_async(listed, timeout=30, interval=1)

    # kubectl port-forward: a local port on the test's loopback to the pod's port 8080.
    forward = subprocess.Popen([KUBECTL, "--kubeconfig", str(c.kubeconfig), "port-forward", f"pod/{echo_pod}",
                                "0:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        assert line.startswith("Forwarding from 127.0.0.1:"), (line, forward.stderr.read() if forward.poll() else "")
        port = int(line.split("127.0.0.1:", 1)[1].split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as resp:
            assert resp.read().decode() == f"hi-from-{echo_pod}\n"
    finally:
        forward.terminate()
        forward.wait(timeout=30)

    # A Job runs to completion on the node.
    c.kubectl("create", "job", "once", f"--image={IMAGE}", "--", "sh", "-c", "echo job-done")
    c.kubectl("wait", "--for=condition=complete", "job/once", "--timeout=120s", timeout=150)
    assert c.kubectl("logs", "job/once").stdout == "job-done\n"
