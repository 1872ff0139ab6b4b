"""The runtime manager against an in-memory CRI: crash-loop backoff on restart, preStop within the grace
period, termination messages read back, log tails for FallbackToLogsOnError."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import grpc
import pytest
from aiohttp import web

from pyk8s.kubelet.config import KubeletConfig
from pyk8s.kubelet.images import ImageManager
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import CRIError, pb
from pyk8s.kubelet.runtime_manager import RuntimeManager, tail_log_message
from pyk8s.kubelet.runtime_state import ContainerState


class FakeCRI:
    """Just enough CRI: sandboxes and containers in dicts; containers run until stopped or `exit_container`."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.sandboxes: dict[str, tuple[pb.PodSandboxConfig, int]] = {}
        self.containers: dict[str, pb.ContainerStatus] = {}
        self.configs: dict[str, tuple[str, pb.ContainerConfig]] = {}
        self.calls: list[tuple] = []
        self.now = 1_000_000_000_000

    def _tick(self) -> int:
        self.now += 1_000_000_000
        return self.now

    async def version(self):
        return pb.VersionResponse(runtime_name="fake")

    async def list_pod_sandbox(self, filter=None):
        uid = dict(filter.label_selector).get("io.kubernetes.pod.uid") if filter else None
        return [pb.PodSandbox(id=i, metadata=c.metadata, state=state, created_at=c.metadata.attempt + 1,
                              labels=c.labels) for i, (c, state) in self.sandboxes.items()
                if uid is None or c.labels.get("io.kubernetes.pod.uid") == uid]

    async def pod_sandbox_status(self, sandbox_id):
        return pb.PodSandboxStatusResponse(status=pb.PodSandboxStatus(
            id=sandbox_id, network=pb.PodSandboxNetworkStatus(ip="10.0.0.9")))

    async def run_pod_sandbox(self, config, handler=""):
        sandbox_id = f"sb{next(self.ids)}"
        self.sandboxes[sandbox_id] = (config, pb.SANDBOX_READY)
        return sandbox_id

    async def stop_pod_sandbox(self, sandbox_id):
        self.sandboxes[sandbox_id] = (self.sandboxes[sandbox_id][0], pb.SANDBOX_NOTREADY)

    async def list_containers(self, filter=None):
        uid = dict(filter.label_selector).get("io.kubernetes.pod.uid") if filter else None
        result = []
        for cid, (sandbox_id, config) in self.configs.items():
            if uid is None or config.labels.get("io.kubernetes.pod.uid") == uid:
                result.append(pb.Container(id=cid, pod_sandbox_id=sandbox_id, metadata=config.metadata,
                                           state=self.containers[cid].state, labels=config.labels,
                                           annotations=config.annotations))
        return result

    async def container_status(self, container_id):
        if container_id not in self.containers:
            raise CRIError("ContainerStatus", grpc.StatusCode.NOT_FOUND, "gone")
        return pb.ContainerStatusResponse(status=self.containers[container_id])

    async def create_container(self, sandbox_id, config, sandbox_config):
        cid = f"c{next(self.ids)}"
        self.configs[cid] = (sandbox_id, config)
        self.containers[cid] = pb.ContainerStatus(id=cid, metadata=config.metadata, state=pb.CONTAINER_CREATED,
                                                  created_at=self._tick(), image=config.image, image_ref="sha256:i",
                                                  mounts=config.mounts, log_path="")
        return cid

    async def start_container(self, container_id):
        self.containers[container_id].state = pb.CONTAINER_RUNNING
        self.containers[container_id].started_at = self._tick()
        self.calls.append(("start", self.configs[container_id][1].metadata.name))

    def exit_container(self, container_id, code):
        status = self.containers[container_id]
        status.state, status.exit_code, status.finished_at = pb.CONTAINER_EXITED, code, self._tick()

    async def stop_container(self, container_id, grace_seconds=0):
        self.calls.append(("stop", container_id, grace_seconds))
        if container_id in self.containers and self.containers[container_id].state == pb.CONTAINER_RUNNING:
            self.exit_container(container_id, 137)

    async def exec_sync(self, container_id, cmd, timeout_seconds=0):
        self.calls.append(("exec", cmd, timeout_seconds))
        if cmd[0] == "sleep":
            await asyncio.sleep(float(cmd[1]))
        return pb.ExecSyncResponse(exit_code=0)

    async def remove_container(self, container_id):
        self.configs.pop(container_id, None)
        if self.containers.pop(container_id, None) is None:
            raise CRIError("RemoveContainer", grpc.StatusCode.NOT_FOUND, "gone")

    async def remove_pod_sandbox(self, sandbox_id):
        self.sandboxes.pop(sandbox_id, None)

    async def image_status(self, image):
        return pb.Image(id="sha256:i", uid=pb.Int64Value(value=0))

    async def pull_image(self, image, auth=None, sandbox_config=None, timeout=None):
        return "sha256:i"


