"""Which pod goes first, and what its eviction message says (upstream pkg/kubelet/eviction/helpers.go).

Memory: pods using more than they requested first, then lower priority, then the most usage above the request.
Disk: likewise with ephemeral-storage (or inodes) usage of the filesystems under pressure. PIDs: lower priority, then
the most processes. A pod without stats is ranked first, as upstream does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction

from ...api import quantity as quantities
from ...api.quota import pod_requests
from .signals import PodStats, Usage
from .thresholds import (
    ALLOCATABLE_MEMORY_AVAILABLE,
    CONTAINERFS_AVAILABLE,
    CONTAINERFS_INODES_FREE,
    IMAGEFS_AVAILABLE,
    IMAGEFS_INODES_FREE,
    MEMORY_AVAILABLE,
    NODEFS_AVAILABLE,
    NODEFS_INODES_FREE,
    PID_AVAILABLE,
    RESOURCE_EPHEMERAL_STORAGE,
    RESOURCE_INODES,
    RESOURCE_MEMORY,
    RESOURCE_PIDS,
    SIGNAL_RESOURCE,
    Observation,
    Threshold,
)

REASON = "Evicted"
NODE_LOW_MESSAGE = "The node was low on resource: {}. "
THRESHOLD_MET_MESSAGE = "Threshold quantity: {}, available: {}. "
CONTAINER_MESSAGE = "Container {} was using {}, request is {}, has larger consumption of {}. "
NODE_CONDITION_MESSAGE = "The node had condition: [{}]. "
CONTAINER_EPHEMERAL_STORAGE_MESSAGE = 'Container {} exceeded its local ephemeral storage limit "{}". '
POD_EPHEMERAL_STORAGE_MESSAGE = "Pod ephemeral local storage usage exceeds the total limit of containers {}. "
EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '

OFFENDING_CONTAINERS_KEY = "offending_containers"
OFFENDING_CONTAINERS_USAGE_KEY = "offending_containers_usage"
STARVED_RESOURCE_KEY = "starved_resource"

# Which parts of a pod's disk usage count against a filesystem (upstream fsStatsType).
FS_ROOT = "root"
FS_LOGS = "logs"
FS_LOCAL_VOLUMES = "localVolumeSource"

StatsFunc = Callable[[dict], PodStats | None]
RankFunc = Callable[[list[dict], StatsFunc], list[dict]]
Compare = Callable[[dict, dict], int]


def binary(value: int) -> str:
    return quantities.canonical(Fraction(value), quantities.BINARY_SI)


def decimal(value: int) -> str:
    return quantities.canonical(Fraction(value), quantities.DECIMAL_SI)


def format_amount(resource: str | None, value: int) -> str:
    """Bytes print in binary SI, inode and pid counts in decimal SI, as upstream's observations do."""
    return decimal(value) if resource in (RESOURCE_INODES, RESOURCE_PIDS) else binary(value)


def pod_request(pod: Mapping, resource: str) -> int:
    """The pod's effective request (containers, sidecars, the largest init container, overhead), 0 when none."""
    request = pod_requests(pod.get("spec") or {}).get(resource)
    return int(request.value) if request is not None else 0


def pod_priority(pod: Mapping) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def _cmp_bool(first: bool, second: bool) -> int:
    """True sorts first."""
    if first == second:
        return 0
    return -1 if first else 1


def _cmp(first: int, second: int) -> int:
    return (first > second) - (first < second)


def _with_stats(compare: Callable[[dict, PodStats, dict, PodStats], int], stats: StatsFunc) -> Compare:
    def compare_pods(p1: dict, p2: dict) -> int:
        s1, s2 = stats(p1), stats(p2)
        if s1 is None or s2 is None:
            return _cmp_bool(s1 is None, s2 is None)
        return compare(p1, s1, p2, s2)
    return compare_pods


def by_priority(p1: dict, p2: dict) -> int:
    """Lower priority first."""
    return _cmp(pod_priority(p1), pod_priority(p2))


def _ordered(pods: Iterable[dict], *compares: Compare) -> list[dict]:
    def combined(p1: dict, p2: dict) -> int:
        for compare in compares:
            result = compare(p1, p2)
            if result:
                return result
        return 0
    return sorted(pods, key=functools.cmp_to_key(combined))


def memory_usage(stats: PodStats) -> int:
    return stats.memory_working_set or 0


def exceed_memory_requests(stats: StatsFunc) -> Compare:
    return _with_stats(lambda p1, s1, p2, s2: _cmp_bool(memory_usage(s1) > pod_request(p1, RESOURCE_MEMORY),
                                                        memory_usage(s2) > pod_request(p2, RESOURCE_MEMORY)), stats)


def memory_above_request(stats: StatsFunc) -> Compare:
    return _with_stats(lambda p1, s1, p2, s2: _cmp(memory_usage(s2) - pod_request(p2, RESOURCE_MEMORY),
                                                   memory_usage(s1) - pod_request(p1, RESOURCE_MEMORY)), stats)


def rank_memory_pressure(pods: list[dict], stats: StatsFunc) -> list[dict]:
    return _ordered(pods, exceed_memory_requests(stats), by_priority, memory_above_request(stats))


def rank_pid_pressure(pods: list[dict], stats: StatsFunc) -> list[dict]:
    by_processes = _with_stats(lambda p1, s1, p2, s2: _cmp(s2.process_count or 0, s1.process_count or 0), stats)
    return _ordered(pods, by_priority, by_processes)


def local_ephemeral_volume_names(pod: Mapping) -> list[str]:
    """Volumes whose contents live on the node's filesystem (upstream localEphemeralVolumeNames)."""
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        empty_dir = volume.get("emptyDir")
        if (volume.get("gitRepo") is not None or volume.get("configMap") is not None
                or volume.get("downwardAPI") is not None
                or (empty_dir is not None and empty_dir.get("medium") != "Memory")):
            names.append(volume["name"])
    return names


