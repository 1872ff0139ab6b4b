"""A real node: what its host has, how healthy it is, and keeping its Node and Lease up to date.

Upstream's kubelet registers its Node once (creating it, or adopting the one a previous run left),
renews its Lease in kube-node-lease every 10 s on a connection of its own (so heartbeats never queue
behind pod traffic), computes the node status every 10 s and writes it when anything but heartbeat
times changed or 5 minutes have passed (pkg/kubelet/kubelet_node_status.go, component-helpers' lease
controller). The facts come from the host (CPU, memory, filesystems, /etc/os-release) and the CRI
runtime (version, images); MemoryPressure, DiskPressure and PIDPressure are the eviction manager's
(eviction/manager.py `conditions()`), the one place the node's pressure is measured. The pure builders
are in node_status.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import psutil

from ..api.quantity import BINARY_SI, canonical
from ..client import (
    APIClient,
    APIConnectionError,
    APIStatusError,
    EventRecorder,
    is_already_exists,
    is_conflict,
    is_not_found,
)
from .eviction.thresholds import Threshold, parse_threshold_config
from .node_status import (
    DEFAULT_MAX_PODS,
    KUBELET_PORT,
    LEASE_NAMESPACE,
    NETWORK_NOT_READY,
    NODE_STATUS_REPORT_FREQUENCY,
    NODE_STATUS_UPDATE_FREQUENCY,
    REAL_KUBELET_VERSION,
    RENEW_INTERVAL,
    RUNTIME_DOWN,
    HostCapacity,
    capacity_and_allocatable,
    lease_object,
    node_addresses,
    node_images,
    real_node_conditions,
    real_node_labels,
    real_node_object,
    real_node_status,
    real_status_needs_update,
    renewed_lease,
    runtime_condition_errors,
)
from .runtime.cri import CRIClient, CRIError

log = logging.getLogger("pyk8s.kubelet.node")

# The lease controller's retry backoff (component-helpers: 200 ms doubling to 7 s).
LEASE_RETRY_INITIAL = 0.2
LEASE_RETRY_MAX = 7.0
_MACHINE_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                          "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


# ---- the host ---------------------------------------------------------------------------------------


def architecture() -> str:
    machine = platform.machine().lower()
    return _MACHINE_ARCHITECTURES.get(machine, machine)


def _own_cgroup_dirs(controller: str) -> list[Path]:
    """This process's cgroup directories for `controller` (v1) or the unified one (v2), innermost first."""
    dirs = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return dirs
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            dirs.append(Path("/sys/fs/cgroup") / path.lstrip("/"))
        elif controller in controllers.split(","):
            dirs.append(Path("/sys/fs/cgroup") / controllers / path.lstrip("/"))
    return dirs


