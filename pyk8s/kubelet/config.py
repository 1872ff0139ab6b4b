"""KubeletConfig: what a real node's kubelet is told (the subset of upstream's KubeletConfiguration it uses)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .log_rotation import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE_BYTES
from .paths import KubeletPaths


def host_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemTotal, the node's memory capacity (what Burstable containers' OOM scores are relative to)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def default_parallel_runtime_starts() -> int:
    """One more than the CPUs: the runtime's start work is CPU-bound, so more in flight only share the CPUs."""
    return (os.cpu_count() or 1) + 1


@dataclass
class KubeletConfig:
    node_name: str
    paths: KubeletPaths
    cluster_dns: list[str] = field(default_factory=lambda: ["10.43.0.10"])
    cluster_domain: str = "cluster.local"
    cgroup_parent: str = "/kubepods"  # pods get <cgroup_parent>/pod<uid>
    pod_cidr: str = ""
    node_ips: list[str] = field(default_factory=list)  # status.hostIP(s)
    hostname: str = field(default_factory=socket.gethostname)  # what hostNetwork pods see
    resolv_conf: Path = Path("/etc/resolv.conf")  # dnsPolicy Default
    host_etc_hosts: Path = Path("/etc/hosts")  # copied into hostNetwork pods
    runtime_handler: str = ""
    sync_frequency: float = 60.0  # resync of a pod with nothing to wait for (upstream: 1 min)
    relist_period: float = 1.0  # PLEG
    housekeeping_period: float = 2.0  # orphaned sandboxes, forgotten workers
    status_update_period: float = 10.0  # status manager's reconcile tick
    memory_capacity: int = field(default_factory=host_memory_bytes)
    # Runtimes that cannot lower oom_score_adj (no CAP_SYS_RESOURCE, containerd's restrict_oom_score_adj) get
    # negative scores (Guaranteed pods: -997) raised to 0 instead of failing the container.
    restrict_oom_score_adj: bool = True
    # RunPodSandbox and StartContainer calls in flight at once (0: no limit). pyk8s's own, not upstream's: under a
    # burst of new pods, a few starts at a time finish sooner than all of them sharing the CPUs.
    max_parallel_runtime_starts: int = field(default_factory=default_parallel_runtime_starts)
    # Container log rotation (--container-log-max-size in bytes, negative: none; --container-log-max-files).
    container_log_max_size: int = DEFAULT_MAX_SIZE_BYTES
    container_log_max_files: int = DEFAULT_MAX_FILES