def pod_disk_usage(stats: PodStats, pod: Mapping, measured: Iterable[str]) -> dict[str, int]:
    """Bytes and inodes a pod uses on the measured parts: container rootfs and/or logs, local volumes."""
    measured = set(measured)
    used_bytes = used_inodes = 0

    def add(usage: Usage | None) -> None:
        nonlocal used_bytes, used_inodes
        if usage is not None:
            used_bytes += usage.used_bytes
            used_inodes += usage.inodes_used

    for container in stats.containers:
        if FS_ROOT in measured:
            add(container.rootfs)
        if FS_LOGS in measured:
            add(container.logs)
    if FS_LOCAL_VOLUMES in measured:
        for name in local_ephemeral_volume_names(pod):
            add(stats.volumes.get(name))
    return {RESOURCE_EPHEMERAL_STORAGE: used_bytes, RESOURCE_INODES: used_inodes}


def rank_disk_pressure(measured: tuple[str, ...], resource: str) -> RankFunc:
    def exceeds(p1: dict, s1: PodStats, p2: dict, s2: PodStats) -> int:
        return _cmp_bool(pod_disk_usage(s1, p1, measured)[resource] > pod_request(p1, resource),
                         pod_disk_usage(s2, p2, measured)[resource] > pod_request(p2, resource))

    def above_request(p1: dict, s1: PodStats, p2: dict, s2: PodStats) -> int:
        # Upstream subtracts the ephemeral-storage request for inodes too.
        d1 = pod_disk_usage(s1, p1, measured)[resource] - pod_request(p1, RESOURCE_EPHEMERAL_STORAGE)
        d2 = pod_disk_usage(s2, p2, measured)[resource] - pod_request(p2, RESOURCE_EPHEMERAL_STORAGE)
        return _cmp(d2, d1)

    def rank(pods: list[dict], stats: StatsFunc) -> list[dict]:
        return _ordered(pods, _with_stats(exceeds, stats), by_priority, _with_stats(above_request, stats))
    return rank


def signal_rank_functions(dedicated_image_fs: bool) -> dict[str, RankFunc]:
    """How pods are ranked for each signal (upstream buildSignalToRankFunc, images and containers on one fs)."""
    ranks: dict[str, RankFunc] = {MEMORY_AVAILABLE: rank_memory_pressure,
                                  ALLOCATABLE_MEMORY_AVAILABLE: rank_memory_pressure,
                                  PID_AVAILABLE: rank_pid_pressure}
    if dedicated_image_fs:
        node_parts, image_parts = (FS_LOGS, FS_LOCAL_VOLUMES), (FS_ROOT,)
    else:
        node_parts = image_parts = (FS_ROOT, FS_LOGS, FS_LOCAL_VOLUMES)
    ranks[NODEFS_AVAILABLE] = rank_disk_pressure(node_parts, RESOURCE_EPHEMERAL_STORAGE)
    ranks[NODEFS_INODES_FREE] = rank_disk_pressure(node_parts, RESOURCE_INODES)
    for signal in (IMAGEFS_AVAILABLE, CONTAINERFS_AVAILABLE):
        ranks[signal] = rank_disk_pressure(image_parts, RESOURCE_EPHEMERAL_STORAGE)
    for signal in (IMAGEFS_INODES_FREE, CONTAINERFS_INODES_FREE):
        ranks[signal] = rank_disk_pressure(image_parts, RESOURCE_INODES)
    return ranks


def _container_request_text(container: Mapping, resource: str) -> str:
    request = ((container.get("resources") or {}).get("requests") or {}).get(resource)
    return str(quantities.parse(request)) if request is not None else "0"


def _container_request(container: Mapping, resource: str) -> int:
    request = ((container.get("resources") or {}).get("requests") or {}).get(resource)
    return int(quantities.parse(request).value) if request is not None else 0


def eviction_message(resource: str, pod: dict, stats: StatsFunc, thresholds: Iterable[Threshold],
                     observations: Mapping[str, Observation]) -> tuple[str, dict[str, str]]:
    """Upstream's eviction message (and event annotations): the starved resource, the threshold that was met and
    each container using more than it requested."""
    message = NODE_LOW_MESSAGE.format(resource)
    for threshold in thresholds:
        observed = observations.get(threshold.signal)
        if SIGNAL_RESOURCE.get(threshold.signal) == resource and observed is not None:
            message += THRESHOLD_MET_MESSAGE.format(threshold.value.text(observed.capacity),
                                                    format_amount(resource, observed.available))
            break
    pod_stats = stats(pod)
    if pod_stats is None:
        return message, {}
    offending, usages = [], []
    spec_containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    for container_stats in pod_stats.containers:
        container = spec_containers.get(container_stats.name)
        if container is None:
            continue
        usage: int | None = None
        if resource == RESOURCE_EPHEMERAL_STORAGE:
            if container_stats.rootfs is not None and container_stats.logs is not None:
                usage = container_stats.rootfs.used_bytes + container_stats.logs.used_bytes
        elif resource == RESOURCE_MEMORY:
            usage = container_stats.memory_working_set
        if usage is not None and usage > _container_request(container, resource):
            message += CONTAINER_MESSAGE.format(container_stats.name, binary(usage),
                                                _container_request_text(container, resource), resource)
            offending.append(container_stats.name)
            usages.append(binary(usage))
    return message, {OFFENDING_CONTAINERS_KEY: ",".join(offending),
                     OFFENDING_CONTAINERS_USAGE_KEY: ",".join(usages), STARVED_RESOURCE_KEY: resource}
