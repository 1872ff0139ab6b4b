"""Fixtures for end-to-end tests on real containers.

Network safety: everything that runs containers or makes interfaces lives in a network namespace that the
fixture creates (`ip netns add pyk8s-e2e-<random>`, loopback up, no route out) and deletes afterwards.
containerd is started inside it, so its shims, containers, CNI plugins and pod namespaces never touch the
host's network namespace. Processes are stopped by PID.

Tests skip only when this machine cannot run containers at all (not root, or no network namespaces);
missing packages are a failure that says which install step is missing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyk8s.kubelet.runtime.containerd import Containerd, ContainerdConfig
from pyk8s.kubelet.runtime.cri import CRIClient, CRIError

CGROUP_ROOT = Path("/sys/fs/cgroup")


async def eventually_async(check, timeout: float = 30, interval: float = 0.1):
    """Await `check` until it returns something truthy (and return it) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last result: {last!r}")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def node_netns() -> Iterator[str]:
    """A fresh network namespace with only loopback (up) and no routes out; deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("real containers need root")
    name = f"pyk8s-e2e-{secrets.token_hex(4)}"
    created = _ip("netns", "add", name, check=False)
    if created.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {created.stderr.strip()}")
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        routes = _ip("netns", "exec", name, "ip", "-4", "route", "show", "table", "main").stdout
        assert "default" not in routes, f"new netns {name} has a route out: {routes}"
        yield name
    finally:
        _ip("netns", "delete", name, check=False)


@dataclass
class Node:
    containerd: Containerd
    cri: CRIClient
    netns: str
    cgroup_parent: str

    @property
    def config(self) -> ContainerdConfig:
        return self.containerd.config


def _remove_cgroup_tree(relative: str) -> None:
    """rmdir the pod cgroups runc leaves behind (leaves first); v1 has one tree per controller."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / relative.lstrip("/")
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            directory.rmdir()
        top.rmdir()


@pytest.fixture
async def containerd_node(node_netns: str, tmp_path: Path) -> AsyncIterator[Node]:
    """containerd with the CRI plugin running inside `node_netns`, its data under tmp_path; pods on a bridge there."""
    suffix = node_netns.rsplit("-", 1)[-1]
    config = ContainerdConfig(data_dir=tmp_path / "node", netns=node_netns,
                              sandbox_image=f"pyk8s.local/pause-e2e-{suffix}:1.0")
    containerd = Containerd(config)
    await containerd.start(timeout=60)
    cri = CRIClient(config.endpoint)
    node = Node(containerd=containerd, cri=cri, netns=node_netns, cgroup_parent=f"/pyk8s-e2e-{suffix}")
    try:
        yield node
    finally:
        try:
            # Whatever a failed test left behind: sandboxes take their containers and netns with them.
            for sandbox in await cri.list_pod_sandbox():
                await cri.stop_pod_sandbox(sandbox.id)
                await cri.remove_pod_sandbox(sandbox.id)
        except CRIError:
            pass
        finally:
            await cri.close()
            await containerd.stop()
            _remove_cgroup_tree(node.cgroup_parent)
