"""The kubelet's VolumeManager and container_env against a real apiserver: ConfigMap/Secret volumes and env,
the kube-api-access projected volume with a TokenRequest token the apiserver accepts, live updates, and
FailedMount events."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from pathlib import Path

import pytest

from pyk8s.client import APIClient, APIStatusError, ClientConfig, EventRecorder
from pyk8s.kubelet.envvars import EnvVarError, container_env
from pyk8s.kubelet.object_cache import ObjectCache
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.volumes import VolumeError, VolumeManager

from conftest import Cluster

NODE = "vol-node"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


async def _eventually(check, timeout: float = 60, interval: float = 0.2):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last result: {last!r}")


@pytest.fixture
async def ns(client: APIClient, bare_cluster: Cluster) -> str:
    name = f"vol-{secrets.token_hex(3)}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # No controller-manager on the bare server: publish what its controllers would.
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "robot", "namespace": name}})
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt",
                                                                                "namespace": name},
                         "data": {"ca.crt": (bare_cluster.data_dir / "tls" / "ca.crt").read_text()}})
    try:
        await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                             "status": {"allocatable": {"cpu": "3", "memory": "2Gi"}}})
    except APIStatusError as exc:
        if exc.reason != "AlreadyExists":
            raise
    return name


def _pod(ns: str, volumes: list[dict], mounts: list[dict], env: list[dict] | None = None,
         env_from: list[dict] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
            "spec": {"nodeName": NODE, "serviceAccountName": "robot", "volumes": volumes,
                     "containers": [{"name": "app", "image": "busybox", "volumeMounts": mounts, "env": env or [],
                                     "envFrom": env_from or []}]}}


async def test_volumes_token_and_live_update(client: APIClient, ns: str, bare_cluster: Cluster,
                                             tmp_path: Path) -> None:
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                         "data": {"mode": "fast"}})
    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                         "data": {"password": base64.b64encode(b"s3cr3t").decode()}})
    pod = await client.create(_pod(ns, [
        {"name": "cfg", "configMap": {"name": "settings"}},
        {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "vault-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault"}},
            {"downwardAPI": {"items": [{"path": "mem", "resourceFieldRef": {"containerName": "app",
                                                                             "resource": "limits.memory",
                                                                             "divisor": "1Mi"}}]}}]}},
    ], [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"}]))
    # The ServiceAccount admission plugin added the kube-api-access volume and its mount.
    access = next(v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))

    manager = VolumeManager(client, KubeletPaths(tmp_path), NODE, resync_interval=0.5)
    await manager.mount_pod_volumes(pod)
    uid = pod["metadata"]["uid"]
    cfg = manager.paths.volume_dir(uid, "kubernetes.io~configmap", "cfg")
    assert (cfg / "mode").read_text() == "fast"
    assert (manager.paths.volume_dir(uid, "kubernetes.io~secret", "sec") / "password").read_bytes() == b"s3cr3t"
    vault = manager.paths.volume_dir(uid, "kubernetes.io~projected", "vault-token")
    assert (vault / "mem").read_text() == "2048"  # no memory limit: the node's allocatable, in Mi

    # The kube-api-access volume is exactly what an in-cluster client needs: its token authenticates as the pod's
    # service account (bound to the pod), its ca.crt verifies the apiserver, its namespace file names the namespace.
    sa_dir = manager.paths.volume_dir(uid, "kubernetes.io~projected", access["name"])
    review = await client.create({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                  "spec": {"token": (sa_dir / "token").read_text()}})
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{ns}:robot"
    assert review["status"]["user"]["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]
    config = ClientConfig.in_cluster(sa_dir, environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                                      "KUBERNETES_SERVICE_PORT": str(bare_cluster.port)})
    assert config.namespace == ns
    async with APIClient(config) as in_pod:
        with pytest.raises(APIStatusError) as denied:  # authenticated, but the account has no RBAC grants
            await in_pod.get("configmaps", "settings", ns)
    assert denied.value.code == 403 and f"system:serviceaccount:{ns}:robot" in denied.value.message
    # The audience-scoped token is for "vault" only: the apiserver does not accept it for itself.
    review = await client.create({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                  "spec": {"token": (vault / "vault").read_text(), "audiences": ["vault"]}})
    assert review["status"]["authenticated"] is True and review["status"]["audiences"] == ["vault"]

    # Live update: the resync loop brings a ConfigMap change into the volume through a ..data swap.
    first_version = os.readlink(cfg / "..data")
    runner = asyncio.create_task(manager.run())
    try:
        await client.patch("configmaps", "settings", {"data": {"mode": "slow"}}, ns)

        async def updated():
            return (cfg / "mode").read_text() == "slow"

        await _eventually(updated)
        assert os.readlink(cfg / "..data") != first_version
        assert os.readlink(cfg / "mode") == "..data/mode"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    await manager.unmount_pod_volumes(uid)
    assert not manager.paths.pod_volumes_dir(uid).exists()


async def test_missing_configmap_is_a_failed_mount_event(client: APIClient, ns: str, tmp_path: Path) -> None:
    pod = await client.create(_pod(ns, [{"name": "cfg", "configMap": {"name": "absent"}}],
                                   [{"name": "cfg", "mountPath": "/etc/cfg"}]))
    recorder = EventRecorder(client, "kubelet", NODE)
    manager = VolumeManager(client, KubeletPaths(tmp_path), NODE, recorder)
    with pytest.raises(VolumeError) as failed:
        await manager.mount_pod_volumes(pod)
    message = 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found'
    assert (failed.value.reason, failed.value.message) == ("FailedMount", message)
    await recorder.flush()
    events = (await client.list("events", ns))["items"]
    assert [(e["type"], e["reason"], e["message"], e["involvedObject"]["uid"]) for e in events] == [
        ("Warning", "FailedMount", message, pod["metadata"]["uid"])]
    await recorder.close()

    # Once the ConfigMap exists, the next sync mounts it.
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "absent", "namespace": ns},
                         "data": {"k": "v"}})
    await manager.mount_pod_volumes(pod)
    assert (manager.paths.volume_dir(pod["metadata"]["uid"], "kubernetes.io~configmap", "cfg") / "k").read_text() \
        == "v"
    await manager.unmount_pod_volumes(pod["metadata"]["uid"])


async def test_container_env_from_the_api(client: APIClient, ns: str) -> None:
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                         "data": {"MODE": "fast"}})
    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                         "stringData": {"PASSWORD": "s3cr3t"}})
    await client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis", "namespace": ns},
                         "spec": {"clusterIP": "10.43.0.77", "ports": [{"port": 6379}]}})
    pod = await client.create(_pod(ns, [], [], env_from=[{"configMapRef": {"name": "settings"}}], env=[
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
        {"name": "URL", "value": "redis://$(REDIS_SERVICE_HOST):$(REDIS_SERVICE_PORT)/$(MODE)"},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]))
    container = pod["spec"]["containers"][0]
    env = dict(await container_env(client, pod, container))
    assert env["MODE"] == "fast" and env["PW"] == "s3cr3t" and env["POD"] == "web"
    assert env["URL"] == "redis://10.43.0.77:6379/fast"
    assert env["CPU"] == "3"  # the node's allocatable
    assert env["REDIS_PORT_6379_TCP_ADDR"] == "10.43.0.77"
    container["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}})
    with pytest.raises(EnvVarError) as failed:
        await container_env(client, pod, container)
    assert failed.value.message == f"couldn't find key nope in ConfigMap {ns}/settings"


async def test_claim_bound_to_a_host_path_pv(client: APIClient, ns: str, tmp_path: Path) -> None:
    data = tmp_path / "pv-data"
    pv_name = f"{ns}-pv"
    await client.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
                         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                  "hostPath": {"path": str(data), "type": "DirectoryOrCreate"}}})
    claim = await client.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                 "metadata": {"name": "data", "namespace": ns},
                                 "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv_name,
                                          "resources": {"requests": {"storage": "1Gi"}}}})
    pod = await client.create(_pod(ns, [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                                   [{"name": "data", "mountPath": "/data"}]))
    manager = VolumeManager(client, KubeletPaths(tmp_path / "kubelet"), NODE)
    with pytest.raises(VolumeError) as failed:
        await manager.mount_pod_volumes(pod)
    assert failed.value.message.endswith(f"error processing PVC {ns}/data: PVC is not bound")

    # What the PV controller does when it binds them.
    await client.patch("persistentvolumes", pv_name, {"spec": {"claimRef": {
        "kind": "PersistentVolumeClaim", "namespace": ns, "name": "data", "uid": claim["metadata"]["uid"]}}})
    await client.patch_status("persistentvolumeclaims", "data", {"status": {"phase": "Bound"}}, ns)
    await manager.mount_pod_volumes(pod)
    assert data.is_dir()
    mounts = manager.container_mounts(pod, pod["spec"]["containers"][0])
    assert [(m.container_path, m.host_path, m.readonly) for m in mounts if m.container_path == "/data"] == [
        ("/data", str(data), False)]
    await manager.unmount_pod_volumes(pod["metadata"]["uid"])
    assert data.is_dir()  # the PV's data outlives the pod


async def test_deleted_configmap_keeps_the_content_and_reports(client: APIClient, ns: str, tmp_path: Path) -> None:
    """ConfigMaps read through the kubelet's watch-based cache: a ConfigMap deleted under a running pod leaves the
    volume's last content in place and each refresh reports FailedMount (upstream); recreated, it comes back."""
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                         "data": {"mode": "fast"}})
    pod = await client.create(_pod(ns, [{"name": "cfg", "configMap": {"name": "settings"}}],
                                   [{"name": "cfg", "mountPath": "/etc/cfg"}]))
    objects = ObjectCache(client)
    recorder = EventRecorder(client, "kubelet", NODE)
    manager = VolumeManager(client, KubeletPaths(tmp_path), NODE, recorder, objects=objects)
    try:
        objects.register_pod(pod)
        await manager.mount_pod_volumes(pod)
        cfg = manager.paths.volume_dir(pod["metadata"]["uid"], "kubernetes.io~configmap", "cfg")
        assert (cfg / "mode").read_text() == "fast"

        await client.delete("configmaps", "settings", ns)
        message = 'MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found'

        async def reported() -> bool:
            await manager.resync()
            await recorder.flush()
            events = (await client.list("events", ns))["items"]
            return any(e["reason"] == "FailedMount" and e["message"] == message for e in events)

        await _eventually(reported)
        assert (cfg / "mode").read_text() == "fast"

        await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": "back"}})

        async def restored() -> bool:
            await manager.resync()
            return (cfg / "mode").read_text() == "back"

        await _eventually(restored)
    finally:
        await recorder.close()
        await objects.stop()
        await manager.unmount_pod_volumes(pod["metadata"]["uid"])
