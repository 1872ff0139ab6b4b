"""The eviction manager's cycle with injected stats (upstream eviction_manager_test.go), and the host stats math."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyk8s.kubelet.eviction import EvictionConfig, EvictionManager, HostStatsProvider, parse_threshold_config
from pyk8s.kubelet.eviction.signals import (
    ContainerStats,
    FsStats,
    PodStats,
    StatsUnavailable,
    Summary,
    Usage,
    cgroup_working_set,
    directory_usage,
    observations,
    overlay_upperdir,
)
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.volumes.manager import EmptyDirLimitExceeded

MI = 1024 * 1024
GI = 1024 * MI


class FakeStats:
    def __init__(self, summary: Summary, dedicated_image_fs: bool | None = False) -> None:
        self.current = summary
        self.dedicated_image_fs = dedicated_image_fs  # None: the runtime cannot say yet
        self.calls = 0

    async def summary(self, pods: list[dict]) -> Summary:
        self.calls += 1
        self.current.time = float(self.calls)  # every call is a fresh measurement
        return self.current

    async def has_dedicated_image_fs(self) -> bool:
        if self.dedicated_image_fs is None:
            raise StatsUnavailable("runtime starting")
        return self.dedicated_image_fs


@dataclass
class Evictions:
    calls: list[tuple[str, str, str, int, dict | None]] = field(default_factory=list)

    async def __call__(self, pod: dict, reason: str, message: str, *, grace_period_seconds: int,
                       condition: dict | None) -> bool:
        self.calls.append((pod["metadata"]["name"], reason, message, grace_period_seconds, condition))
        return True


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: dict, type: str, reason: str, message: str) -> None:
        name = obj["metadata"]["name"] if "metadata" in obj else obj["name"]
        self.events.append((name, type, reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pod(name: str, *, priority: int = 0, memory_request: str | None = None, **spec: object) -> dict:
    resources = {"requests": {"memory": memory_request}} if memory_request else {}
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"containers": [{"name": "web", "resources": resources}], "priority": priority, **spec}}


def _summary(memory_available: int = 4 * GI, pods: dict[str, PodStats] | None = None,
             nodefs_available: int = 50 * GI) -> Summary:
    return Summary(time=0.0, memory_capacity=8 * GI, memory_working_set=8 * GI - memory_available,
                   nodefs=FsStats(100 * GI, nodefs_available, 1000, 900),
                   imagefs=FsStats(100 * GI, nodefs_available, 1000, 900), max_pid=1000, running_processes=100,
                   pods=pods or {})


def _memory_stats(name: str, usage: int) -> PodStats:
    return PodStats(uid=f"uid-{name}", memory_working_set=usage,
                    containers=[ContainerStats("web", memory_working_set=usage)])


def _manager(stats: FakeStats, pods: list[dict], *, hard: str | None = "memory.available<1Gi", soft: str | None = None,
             grace: str | None = None, transition: float = 300, **kwargs: object):
    evictions, recorder, clock = Evictions(), Recorder(), Clock()
    config = EvictionConfig(thresholds=parse_threshold_config(hard, soft, grace),
                            pressure_transition_period=transition, node_name="node-a", **kwargs.pop("config", {}))
    manager = EvictionManager(config, stats, lambda: list(pods), evictions, recorder=recorder, clock=clock, **kwargs)
    return manager, evictions, recorder, clock


async def test_memory_pressure_evicts_the_top_ranked_pod_with_upstreams_message() -> None:
    guaranteed = _pod("guaranteed", memory_request="1Gi")
    best_effort = _pod("best-effort")
    pods = [guaranteed, best_effort]
    stats = FakeStats(_summary(memory_available=4 * GI, pods={
        "uid-guaranteed": _memory_stats("guaranteed", 800 * MI), "uid-best-effort": _memory_stats("best-effort",
                                                                                                    200 * MI)}))
    manager, evictions, recorder, _clock = _manager(stats, pods)

    assert await manager.synchronize() == []
    assert manager.conditions() == {"MemoryPressure": False, "DiskPressure": False, "PIDPressure": False}

    stats.current = _summary(memory_available=512 * MI, pods=stats.current.pods)
    evicted = await manager.synchronize()
    assert [p["metadata"]["name"] for p in evicted] == ["best-effort"]
    message = ("The node was low on resource: memory. Threshold quantity: 1Gi, available: 512Mi. "
               "Container web was using 200Mi, request is 0, has larger consumption of memory. ")
    assert evictions.calls == [("best-effort", "Evicted", message, 1,
                                {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                                 "message": message})]
    assert manager.conditions()["MemoryPressure"] is True
    assert ("node-a", "Warning", "EvictionThresholdMet", "Attempting to reclaim memory") in recorder.events
    assert ("best-effort", "Warning", "Evicted", message) in recorder.events


async def test_only_one_pod_is_evicted_per_cycle_and_stale_stats_evict_nothing() -> None:
    pods = [_pod("a"), _pod("b")]
    stats = FakeStats(_summary(memory_available=100 * MI, pods={
        "uid-a": _memory_stats("a", 300 * MI), "uid-b": _memory_stats("b", 200 * MI)}))
    manager, evictions, _recorder, _clock = _manager(stats, pods)
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["a"]
    assert len(evictions.calls) == 1

    async def same_time(pods: list[dict]) -> Summary:
        return stats.current  # not measured again since the last cycle
    stats.summary = same_time  # type: ignore[method-assign]
    assert await manager.synchronize() == []
    assert manager.conditions()["MemoryPressure"] is True


async def test_a_cycle_waits_until_the_runtime_says_where_images_live() -> None:
    stats = FakeStats(_summary(memory_available=100 * MI, pods={"uid-a": _memory_stats("a", GI)}),
                      dedicated_image_fs=None)
    manager, evictions, _recorder, _clock = _manager(stats, [_pod("a")])
    assert await manager.synchronize() == []
    assert (stats.calls, evictions.calls) == (0, [])
    stats.dedicated_image_fs = False
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["a"]


async def test_pressure_condition_is_held_for_the_transition_period() -> None:
    stats = FakeStats(_summary(memory_available=100 * MI))
    manager, _evictions, _recorder, clock = _manager(stats, [], transition=300)
    await manager.synchronize()
    assert manager.conditions()["MemoryPressure"] is True
    stats.current = _summary(memory_available=4 * GI)
    clock.now += 299
    await manager.synchronize()
    assert manager.conditions()["MemoryPressure"] is True
    clock.now += 1
    await manager.synchronize()
    assert manager.conditions()["MemoryPressure"] is False


async def test_soft_threshold_waits_for_its_grace_period_and_uses_the_pod_grace() -> None:
    pod = _pod("web", terminationGracePeriodSeconds=5)
    stats = FakeStats(_summary(memory_available=1536 * MI, pods={"uid-web": _memory_stats("web", GI)}))
    manager, evictions, _recorder, clock = _manager(stats, [pod], hard=None, soft="memory.available<2Gi",
                                                    grace="memory.available=1m",
                                                    config={"max_pod_grace_period_seconds": 30})
    assert await manager.synchronize() == []
    assert manager.conditions()["MemoryPressure"] is True  # reported at once, acted on after the grace period
    clock.now += 59
    assert await manager.synchronize() == []
    clock.now += 1
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["web"]
    assert evictions.calls[0][3] == 5  # min(--eviction-max-pod-grace-period, the pod's own)


async def test_critical_pods_are_never_evicted() -> None:
    static = _pod("static", priority=0)
    static["metadata"]["annotations"] = {"kubernetes.io/config.source": "file"}
    critical = _pod("critical", priority=2000001000)
    normal = _pod("normal", memory_request="4Gi")
    pods = [static, critical, normal]
    stats = FakeStats(_summary(memory_available=100 * MI, pods={
        "uid-static": _memory_stats("static", 3 * GI), "uid-critical": _memory_stats("critical", 2 * GI),
        "uid-normal": _memory_stats("normal", 100 * MI)}))
    manager, evictions, _recorder, _clock = _manager(stats, pods)
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["normal"]
    assert [call[0] for call in evictions.calls] == ["normal"]


class FakeImageGC:
    def __init__(self, stats: FakeStats, frees_to: int) -> None:
        self.stats = stats
        self.frees_to = frees_to
        self.calls = 0

    async def delete_unused_images(self) -> int:
        self.calls += 1
        before = self.stats.current.nodefs.available_bytes
        self.stats.current = _summary(nodefs_available=self.frees_to, pods=self.stats.current.pods)
        return self.frees_to - before


async def test_disk_pressure_reclaims_images_before_evicting() -> None:
    pod = _pod("writer")
    writer = PodStats(uid="uid-writer", containers=[ContainerStats("web", rootfs=Usage(GI, 10), logs=Usage(GI, 1))])
    stats = FakeStats(_summary(nodefs_available=5 * GI, pods={"uid-writer": writer}))
    image_gc = FakeImageGC(stats, frees_to=20 * GI)
    dead_containers = []

    async def container_gc() -> None:
        dead_containers.append(True)
    manager, evictions, _recorder, _clock = _manager(stats, [pod], hard="nodefs.available<10%", image_gc=image_gc,
                                                     container_gc=container_gc)
    assert await manager.synchronize() == []
    assert (image_gc.calls, len(dead_containers), evictions.calls) == (1, 1, [])
    assert manager.conditions()["DiskPressure"] is True

    # Not enough freed: the pod goes, ranked by its disk usage; the message keeps the cycle's first observation.
    image_gc.frees_to = 6 * GI
    stats.current = _summary(nodefs_available=5 * GI, pods={"uid-writer": writer})
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["writer"]
    assert evictions.calls[0][2] == ("The node was low on resource: ephemeral-storage. Threshold quantity: "
                                     "10737418400, available: 5Gi. Container web was using 2Gi, request is 0, "
                                     "has larger consumption of ephemeral-storage. ")


async def test_local_storage_limits_evict_with_grace_zero() -> None:
    volume_pod = _pod("volume", volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}])
    container_pod = _pod("container")
    container_pod["spec"]["containers"] = [{"name": "web", "resources": {"limits": {"ephemeral-storage": "10Mi"}}},
                                           {"name": "cache", "resources": {"limits": {"ephemeral-storage": "1Gi"}}}]
    pod_total = _pod("pod-total")
    pod_total["spec"]["containers"][0]["resources"] = {"limits": {"ephemeral-storage": "5Mi"}}
    queued = _pod("queued")
    pods = [volume_pod, container_pod, pod_total, queued]
    stats = FakeStats(_summary(pods={
        "uid-volume": PodStats(uid="uid-volume", volumes={"scratch": Usage(2 * MI, 3)}),
        "uid-container": PodStats(uid="uid-container", containers=[
            ContainerStats("web", rootfs=Usage(6 * MI, 1), logs=Usage(5 * MI, 1))],
            ephemeral_storage=Usage(11 * MI, 2)),
        "uid-pod-total": PodStats(uid="uid-pod-total", ephemeral_storage=Usage(6 * MI, 2)),
        "uid-queued": PodStats(uid="uid-queued")}))
    limits: asyncio.Queue = asyncio.Queue()
    limits.put_nowait(EmptyDirLimitExceeded(queued, "cache", 3 * MI, "2Mi"))
    manager, evictions, _recorder, _clock = _manager(stats, pods, limit_exceeded=limits)
    evicted = await manager.synchronize()
    assert [p["metadata"]["name"] for p in evicted] == ["queued", "volume", "container", "pod-total"]
    assert [(c[0], c[2], c[3], c[4]) for c in evictions.calls] == [
        ("queued", 'Usage of EmptyDir volume "cache" exceeds the limit "2Mi". ', 0, None),
        ("volume", 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ', 0, None),
        ("container", 'Container web exceeded its local ephemeral storage limit "10Mi". ', 0, None),
        ("pod-total", "Pod ephemeral local storage usage exceeds the total limit of containers 5Mi. ", 0, None)]
    assert manager.conditions() == {"MemoryPressure": False, "DiskPressure": False, "PIDPressure": False}


async def test_pid_pressure_is_reported_and_evicts_the_biggest_process_user() -> None:
    pods = [_pod("few"), _pod("many")]
    summary = _summary(pods={"uid-few": PodStats(uid="uid-few", process_count=3),
                             "uid-many": PodStats(uid="uid-many", process_count=300)})
    summary.running_processes = 990
    manager, evictions, _recorder, _clock = _manager(FakeStats(summary), pods, hard="pid.available<5%")
    assert [p["metadata"]["name"] for p in await manager.synchronize()] == ["many"]
    assert manager.conditions()["PIDPressure"] is True
    assert evictions.calls[0][2] == "The node was low on resource: pids. Threshold quantity: 50, available: 10. "


async def test_run_loops_until_cancelled() -> None:
    stats = FakeStats(_summary())
    manager, _evictions, _recorder, _clock = _manager(stats, [], config={"monitoring_interval": 0.01})
    task = asyncio.create_task(manager.run())
    deadline = asyncio.get_running_loop().time() + 30
    while stats.calls < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stats.calls >= 3


# ---- the host's stats ------------------------------------------------------------------------------------

def _write_cgroup(directory: Path, usage: int, inactive_file: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (directory / "memory.stat").write_text(f"cache 1\nrss 2\ntotal_inactive_file {inactive_file}\ntotal_rss 3\n")


def test_working_set_is_usage_minus_inactive_file(tmp_path: Path) -> None:
    _write_cgroup(tmp_path / "a", usage=500 * MI, inactive_file=120 * MI)
    _write_cgroup(tmp_path / "b", usage=100 * MI, inactive_file=300 * MI)
    assert cgroup_working_set(tmp_path / "a") == 380 * MI
    assert cgroup_working_set(tmp_path / "b") == 0
    assert cgroup_working_set(tmp_path / "missing") is None


def test_directory_usage_counts_blocks_and_inodes(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f").write_bytes(b"x" * 100_000)
    (tmp_path / "d" / "link").symlink_to("/etc")
    usage = directory_usage(tmp_path / "d")
    assert usage.inodes_used == 4  # d, sub, f, link (not followed)
    assert usage.used_bytes >= 100_000
    assert directory_usage(tmp_path / "nothing") is None


def test_writable_layer_is_the_root_overlays_upperdir(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "120 111 0:63 / /proc rw,nosuid - proc proc rw\n"
        "111 66 0:51 / / rw,relatime - overlay overlay rw,lowerdir=/s/1/fs,upperdir=/s/3/fs,workdir=/s/3/work\n")
    assert overlay_upperdir(mountinfo) == Path("/s/3/fs")
    mountinfo.write_text("111 66 0:51 / / rw - ext4 /dev/vda1 rw\n")
    assert overlay_upperdir(mountinfo) is None
    assert overlay_upperdir(tmp_path / "gone") is None


async def test_host_provider_reads_pod_cgroups_logs_and_empty_dirs(tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    _write_cgroup(cgroups / "memory", usage=2 * GI, inactive_file=GI)
    _write_cgroup(cgroups / "memory" / "kubepods", usage=700 * MI, inactive_file=100 * MI)
    _write_cgroup(cgroups / "memory" / "kubepods" / "poduid-1", usage=300 * MI, inactive_file=44 * MI)
    (cgroups / "pids" / "kubepods" / "poduid-1").mkdir(parents=True)
    (cgroups / "pids" / "kubepods" / "poduid-1" / "pids.current").write_text("7\n")
    paths = KubeletPaths(tmp_path / "data")
    scratch = paths.volume_dir("uid-1", "kubernetes.io~empty-dir", "scratch")
    scratch.mkdir(parents=True)
    (scratch / "blob").write_bytes(b"y" * 64_000)
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
           "spec": {"containers": [{"name": "web"}],
                    "volumes": [{"name": "scratch", "emptyDir": {}},
                                {"name": "ram", "emptyDir": {"medium": "Memory"}}]}}
    provider = HostStatsProvider(paths, cgroup_parent="/kubepods", allocatable_memory=GI, cgroup_root=cgroups)
    summary = await provider.summary([pod])
    assert summary.memory_working_set == GI
    pod_stats = summary.pods["uid-1"]
    assert (pod_stats.memory_working_set, pod_stats.process_count) == (256 * MI, 7)
    assert set(pod_stats.volumes) == {"scratch"} and pod_stats.volumes["scratch"].used_bytes >= 64_000
    observed = observations(summary)
    assert observed["allocatableMemory.available"].available == GI - 600 * MI
    assert observed["memory.available"].capacity == summary.memory_capacity
    assert observed["nodefs.available"].capacity > 0 and "imagefs.available" not in observed
    assert observed["pid.available"].available == summary.max_pid - summary.running_processes


async def test_memory_pressure_from_the_real_host_with_a_relative_threshold(tmp_path: Path) -> None:
    """Pressure is caused by a threshold above what this machine has, never by filling its memory."""
    provider = HostStatsProvider(KubeletPaths(tmp_path))
    evictions = Evictions()
    config = EvictionConfig(thresholds=parse_threshold_config("memory.available<99%,nodefs.inodesFree<1%"))
    manager = EvictionManager(config, provider, lambda: [], evictions)
    assert await manager.synchronize() == []
    assert manager.conditions() == {"MemoryPressure": True, "DiskPressure": False, "PIDPressure": False}
    assert evictions.calls == []
