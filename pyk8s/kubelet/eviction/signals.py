"""What the node has left: the stats the eviction manager and image GC decide from, and where they come from.

`Summary` is the shape of upstream's stats summary that eviction reads (node memory, the node and image filesystems,
the pid limit, and per pod: memory working set, process count, container rootfs/log usage and volume usage).
`StatsProvider` is the seam: `HostStatsProvider` reads the host (cgroup v1 files, statvfs, /proc, CRI ImageFsInfo);
a provider built on CRI ContainerStats can replace it without touching the manager.

Working set is upstream's (cadvisor's): cgroup memory usage minus `total_inactive_file`, never below zero, and
memory.available = machine memory - the root cgroup's working set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from ..paths import KubeletPaths
from ..runtime.cri import CRIClient, CRIError, pb
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
    Observation,
)

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
EMPTY_DIR_PLUGIN = "kubernetes.io~empty-dir"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"


class StatsUnavailable(Exception):
    """The stats cannot be read now (the runtime is down or still starting)."""


@dataclass(frozen=True)
class FsStats:
    capacity_bytes: int
    available_bytes: int
    inodes: int | None = None
    inodes_free: int | None = None
    mountpoint: str = ""
    device: int | None = None


@dataclass(frozen=True)
class Usage:
    """Bytes and inodes a directory tree uses."""

    used_bytes: int
    inodes_used: int


@dataclass
class ContainerStats:
    name: str
    memory_working_set: int | None = None
    rootfs: Usage | None = None  # the writable layer, when the provider can see it
    logs: Usage | None = None


@dataclass
class PodStats:
    uid: str
    containers: list[ContainerStats] = field(default_factory=list)
    memory_working_set: int | None = None
    process_count: int | None = None
    volumes: dict[str, Usage] = field(default_factory=dict)  # local ephemeral volumes by name
    ephemeral_storage: Usage | None = None  # containers + volumes + the pod's own files


@dataclass
class Summary:
    time: float
    memory_capacity: int | None = None
    memory_working_set: int | None = None
    allocatable_memory_capacity: int | None = None  # the pods' cgroup, when node allocatable is enforced
    allocatable_memory_working_set: int | None = None
    nodefs: FsStats | None = None
    imagefs: FsStats | None = None
    max_pid: int | None = None
    running_processes: int | None = None
    pods: dict[str, PodStats] = field(default_factory=dict)


class StatsProvider(Protocol):
    async def summary(self, pods: list[dict]) -> Summary:
        """Node stats and stats for `pods` (the kubelet's active pods)."""

    async def has_dedicated_image_fs(self) -> bool:
        """Whether images live on a different filesystem than the kubelet's root dir."""


def observations(summary: Summary) -> dict[str, Observation]:
    """Signal observations from a summary (upstream makeSignalObservations)."""
    found: dict[str, Observation] = {}
    now = summary.time
    if summary.memory_capacity is not None and summary.memory_working_set is not None:
        available = max(summary.memory_capacity - summary.memory_working_set, 0)
        found[MEMORY_AVAILABLE] = Observation(available, available + summary.memory_working_set, now)
    if summary.allocatable_memory_capacity is not None and summary.allocatable_memory_working_set is not None:
        available = max(summary.allocatable_memory_capacity - summary.allocatable_memory_working_set, 0)
        found[ALLOCATABLE_MEMORY_AVAILABLE] = Observation(available, summary.allocatable_memory_capacity, now)
    for fs, (bytes_signal, inodes_signal) in (
            (summary.nodefs, (NODEFS_AVAILABLE, NODEFS_INODES_FREE)),
            (summary.imagefs, (IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE)),
            # Images and writable layers share containerd's root: the container filesystem is the image filesystem.
            (summary.imagefs, (CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE))):
        if fs is None:
            continue
        found[bytes_signal] = Observation(fs.available_bytes, fs.capacity_bytes, now)
        if fs.inodes is not None and fs.inodes_free is not None:
            found[inodes_signal] = Observation(fs.inodes_free, fs.inodes, now)
    if summary.max_pid is not None and summary.running_processes is not None:
        found[PID_AVAILABLE] = Observation(summary.max_pid - summary.running_processes, summary.max_pid, now)
    return found


# ---- host readings (blocking; the provider runs them in a thread) ---------------------------------------

def statvfs(path: Path | str) -> FsStats:
    st = os.statvfs(path)
    return FsStats(capacity_bytes=st.f_blocks * st.f_frsize, available_bytes=st.f_bavail * st.f_frsize,
                   inodes=st.f_files or None, inodes_free=st.f_ffree if st.f_files else None,
                   mountpoint=str(path), device=os.stat(path).st_dev)


def directory_usage(path: Path) -> Usage | None:
    """Blocks and inodes under `path` like `du` (symlinks not followed, each inode counted once); None if absent."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return None
    seen: set[tuple[int, int]] = {(top.st_dev, top.st_ino)}
    used, inodes = top.st_blocks * 512, 1
    pending = [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            used += st.st_blocks * 512
            inodes += 1
            if entry.is_dir(follow_symlinks=False) and st.st_dev == top.st_dev:
                pending.append(Path(entry.path))
    return Usage(used, inodes)


def overlay_upperdir(mountinfo: Path) -> Path | None:
    """The upperdir of the overlay mounted at "/" in a process's mount table (its container's writable layer)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields, _, tail = line.partition(" - ")
        parts, described = fields.split(), tail.split()
        if len(parts) < 5 or parts[4] != "/" or len(described) < 3 or described[0] != "overlay":
            continue
        for option in described[2].split(","):
            if option.startswith("upperdir="):
                return Path(option.removeprefix("upperdir="))
    return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cgroup_working_set(memory_cgroup: Path) -> int | None:
    """usage_in_bytes - total_inactive_file of a cgroup v1 memory cgroup (cadvisor's working set)."""
    usage = _read_int(memory_cgroup / "memory.usage_in_bytes")
    if usage is None:
        return None
    inactive = 0
    try:
        for line in (memory_cgroup / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "total_inactive_file":
                inactive = int(value)
                break
    except (OSError, ValueError):
        pass
    return max(usage - inactive, 0)


def pid_limits() -> tuple[int | None, int | None]:
    """(the system's task limit, tasks now): min(pid_max, threads-max) and /proc/loadavg's total, as upstream."""
    limits = [v for v in (_read_int(Path("/proc/sys/kernel/pid_max")), _read_int(Path("/proc/sys/kernel/threads-max")))
              if v is not None]
    running = None
    try:
        fields = Path("/proc/loadavg").read_text().split()
        running = int(fields[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        running = len(psutil.pids())
    return (min(limits) if limits else None), running


class HostStatsProvider:
    """Stats from this host: cgroup v1 for memory and processes, statvfs for filesystems, du for logs and emptyDirs.

    Pod cgroups are `<cgroup_parent>/pod<uid>` and containerd puts each container at `<pod cgroup>/<container id>`;
    container names come from the CRI labels every kubelet part sets (io.kubernetes.container.name). A container's
    writable layer is the overlay upperdir mounted as its root, found once through its process's mount table.
    """

    def __init__(self, paths: KubeletPaths, runtime: CRIClient | None = None, *, cgroup_parent: str = "/kubepods",
                 allocatable_memory: int | None = None, cgroup_root: Path = CGROUP_ROOT) -> None:
        self.paths = paths
        self.runtime = runtime
        self.cgroup_parent = cgroup_parent.strip("/")
        self.allocatable_memory = allocatable_memory
        self.cgroup_root = cgroup_root
        self._writable_layers: dict[str, Path | None] = {}  # container id -> overlay upperdir

    def _cgroup(self, controller: str, *parts: str) -> Path:
        return self.cgroup_root.joinpath(controller, self.cgroup_parent, *parts)

    async def image_fs(self) -> FsStats | None:
        """The filesystem holding the runtime's images (CRI ImageFsInfo's mountpoint), None without a runtime."""
        if self.runtime is None:
            return None
        try:
            info = await self.runtime.image_fs_info(timeout=10)
        except CRIError as exc:
            log.warning("eviction: image filesystem stats unavailable: %s", exc)
            return None
        for usage in info.image_filesystems:
            mountpoint = usage.fs_id.mountpoint
            if mountpoint and os.path.exists(mountpoint):
                return await asyncio.to_thread(statvfs, mountpoint)
        return None

    async def has_dedicated_image_fs(self) -> bool:
        """Raises StatsUnavailable while the runtime cannot say where its images are (asked again next cycle)."""
        if self.runtime is None:
            return False
        imagefs = await self.image_fs()
        if imagefs is None:
            raise StatsUnavailable("the runtime's image filesystem is not known yet")
        nodefs = await asyncio.to_thread(statvfs, self._nodefs_path())
        return imagefs.device != nodefs.device

    def _nodefs_path(self) -> Path:
        return self.paths.root if self.paths.root.exists() else self.paths.data_dir

    async def _container_names(self, uids: set[str]) -> dict[str, list[tuple[str, str]]]:
        """pod uid -> [(container id, container name)] for running containers, from CRI labels."""
        found: dict[str, list[tuple[str, str]]] = {}
        if self.runtime is None or not uids:
            return found
        try:
            containers = await self.runtime.list_containers(timeout=10)
        except CRIError as exc:
            log.warning("eviction: cannot list containers for stats: %s", exc)
            return found
        for container in containers:
            uid = container.labels.get(POD_UID_LABEL)
            name = container.labels.get(CONTAINER_NAME_LABEL)
            if uid in uids and name and container.state == pb.CONTAINER_RUNNING:
                found.setdefault(uid, []).append((container.id, name))
        running = {container_id for pairs in found.values() for container_id, _ in pairs}
        for container_id in set(self._writable_layers) - running:
            del self._writable_layers[container_id]
        for container_id in running - set(self._writable_layers):
            self._writable_layers[container_id] = await self._writable_layer(container_id)
        return found

    async def _writable_layer(self, container_id: str) -> Path | None:
        """The overlay upperdir of a running container's root (it never changes, so it is looked up once)."""
        try:
            status = await self.runtime.container_status(container_id, verbose=True, timeout=10)
            pid = json.loads(status.info.get("info") or "{}").get("pid")
        except (CRIError, ValueError) as exc:
            log.debug("eviction: no verbose status for container %s: %s", container_id, exc)
            return None
        if not pid:
            return None
        return await asyncio.to_thread(overlay_upperdir, Path(f"/proc/{pid}/mountinfo"))

    async def summary(self, pods: list[dict]) -> Summary:
        by_uid = {(p.get("metadata") or {}).get("uid"): p for p in pods if (p.get("metadata") or {}).get("uid")}
        containers = await self._container_names(set(by_uid))
        imagefs = await self.image_fs()
        summary = await asyncio.to_thread(self._read_host, by_uid, containers)
        summary.imagefs = imagefs
        return summary

    def _read_host(self, pods: dict[str, dict], containers: dict[str, list[tuple[str, str]]]) -> Summary:
        now = time.time()
        memory_root = self.cgroup_root / "memory"
        working_set = cgroup_working_set(memory_root)
        capacity = psutil.virtual_memory().total
        if working_set is None:
            # No v1 memory hierarchy: the kernel's own estimate of what is in use.
            working_set = capacity - psutil.virtual_memory().available
        max_pid, running = pid_limits()
        summary = Summary(time=now, memory_capacity=capacity, memory_working_set=working_set,
                          nodefs=statvfs(self._nodefs_path()), max_pid=max_pid, running_processes=running)
        if self.allocatable_memory is not None:
            summary.allocatable_memory_capacity = self.allocatable_memory
            summary.allocatable_memory_working_set = cgroup_working_set(self._cgroup("memory")) or 0
        for uid, pod in pods.items():
            summary.pods[uid] = self._pod_stats(uid, pod, containers.get(uid, []))
        return summary

    def _pod_stats(self, uid: str, pod: dict, containers: Iterable[tuple[str, str]]) -> PodStats:
        meta = pod.get("metadata") or {}
        pod_cgroup = f"pod{uid}"
        stats = PodStats(uid=uid, memory_working_set=cgroup_working_set(self._cgroup("memory", pod_cgroup)),
                         process_count=_read_int(self._cgroup("pids", pod_cgroup, "pids.current")))
        log_dir = self.paths.pod_log_dir(meta.get("namespace", ""), meta.get("name", ""), uid)
        total_bytes = total_inodes = 0
        for container_id, name in containers:
            logs = directory_usage(log_dir / name) or Usage(0, 0)
            layer = self._writable_layers.get(container_id)
            rootfs = directory_usage(layer) if layer is not None else None
            stats.containers.append(ContainerStats(
                name=name, memory_working_set=cgroup_working_set(self._cgroup("memory", pod_cgroup, container_id)),
                rootfs=rootfs, logs=logs))
            for usage in (logs, rootfs):
                if usage is not None:
                    total_bytes += usage.used_bytes
                    total_inodes += usage.inodes_used
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            empty_dir = volume.get("emptyDir")
            if empty_dir is None or empty_dir.get("medium") == "Memory":
                continue
            usage = directory_usage(self.paths.volume_dir(uid, EMPTY_DIR_PLUGIN, volume["name"]))
            if usage is not None:
                stats.volumes[volume["name"]] = usage
                total_bytes += usage.used_bytes
                total_inodes += usage.inodes_used
        hosts = directory_usage(self.paths.etc_hosts(uid))
        if hosts is not None:
            total_bytes += hosts.used_bytes
            total_inodes += hosts.inodes_used
        stats.ephemeral_storage = Usage(total_bytes, total_inodes)
        return stats
