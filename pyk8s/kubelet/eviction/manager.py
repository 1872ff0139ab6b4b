"""The kubelet's eviction manager (upstream pkg/kubelet/eviction/eviction_manager.go).

Every monitoring interval (10 s) it observes the node's signals, works out which thresholds are met (hard at once,
soft after their grace period, and kept met until the minimum reclaim is back), reports MemoryPressure /
DiskPressure / PIDPressure (held for the pressure transition period after the signal recovers), evicts pods over
their local-storage limits, and under pressure first reclaims what the node itself holds (dead containers, unused
images) and, if that is not enough, evicts one pod: the first in upstream's ranking for the starved resource.

Evicting is the kubelet core's job; the manager calls `evict(pod, reason, message, grace_period_seconds=...,
condition=...)` and the core kills the pod with that grace period and reports `phase: Failed`, the reason
(`Evicted`), the message and the DisruptionTarget condition in the pod's status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ...api import quantity as quantities
from ...api.quota import pod_limits
from ...client import WARNING
from .ranking import (
    CONTAINER_EPHEMERAL_STORAGE_MESSAGE,
    EMPTY_DIR_MESSAGE,
    POD_EPHEMERAL_STORAGE_MESSAGE,
    REASON,
    RankFunc,
    eviction_message,
    signal_rank_functions,
)
from .signals import PodStats, StatsProvider, StatsUnavailable, Summary, observations
from .thresholds import (
    CONTAINERFS_AVAILABLE,
    CONTAINERFS_INODES_FREE,
    DEFAULT_PRESSURE_TRANSITION_PERIOD,
    IMAGEFS_AVAILABLE,
    IMAGEFS_INODES_FREE,
    NODEFS_AVAILABLE,
    NODEFS_INODES_FREE,
    PRESSURE_CONDITIONS,
    Observation,
    Threshold,
    merge_thresholds,
    node_conditions,
    node_conditions_last_observed_at,
    node_conditions_observed_since,
    parse_threshold_config,
    reclaimable_threshold,
    thresholds_first_observed_at,
    thresholds_met,
    thresholds_met_grace_period,
    thresholds_updated_stats,
)

if TYPE_CHECKING:
    from ...client import EventRecorder
    from ..image_gc import ImageGC

log = logging.getLogger(__name__)

MONITORING_INTERVAL = 10.0
POD_CLEANUP_TIMEOUT = 30.0
POD_CLEANUP_POLL = 1.0
IMMEDIATE_EVICTION_GRACE_PERIOD_SECONDS = 1
SYSTEM_CRITICAL_PRIORITY = 2000000000
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"
CONFIG_MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DISRUPTION_TARGET = "DisruptionTarget"
TERMINATION_BY_KUBELET = "TerminationByKubelet"
EVICTION_THRESHOLD_MET = "EvictionThresholdMet"
DISK_SIGNALS = (NODEFS_AVAILABLE, NODEFS_INODES_FREE, IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE, CONTAINERFS_AVAILABLE,
                CONTAINERFS_INODES_FREE)


class EvictPod(Protocol):
    def __call__(self, pod: dict, reason: str, message: str, *, grace_period_seconds: int,
                 condition: dict | None) -> Awaitable[bool]:
        """Kill the pod (containers stopped with the grace period) and report it Failed with reason and message;
        True once it is done."""


@dataclass
class EvictionConfig:
    thresholds: list[Threshold] = field(default_factory=parse_threshold_config)
    pressure_transition_period: float = DEFAULT_PRESSURE_TRANSITION_PERIOD
    max_pod_grace_period_seconds: int = 0  # --eviction-max-pod-grace-period, for soft evictions
    monitoring_interval: float = MONITORING_INTERVAL
    local_storage_capacity_isolation: bool = True
    node_name: str = ""


def is_critical_pod(pod: dict) -> bool:
    """Static and mirror pods and pods at system-critical priority (upstream kubelettypes.IsCriticalPod)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    source = annotations.get(CONFIG_SOURCE_ANNOTATION)
    if source is not None and source != "api":
        return True
    if CONFIG_MIRROR_ANNOTATION in annotations:
        return True
    priority = (pod.get("spec") or {}).get("priority")
    return priority is not None and int(priority) >= SYSTEM_CRITICAL_PRIORITY


def _pod_key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _uid(pod: dict) -> str:
    return (pod.get("metadata") or {}).get("uid", "")