def _cgroup_cpu_limit() -> float | None:
    """CPUs the cgroup quota allows this process (v2 cpu.max, v1 cfs quota/period), None without a quota."""
    for directory in _own_cgroup_dirs("cpu"):
        try:
            if (directory / "cpu.max").exists():
                quota, period = (directory / "cpu.max").read_text().split()[:2]
                if quota != "max":
                    return int(quota) / int(period)
            elif (directory / "cpu.cfs_quota_us").exists():
                quota = int((directory / "cpu.cfs_quota_us").read_text())
                if quota > 0:
                    return quota / int((directory / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
    return None


def cpu_capacity() -> int:
    """CPUs this node can use: the CPU set it may run on, capped by a cgroup quota (inside a container)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(count, 1)


def hugepages(root: Path = Path("/sys/kernel/mm/hugepages")) -> dict[str, int]:
    """Pre-allocated hugepages per page size, as resource name (hugepages-2Mi) → bytes."""
    out: dict[str, int] = {}
    if not root.is_dir():
        return out
    for directory in sorted(root.glob("hugepages-*kB")):
        try:
            page_bytes = int(directory.name.removeprefix("hugepages-").removesuffix("kB")) * 1024
            pages = int((directory / "nr_hugepages").read_text())
        except (OSError, ValueError):
            continue
        out[f"hugepages-{canonical(Fraction(page_bytes), BINARY_SI)}"] = pages * page_bytes
    return out


def filesystem_usage(path: Path) -> tuple[int, int]:
    """(capacity, available to unprivileged users) in bytes of the filesystem holding `path`."""
    while not path.exists():
        path = path.parent
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


def host_capacity(nodefs: Path, max_pods: int) -> HostCapacity:
    pages = hugepages()
    memory = psutil.virtual_memory().total - sum(pages.values())
    storage, _ = filesystem_usage(nodefs)
    return HostCapacity(cpu=cpu_capacity(), memory=memory, ephemeral_storage=storage, hugepages=pages,
                        pods=max_pods)


def _read_first(*paths: str) -> str:
    for path in paths:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return ""


def os_image(os_release: Path = Path("/etc/os-release")) -> str:
    """PRETTY_NAME from os-release, as cAdvisor reports it ("Debian GNU/Linux 12 (bookworm)")."""
    try:
        lines = os_release.read_text().splitlines()
    except OSError:
        return "Linux"
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "PRETTY_NAME":
            return value.strip().strip('"').strip("'")
    return "Linux"


def host_node_info(runtime_version: str) -> dict[str, str]:
    return {
        "machineID": _read_first("/etc/machine-id", "/var/lib/dbus/machine-id"),
        "systemUUID": _read_first("/sys/class/dmi/id/product_uuid").lower(),
        "bootID": _read_first("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": REAL_KUBELET_VERSION,
        # Deprecated, but still a required field of v1.32's NodeSystemInfo; kubelets fill in their own version.
        "kubeProxyVersion": REAL_KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": architecture(),
    }


# ---- the Node and its Lease ---------------------------------------------------------------------------


@dataclass
class NodeConfig:
    name: str
    node_ip: str
    data_dir: Path  # the node filesystem (nodefs) is the one holding it
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    kubelet_port: int = KUBELET_PORT
    max_pods: int = DEFAULT_MAX_PODS
    # The hard eviction thresholds keep back memory and node filesystem from allocatable.
    thresholds: list[Threshold] = field(default_factory=parse_threshold_config)
    # Used when no node IPAM controller assigns spec.podCIDR within pod_cidr_wait seconds.
    pod_cidr_fallback: str | None = None
    pod_cidr_wait: float = 30.0
    status_update_frequency: float = NODE_STATUS_UPDATE_FREQUENCY
    status_report_frequency: float = NODE_STATUS_REPORT_FREQUENCY
    lease_renew_interval: float = RENEW_INTERVAL

    def __post_init__(self) -> None:
        self.hostname = self.hostname or self.name


class NodeStatusSource:
    """Everything the node's status is made of, read from the host and the CRI runtime."""

    def __init__(self, config: NodeConfig, runtime: CRIClient, *, network_ready: Callable[[], bool],
                 pressure: Callable[[], Mapping[str, bool]]) -> None:
        """`pressure`: MemoryPressure/DiskPressure/PIDPressure now (the eviction manager's `conditions`)."""
        self.config = config
        self.runtime = runtime
        self.network_ready = network_ready
        self.pressure = pressure

    async def status(self, now: float, previous: dict | None = None) -> dict:
        cfg = self.config
        errors: list[str] = []
        runtime_version = ""
        images: list[dict] = []
        try:
            version = await self.runtime.version(timeout=5)
            runtime_version = f"{version.runtime_name}://{version.runtime_version}"
            images = node_images([([*image.repo_digests, *image.repo_tags], image.size)
                                  for image in await self.runtime.list_images(timeout=10)])
            errors += runtime_condition_errors((await self.runtime.status(timeout=5)).status.conditions)
        except CRIError as exc:
            log.warning("node %s: container runtime unreachable: %s", cfg.name, exc)
            errors.append(RUNTIME_DOWN)
            # Keep reporting what was last known rather than blanking the node's identity.
            runtime_version = ((previous or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", "")
            images = (previous or {}).get("images") or []
        if not self.network_ready() and NETWORK_NOT_READY not in errors:
            errors.append(NETWORK_NOT_READY)
        host = await asyncio.to_thread(host_capacity, cfg.data_dir, cfg.max_pods)
        capacity, allocatable = capacity_and_allocatable(host, cfg.thresholds)
        conditions = real_node_conditions(self.pressure(), errors, now, (previous or {}).get("conditions"))
        return real_node_status(capacity=capacity, allocatable=allocatable, conditions=conditions,
                                addresses=node_addresses(cfg.node_ip, cfg.hostname),
                                node_info=host_node_info(runtime_version), images=images,
                                kubelet_port=cfg.kubelet_port)


def node_reference(node_name: str) -> dict:
    """The involvedObject of a kubelet's node events: upstream uses the node's name as its UID."""
    return {"kind": "Node", "name": node_name, "uid": node_name}


# condition type -> event reason when it becomes (False, True), as upstream's recordNodeStatusEvent.
CONDITION_EVENTS = {
    "MemoryPressure": ("NodeHasSufficientMemory", "NodeHasInsufficientMemory"),
    "DiskPressure": ("NodeHasNoDiskPressure", "NodeHasDiskPressure"),
    "PIDPressure": ("NodeHasSufficientPID", "NodeHasInsufficientPID"),
    "Ready": ("NodeNotReady", "NodeReady"),
}


def condition_events(before: list[dict] | None, after: list[dict]) -> list[str]:
    """Event reasons for the conditions whose status changed (every condition on first registration)."""
    old = {c.get("type"): c.get("status") for c in before or []}
    reasons = []
    for condition in after:
        type_, status = condition.get("type"), condition.get("status")
        if type_ in CONDITION_EVENTS and old.get(type_) != status:
            reasons.append(CONDITION_EVENTS[type_][status == "True"])
    return reasons


class NodeRegistration:
    """Registers the Node, keeps its status current and waits for its pod CIDR (status writes go through
    the heartbeat client, as upstream's kubelet does)."""

    def __init__(self, client: APIClient, source: NodeStatusSource, *, recorder: EventRecorder | None = None,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.recorder = recorder
        self.source = source
        self.config = source.config
        self.wall = wall
        self.clock = clock
        self.node: dict | None = None
        self.last_report = 0.0
        # Set when the Node had been deleted and was registered again (it then gets a new pod CIDR).
        self.reregistered = asyncio.Event()

    @property
    def uid(self) -> str:
        return ((self.node or {}).get("metadata") or {}).get("uid", "")

    def labels(self) -> dict[str, str]:
        return real_node_labels(self.config.name, architecture(), self.config.labels)

    async def register(self) -> dict:
        """Create the Node or adopt the existing one; retried until it works (100 ms doubling to 7 s)."""
        delay = 0.1
        while True:
            try:
                node = await self._register_once()
            except (APIStatusError, APIConnectionError) as exc:
                log.warning("node %s: registration failed (%s); retrying in %.1fs", self.config.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 7.0)
                continue
            self._record_transitions(None, node)
            self.node = node
            self.last_report = self.clock()
            log.info("node %s registered (uid %s)", self.config.name, self.uid)
            return node

    async def _register_once(self) -> dict:
        name = self.config.name
        status = await self.source.status(self.wall())
        try:
            return await self.client.create(real_node_object(name, self.labels(), status))
        except APIStatusError as exc:
            if not is_already_exists(exc):
                raise
        # A node this name registered before (an earlier run of this agent): reconcile labels and
        # annotations, then report the status afresh.
        existing = await self.client.get("nodes", name)
        wanted = real_node_object(name, self.labels(), status)["metadata"]
        meta = existing.get("metadata") or {}
        labels_missing = {k: v for k, v in wanted["labels"].items() if (meta.get("labels") or {}).get(k) != v}
        annotations_missing = {k: v for k, v in wanted["annotations"].items()
                               if (meta.get("annotations") or {}).get(k) != v}
        if labels_missing or annotations_missing:
            await self.client.patch("nodes", name, {"metadata": {"labels": labels_missing,
                                                                 "annotations": annotations_missing}})
        status = await self.source.status(self.wall(), existing.get("status"))
        self._record_reboot(existing.get("status") or {}, status)
        return await self.client.patch_status("nodes", name, {"status": status}, patch_type="strategic")

    def _record_reboot(self, previous: dict, current: dict) -> None:
        """Upstream's Rebooted event: the boot ID the Node last reported is no longer the machine's."""
        before = (previous.get("nodeInfo") or {}).get("bootID")
        boot_id = (current.get("nodeInfo") or {}).get("bootID", "")
        if self.recorder is not None and before and before != boot_id:
            self.recorder.event(node_reference(self.config.name), "Warning", "Rebooted",
                                f"Node {self.config.name} has been rebooted, boot id: {boot_id}")

    async def update_status(self) -> bool:
        """Compute the status; write it when it differs from the server's copy (which the node lifecycle
        controller may have changed) or the report is due. True when written. A Node someone deleted is
        registered again, as the GET upstream's kubelet starts each update with finds it gone."""
        try:
            current = await self.client.get("nodes", self.config.name)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
            log.warning("node %s was deleted; registering it again", self.config.name)
            await self.register()
            self.reregistered.set()
            return True
        self.node = current
        previous = current.get("status") or {}
        desired = await self.source.status(self.wall(), previous)
        due = self.clock() - self.last_report >= self.config.status_report_frequency
        if not (due or real_status_needs_update(previous, desired)):
            return False
        node = await self.client.patch_status("nodes", self.config.name, {"status": desired}, patch_type="strategic")
        self._record_transitions(current, node)
        self.node = node
        self.last_report = self.clock()
        return True

    def _record_transitions(self, before: dict | None, after: dict) -> None:
        if self.recorder is None:
            return
        previous = ((before or {}).get("status") or {}).get("conditions")
        for reason in condition_events(previous, (after.get("status") or {}).get("conditions") or []):
            self.recorder.event(node_reference(self.config.name), "Normal", reason,
                                f"Node {self.config.name} status is now: {reason}")

    async def run_status_loop(self) -> None:
        """Every status_update_frequency seconds until cancelled; failures are retried on the next tick
        (upstream retries 5 times within one tick, then waits for the next)."""
        while True:
            await asyncio.sleep(self.config.status_update_frequency)
            for attempt in range(5):
                try:
                    await self.update_status()
                    break
                except (APIStatusError, APIConnectionError) as exc:
                    log.warning("node %s: status update attempt %d failed: %s", self.config.name, attempt + 1, exc)

    async def wait_pod_cidr(self, poll: float = 1.0) -> str:
        """spec.podCIDR as the node IPAM controller assigns it. Past pod_cidr_wait, the configured
        fallback is written to the node instead (spec.podCIDR can be set once, so a value someone else
        set meanwhile wins); without a fallback it waits on."""
        started = self.clock()
        warned = False
        while True:
            cidr = ((self.node or {}).get("spec") or {}).get("podCIDR")
            if cidr:
                return cidr
            if self.clock() - started >= self.config.pod_cidr_wait:
                fallback = self.config.pod_cidr_fallback
                if fallback:
                    log.info("node %s: no pod CIDR assigned in %.0fs; using %s", self.config.name,
                             self.config.pod_cidr_wait, fallback)
                    with contextlib.suppress(APIStatusError):
                        self.node = await self.client.patch("nodes", self.config.name,
                                                            {"spec": {"podCIDR": fallback, "podCIDRs": [fallback]}})
                    cidr = ((self.node or {}).get("spec") or {}).get("podCIDR")
                    if cidr:
                        return cidr
                elif not warned:
                    log.warning("node %s: still no spec.podCIDR after %.0fs: is the controller-manager's node "
                                "IPAM controller running? (or give --pod-cidr)", self.config.name,
                                self.config.pod_cidr_wait)
                    warned = True
            await asyncio.sleep(poll)
            try:
                self.node = await self.client.get("nodes", self.config.name)
            except (APIStatusError, APIConnectionError) as exc:
                log.debug("node %s: reading the node for its pod CIDR failed: %s", self.config.name, exc)


class LeaseController:
    """Renews the node's Lease every renew interval on its own client (its own connections), creating it
    when missing, with upstream's retry backoff."""

    def __init__(self, client: APIClient, node_name: str, node_uid: Callable[[], str], *,
                 renew_interval: float = RENEW_INTERVAL, wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.node_name = node_name
        self.node_uid = node_uid
        self.renew_interval = renew_interval
        self.wall = wall
        self.lease: dict | None = None
        self.renewals = 0

    async def renew(self) -> dict:
        now = self.wall()
        if self.lease is None:
            try:
                self.lease = await self.client.get("leases", self.node_name, LEASE_NAMESPACE)
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise
                self.lease = await self._create(now)
                self.renewals += 1
                return self.lease
        try:
            self.lease = await self.client.update(renewed_lease(self.lease, self.node_name, now))
        except APIStatusError as exc:
            if is_not_found(exc):
                self.lease = await self._create(now)
            elif is_conflict(exc):
                fresh = await self.client.get("leases", self.node_name, LEASE_NAMESPACE)
                self.lease = await self.client.update(renewed_lease(fresh, self.node_name, now))
            else:
                raise
        self.renewals += 1
        return self.lease

    async def _create(self, now: float) -> dict:
        try:
            return await self.client.create(lease_object(self.node_name, self.node_uid() or None, now))
        except APIStatusError as exc:
            if not is_already_exists(exc):
                raise
            return await self.client.get("leases", self.node_name, LEASE_NAMESPACE)

    async def run(self) -> None:
        delay = LEASE_RETRY_INITIAL
        while True:
            try:
                await self.renew()
            except (APIStatusError, APIConnectionError) as exc:
                log.warning("node %s: lease renewal failed (%s); retrying in %.1fs", self.node_name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LEASE_RETRY_MAX)
                continue
            delay = LEASE_RETRY_INITIAL
            await asyncio.sleep(self.renew_interval)
