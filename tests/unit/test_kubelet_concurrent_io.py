"""What keeps a burst of starting pods from queueing behind one another in the kubelet: different pods' status
writes are in flight together (and a status set during its pod's write is written right after), and one read of
a pod's runtime state sends its CRI calls together."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyk8s.kubelet.config import KubeletConfig
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime_manager import RuntimeManager
from pyk8s.kubelet.status_manager import StatusManager

WAIT = 10.0  # generous: these machines are shared


def pod(uid: str) -> dict:
    return {"metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid}, "status": {"phase": "Pending"}}


class BlockingClient:
    """patch_status calls are recorded and held until the test releases them."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def patch_status(self, resource, name, body, namespace=None, patch_type="merge"):
        self.patches.append((name, body["status"]))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.arrived.set()
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return {}


async def until(check, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_different_pods_status_writes_are_in_flight_together() -> None:
    client = BlockingClient()
    pods = {uid: pod(uid) for uid in ("a", "b", "c")}
    manager = StatusManager(client, pods.get, period=3600)
    runner = asyncio.create_task(manager.run())
    try:
        for uid in pods:
            manager.set_pod_status(uid, {"phase": "Running"})
        await until(lambda: client.in_flight == 3)  # written one at a time, the first would hold the others
        client.release.set()
        await until(lambda: len(client.patches) == 3)
        assert sorted(name for name, _ in client.patches) == ["p-a", "p-b", "p-c"]
        assert client.most_in_flight == 3
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_status_set_during_its_write_is_written_after_it() -> None:
    client = BlockingClient()
    pods = {"a": pod("a")}
    manager = StatusManager(client, pods.get, period=3600)  # no periodic reconcile to fall back on
    runner = asyncio.create_task(manager.run())
    try:
        manager.set_pod_status("a", {"phase": "Pending", "message": "first"})
        await until(lambda: client.in_flight == 1)
        manager.set_pod_status("a", {"phase": "Running"})
        await asyncio.sleep(0.05)
        assert client.in_flight == 1  # one write per pod at a time: order is kept
        client.release.set()
        await until(lambda: len(client.patches) == 2)
        assert client.patches[0][1]["message"] == "first"
        assert client.patches[1][1]["phase"] == "Running"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


class SlowCRI:
    """Each read takes a while and counts how many are outstanding at once."""

    def __init__(self) -> None:
        self.outstanding = 0
        self.most_outstanding = 0

    async def _read(self, value):
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        await asyncio.sleep(0.05)
        self.outstanding -= 1
        return value

    async def list_pod_sandbox(self, filter=None):
        return await self._read([pb.PodSandbox(id="sb", metadata=pb.PodSandboxMetadata(name="p", namespace="ns"),
                                               state=pb.SANDBOX_NOTREADY, created_at=1)])

    async def list_containers(self, filter=None):
        return await self._read([pb.Container(id=f"c{i}", pod_sandbox_id="sb",
                                              labels={"io.kubernetes.container.name": f"c{i}"}) for i in range(3)])

    async def container_status(self, container_id):
        status = pb.ContainerStatus(id=container_id, state=pb.CONTAINER_RUNNING, created_at=int(container_id[1]) + 1)
        return await self._read(pb.ContainerStatusResponse(status=status))


async def test_pod_status_sends_its_reads_together(tmp_path: Path) -> None:
    cri = SlowCRI()
    config = KubeletConfig(node_name="n", paths=KubeletPaths(tmp_path))
    manager = RuntimeManager(cri, config=config, client=None, images=None, volumes=None, env=None)
    status = await manager.pod_status("uid-1")
    assert [c.name for c in status.containers] == ["c2", "c1", "c0"]  # newest first
    assert [s.id for s in status.sandboxes] == ["sb"]
    assert cri.most_outstanding == 3  # the three ContainerStatus calls (and before them the two lists) together
