"""Volumes in a real container: a ConfigMap volume (and the kube-api-access projected volume) set up by the
VolumeManager against a real apiserver, mounted by containerd into a busybox container (inside the test's own
network namespace), read with exec, then updated live through a `..data` swap without restarting the
container."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from pyk8s.client import APIClient
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image
from pyk8s.kubelet.volumes import VolumeManager

from conftest import Node, eventually_async

NODE = "e2e-vol-node"


def _import_busybox(node: Node, tmp_path: Path) -> str:
    image = build_oci_archive(busybox_image("pyk8s.local/busybox-e2e:1.35"), tmp_path / "busybox.tar")
    imported = subprocess.run([sys.executable, "-c", "from pyk8s.cli import main; main()", "images", "import",
                               str(tmp_path / "busybox.tar"), "--data-dir", str(node.config.data_dir)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    return image.name


async def test_configmap_volume_in_a_container_updates_live(containerd_node: Node, client: APIClient,
                                                            apiserver: Path, tmp_path: Path) -> None:
    cri = containerd_node.cri
    # The node (its allocatable memory bounds memory-backed emptyDirs) and what the controller-manager would
    # publish (the server runs without either).
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                         "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}})
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "default", "namespace": "default"}})
    await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
                         "data": {"ca.crt": (apiserver.parent / "tls" / "ca.crt").read_text()}})
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config",
                                                                                "namespace": "default"},
                         "data": {"greeting": "hello"}})
    pod = await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                               "spec": {"nodeName": NODE, "volumes": [
                                   {"name": "config", "configMap": {"name": "web-config"}},
                                   {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
                                   "containers": [{"name": "app", "image": "busybox", "volumeMounts": [
                                       {"name": "config", "mountPath": "/etc/config"},
                                       {"name": "config", "mountPath": "/etc/greeting", "subPath": "greeting"},
                                       {"name": "fast", "mountPath": "/fast"}]}]}})
    container = pod["spec"]["containers"][0]
    uid = pod["metadata"]["uid"]

    manager = VolumeManager(client, KubeletPaths(tmp_path / "kubelet"), NODE, resync_interval=0.5)
    await manager.mount_pod_volumes(pod)
    mounts = manager.container_mounts(pod, container)
    assert {m.container_path: m.readonly for m in mounts} == {
        "/etc/config": True, "/etc/greeting": True, "/fast": False,
        "/var/run/secrets/kubernetes.io/serviceaccount": True}

    image = _import_busybox(containerd_node, tmp_path)
    log_dir = KubeletPaths(tmp_path / "kubelet").pod_log_dir("default", "web", uid)
    log_dir.mkdir(parents=True)
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid=uid, namespace="default", attempt=0), hostname="web",
        log_directory=str(log_dir),
        labels={"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "default",
                "io.kubernetes.pod.uid": uid},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{containerd_node.cgroup_parent}/pod{uid}"))
    runner: asyncio.Task | None = None
    sandbox_id = await cri.run_pod_sandbox(sandbox_config)
    try:
        container_id = await cri.create_container(sandbox_id, pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="app", attempt=0), image=pb.ImageSpec(image=image),
            command=["sleep", "3600"], mounts=mounts, log_path="app/0.log",
            labels={"io.kubernetes.container.name": "app"}), sandbox_config)
        await cri.start_container(container_id)
        started_at = (await cri.container_status(container_id)).status.started_at

        async def read(*argv: str) -> str:
            answer = await cri.exec_sync(container_id, list(argv), timeout_seconds=30)
            assert answer.exit_code == 0, answer.stderr
            return answer.stdout.decode()

        assert await read("cat", "/etc/config/greeting") == "hello"
        assert await read("cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace") == "default"
        assert (await read("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")).count(".") == 2
        first_version = (await read("busybox", "readlink", "/etc/config/..data")).strip()
        assert first_version.startswith("..20")
        # Read-only for the container, as upstream mounts configMap volumes.
        denied = await cri.exec_sync(container_id, ["sh", "-c", "echo x > /etc/config/new"], timeout_seconds=30)
        assert denied.exit_code != 0
        assert await read("cat", "/etc/greeting") == "hello"
        # The memory-backed emptyDir is the 1 MiB tmpfs the sizeLimit asks for, writable by the container.
        assert (await read("busybox", "df", "-k", "/fast")).splitlines()[1].split()[:2] == ["tmpfs", "1024"]
        await read("sh", "-c", "echo data > /fast/file")

        runner = asyncio.create_task(manager.run())
        await client.patch("configmaps", "web-config", {"data": {"greeting": "hello again", "extra": "1"}}, "default")

        async def updated():
            answer = await cri.exec_sync(container_id, ["cat", "/etc/config/greeting", "/etc/config/extra"],
                                         timeout_seconds=30)
            return answer.stdout.decode() if answer.exit_code == 0 and b"again" in answer.stdout else None

        assert await eventually_async(updated, timeout=60, interval=0.3) == "hello again1"
        assert (await read("busybox", "readlink", "/etc/config/..data")).strip() != first_version
        # As upstream: a subPath mount keeps the file it was started with.
        assert await read("cat", "/etc/greeting") == "hello"
        # The same container, never restarted.
        status = (await cri.container_status(container_id)).status
        assert status.state == pb.CONTAINER_RUNNING and status.started_at == started_at
        current = (await read("busybox", "readlink", "/etc/config/..data")).strip()
        assert sorted((await read("ls", "-a", "/etc/config")).split()) == sorted(
            [".", "..", "..data", current, "extra", "greeting"])
        await cri.stop_container(container_id, grace_seconds=1)
        await cri.remove_container(container_id)
    finally:
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
        await manager.unmount_pod_volumes(uid)
    assert not manager.paths.pod_volumes_dir(uid).exists()