class EvictionManager:
    def __init__(self, config: EvictionConfig, stats: StatsProvider, pods: Callable[[], list[dict]],
                 evict: EvictPod, image_gc: ImageGC | None = None, *,
                 container_gc: Callable[[], Awaitable[None]] | None = None,
                 limit_exceeded: asyncio.Queue | None = None, recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.stats = stats
        self.pods = pods
        self.evict = evict
        self.image_gc = image_gc
        self.container_gc = container_gc
        self.limit_exceeded = limit_exceeded
        self.recorder = recorder
        self.clock = clock
        self._dedicated_image_fs: bool | None = None
        self._rank: dict[str, RankFunc] = {}
        self._node_conditions: list[str] = []
        self._thresholds_first_observed_at: dict[Threshold, float] = {}
        self._conditions_last_observed_at: dict[str, float] = {}
        self._thresholds_met: list[Threshold] = []
        self._last_observations: dict[str, Observation] = {}

    # ---- what the node agent and pod admission read ---------------------------------------------------

    def conditions(self) -> dict[str, bool]:
        """MemoryPressure / DiskPressure / PIDPressure as the node should report them now."""
        return {condition: condition in self._node_conditions for condition in PRESSURE_CONDITIONS}

    # ---- the loop --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """synchronize() every monitoring interval until cancelled; after an eviction, wait for the pod to go."""
        while True:
            try:
                evicted = await self.synchronize()
            except Exception:
                log.exception("eviction manager: synchronize failed")
                evicted = []
            if evicted:
                await self._wait_for_cleanup(evicted)
            else:
                await asyncio.sleep(self.config.monitoring_interval)

    async def _wait_for_cleanup(self, evicted: list[dict]) -> None:
        gone = {_uid(p) for p in evicted}
        deadline = self.clock() + POD_CLEANUP_TIMEOUT
        while self.clock() < deadline:
            if not gone & {_uid(p) for p in self.pods()}:
                return
            await asyncio.sleep(POD_CLEANUP_POLL)
        log.warning("eviction manager: timed out waiting for pods %s to be cleaned up",
                    ", ".join(_pod_key(p) for p in evicted))

    async def synchronize(self) -> list[dict]:
        """One cycle; returns the pods it evicted (at most one for node pressure)."""
        thresholds = self.config.thresholds
        if not thresholds and not self.config.local_storage_capacity_isolation:
            return []
        if self._dedicated_image_fs is None:
            try:
                self._dedicated_image_fs = await self.stats.has_dedicated_image_fs()
            except StatsUnavailable as exc:
                log.warning("eviction manager: cannot tell where images live yet, skipping this cycle: %s", exc)
                return []
            self._rank = signal_rank_functions(self._dedicated_image_fs)
        active = self.pods()
        try:
            summary = await self.stats.summary(active)
        except Exception:
            log.exception("eviction manager: failed to get summary stats")
            return []
        observed = observations(summary)
        stats_func = _stats_func(summary)

        met = thresholds_met(thresholds, observed, enforce_min_reclaim=False)
        if self._thresholds_met:
            met = merge_thresholds(met, thresholds_met(self._thresholds_met, observed, enforce_min_reclaim=True))
        now = self.clock()
        first_observed = thresholds_first_observed_at(met, self._thresholds_first_observed_at, now)
        last_observed = node_conditions_last_observed_at(node_conditions(met), self._conditions_last_observed_at, now)
        self._node_conditions = node_conditions_observed_since(last_observed, self.config.pressure_transition_period,
                                                               now)
        met = thresholds_met_grace_period(first_observed, now)
        self._thresholds_first_observed_at = first_observed
        self._conditions_last_observed_at = last_observed
        self._thresholds_met = met
        met = thresholds_updated_stats(met, observed, self._last_observations)
        self._last_observations = observed

        if self.config.local_storage_capacity_isolation:
            evicted = await self._local_storage_eviction(active, stats_func)
            if evicted:
                return evicted
        if not met:
            return []
        threshold = reclaimable_threshold(met)
        if threshold is None:
            return []
        resource = threshold.resource
        log.info("eviction manager: attempting to reclaim %s", resource)
        self._node_event(EVICTION_THRESHOLD_MET, f"Attempting to reclaim {resource}")
        if await self._reclaim_node_level_resources(threshold, active):
            log.info("eviction manager: able to reduce %s pressure without evicting pods", resource)
            return []
        rank = self._rank.get(threshold.signal)
        if rank is None or not active:
            if not active:
                log.error("eviction manager: eviction thresholds have been met, but no pods are active to evict")
            return []
        ranked = rank(list(active), stats_func)
        log.info("eviction manager: pods ranked for eviction: %s", ", ".join(_pod_key(p) for p in ranked))
        for pod in ranked:
            grace = IMMEDIATE_EVICTION_GRACE_PERIOD_SECONDS
            if not threshold.hard:
                grace = self.config.max_pod_grace_period_seconds
                own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
                if own is not None:
                    grace = min(grace, int(own))
            message, _annotations = eviction_message(resource, pod, stats_func, met, observed)
            condition = {"type": DISRUPTION_TARGET, "status": "True", "reason": TERMINATION_BY_KUBELET,
                         "message": message}
            if await self._evict_pod(pod, grace, message, condition):
                return [pod]
        log.info("eviction manager: unable to evict any pods from the node")
        return []

    # ---- parts of a cycle -----------------------------------------------------------------------------

    async def _reclaim_node_level_resources(self, threshold: Threshold, active: list[dict]) -> bool:
        """Dead containers and unused images go before any pod does; True if that ended every threshold."""
        if threshold.signal not in DISK_SIGNALS:
            return False
        if self._dedicated_image_fs and threshold.signal in (NODEFS_AVAILABLE, NODEFS_INODES_FREE):
            return False  # images live elsewhere: nothing the node holds on its root filesystem can go
        reclaimers: list[Callable[[], Awaitable[object]]] = []
        if self.container_gc is not None:
            reclaimers.append(self.container_gc)
        if self.image_gc is not None:
            reclaimers.append(self.image_gc.delete_unused_images)
        if not reclaimers:
            return False
        for reclaim in reclaimers:
            try:
                await reclaim()
            except Exception as exc:
                log.info("eviction manager: unexpected error when attempting to reduce %s pressure: %s",
                         threshold.resource, exc)
        try:
            summary = await self.stats.summary(active)
        except Exception:
            log.exception("eviction manager: failed to get summary stats after resource reclaim")
            return False
        return not thresholds_met(self.config.thresholds, observations(summary), enforce_min_reclaim=True)

    async def _local_storage_eviction(self, active: list[dict], stats: Callable[[dict], PodStats | None]
                                      ) -> list[dict]:
        """Pods over an emptyDir sizeLimit, their total ephemeral-storage limit or a container's limit."""
        evicted: list[dict] = []
        by_uid = {_uid(p): p for p in active}
        while self.limit_exceeded is not None and not self.limit_exceeded.empty():
            exceeded = self.limit_exceeded.get_nowait()
            pod = by_uid.get(_uid(exceeded.pod))
            if pod is not None and pod not in evicted and await self._evict_pod(pod, 0, exceeded.message, None):
                evicted.append(pod)
        for pod in active:
            if pod in evicted:
                continue
            pod_stats = stats(pod)
            if pod_stats is None:
                continue
            message = (_empty_dir_violation(pod, pod_stats) or _pod_ephemeral_violation(pod, pod_stats)
                       or _container_ephemeral_violation(pod, pod_stats, bool(self._dedicated_image_fs)))
            if message and await self._evict_pod(pod, 0, message, None):
                evicted.append(pod)
        return evicted

    async def _evict_pod(self, pod: dict, grace: int, message: str, condition: dict | None) -> bool:
        if is_critical_pod(pod):
            log.error("eviction manager: cannot evict a critical pod %s", _pod_key(pod))
            return False
        if self.recorder is not None:
            self.recorder.event(pod, WARNING, REASON, message)
        log.info("eviction manager: evicting pod %s: %s", _pod_key(pod), message)
        try:
            if await self.evict(pod, REASON, message, grace_period_seconds=grace, condition=condition):
                log.info("eviction manager: pod %s is evicted successfully", _pod_key(pod))
            else:
                log.error("eviction manager: pod %s failed to evict", _pod_key(pod))
        except Exception:
            log.exception("eviction manager: pod %s failed to evict", _pod_key(pod))
        return True

    def _node_event(self, reason: str, message: str) -> None:
        if self.recorder is not None and self.config.node_name:
            node = {"kind": "Node", "name": self.config.node_name, "uid": self.config.node_name}
            self.recorder.event(node, WARNING, reason, message)


def _stats_func(summary: Summary) -> Callable[[dict], PodStats | None]:
    return lambda pod: summary.pods.get(_uid(pod))


def _empty_dir_violation(pod: dict, stats: PodStats) -> str | None:
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        empty_dir = volume.get("emptyDir")
        if empty_dir is None or not empty_dir.get("sizeLimit"):
            continue
        used = stats.volumes.get(volume["name"])
        limit = quantities.parse(empty_dir["sizeLimit"])
        if used is not None and limit.value > 0 and used.used_bytes > limit.value:
            return EMPTY_DIR_MESSAGE.format(volume["name"], limit)
    return None


def _pod_ephemeral_violation(pod: dict, stats: PodStats) -> str | None:
    limit = pod_limits(pod.get("spec") or {}).get("ephemeral-storage")
    if limit is None:
        return None
    used = stats.ephemeral_storage.used_bytes if stats.ephemeral_storage is not None else 0
    if used > limit.value:
        return POD_EPHEMERAL_STORAGE_MESSAGE.format(limit)
    return None


def _container_ephemeral_violation(pod: dict, stats: PodStats, dedicated_image_fs: bool) -> str | None:
    limits = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
        if limit is not None and quantities.parse(limit).value != 0:
            limits[container.get("name")] = quantities.parse(limit)
    for container in stats.containers:
        limit = limits.get(container.name)
        if limit is None:
            continue
        used = container.logs.used_bytes if container.logs is not None else 0
        if not dedicated_image_fs and container.rootfs is not None:
            used += container.rootfs.used_bytes
        if used > limit.value:
            return CONTAINER_EPHEMERAL_STORAGE_MESSAGE.format(container.name, limit)
    return None
