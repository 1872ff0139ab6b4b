"""Container log rotation against a real containerd (in the test's own network namespace): a chatty busybox
container's CRI log is rotated at a small size, older files are gzipped, at most max_files are kept, and the
container keeps writing into the fresh file containerd reopens, which `kubectl logs -f`'s reader follows. Then
the same through a whole cluster: `pyk8s server --container-log-max-size` reaches its node agent's rotation."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from pyk8s.kubelet.log_rotation import ContainerLogManager
from pyk8s.kubelet.logs import LogOptions, read_log
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.containerd import configured_snapshotter
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import NetnsCluster, Node, eventually_async

MAX_SIZE = 64 * 1024
MAX_FILES = 3
# About 200 lines of ~100 bytes every 0.1 s: a 64Ki file fills in well under a second.
CHATTY = ('i=0; while :; do j=0; while [ $j -lt 200 ]; do '
          'echo "n=$i padding-padding-padding-padding-padding-padding-padding-padding-padding-padding"; '
          'i=$((i+1)); j=$((j+1)); done; sleep 0.1; done')
LINE = re.compile(rb"^n=(\d+) padding")


def _numbers(text: bytes) -> list[int]:
    return [int(m.group(1)) for line in text.splitlines() if (m := LINE.match(line))]


def _log_files(directory: Path) -> list[str]:
    """The log files in use, as upstream counts them: a `.tmp` (a compression under way) and a file whose `.gz`
    already exists (compressed, about to be removed) are not."""
    names = {p.name for p in directory.iterdir()}
    return sorted(n for n in names if not n.endswith(".tmp") and n + ".gz" not in names)


def _cri_numbers(raw: bytes) -> list[int]:
    """Line numbers in a CRI log file (`<time> stdout F n=... padding`)."""
    return _numbers(b"\n".join(line.split(b" ", 3)[3] for line in raw.splitlines() if line.count(b" ") >= 3))


async def test_a_chatty_container_log_is_rotated_and_compressed(containerd_node: Node, tmp_path: Path) -> None:
    cri = containerd_node.cri
    busybox = build_oci_archive(busybox_image("pyk8s.local/busybox-e2e:1.35"), tmp_path / "busybox.tar")
    imported = subprocess.run([sys.executable, "-c", "from pyk8s.cli import main; main()", "images", "import",
                               str(tmp_path / "busybox.tar"), "--data-dir", str(containerd_node.config.data_dir)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr

    uid = secrets.token_hex(8)
    log_dir = tmp_path / "logs" / f"default_chatty_{uid}"
    (log_dir / "app").mkdir(parents=True)
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="chatty", uid=uid, namespace="default", attempt=0),
        hostname="chatty", log_directory=str(log_dir),
        labels={"io.kubernetes.pod.name": "chatty", "io.kubernetes.pod.namespace": "default",
                "io.kubernetes.pod.uid": uid},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{containerd_node.cgroup_parent}/pod{uid}"))
    sandbox_id = await cri.run_pod_sandbox(sandbox_config)
    container_config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0), image=pb.ImageSpec(image=busybox.name),
        command=["sh", "-c", CHATTY], log_path="app/0.log",
        labels={"io.kubernetes.container.name": "app", "io.kubernetes.pod.uid": uid})
    container_id = await cri.create_container(sandbox_id, container_config, sandbox_config)
    await cri.start_container(container_id)
    live = Path((await cri.container_status(container_id)).status.log_path)
    assert live == log_dir / "app" / "0.log"

    manager = ContainerLogManager(cri, MAX_SIZE, MAX_FILES, monitor_period=0.2)
    seen_counts: list[int] = []
    rotations: set[str] = set()  # every rotated file's timestamp seen (each lives a second or more)
    followed: list[bytes] = []

    async def collect(data: bytes) -> None:
        followed.append(data)

    async def running() -> bool:
        return True

    async def live_exists() -> bool:
        return live.exists()

    # A follower from the start of the first live file, as `kubectl logs -f` would be.
    await eventually_async(live_exists, timeout=30)
    follower = asyncio.create_task(read_log(live, LogOptions(follow=True), collect, running))
    manager.start()
    try:
        async def rotated_twice_and_followed() -> bool:
            names = _log_files(live.parent)
            seen_counts.append(len(names))
            rotations.update(n.split(".")[2] for n in names if n != "0.log")
            plain = [n for n in names if n != "0.log" and not n.endswith(".gz")]
            if len(rotations) < 3 or not any(n.endswith(".gz") for n in names) or len(plain) != 1:
                return False
            # The follower, which started on the first file (removed by now), got into the newest rotated one.
            try:
                newest_first = _cri_numbers((live.parent / plain[0]).read_bytes())[0]
            except (FileNotFoundError, IndexError):
                return False  # rotated again meanwhile
            followed_numbers = _numbers(b"".join(followed))
            return bool(followed_numbers) and followed_numbers[-1] >= newest_first

        await eventually_async(rotated_twice_and_followed, timeout=45, interval=0.05)
    finally:
        await manager.stop()
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    assert max(seen_counts) <= MAX_FILES, seen_counts
    # Past max_files the oldest went: the first rotated file, compressed or not, is no longer there.
    assert not list(live.parent.glob(f"0.log.{min(rotations)}*"))

    names = _log_files(live.parent)
    assert names[0] == "0.log" and all(re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.gz)?", n) for n in names[1:]), names
    compressed = [n for n in names if n.endswith(".gz")]
    newest_rotated = next(n for n in names if n != "0.log" and not n.endswith(".gz"))
    # Every rotated file ended at the maximum size or beyond (rotation happens only past it), and the
    # compressed ones hold complete CRI records that come before the newest rotated file's.
    older = _cri_numbers(gzip.decompress((live.parent / compressed[-1]).read_bytes()))
    newest = _cri_numbers((live.parent / newest_rotated).read_bytes())
    assert older and newest and older[-1] < newest[0]

    # The container keeps logging into the new live file: its lines come after the rotated ones.
    async def live_lines_after_rotation() -> bool:
        out: list[bytes] = []

        async def write(data: bytes) -> None:
            out.append(data)

        await read_log(live, LogOptions(tail_lines=5), write)
        numbers = _numbers(b"".join(out))
        return len(numbers) == 5 and numbers[0] > newest[-1]

    await eventually_async(live_lines_after_rotation, timeout=30)
    status = (await cri.container_status(container_id)).status
    assert status.state == pb.CONTAINER_RUNNING

    # The follower went from file to file as they were rotated: every line once, in order, no gaps.
    numbers = _numbers(b"".join(followed))
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))

    await cri.stop_container(container_id, grace_seconds=0)
    await cri.stop_pod_sandbox(sandbox_id)
    await cri.remove_pod_sandbox(sandbox_id)



@pytest.mark.parametrize("netns_cluster", [("--container-log-max-size", "64Ki", "--container-log-max-files", "3")],
                         indirect=True)
async def test_server_flags_reach_the_node_agent(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster

    async def registered() -> bool:
        return c.kubectl("get", "node", c.node_name, check=False).returncode == 0
    await eventually_async(registered, timeout=90, interval=1)
    image = "pyk8s.local/busybox-rotation:1.0"
    build_oci_archive(busybox_image(image), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", c.agent_dir / "containerd" / "containerd.sock",
                         configured_snapshotter(c.agent_dir))
    await asyncio.to_thread(c.kubectl, "wait", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chatty", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": image, "command": ["sh", "-c", CHATTY]}],
                    "terminationGracePeriodSeconds": 1}}
    await asyncio.to_thread(c.kubectl, "apply", "-f", "-", input=json.dumps(pod))
    await asyncio.to_thread(c.kubectl, "wait", "--for=condition=Ready", "pod/chatty", "--timeout=90s", timeout=120)
    uid = c.kubectl_json("get", "pod", "chatty")["metadata"]["uid"]
    log_dir = KubeletPaths(c.agent_dir).pod_log_dir("default", "chatty", uid) / "app"

    # The agent checks every 10 s; the 64Ki file is full long before.
    async def rotated() -> list[str]:
        return [n for n in _log_files(log_dir) if n != "0.log"]

    first = (await eventually_async(rotated, timeout=40, interval=0.2))[0]
    assert len(_log_files(log_dir)) <= 3
    content = (log_dir / first).read_bytes()
    assert len(content) >= 64 * 1024  # rotated only once past the maximum size (the default would be 10Mi)
    rotated_numbers = _cri_numbers(content)

    # `kubectl logs` (apiserver -> kubelet server -> the live file) shows the container's newest lines.
    async def newer_lines() -> bool:
        numbers = _numbers((await asyncio.to_thread(c.kubectl, "logs", "chatty", "--tail", "3")).stdout.encode())
        return len(numbers) == 3 and numbers[0] > rotated_numbers[-1]

    await eventually_async(newer_lines, timeout=30, interval=0.5)
