"""Which pod is evicted first and what it is told (upstream helpers_test.go TestOrderedBy*, TestEvictionMessage)."""

from __future__ import annotations

import pytest

from pyk8s.kubelet.eviction.ranking import (
    FS_LOCAL_VOLUMES,
    FS_LOGS,
    FS_ROOT,
    eviction_message,
    pod_disk_usage,
    rank_disk_pressure,
    rank_memory_pressure,
    rank_pid_pressure,
    signal_rank_functions,
)
from pyk8s.kubelet.eviction.signals import ContainerStats, PodStats, Usage
from pyk8s.kubelet.eviction.thresholds import (
    IMAGEFS_AVAILABLE,
    MEMORY_AVAILABLE,
    NODEFS_AVAILABLE,
    Observation,
    parse_threshold_config,
)

MI = 1024 * 1024
GI = 1024 * MI


def _pod(name: str, *, priority: int = 0, requests: dict | None = None, limits: dict | None = None,
         volumes: list | None = None, containers: int = 1) -> dict:
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    spec = {"containers": [{"name": f"c{i}" if i else "web", "resources": resources} for i in range(containers)],
            "priority": priority}
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec}


def _stats(table: dict[str, PodStats]):
    return lambda pod: table.get(pod["metadata"]["uid"])


def _memory(pod: dict, working_set: int) -> PodStats:
    return PodStats(uid=pod["metadata"]["uid"], memory_working_set=working_set,
                    containers=[ContainerStats("web", memory_working_set=working_set)])


def _names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_memory_ranking_exceeding_requests_then_priority_then_usage_above_request() -> None:
    # upstream TestOrderedByMemoryPriority: the same table shape.
    below_requests = _pod("below-requests", priority=-1, requests={"memory": "500Mi"})
    above_requests_low = _pod("above-requests-low", priority=-1, requests={"memory": "100Mi"})
    above_requests_high = _pod("above-requests-high", priority=100, requests={"memory": "100Mi"})
    best_effort_low = _pod("best-effort-low", priority=-1)
    best_effort_high = _pod("best-effort-high", priority=100)
    table = {p["metadata"]["uid"]: _memory(p, usage) for p, usage in (
        (below_requests, 300 * MI), (above_requests_low, 400 * MI), (above_requests_high, 400 * MI),
        (best_effort_low, 200 * MI), (best_effort_high, 500 * MI))}
    ranked = rank_memory_pressure([below_requests, best_effort_high, above_requests_high, best_effort_low,
                                   above_requests_low], _stats(table))
    assert _names(ranked) == ["above-requests-low", "best-effort-low", "best-effort-high", "above-requests-high",
                              "below-requests"]


def test_memory_ranking_puts_pods_without_stats_first() -> None:
    known, unknown = _pod("known"), _pod("unknown")
    ranked = rank_memory_pressure([known, unknown], _stats({"uid-known": _memory(known, GI)}))
    assert _names(ranked) == ["unknown", "known"]


def test_memory_ranking_by_usage_above_request() -> None:
    # upstream TestOrderedByMemory: usage relative to the request, largest first.
    pods = [_pod("p1", requests={"memory": "1Gi"}), _pod("p2", requests={"memory": "100Mi"}), _pod("p3")]
    usages = {"p1": 1536 * MI, "p2": 300 * MI, "p3": 250 * MI}
    table = {p["metadata"]["uid"]: _memory(p, usages[p["metadata"]["name"]]) for p in pods}
    assert _names(rank_memory_pressure(pods, _stats(table))) == ["p1", "p3", "p2"]


def test_pid_ranking_priority_then_process_count() -> None:
    pods = [_pod("high", priority=10), _pod("low-few", priority=0), _pod("low-many", priority=0)]
    counts = {"high": 500, "low-few": 10, "low-many": 200}
    table = {p["metadata"]["uid"]: PodStats(uid=p["metadata"]["uid"], process_count=counts[p["metadata"]["name"]])
             for p in pods}
    assert _names(rank_pid_pressure(pods, _stats(table))) == ["low-many", "low-few", "high"]


def _disk(pod: dict, rootfs: int, logs: int, volume: int = 0) -> PodStats:
    return PodStats(uid=pod["metadata"]["uid"],
                    containers=[ContainerStats("web", rootfs=Usage(rootfs, 10), logs=Usage(logs, 1))],
                    volumes={"scratch": Usage(volume, 5)} if volume else {})


