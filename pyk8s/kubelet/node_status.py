"""Node objects as a kubelet registers and reports them, and its node Lease: pure builders, no I/O.

Upstream assembles node status from setter functions (pkg/kubelet/nodestatus/setters.go) every
`nodeStatusUpdateFrequency` (10 s) and writes it only when something other than the heartbeat
times changed, or when `nodeStatusReportFrequency` (5 min) has passed since the last write.
Liveness is the Lease in kube-node-lease, renewed every 10 s (a quarter of its 40 s duration).
The functions here build those objects for simulated nodes; the agent decides when to write.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction

from pyk8s.api.quantity import BINARY_SI, canonical
from pyk8s.kubelet.eviction.thresholds import MEMORY_AVAILABLE, NODEFS_AVAILABLE, Threshold

KUBELET_VERSION = "v1.32.0-pyk8s-sim"
CONTAINER_RUNTIME_VERSION = "simulated://1.0"
OS_IMAGE = "pyk8s simulated node"
KERNEL_VERSION = "6.8.0-pyk8s-sim"
KUBELET_PORT = 10250
INSTANCE_TYPE = "simulated"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Setting this annotation to "stopped" on a simulated node stops its heartbeats (node failure
# injection with `kubectl annotate`); removing it (or any other value) resumes them.
HEARTBEAT_ANNOTATION = "sim.pyk8s.io/heartbeat"
HEARTBEAT_STOPPED = "stopped"

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
RENEW_INTERVAL = LEASE_DURATION_SECONDS * 0.25  # upstream kubelet: 1/4 of the lease duration
NODE_STATUS_UPDATE_FREQUENCY = 10.0
NODE_STATUS_REPORT_FREQUENCY = 300.0

FAKE_NODE_IP_BASE = ipaddress.IPv4Address("10.200.0.0")
DEFAULT_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110"}

# (type, reason, message) of the kubelet's healthy conditions, in upstream's order.
HEALTHY_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)
# Status fields the kubelet owns; differences in these (other than heartbeat times) force a write.
_REPORTED_FIELDS = ("capacity", "allocatable", "addresses", "nodeInfo", "daemonEndpoints")


def rfc3339(epoch: float) -> str:
    """metav1.Time: second precision UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(epoch: float) -> str:
    """metav1.MicroTime, as a Lease's renewTime is written."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def zone_name(index: int, zones: int) -> str:
    """zone-a, zone-b, ... spread round-robin over `zones` zones (zone-26, ... past the alphabet)."""
    slot = index % max(zones, 1)
    return f"zone-{string.ascii_lowercase[slot]}" if slot < 26 else f"zone-{slot}"


def _hex_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NodeIdentity:
    """Everything that makes one simulated node itself; stable across agent restarts but bootID."""

    name: str
    index: int
    zone: str
    internal_ip: str
    capacity: Mapping[str, str]
    machine_id: str
    system_uuid: str
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def make(cls, name: str, index: int, *, zones: int = 3, capacity: Mapping[str, str] | None = None,
             boot_id: str | None = None) -> NodeIdentity:
        machine_id = _hex_id("machine", name)
        system_uuid = str(uuid.UUID(_hex_id("system", name)))
        return cls(name=name, index=index, zone=zone_name(index, zones),
                   internal_ip=str(FAKE_NODE_IP_BASE + index + 1), capacity=dict(capacity or DEFAULT_CAPACITY),
                   machine_id=machine_id, system_uuid=system_uuid, boot_id=boot_id or str(uuid.uuid4()))


def node_labels(identity: NodeIdentity) -> dict[str, str]:
    return {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": identity.name,
        "kubernetes.io/os": "linux",
        INSTANCE_TYPE_LABEL: INSTANCE_TYPE,
        "topology.kubernetes.io/zone": identity.zone,
    }


def node_conditions(now: float, previous: list[dict] | None = None) -> list[dict]:
    """The four kubelet conditions, healthy, heartbeat `now`; a condition whose status did not
    change keeps its previous lastTransitionTime."""
    before = {c.get("type"): c for c in previous or []}
    stamp = rfc3339(now)
    conditions = []
    for type_, status, reason, message in HEALTHY_CONDITIONS:
        old = before.get(type_)
        transition = old.get("lastTransitionTime") if old and old.get("status") == status else None
        conditions.append({"type": type_, "status": status, "lastHeartbeatTime": stamp,
                           "lastTransitionTime": transition or stamp, "reason": reason, "message": message})
    return conditions


def node_status(identity: NodeIdentity, now: float, previous: Mapping | None = None) -> dict:
    """The status a healthy simulated kubelet reports; `previous` is the status the server has."""
    capacity = dict(identity.capacity)
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": node_conditions(now, (previous or {}).get("conditions")),
        "addresses": [{"type": "InternalIP", "address": identity.internal_ip},
                      {"type": "Hostname", "address": identity.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": identity.machine_id,
            "systemUUID": identity.system_uuid,
            "bootID": identity.boot_id,
            "kernelVersion": KERNEL_VERSION,
            "osImage": OS_IMAGE,
            "containerRuntimeVersion": CONTAINER_RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_object(identity: NodeIdentity, now: float) -> dict:
    """The Node a kubelet creates when it registers (status included: nodes keep it on create)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": identity.name, "labels": node_labels(identity),
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        "status": node_status(identity, now),
    }


