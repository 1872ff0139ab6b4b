"""Node, pod and container resource usage for /stats/summary and /metrics/resource.

Container usage comes from one place, `container_usage`: today it reads the container's cgroup (v1 or v2)
through the cgroupsPath in the runtime's verbose ContainerStatus; once the CRI proto carries
ContainerStats/ListContainerStats it becomes a CRI call and nothing else here changes. The node's numbers
come from the host (/proc through psutil) and the filesystem holding the node's data dir.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from ..paths import KubeletPaths
from ..runtime.cri import CRIClient, CRIError, pb

log = logging.getLogger("pyk8s.kubelet.server.stats")

CGROUP_ROOT = Path("/sys/fs/cgroup")
POD_NAME, POD_NAMESPACE, POD_UID = "io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"


@dataclass
class Usage:
    """Cumulative CPU and current memory of one cgroup (or the node) at `at` (unix seconds)."""

    at: float
    cpu_ns: int | None = None
    memory_usage: int | None = None
    working_set: int | None = None
    rss: int | None = None
    page_faults: int | None = None
    major_page_faults: int | None = None

    def plus(self, other: Usage) -> Usage:
        def add(a, b):
            return None if a is None and b is None else (a or 0) + (b or 0)
        return Usage(max(self.at, other.at), add(self.cpu_ns, other.cpu_ns),
                     add(self.memory_usage, other.memory_usage), add(self.working_set, other.working_set),
                     add(self.rss, other.rss), add(self.page_faults, other.page_faults),
                     add(self.major_page_faults, other.major_page_faults))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def cgroup_usage(cgroup_path: str, root: Path = CGROUP_ROOT) -> Usage | None:
    """Usage of the cgroup at `cgroup_path` (as in an OCI spec's cgroupsPath), v1 or v2; None if it is gone.

    Working set as cadvisor computes it: usage minus inactive file pages (those the kernel reclaims first).
    """
    relative = cgroup_path.strip("/")
    now = time.time()
    v1_memory = root / "memory" / relative
    if v1_memory.is_dir():
        usage = _read_int(v1_memory / "memory.usage_in_bytes")
        stat = _read_keyed(v1_memory / "memory.stat")
        cpu = _read_int(root / "cpuacct" / relative / "cpuacct.usage")
        inactive = stat.get("total_inactive_file", 0)
        return Usage(now, cpu, usage, None if usage is None else max(usage - inactive, 0), stat.get("total_rss"),
                     stat.get("total_pgfault"), stat.get("total_pgmajfault"))
    v2 = root / relative
    if (v2 / "cgroup.controllers").exists():
        cpu_stat = _read_keyed(v2 / "cpu.stat")
        usage = _read_int(v2 / "memory.current")
        stat = _read_keyed(v2 / "memory.stat")
        cpu = cpu_stat["usage_usec"] * 1000 if "usage_usec" in cpu_stat else None
        inactive = stat.get("inactive_file", 0)
        return Usage(now, cpu, usage, None if usage is None else max(usage - inactive, 0), stat.get("anon"),
                     stat.get("pgfault"), stat.get("pgmajfault"))
    return None


def _cgroups_path(info: dict[str, str]) -> str | None:
    """The cgroupsPath containerd recorded in the container's OCI spec (verbose status `info`)."""
    try:
        details = json.loads(info.get("info", "") or "{}")
    except ValueError:
        return None
    return ((details.get("runtimeSpec") or {}).get("linux") or {}).get("cgroupsPath") or None


async def container_usage(runtime: CRIClient, container_id: str, root: Path = CGROUP_ROOT) -> Usage | None:
    """The one source of container usage (see the module docstring)."""
    try:
        status = await runtime.container_status(container_id, verbose=True)
    except CRIError:
        return None
    path = _cgroups_path(dict(status.info))
    if path is None:
        return None
    # containerd's systemd cgroup driver spells paths slice:prefix:name; only cgroupfs paths are read here.
    if ":" in path:
        return None
    return cgroup_usage(path, root)


def node_usage() -> Usage:
    times = psutil.cpu_times()
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    memory = psutil.virtual_memory()
    return Usage(time.time(), int(busy * 1e9), memory.total - memory.free, memory.total - memory.available,
                 None)


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nanos_to_rfc3339(nanos: int) -> str:
    return _rfc3339(nanos / 1e9)


class _CPURates:
    """usageNanoCores from two cumulative samples, as cadvisor keeps them between housekeeping passes."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, key: str, usage: Usage) -> int | None:
        if usage.cpu_ns is None:
            return None
        previous = self._last.get(key)
        self._last[key] = (usage.at, usage.cpu_ns)
        if previous is None or usage.at <= previous[0] or usage.cpu_ns < previous[1]:
            return None
        return int((usage.cpu_ns - previous[1]) / (usage.at - previous[0]))

    def forget_except(self, keys: Iterable[str]) -> None:
        keep = set(keys)
        self._last = {k: v for k, v in self._last.items() if k in keep}


@dataclass
class ContainerSample:
    pod_namespace: str
    pod_name: str
    pod_uid: str
    name: str
    container_id: str
    started_at: float
    usage: Usage | None


class StatsProvider:
    def __init__(self, runtime: CRIClient, paths: KubeletPaths, node_name: str, cgroup_root: Path = CGROUP_ROOT):
        self.runtime = runtime
        self.paths = paths
        self.node_name = node_name
        self.cgroup_root = cgroup_root
        self.boot_time = psutil.boot_time()
        self._rates = _CPURates()

    async def running_containers(self) -> list[ContainerSample]:
        running = pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
        samples = []
        for container in await self.runtime.list_containers(running):
            labels = container.labels
            if POD_NAME not in labels:
                continue  # not a pod's container (another client of the same runtime)
            samples.append(ContainerSample(
                labels.get(POD_NAMESPACE, ""), labels[POD_NAME], labels.get(POD_UID, ""),
                labels.get(CONTAINER_NAME, container.metadata.name), container.id, container.created_at / 1e9,
                await container_usage(self.runtime, container.id, self.cgroup_root)))
        return samples

    def _cpu(self, key: str, usage: Usage | None) -> dict | None:
        if usage is None or usage.cpu_ns is None:
            return None
        out = {"time": _rfc3339(usage.at), "usageCoreNanoSeconds": usage.cpu_ns}
        rate = self._rates.rate(key, usage)
        if rate is not None:
            out["usageNanoCores"] = rate
        return out

    @staticmethod
    def _memory(usage: Usage | None, available: int | None = None) -> dict | None:
        if usage is None or usage.memory_usage is None:
            return None
        out: dict = {"time": _rfc3339(usage.at), "usageBytes": usage.memory_usage}
        if available is not None:
            out["availableBytes"] = available
        for key, value in (("workingSetBytes", usage.working_set), ("rssBytes", usage.rss),
                           ("pageFaults", usage.page_faults), ("majorPageFaults", usage.major_page_faults)):
            if value is not None:
                out[key] = value
        return out

    def _fs(self, path: Path, used: int | None = None) -> dict | None:
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        return {"time": _rfc3339(time.time()), "availableBytes": available, "capacityBytes": capacity,
                "usedBytes": used if used is not None else capacity - st.f_bfree * st.f_frsize,
                "inodesFree": st.f_favail, "inodes": st.f_files, "inodesUsed": st.f_files - st.f_ffree}

    def _log_bytes(self, sample: ContainerSample) -> int:
        directory = self.paths.pod_log_dir(sample.pod_namespace, sample.pod_name, sample.pod_uid) / sample.name
        try:
            return sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
        except OSError:
            return 0

    async def summary(self) -> dict:
        """The kubelet's stats/v1alpha1 Summary."""
        samples = await self.running_containers()
        node = node_usage()
        memory = psutil.virtual_memory()
        node_stats: dict = {"nodeName": self.node_name, "startTime": _rfc3339(self.boot_time)}
        for key, value in (("cpu", self._cpu("/", node)), ("memory", self._memory(node, memory.available)),
                           ("fs", self._fs(self.paths.data_dir))):
            if value is not None:
                node_stats[key] = value
        pods: dict[tuple[str, str, str], list[ContainerSample]] = {}
        for sample in samples:
            pods.setdefault((sample.pod_namespace, sample.pod_name, sample.pod_uid), []).append(sample)
        pod_stats = []
        for (namespace, name, uid), containers in sorted(pods.items()):
            entries = []
            total: Usage | None = None
            for sample in containers:
                entry: dict = {"name": sample.name, "startTime": _rfc3339(sample.started_at)}
                for key, value in (("cpu", self._cpu(sample.container_id, sample.usage)),
                                   ("memory", self._memory(sample.usage)),
                                   ("logs", self._fs(self.paths.pod_logs, self._log_bytes(sample)))):
                    if value is not None:
                        entry[key] = value
                entries.append(entry)
                if sample.usage is not None:
                    total = sample.usage if total is None else total.plus(sample.usage)
            pod: dict = {"podRef": {"name": name, "namespace": namespace, "uid": uid},
                         "startTime": _rfc3339(min(c.started_at for c in containers)), "containers": entries}
            for key, value in (("cpu", self._cpu(f"pod/{uid}", total)), ("memory", self._memory(total))):
                if value is not None:
                    pod[key] = value
            pod_stats.append(pod)
        self._rates.forget_except(["/", *(s.container_id for s in samples), *(f"pod/{k[2]}" for k in pods)])
        return {"node": node_stats, "pods": pod_stats}

    async def resource_metrics(self) -> str:
        """/metrics/resource in the Prometheus text format, with upstream's metric names."""
        error = 0
        try:
            samples = await self.running_containers()
        except CRIError as exc:
            log.warning("stats: listing containers failed: %s", exc)
            samples, error = [], 1
        node = node_usage()
        stamp = int(node.at * 1000)
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, rows: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} [STABLE] {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {_number(value)} {stamp}" for labels, value in rows)

        def container_labels(s: ContainerSample) -> str:
            return (f'{{container="{_escape(s.name)}",namespace="{_escape(s.pod_namespace)}",'
                    f'pod="{_escape(s.pod_name)}"}}')

        measured = [s for s in samples if s.usage is not None]
        pods: dict[tuple[str, str], Usage] = {}
        for s in measured:
            key = (s.pod_namespace, s.pod_name)
            pods[key] = s.usage if key not in pods else pods[key].plus(s.usage)

        def pod_labels(key: tuple[str, str]) -> str:
            return f'{{namespace="{_escape(key[0])}",pod="{_escape(key[1])}"}}'

        family("container_cpu_usage_seconds_total", "counter",
               "Cumulative cpu time consumed by the container in core-seconds",
               [(container_labels(s), s.usage.cpu_ns / 1e9) for s in measured if s.usage.cpu_ns is not None])
        family("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes",
               [(container_labels(s), s.usage.working_set) for s in measured if s.usage.working_set is not None])
        family("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds",
               [(container_labels(s), s.started_at) for s in samples])
        family("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds",
               [("", node.cpu_ns / 1e9)] if node.cpu_ns is not None else [])
        family("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes",
               [("", node.working_set)] if node.working_set is not None else [])
        family("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds",
               [(pod_labels(k), u.cpu_ns / 1e9) for k, u in sorted(pods.items()) if u.cpu_ns is not None])
        family("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes",
               [(pod_labels(k), u.working_set) for k, u in sorted(pods.items()) if u.working_set is not None])
        lines.append("# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container "
                     "metrics, 0 otherwise")
        lines.append("# TYPE resource_scrape_error gauge")
        lines.append(f"resource_scrape_error {error}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