@pytest.mark.parametrize("measured", [(FS_ROOT, FS_LOGS, FS_LOCAL_VOLUMES), (FS_LOGS, FS_LOCAL_VOLUMES)])
def test_disk_ranking_exceeding_requests_then_priority_then_usage(measured: tuple[str, ...]) -> None:
    # upstream TestOrderedbyDisk / TestOrderedbyDiskDisableLocalStorage shape.
    scratch = [{"name": "scratch", "emptyDir": {}}]
    within = _pod("within-request", requests={"ephemeral-storage": "1Gi"}, volumes=scratch)
    over_low = _pod("over-low", priority=-1, requests={"ephemeral-storage": "100Mi"}, volumes=scratch)
    over_high = _pod("over-high", priority=100, requests={"ephemeral-storage": "100Mi"}, volumes=scratch)
    none_high = _pod("none-high", priority=100, volumes=scratch)
    table = {p["metadata"]["uid"]: _disk(p, rootfs, logs, volume) for p, (rootfs, logs, volume) in (
        (within, (200 * MI, 100 * MI, 200 * MI)), (over_low, (100 * MI, 100 * MI, 100 * MI)),
        (over_high, (300 * MI, 100 * MI, 400 * MI)), (none_high, (50 * MI, 50 * MI, 50 * MI)))}
    ranked = rank_disk_pressure(measured, "ephemeral-storage")([within, none_high, over_high, over_low], _stats(table))
    assert _names(ranked) == ["over-low", "over-high", "none-high", "within-request"]


def test_disk_usage_counts_only_local_ephemeral_volumes_and_measured_parts() -> None:
    pod = _pod("p", volumes=[{"name": "scratch", "emptyDir": {}}, {"name": "ram", "emptyDir": {"medium": "Memory"}}])
    stats = PodStats(uid="uid-p", containers=[ContainerStats("web", rootfs=Usage(10, 1), logs=Usage(20, 2))],
                     volumes={"scratch": Usage(300, 3), "ram": Usage(4000, 4)})
    assert pod_disk_usage(stats, pod, (FS_ROOT, FS_LOGS, FS_LOCAL_VOLUMES)) == {"ephemeral-storage": 330, "inodes": 6}
    assert pod_disk_usage(stats, pod, (FS_LOGS,)) == {"ephemeral-storage": 20, "inodes": 2}


def test_images_on_their_own_filesystem_rank_image_pressure_by_rootfs_only() -> None:
    small_root, big_root = _pod("small-root"), _pod("big-root")
    table = {"uid-small-root": _disk(small_root, rootfs=10 * MI, logs=500 * MI),
             "uid-big-root": _disk(big_root, rootfs=400 * MI, logs=1 * MI)}
    shared = signal_rank_functions(dedicated_image_fs=False)
    dedicated = signal_rank_functions(dedicated_image_fs=True)
    assert _names(shared[IMAGEFS_AVAILABLE]([big_root, small_root], _stats(table))) == ["small-root", "big-root"]
    assert _names(dedicated[IMAGEFS_AVAILABLE]([small_root, big_root], _stats(table))) == ["big-root", "small-root"]
    assert _names(dedicated[NODEFS_AVAILABLE]([big_root, small_root], _stats(table))) == ["small-root", "big-root"]


def test_eviction_message_names_threshold_and_offending_containers() -> None:
    pod = _pod("web", containers=2)
    pod["spec"]["containers"][1]["resources"] = {"requests": {"memory": "300Mi"}}
    stats = PodStats(uid="uid-web", memory_working_set=400 * MI,
                     containers=[ContainerStats("web", memory_working_set=200 * MI),
                                 ContainerStats("c1", memory_working_set=200 * MI)])
    thresholds = parse_threshold_config("memory.available<100Mi")
    observations = {MEMORY_AVAILABLE: Observation(available=50 * MI, capacity=8 * GI)}
    message, annotations = eviction_message("memory", pod, _stats({"uid-web": stats}), thresholds, observations)
    assert message == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
                       "Container web was using 200Mi, request is 0, has larger consumption of memory. ")
    assert annotations == {"offending_containers": "web", "offending_containers_usage": "200Mi",
                           "starved_resource": "memory"}


def test_eviction_message_for_disk_with_a_percentage_threshold() -> None:
    pod = _pod("logger", requests={"ephemeral-storage": "1Mi"})
    stats = PodStats(uid="uid-logger",
                     containers=[ContainerStats("web", rootfs=Usage(1 * MI, 1), logs=Usage(1023 * MI, 1))])
    thresholds = parse_threshold_config("nodefs.available<10%")
    observations = {NODEFS_AVAILABLE: Observation(available=5 * GI, capacity=100 * GI)}
    message, _ = eviction_message("ephemeral-storage", pod, _stats({"uid-logger": stats}), thresholds, observations)
    # 10% is float32(0.1) as in upstream, so the threshold is not exactly 10Gi.
    assert message == ("The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, "
                       "available: 5Gi. "
                       "Container web was using 1Gi, request is 1Mi, has larger consumption of ephemeral-storage. ")


def test_eviction_message_without_stats_is_just_the_resource() -> None:
    message, annotations = eviction_message("pids", _pod("p"), _stats({}), [], {})
    assert (message, annotations) == ("The node was low on resource: pids. ", {})