class Env:
    errors = (KeyError,)

    async def __call__(self, client, pod, container, *, pod_ips, host_ips):
        return [(e["name"], e["value"]) for e in container.get("env") or []]


class NoVolumes:
    def container_mounts(self, pod, container, *, env=None):
        return []


class Wall:
    def __init__(self) -> None:
        self.now = 2000.0

    def __call__(self) -> float:
        return self.now


def make_manager(tmp_path: Path, cri: FakeCRI | None = None,
                 **config_fields) -> tuple[RuntimeManager, FakeCRI, Wall]:
    cri, wall = cri or FakeCRI(), Wall()
    config = KubeletConfig(node_name="n", paths=KubeletPaths(tmp_path), resolv_conf=tmp_path / "none",
                           host_etc_hosts=tmp_path / "none", **config_fields)
    manager = RuntimeManager(cri, config, None, ImageManager(cri), NoVolumes(), Env(), wall=wall)  # type: ignore
    return manager, cri, wall


def make_pod(**container) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1", "imagePullPolicy": "IfNotPresent",
                                     **container}], "terminationGracePeriodSeconds": 30}}


async def test_crash_loop_backoff_on_restart(tmp_path: Path) -> None:
    manager, cri, wall = make_manager(tmp_path)
    pod = make_pod()
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting == {} and cri.calls == [("start", "app")]
    [first] = cri.containers
    cri.exit_container(first, 1)
    wall.now = cri.containers[first].finished_at / 1e9 + 1
    # First crash: restarted at once (restart count 1 in the annotation and the attempt).
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting == {} and cri.calls[-1] == ("start", "app")
    second = max(cri.containers, key=lambda c: cri.containers[c].created_at)
    assert cri.configs[second][1].metadata.attempt == 1
    assert cri.configs[second][1].annotations["io.kubernetes.container.restartCount"] == "1"
    # Second crash: back-off 10 s.
    cri.exit_container(second, 1)
    wall.now = cri.containers[second].finished_at / 1e9 + 4
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting["app"].reason == "CrashLoopBackOff"
    assert result.waiting["app"].message == "back-off 10s restarting failed container=app pod=p_ns(u1)"
    assert result.requeue_after == pytest.approx(6.0)
    wall.now += 6
    result = await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert result.waiting == {} and cri.calls[-1] == ("start", "app")
    # Only the newest two instances are kept (collected on the next sync).
    assert len(cri.containers) == 3
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert len(cri.containers) == 2 and first not in cri.containers


async def test_removed_instance_takes_its_logs(tmp_path: Path) -> None:
    """Container GC removes a dead instance's log with its rotated and compressed files; the others stay."""
    manager, cri, _ = make_manager(tmp_path)
    pod = make_pod()
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    logs = tmp_path / "container-logs"
    logs.mkdir()
    for attempt in range(3):
        [newest] = [c for c in cri.containers if cri.containers[c].state == pb.CONTAINER_RUNNING]
        cri.containers[newest].log_path = str(logs / f"{attempt}.log")
        for name in (f"{attempt}.log", f"{attempt}.log.20261127-010203", f"{attempt}.log.20261127-010100.gz"):
            (logs / name).write_text("x")
        cri.exit_container(newest, 0)
        await manager.remove_dead_instances(await manager.pod_status("u1"))
        await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    # Instances 1 and 2 are kept (the newest dead one and the one before it); instance 0 went with its logs.
    assert sorted(p.name for p in logs.iterdir()) == [
        "1.log", "1.log.20261127-010100.gz", "1.log.20261127-010203",
        "2.log", "2.log.20261127-010100.gz", "2.log.20261127-010203"]


