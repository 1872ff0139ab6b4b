"""Image garbage collection and node-pressure eviction against a real containerd (inside the test's own netns).

Pressure is never made by filling the disk or memory: thresholds are set relative to what the machine has
(image GC with a 0% high threshold, `memory.available<99%`).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from pyk8s.kubelet.eviction import EvictionConfig, EvictionManager, HostStatsProvider, parse_threshold_config
from pyk8s.kubelet.image_gc import ImageGC, ImageGCError, ImageGCPolicy
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.oci import BuiltImage, build_oci_archive, busybox_image

from conftest import Node, eventually_async


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: dict, type: str, reason: str, message: str) -> None:
        name = obj["metadata"]["name"] if "metadata" in obj else obj["name"]
        self.events.append((name, reason, message))


def _import(node: Node, image: BuiltImage, archive: Path) -> None:
    imported = subprocess.run([sys.executable, "-c", "from pyk8s.cli import main; main()", "images", "import",
                               str(archive), "--data-dir", str(node.config.data_dir)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr


async def _run_pod(node: Node, paths: KubeletPaths, name: str, image: str,
                   command: tuple[str, ...] = ("sleep", "3600")) -> tuple[dict, str]:
    """A sandbox and one sleeping container labelled like the kubelet labels them; returns (pod, sandbox id)."""
    uid = secrets.token_hex(8)
    pod = {"metadata": {"name": name, "namespace": "default", "uid": uid},
           "spec": {"containers": [{"name": "sleeper", "image": image}]}}
    log_dir = paths.pod_log_dir("default", name, uid)
    log_dir.mkdir(parents=True)
    labels = {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": uid}
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0), hostname=name,
        log_directory=str(log_dir), labels=labels,
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{node.cgroup_parent}/pod{uid}"))
    sandbox_id = await node.cri.run_pod_sandbox(sandbox_config)
    container_id = await node.cri.create_container(sandbox_id, pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="sleeper", attempt=0), image=pb.ImageSpec(image=image),
        command=list(command), log_path=KubeletPaths.container_log_path("sleeper", 0),
        labels={**labels, "io.kubernetes.container.name": "sleeper"}), sandbox_config)
    await node.cri.start_container(container_id)
    return pod, sandbox_id


async def test_image_gc_removes_only_unused_images(containerd_node: Node, tmp_path: Path) -> None:
    cri = containerd_node.cri
    used = build_oci_archive(busybox_image("pyk8s.local/gc-used:1", cmd=("sleep", "3600")), tmp_path / "used.tar")
    unused = build_oci_archive(busybox_image("pyk8s.local/gc-unused:1"), tmp_path / "unused.tar")
    assert used.config_digest != unused.config_digest
    _import(containerd_node, used, tmp_path / "used.tar")
    _import(containerd_node, unused, tmp_path / "unused.tar")
    paths = KubeletPaths(containerd_node.config.data_dir)
    await _run_pod(containerd_node, paths, "gc-user", used.name)

    stats = HostStatsProvider(paths, cri, cgroup_parent=containerd_node.cgroup_parent)
    recorder = Recorder()
    gc = ImageGC(cri, ImageGCPolicy(high_threshold_percent=0, low_threshold_percent=0, min_age=0), set,
                 image_fs=stats.image_fs, sandbox_image=containerd_node.config.sandbox_image, recorder=recorder,
                 node_name="gc-node")
    # 0% thresholds ask for the whole filesystem back; removing every unused image cannot reach that.
    with pytest.raises(ImageGCError, match="Failed to garbage collect required amount of images"):
        await gc.garbage_collect()
    tags = {tag for image in await cri.list_images() for tag in image.repo_tags}
    assert used.name in tags and containerd_node.config.sandbox_image in tags
    assert unused.name not in tags
    assert [reason for _, reason, _ in recorder.events] == ["FreeDiskSpaceFailed"]
    assert recorder.events[0][0] == "gc-node"


async def test_memory_pressure_evicts_a_running_pod_using_real_stats(containerd_node: Node, tmp_path: Path) -> None:
    cri = containerd_node.cri
    image = build_oci_archive(busybox_image("pyk8s.local/evict-me:1", cmd=("sleep", "3600")), tmp_path / "img.tar")
    _import(containerd_node, image, tmp_path / "img.tar")
    paths = KubeletPaths(containerd_node.config.data_dir)
    pod, sandbox_id = await _run_pod(containerd_node, paths, "victim", image.name)
    stats = HostStatsProvider(paths, cri, cgroup_parent=containerd_node.cgroup_parent)

    async def container_running():
        summary = await stats.summary([pod])
        pod_stats = summary.pods[pod["metadata"]["uid"]]
        return pod_stats if pod_stats.containers and pod_stats.memory_working_set else None

    pod_stats = await eventually_async(container_running, timeout=60)
    assert [c.name for c in pod_stats.containers] == ["sleeper"]
    assert pod_stats.process_count is None or pod_stats.process_count >= 1

    evicted: list[tuple[str, str, int]] = []
    active = [pod]

    async def evict(victim: dict, reason: str, message: str, *, grace_period_seconds: int,
                    condition: dict | None) -> bool:
        evicted.append((reason, message, grace_period_seconds))
        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
        active.clear()
        return True

    recorder = Recorder()
    config = EvictionConfig(thresholds=parse_threshold_config("memory.available<99%"), node_name="evict-node")
    manager = EvictionManager(config, stats, lambda: list(active), evict, recorder=recorder)
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["victim"]
    assert manager.conditions()["MemoryPressure"] is True
    ((reason, message, grace),) = evicted
    assert (reason, grace) == ("Evicted", 1)
    assert message.startswith("The node was low on resource: memory. Threshold quantity: ")
    assert "Container sleeper was using " in message and ", request is 0, has larger consumption of memory. " in message
    assert ("victim", "Evicted", message) in recorder.events
    assert await cri.list_pod_sandbox() == []


async def test_a_container_over_its_ephemeral_storage_limit_is_evicted(containerd_node: Node, tmp_path: Path) -> None:
    """The writable layer is measured for real: a container writing 2 MiB into its root exceeds a 1Mi limit."""
    cri = containerd_node.cri
    image = build_oci_archive(busybox_image("pyk8s.local/writer:1"), tmp_path / "img.tar")
    _import(containerd_node, image, tmp_path / "img.tar")
    paths = KubeletPaths(containerd_node.config.data_dir)
    pod, sandbox_id = await _run_pod(containerd_node, paths, "writer", image.name,
                                     ("sh", "-c", "dd if=/dev/zero of=/blob bs=1024 count=2048; sleep 3600"))
    # A second (spec-only) container raises the pod's total limit, so the container's own limit is what trips.
    pod["spec"]["containers"] = [{"name": "sleeper", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                                 {"name": "idle", "resources": {"limits": {"ephemeral-storage": "100Mi"}}}]
    stats = HostStatsProvider(paths, cri, cgroup_parent=containerd_node.cgroup_parent)

    async def written():
        summary = await stats.summary([pod])
        containers = summary.pods[pod["metadata"]["uid"]].containers
        rootfs = containers[0].rootfs if containers else None
        return rootfs if rootfs is not None and rootfs.used_bytes >= 2 * 1024 * 1024 else None

    await eventually_async(written, timeout=60)
    evicted: list[tuple[str, str, int]] = []

    async def evict(victim: dict, reason: str, message: str, *, grace_period_seconds: int,
                    condition: dict | None) -> bool:
        evicted.append((reason, message, grace_period_seconds))
        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
        return True

    # No pressure thresholds at all: local-storage limits are enforced on their own.
    manager = EvictionManager(EvictionConfig(thresholds=[]), stats, lambda: [pod], evict)
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["writer"]
    assert evicted == [("Evicted", 'Container sleeper exceeded its local ephemeral storage limit "1Mi". ', 0)]
