"""The CRI client against a real containerd (started inside the test's own network namespace).

Images are built locally from busybox-static and imported; nothing is pulled from a registry.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pyk8s.kubelet.runtime.cri import CRIError, pb
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import Node, eventually_async


def _pyk8s(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from pyk8s.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def _ip_links(netns: str | None) -> list[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    output = subprocess.run([*prefix, "ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in output.splitlines()]


def _sandbox_config(node: Node, name: str, log_dir: Path) -> pb.PodSandboxConfig:
    log_dir.mkdir(parents=True, exist_ok=True)
    uid = secrets.token_hex(8)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
        hostname=name,
        log_directory=str(log_dir),
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.uid": uid},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"{node.cgroup_parent}/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)),
        ),
    )


def _container_config(name: str, image: str, command: list[str]) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=0),
        image=pb.ImageSpec(image=image),
        command=command,
        envs=[pb.KeyValue(key="GREETING", value="hello")],
        log_path=f"{name}/0.log",
        labels={"io.kubernetes.container.name": name},
    )


async def test_pod_lifecycle_on_containerd(containerd_node: Node, tmp_path: Path) -> None:
    cri = containerd_node.cri
    config = containerd_node.config

    version = await cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"

    # Images: the node's pause image (built and imported when containerd started) and a busybox, built here and
    # imported with `pyk8s images import`, both into containerd's k8s.io namespace.
    busybox = build_oci_archive(busybox_image("pyk8s.local/busybox-e2e:1.35"), tmp_path / "busybox.tar")
    imported = _pyk8s("images", "import", str(tmp_path / "busybox.tar"), "--data-dir", str(config.data_dir))
    assert imported.stdout == f"imported {busybox.name}\n", imported.stderr
    tags = {tag for image in await cri.list_images() for tag in image.repo_tags}
    assert {config.sandbox_image, busybox.name} <= tags
    status = await cri.image_status(busybox.name)
    assert status is not None and status.id == busybox.config_digest and status.size > 0
    assert await cri.image_status("pyk8s.local/not-imported:1") is None
    # The node's namespace has no route out, so a pull fails (fast) instead of reaching a registry.
    with pytest.raises(CRIError) as pull_failure:
        await cri.pull_image("pyk8s.local/not-imported:1", timeout=30)
    assert "pyk8s.local/not-imported:1" in pull_failure.value.details
    fs = await cri.image_fs_info()
    # containerd samples usage in the background, so only where the image filesystem lives is checked.
    snapshots = config.home / "root" / f"io.containerd.snapshotter.v1.{config.snapshotter}"
    assert fs.image_filesystems[0].fs_id.mountpoint == str(snapshots)

    # A pod sandbox on the node's bridge network (cni0 exists only inside the test's netns).
    log_dir = tmp_path / "pods" / "web"
    sandbox_config = _sandbox_config(containerd_node, "web", log_dir)
    sandbox_id = await cri.run_pod_sandbox(sandbox_config)
    sandbox = (await cri.pod_sandbox_status(sandbox_id)).status
    assert sandbox.state == pb.SANDBOX_READY
    assert sandbox.metadata.name == "web"
    assert ipaddress.ip_address(sandbox.network.ip) in ipaddress.ip_network(config.pod_cidr)
    # The pod network lives in the test's namespace only.
    assert "cni0" in _ip_links(containerd_node.netns)
    assert "cni0" not in _ip_links(None)
    assert [s.id for s in await cri.list_pod_sandbox(pb.PodSandboxFilter(id=sandbox_id))] == [sandbox_id]

    # A long-running container: RUNNING, and exec works in it.
    sleeper_id = await cri.create_container(
        sandbox_id, _container_config("sleeper", busybox.name, ["sleep", "3600"]), sandbox_config)
    assert (await cri.container_status(sleeper_id)).status.state == pb.CONTAINER_CREATED
    await cri.start_container(sleeper_id)
    sleeper = (await cri.container_status(sleeper_id)).status
    assert sleeper.state == pb.CONTAINER_RUNNING
    assert sleeper.started_at > 0
    assert sleeper.image_ref == busybox.config_digest or sleeper.image_ref.endswith(busybox.manifest_digest)

    hello = await cri.exec_sync(sleeper_id, ["echo", "hello"], timeout_seconds=30)
    assert (hello.stdout, hello.exit_code) == (b"hello\n", 0)
    env = await cri.exec_sync(sleeper_id, ["sh", "-c", 'echo "$GREETING from $(hostname)" >&2; exit 7'])
    assert (env.stderr, env.exit_code) == (b"hello from web\n", 7)

    # A container that exits by itself with code 3 reports EXITED / 3, and its output is in its CRI log.
    quitter_id = await cri.create_container(
        sandbox_id, _container_config("quitter", busybox.name, ["sh", "-c", "echo bye; exit 3"]), sandbox_config)
    await cri.start_container(quitter_id)

    async def quitter_exited():
        current = (await cri.container_status(quitter_id)).status
        return current if current.state == pb.CONTAINER_EXITED else None

    quitter = await eventually_async(quitter_exited, timeout=60)
    assert quitter.exit_code == 3
    # Both times are set; containerd may stamp started_at after a process this short has already exited.
    assert quitter.started_at > 0 and quitter.finished_at > 0
    assert " stdout F bye" in (log_dir / "quitter" / "0.log").read_text()

    listed = await cri.list_containers(pb.ContainerFilter(pod_sandbox_id=sandbox_id))
    assert {c.id: c.state for c in listed} == {sleeper_id: pb.CONTAINER_RUNNING, quitter_id: pb.CONTAINER_EXITED}

    # Stop with a grace period: ended by SIGTERM (143), or SIGKILL (137) once the grace period is over.
    await cri.stop_container(sleeper_id, grace_seconds=1)
    sleeper = (await cri.container_status(sleeper_id)).status
    assert sleeper.state == pb.CONTAINER_EXITED
    assert sleeper.exit_code in (143, 137)
    for container_id in (sleeper_id, quitter_id):
        await cri.remove_container(container_id)
    assert await cri.list_containers(pb.ContainerFilter(pod_sandbox_id=sandbox_id)) == []
    await cri.stop_pod_sandbox(sandbox_id)
    assert (await cri.pod_sandbox_status(sandbox_id)).status.state == pb.SANDBOX_NOTREADY
    await cri.remove_pod_sandbox(sandbox_id)
    assert await cri.list_pod_sandbox() == []

    await cri.remove_image(busybox.name)
    assert await cri.image_status(busybox.name) is None

    pid = containerd_node.containerd.pid
    await containerd_node.containerd.stop()
    assert containerd_node.containerd.pid is None
    assert not Path(f"/proc/{pid}").exists()
    refused = _pyk8s("images", "import", str(tmp_path / "busybox.tar"), "--data-dir", str(config.data_dir))
    assert refused.returncode == 1
    assert "the node's containerd is not running" in refused.stderr


async def test_killed_containerd_is_restarted_and_keeps_its_containers(containerd_node: Node, tmp_path: Path) -> None:
    cri = containerd_node.cri
    config = containerd_node.config
    busybox = build_oci_archive(busybox_image("pyk8s.local/busybox-e2e:1.35"), tmp_path / "busybox.tar")
    assert _pyk8s("images", "import", str(tmp_path / "busybox.tar"), "--data-dir", str(config.data_dir)).returncode == 0
    sandbox_config = _sandbox_config(containerd_node, "survivor", tmp_path / "pods" / "survivor")
    sandbox_id = await cri.run_pod_sandbox(sandbox_config)
    container_id = await cri.create_container(
        sandbox_id, _container_config("sleeper", busybox.name, ["sleep", "3600"]), sandbox_config)
    await cri.start_container(container_id)

    first_pid = containerd_node.containerd.pid
    os.kill(first_pid, signal.SIGKILL)

    async def restarted():
        pid = containerd_node.containerd.pid
        if containerd_node.containerd.restarts < 1 or pid in (None, first_pid):
            return None
        try:
            return await cri.container_status(container_id, timeout=5)
        except CRIError:
            return None

    status = (await eventually_async(restarted, timeout=60)).status
    assert status.state == pb.CONTAINER_RUNNING
    answer = await cri.exec_sync(container_id, ["echo", "still here"], timeout_seconds=30)
    assert answer.stdout == b"still here\n"