class SlowStartsCRI(FakeCRI):
    """Sandboxes and container starts that take a while: records how many were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = self.most_in_flight = 0

    async def _slow(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1

    async def run_pod_sandbox(self, config, handler=""):
        await self._slow()
        return await super().run_pod_sandbox(config, handler)

    async def start_container(self, container_id):
        await self._slow()
        await super().start_container(container_id)


@pytest.mark.parametrize(("limit", "most"), [(2, 2), (0, 6)])
async def test_runtime_starts_in_flight_are_limited(tmp_path: Path, limit: int, most: int) -> None:
    manager, cri, _ = make_manager(tmp_path, SlowStartsCRI(), max_parallel_runtime_starts=limit)
    pods = []
    for i in range(6):
        pod = make_pod()
        pod["metadata"] = {"name": f"p{i}", "namespace": "ns", "uid": f"u{i}"}
        pods.append(pod)
    statuses = [await manager.pod_status(pod["metadata"]["uid"]) for pod in pods]
    await asyncio.gather(*(manager.sync_pod(pod, status, []) for pod, status in zip(pods, statuses, strict=True)))
    assert len([c for c in cri.containers.values() if c.state == pb.CONTAINER_RUNNING]) == 6
    assert cri.most_in_flight == most


async def test_pre_stop_runs_within_the_grace_period(tmp_path: Path) -> None:
    manager, cri, _ = make_manager(tmp_path)
    pod = make_pod(lifecycle={"preStop": {"exec": {"command": ["sleep", "0.2"]}}})
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    status = await manager.pod_status("u1")
    await manager.kill_pod(pod, status, grace=5)
    kinds = [c[0] for c in cri.calls]
    assert kinds == ["start", "exec", "stop"]
    assert cri.calls[1] == ("exec", ["sleep", "0.2"], 5)
    assert cri.calls[2][2] in (4, 5)  # what is left of the 5 s after the hook
    assert all(state == pb.SANDBOX_NOTREADY for _, state in cri.sandboxes.values())


async def test_sandbox_lost_under_the_runtime_is_stopped_and_replaced(tmp_path: Path) -> None:
    """After a node reboot the runtime reports the old sandbox not ready and its container exited (255, Unknown),
    yet the sandbox still holds its pod network: the sync stops it (the runtime then frees its CNI address, as
    upstream's killPodWithSyncResult stops every sandbox) before running a new one and the container again."""
    manager, cri, _ = make_manager(tmp_path)
    stopped: list[str] = []
    stop = cri.stop_pod_sandbox

    async def stop_pod_sandbox(sandbox_id):
        stopped.append(sandbox_id)
        await stop(sandbox_id)

    cri.stop_pod_sandbox = stop_pod_sandbox  # type: ignore[method-assign]
    pod = make_pod()
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    [(old_sandbox, (config, _))] = cri.sandboxes.items()
    [old_container] = cri.containers
    cri.sandboxes[old_sandbox] = (config, pb.SANDBOX_NOTREADY)
    cri.exit_container(old_container, 255)
    cri.containers[old_container].reason = "Unknown"

    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    assert stopped == [old_sandbox]
    new_sandbox = next(i for i, (_, state) in cri.sandboxes.items() if state == pb.SANDBOX_READY)
    assert new_sandbox != old_sandbox and cri.sandboxes[new_sandbox][0].metadata.attempt == 1
    status = await manager.pod_status("u1")
    latest = status.latest("app")
    assert latest.running and latest.restart_count == 1 and latest.sandbox_id == new_sandbox


async def test_short_grace_keeps_the_minimum_after_a_hook(tmp_path: Path) -> None:
    manager, cri, _ = make_manager(tmp_path)
    pod = make_pod(lifecycle={"preStop": {"sleep": {"seconds": 1}}})
    await manager.sync_pod(pod, await manager.pod_status("u1"), [])
    running = (await manager.pod_status("u1")).containers[0]
    await manager.kill_container(pod, running, grace=1)
    assert cri.calls[-1][2] == 2  # upstream's minimumGracePeriodInSeconds


async def test_termination_message_is_read_back(tmp_path: Path) -> None:
    manager, cri, _ = make_manager(tmp_path)
    await manager.sync_pod(make_pod(), await manager.pod_status("u1"), [])
    [cid] = cri.containers
    [mount] = [m for m in cri.containers[cid].mounts if m.container_path == "/dev/termination-log"]
    Path(mount.host_path).write_text("it broke")
    cri.exit_container(cid, 3)
    instance: ContainerState = (await manager.pod_status("u1")).containers[0]
    assert (instance.exit_code, instance.message) == (3, "it broke")


def test_log_tail_for_fallback_messages(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_text("2024-01-01T00:00:00.000000000Z stdout F first\n"
                   "2024-01-01T00:00:00.100000000Z stderr P part-\n"
                   "2024-01-01T00:00:00.200000000Z stderr F two\n")
    assert tail_log_message(log) == "first\npart-two\n"
    assert tail_log_message(log, lines=1) == "two\n"
    assert tail_log_message(tmp_path / "missing.log") == ""


async def test_http_hook(tmp_path: Path) -> None:
    manager, _, _ = make_manager(tmp_path)
    seen: list[tuple[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("X-Hook", "")))
        return web.Response(status=200 if request.path == "/ok" else 500, text="nope")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        pod = make_pod(ports=[{"name": "http", "containerPort": port}])
        container = pod["spec"]["containers"][0]
        ok = {"httpGet": {"path": "/ok", "port": "http", "httpHeaders": [{"name": "X-Hook", "value": "1"}]}}
        assert await manager.run_hook(pod, container, "c1", ok, ["127.0.0.1"], "PostStart") == ""
        bad = {"httpGet": {"path": "fail", "port": port, "host": "127.0.0.1"}}
        failure = await manager.run_hook(pod, container, "c1", bad, [], "PostStart")
        assert failure == ('HTTP lifecycle hook (/fail) for Container "app" in Pod "p_ns(u1)" failed - error: '
                           'HTTP status code 500, message: "nope"')
        assert seen == [("/ok", "1"), ("/fail", "")]
    finally:
        await runner.cleanup()