def status_needs_update(reported: Mapping | None, desired: Mapping) -> bool:
    """True when the server's node status differs from `desired` other than in heartbeat times
    (so a write is due before the 5 minute report), e.g. after the node lifecycle controller set
    Ready to Unknown."""
    reported = reported or {}
    for key in _REPORTED_FIELDS:
        if reported.get(key) != desired.get(key):
            return True

    def essence(conditions: list[dict] | None) -> dict:
        return {c.get("type"): (c.get("status"), c.get("reason"), c.get("message")) for c in conditions or []}

    want = essence(desired.get("conditions"))
    have = essence(reported.get("conditions"))
    return any(have.get(type_) != value for type_, value in want.items())


def lease_object(node_name: str, node_uid: str | None, now: float) -> dict:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node_name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": micro_time(now)},
    }
    if node_uid:
        # As upstream: the lease is owned by its node, so the garbage collector removes it with the node.
        lease["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                                 "uid": node_uid}]
    return lease


def renewed_lease(lease: Mapping, node_name: str, now: float) -> dict:
    """`lease` with a new renewTime; the rest is shared with `lease`, not copied (this runs 100
    times a second for 1,000 nodes, and neither object is changed afterwards)."""
    spec = {**(lease.get("spec") or {}), "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": micro_time(now)}
    return {**lease, "spec": spec}


def fallback_pod_cidr(cluster_cidr: str, index: int, count: int) -> str:
    """A pod CIDR for node number `index` of `count` when no node IPAM controller assigns one.

    Per-node blocks are /24 (IPv4) or /64 (IPv6), taken from the *top* of the cluster CIDR
    downwards so they do not collide with the low blocks an IPAM controller hands out first. When
    the cluster CIDR cannot hold `count` such blocks (a /16 holds 256 /24s) the blocks shrink
    until they fit, e.g. /26 for 1,000 nodes in a /16; indices past the last block wrap around.
    """
    network = ipaddress.ip_network(cluster_cidr, strict=False)
    node_prefix = 24 if network.version == 4 else 64
    needed_bits = max(0, math.ceil(math.log2(max(count, 1))))
    node_prefix = max(node_prefix, network.prefixlen + needed_bits)
    node_prefix = min(node_prefix, network.max_prefixlen - 2)  # keep room for a gateway and one pod
    blocks = 2 ** max(node_prefix - network.prefixlen, 0)
    slot = blocks - 1 - (index % blocks)
    size = 2 ** (network.max_prefixlen - node_prefix)
    start = network.network_address + slot * size
    return str(ipaddress.ip_network(f"{start}/{node_prefix}"))


class PodIPAllocator:
    """Pod IPs from a node's pod CIDR: the first address is the bridge gateway, as with the
    host-local IPAM plugin; addresses are reused after release."""

    def __init__(self, cidr: str):
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._first = 2
        self._last = self.network.num_addresses - (2 if self.network.version == 4 else 1)
        self._used: set[int] = set()
        self._next = self._first

    @property
    def capacity(self) -> int:
        return max(self._last - self._first + 1, 0)

    def allocate(self) -> str | None:
        """The next free address, or None when the block is exhausted."""
        if len(self._used) >= self.capacity:
            return None
        while True:
            offset = self._next
            self._next = self._first if self._next >= self._last else self._next + 1
            if offset not in self._used:
                self._used.add(offset)
                return str(self.network.network_address + offset)

    def claim(self, ip: str) -> bool:
        """Mark an address already in use (a pod that had it before the agent restarted)."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if address not in self.network:
            return False
        self._used.add(int(address) - int(self.network.network_address))
        return True

    def release(self, ip: str | None) -> None:
        if not ip:
            return
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return
        if address in self.network:
            self._used.discard(int(address) - int(self.network.network_address))


# ---- real nodes --------------------------------------------------------------------------------
# A real node reports what its host has and how healthy it is; the builders below turn those facts into
# the Node's status the way upstream's setters do (pkg/kubelet/nodestatus/setters.go). Reading the host
# and the runtime is pyk8s.kubelet.node's job.

REAL_KUBELET_VERSION = "v1.32.0+pyk8s"  # the apiserver's gitVersion: kubectl compares the two
DEFAULT_MAX_PODS = 110
# Upstream's nodeStatusMaxImages and MaxNamesPerImageInNodeStatus.
MAX_IMAGES_IN_NODE_STATUS = 50
MAX_NAMES_PER_IMAGE = 5


@dataclass(frozen=True)
class HostCapacity:
    """What the machine has: CPUs, memory (bytes, hugepages excluded), hugepages per page size
    (resource name → bytes), the node filesystem's size (bytes), and the pod limit."""

    cpu: int
    memory: int
    ephemeral_storage: int
    hugepages: Mapping[str, int] = field(default_factory=dict)
    pods: int = DEFAULT_MAX_PODS


def _bytes_quantity(value: int) -> str:
    return canonical(Fraction(max(value, 0)), BINARY_SI)


def hard_eviction_reservation(thresholds: Iterable[Threshold], signal: str, capacity: int) -> int:
    """What the hard thresholds on `signal` keep back of `capacity` (upstream hardEvictionReservation)."""
    return sum(t.value.amount(capacity) for t in thresholds if t.signal == signal and t.hard)


def capacity_and_allocatable(host: HostCapacity, thresholds: Iterable[Threshold]) -> tuple[dict, dict]:
    """status.capacity and status.allocatable. As upstream with no kube/system reservations:
    allocatable = capacity minus the hard eviction thresholds (memory.available, nodefs.available)."""
    thresholds = list(thresholds)
    capacity = {"cpu": str(host.cpu), "ephemeral-storage": _bytes_quantity(host.ephemeral_storage),
                **{name: _bytes_quantity(size) for name, size in host.hugepages.items()},
                "memory": _bytes_quantity(host.memory), "pods": str(host.pods)}
    storage_reserved = hard_eviction_reservation(thresholds, NODEFS_AVAILABLE, host.ephemeral_storage)
    memory_reserved = hard_eviction_reservation(thresholds, MEMORY_AVAILABLE, host.memory)
    allocatable = {**capacity,
                   "ephemeral-storage": _bytes_quantity(host.ephemeral_storage - storage_reserved),
                   "memory": _bytes_quantity(host.memory - memory_reserved)}
    return capacity, allocatable


# condition type → ((reason, message) without pressure, (reason, message) under pressure), upstream's texts.
PRESSURE_CONDITIONS = {
    "MemoryPressure": (("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                       ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
    "DiskPressure": (("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                     ("KubeletHasDiskPressure", "kubelet has disk pressure")),
    "PIDPressure": (("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
}
READY_REASON, READY_MESSAGE = "KubeletReady", "kubelet is posting ready status"
NOT_READY_REASON = "KubeletNotReady"
# The runtime-state errors upstream's kubelet reports in the Ready condition's message.
RUNTIME_DOWN = "container runtime is down"
NETWORK_NOT_READY = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                     "message:Network plugin returns error: cni plugin not initialized")


def runtime_condition_errors(conditions) -> list[str]:
    """Upstream's runtime-state errors from the runtime's CRI Status (kubelet updateRuntimeUp): RuntimeReady or
    NetworkReady false (or missing) make the node NotReady with the runtime's reason and message. containerd
    itself reports NetworkReady=false until a CNI config exists, with the NETWORK_NOT_READY text."""
    found = {condition.type: condition for condition in conditions}
    errors = []
    for kind, prefix in (("RuntimeReady", "container runtime not ready"),
                         ("NetworkReady", "container runtime network not ready")):
        condition = found.get(kind)
        if condition is None:
            errors.append(f"{prefix}: <nil>")  # Go's %v of the missing condition
        elif not condition.status:
            errors.append(f"{prefix}: {kind}=false reason:{condition.reason} message:{condition.message}")
    return errors


def ready_message(errors: list[str]) -> str:
    """Upstream joins the runtime errors as a Go error aggregate: one error alone, several as [a, b]."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def real_node_conditions(pressure: Mapping[str, bool], runtime_errors: list[str], now: float,
                         previous: list[dict] | None = None) -> list[dict]:
    """MemoryPressure, DiskPressure, PIDPressure and Ready (last, as upstream), heartbeat `now`; a
    condition whose status did not change keeps its lastTransitionTime."""
    before = {c.get("type"): c for c in previous or []}
    stamp = rfc3339(now)

    def condition(type_: str, status: str, reason: str, message: str) -> dict:
        old = before.get(type_)
        transition = old.get("lastTransitionTime") if old and old.get("status") == status else None
        return {"type": type_, "status": status, "lastHeartbeatTime": stamp, "lastTransitionTime": transition or stamp,
                "reason": reason, "message": message}

    conditions = []
    for type_, texts in PRESSURE_CONDITIONS.items():
        active = bool(pressure.get(type_))
        reason, message = texts[active]
        conditions.append(condition(type_, "True" if active else "False", reason, message))
    if runtime_errors:
        conditions.append(condition("Ready", "False", NOT_READY_REASON, ready_message(runtime_errors)))
    else:
        conditions.append(condition("Ready", "True", READY_REASON, READY_MESSAGE))
    return conditions


def node_images(images: list[tuple[list[str], int]]) -> list[dict]:
    """status.images from (names, size) pairs: biggest first, at most 50 images and 5 names each, as
    upstream; names are the repo digests, then the tags."""
    ordered = sorted((item for item in images if item[0]), key=lambda item: item[1], reverse=True)
    return [{"names": names[:MAX_NAMES_PER_IMAGE], "sizeBytes": size}
            for names, size in ordered[:MAX_IMAGES_IN_NODE_STATUS]]


def real_node_status(*, capacity: Mapping[str, str], allocatable: Mapping[str, str], conditions: list[dict],
                     addresses: list[dict], node_info: Mapping[str, str], images: list[dict],
                     kubelet_port: int = KUBELET_PORT) -> dict:
    return {"capacity": dict(capacity), "allocatable": dict(allocatable), "conditions": conditions,
            "addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": dict(node_info), "images": images}


def node_addresses(internal_ip: str, hostname: str) -> list[dict]:
    return [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": hostname}]


def real_node_labels(name: str, architecture: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"beta.kubernetes.io/arch": architecture, "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": architecture, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            **(extra or {})}


def real_node_object(name: str, labels: Mapping[str, str], status: Mapping) -> dict:
    """The Node a real kubelet registers; attach/detach is the controller-manager's, as upstream's default."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {}, "status": dict(status)}


def real_status_needs_update(reported: Mapping | None, desired: Mapping) -> bool:
    """As status_needs_update, and the image list too (upstream compares the whole status)."""
    return status_needs_update(reported, desired) or (reported or {}).get("images") != desired.get("images")
