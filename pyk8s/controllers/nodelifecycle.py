"""The node lifecycle controller (upstream pkg/controller/nodelifecycle) with taint-based eviction
(upstream pkg/controller/tainteviction).

Health: every `node_monitor_period` each node is looked at. A node whose Lease
(kube-node-lease/<node>) renewTime and Ready heartbeat are both older than
`node_monitor_grace_period` has its Ready, MemoryPressure, DiskPressure and PIDPressure conditions
set to Unknown (reason NodeStatusUnknown) and its pods marked not ready.

Taints: Ready Unknown gives node.kubernetes.io/unreachable, Ready False node.kubernetes.io/not-ready
(NoExecute and NoSchedule); pressure conditions, NetworkUnavailable and spec.unschedulable give their
NoSchedule taints. Taints this controller manages are removed when their cause is gone.

NoExecute taints (unreachable / not-ready) are paced per zone (see nodezones): a failed node waits in
its zone's queue until the zone's rate limiter lets its taint on, and none go on while every zone is
fully disrupted. A node already carrying one of the two has it swapped for the other at once.

Eviction: a pod on a node with NoExecute taints is deleted at once when it does not tolerate one of
them, or `tolerationSeconds` after the taint's timeAdded when every taint is tolerated for a time.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..client import (
    APIClient,
    APIConnectionError,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
    object_key,
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter
from .nodezones import (
    DEFAULT_EVICTION_QPS,
    DEFAULT_LARGE_CLUSTER_THRESHOLD,
    DEFAULT_SECONDARY_EVICTION_QPS,
    DEFAULT_UNHEALTHY_ZONE_THRESHOLD,
    Zones,
    excluded_from_disruption,
    zone_key,
)

log = logging.getLogger("pyk8s.controllers.nodelifecycle")

NAME = "node-lifecycle-controller"
LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_NODE_MONITOR_PERIOD = 5.0
DEFAULT_NODE_MONITOR_GRACE_PERIOD = 40.0
# How often the zone queues are offered to their rate limiters (upstream nodeEvictionPeriod).
NODE_EVICTION_PERIOD = 0.1
# Tries of one NoExecute taint update that meets conflicts (upstream's UpdateTaintBackoff steps).
TAINT_UPDATE_ATTEMPTS = 5

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MANAGED_TAINT_KEYS = frozenset({TAINT_UNREACHABLE, TAINT_NOT_READY, TAINT_MEMORY_PRESSURE, TAINT_DISK_PRESSURE,
                                TAINT_PID_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_UNSCHEDULABLE})

# Conditions the kubelet owns, set to Unknown when it stops posting.
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
CONDITION_TAINTS = {  # (condition, status) -> NoSchedule taint key
    ("MemoryPressure", "True"): TAINT_MEMORY_PRESSURE,
    ("DiskPressure", "True"): TAINT_DISK_PRESSURE,
    ("PIDPressure", "True"): TAINT_PID_PRESSURE,
    ("NetworkUnavailable", "True"): TAINT_NETWORK_UNAVAILABLE,
}
REASON_UNKNOWN = "NodeStatusUnknown"
MESSAGE_UNKNOWN = "Kubelet stopped posting node status."
REASON_NEVER_UPDATED = "NodeStatusNeverUpdated"
MESSAGE_NEVER_UPDATED = "Kubelet never posted node status."


# ---- the decisions (pure) -------------------------------------------------------------------


def parse_timestamp(value: str | None) -> float | None:
    """RFC 3339 (with or without fractional seconds) to epoch seconds; None when absent or invalid."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(node: Mapping, type_: str) -> dict | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return condition
    return None


def last_heartbeat(node: Mapping, lease: Mapping | None) -> float | None:
    """The latest sign of life: the Lease's renewTime or the Ready condition's heartbeat; a node that
    never posted either counts from its creation."""
    times = []
    if lease is not None:
        times.append(parse_timestamp((lease.get("spec") or {}).get("renewTime")))
    ready = get_condition(node, "Ready")
    if ready is not None:
        times.append(parse_timestamp(ready.get("lastHeartbeatTime")))
    seen = [t for t in times if t is not None]
    if seen:
        return max(seen)
    return parse_timestamp((node.get("metadata") or {}).get("creationTimestamp"))


def is_stale(node: Mapping, lease: Mapping | None, now: float, grace: float) -> bool:
    heartbeat = last_heartbeat(node, lease)
    return heartbeat is None or now - heartbeat > grace


def unknown_conditions(node: Mapping, now: float) -> list[dict] | None:
    """The node's conditions with the kubelet's ones set to Unknown; None when nothing changes.
    A condition that is Unknown already is left alone; a transition stamps lastTransitionTime."""
    conditions = copy.deepcopy((node.get("status") or {}).get("conditions") or [])
    by_type = {c.get("type"): c for c in conditions}
    stamp = rfc3339(now)
    changed = False
    for type_ in KUBELET_CONDITIONS:
        current = by_type.get(type_)
        if current is None:
            conditions.append({"type": type_, "status": "Unknown", "reason": REASON_NEVER_UPDATED,
                               "message": MESSAGE_NEVER_UPDATED, "lastHeartbeatTime": stamp,
                               "lastTransitionTime": stamp})
            changed = True
        elif current.get("status") != "Unknown":
            current.update(status="Unknown", reason=REASON_UNKNOWN, message=MESSAGE_UNKNOWN,
                           lastTransitionTime=stamp)
            changed = True
    return conditions if changed else None


def ready_status(node: Mapping) -> str:
    ready = get_condition(node, "Ready")
    return (ready or {}).get("status") or "Unknown"


def wanted_taints(node: Mapping, no_execute: bool = True) -> set[tuple[str, str]]:
    """(key, effect) of every taint this controller wants on the node now; the NoExecute ones of an
    unready node only when `no_execute` (its zone's queue has let them on)."""
    wanted: set[tuple[str, str]] = set()
    ready = ready_status(node)
    readiness_taint = {"Unknown": TAINT_UNREACHABLE, "False": TAINT_NOT_READY}.get(ready)
    if readiness_taint:
        wanted.add((readiness_taint, NO_SCHEDULE))
        if no_execute:
            wanted.add((readiness_taint, NO_EXECUTE))
    for condition in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((condition.get("type"), condition.get("status")))
        if key:
            wanted.add((key, NO_SCHEDULE))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.add((TAINT_UNSCHEDULABLE, NO_SCHEDULE))
    return wanted


def reconcile_taints(taints: Iterable[Mapping], wanted: set[tuple[str, str]], now: float) -> list[dict] | None:
    """The node's taints with managed ones added or removed to match `wanted`; None when unchanged.
    Other taints, and managed ones that stay, are kept as they are (timeAdded included)."""
    result: list[dict] = []
    present: set[tuple[str, str]] = set()
    changed = False
    for taint in taints:
        key = (taint.get("key", ""), taint.get("effect", ""))
        if key[0] in MANAGED_TAINT_KEYS and key not in wanted:
            changed = True
            continue
        present.add(key)
        result.append(dict(taint))
    for key, effect in sorted(wanted - present):
        result.append({"key": key, "effect": effect, "timeAdded": rfc3339(now)})
        changed = True
    return result if changed else None


def has_no_execute_readiness_taint(node: Mapping) -> bool:
    return any(t.get("effect") == NO_EXECUTE and t.get("key") in (TAINT_UNREACHABLE, TAINT_NOT_READY)
               for t in (node.get("spec") or {}).get("taints") or [])


def observed_ready(node: Mapping, lease: Mapping | None, now: float, grace: float) -> str:
    """The Ready status the controller acts on: Unknown for a stale node not yet marked so."""
    return "Unknown" if is_stale(node, lease, now, grace) else ready_status(node)


def tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """Upstream Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def eviction_time(pod: Mapping, taints: Iterable[Mapping]) -> float | None:
    """When a pod on a node with these taints must go (epoch seconds; -inf for at once), or None
    when it may stay for good. Only NoExecute taints count."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    deadline: float | None = None
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return -math.inf
        seconds = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
        if not seconds:
            continue  # tolerated forever
        allowed = min(seconds)
        if allowed <= 0:
            return -math.inf
        added = parse_timestamp(taint.get("timeAdded"))
        if added is None:
            continue  # no start to count from (not a taint this controller set)
        due = added + allowed
        deadline = due if deadline is None else min(deadline, due)
    return deadline


def pod_not_ready_patch(pod: Mapping, now: float) -> dict | None:
    """The status patch that marks a pod not ready (upstream MarkPodsNotReady); None if it is already."""
    ready = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") == "False":
        return None
    return {"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(now)}]}}


# ---- the controller -------------------------------------------------------------------------


async def fetch_node(client: APIClient, name: str) -> dict | None:
    """The node as the API has it now; None when it is gone."""
    try:
        return await client.get("nodes", name)
    except APIStatusError as exc:
        if is_not_found(exc):
            return None
        raise


def _node_of(pod: Mapping) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


class NodeLifecycleController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *,
                 node_monitor_period: float = DEFAULT_NODE_MONITOR_PERIOD,
                 node_monitor_grace_period: float = DEFAULT_NODE_MONITOR_GRACE_PERIOD,
                 zones: Zones | None = None, clock: Clock = REAL_CLOCK,
                 wall_clock: Callable[[], float] = time.time):
        self.client = client
        self.zones = zones or Zones()
        self.clock = clock
        self.monitor_period = node_monitor_period
        self.grace_period = node_monitor_grace_period
        self.wall = wall_clock
        self.nodes = factory.informer("nodes")
        self.leases = factory.informer("leases", LEASE_NAMESPACE)
        self.pods = factory.informer("pods", indexers={"node": _node_of})
        self.node_queue: WorkQueue[str] = WorkQueue(
            "nodelifecycle", rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        self.pod_queue: WorkQueue[str] = WorkQueue(
            "tainteviction", rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        waits = [self.nodes.wait_for_sync, self.leases.wait_for_sync, self.pods.wait_for_sync]
        self.node_controller: Controller[str] = Controller(NAME, self.sync_node, workers=4, queue=self.node_queue,
                                                           clock=clock, wait_for=waits)
        self.eviction_controller: Controller[str] = Controller("taint-eviction-controller", self.sync_pod,
                                                               workers=8, queue=self.pod_queue, clock=clock,
                                                               wait_for=waits)
        self.nodes.add_handler(on_add=self._on_node, on_update=self._on_node_update)
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _old, new: self._on_pod(new))

    @classmethod
    def from_context(cls, ctx: Any) -> NodeLifecycleController:
        """Built by the manager; options: node_monitor_period, node_monitor_grace_period (seconds),
        node_eviction_rate, secondary_node_eviction_rate (nodes/s), unhealthy_zone_threshold,
        large_cluster_size_threshold (upstream's flags of those names)."""
        options = ctx.options or {}
        zones = Zones(
            eviction_qps=float(options.get("node_eviction_rate", DEFAULT_EVICTION_QPS)),
            secondary_eviction_qps=float(options.get("secondary_node_eviction_rate",
                                                     DEFAULT_SECONDARY_EVICTION_QPS)),
            unhealthy_zone_threshold=float(options.get("unhealthy_zone_threshold",
                                                       DEFAULT_UNHEALTHY_ZONE_THRESHOLD)),
            large_cluster_threshold=int(options.get("large_cluster_size_threshold",
                                                    DEFAULT_LARGE_CLUSTER_THRESHOLD)))
        return cls(ctx.client, ctx.factory,
                   node_monitor_period=float(options.get("node_monitor_period", DEFAULT_NODE_MONITOR_PERIOD)),
                   node_monitor_grace_period=float(options.get("node_monitor_grace_period",
                                                               DEFAULT_NODE_MONITOR_GRACE_PERIOD)),
                   zones=zones, clock=ctx.clock)

    # -- events --

    def _on_node(self, node: dict) -> None:
        self.node_queue.add(node["metadata"]["name"])
        self._enqueue_pods(node)

    def _on_node_update(self, old: dict, new: dict) -> None:
        self.node_queue.add(new["metadata"]["name"])
        if (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints"):
            self._enqueue_pods(new)

    def _enqueue_pods(self, node: dict) -> None:
        if any(t.get("effect") == NO_EXECUTE for t in (node.get("spec") or {}).get("taints") or []):
            for pod in self.pods.by_index("node", node["metadata"]["name"]):
                self.pod_queue.add(object_key(pod))

    def _on_pod(self, pod: dict | DeletedFinalStateUnknown) -> None:
        if isinstance(pod, DeletedFinalStateUnknown) or not _node_of(pod):
            return
        self.pod_queue.add(object_key(pod))

    # -- loops --

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.node_controller.run(), name=f"{NAME}-nodes")
            group.create_task(self.eviction_controller.run(), name=f"{NAME}-eviction")
            group.create_task(self._monitor(), name=f"{NAME}-monitor")
            group.create_task(self._tainting(), name=f"{NAME}-tainting")

    async def _monitor(self) -> None:
        await self.nodes.wait_for_sync()
        await self.leases.wait_for_sync()
        while True:
            self.observe_zones()
            for name in self.nodes.keys():
                self.node_queue.add(name)
            await asyncio.sleep(self.monitor_period)

    def observe_zones(self) -> None:
        """Recompute every zone's state; on entering cluster-wide disruption, look at every node
        again so its NoExecute taints come off."""
        now = self.wall()
        statuses: dict[str, list[str]] = {}
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            self.zones.tainter(zone_key(node), self.clock.now())
            if excluded_from_disruption(node):
                continue
            lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
            statuses.setdefault(zone_key(node), []).append(observed_ready(node, lease, now, self.grace_period))
        if self.zones.observe(statuses, self.clock.now()):
            for name in self.nodes.keys():
                self.node_queue.add(name)

    async def _tainting(self) -> None:
        await self.nodes.wait_for_sync()
        while True:
            await self.tainting_pass()
            await self.clock.sleep(NODE_EVICTION_PERIOD)

    async def tainting_pass(self) -> None:
        for tainter in list(self.zones.tainters.values()):
            await tainter.try_pass(self.clock.now(), self._taint_no_execute)

    async def _taint_no_execute(self, name: str) -> bool:
        """Put the NoExecute readiness taint on a node its zone's limiter let through; True when the
        node needs nothing more (tainted, Ready again or gone), False when it stays queued. A conflict
        is retried at once on the node read fresh from the API (upstream's taint update retries on
        conflict), so the limiter's token is not spent on a stale cache."""
        node = self.nodes.get(name)
        try:
            for attempt in range(TAINT_UPDATE_ATTEMPTS):
                if node is None or ready_status(node) == "True":
                    return True
                taints = reconcile_taints((node.get("spec") or {}).get("taints") or [], wanted_taints(node),
                                          self.wall())
                if taints is None:
                    return True
                updated = copy.deepcopy(node)
                updated.setdefault("spec", {})["taints"] = taints
                try:
                    await self.client.update(updated)
                except APIStatusError as exc:
                    if is_not_found(exc):
                        return True
                    if not is_conflict(exc) or attempt == TAINT_UPDATE_ATTEMPTS - 1:
                        raise
                    node = await fetch_node(self.client, name)
                    continue
                log.info("node lifecycle: node %s tainted NoExecute (%s)", name,
                         TAINT_UNREACHABLE if ready_status(node) == "Unknown" else TAINT_NOT_READY)
                return True
        except (APIStatusError, APIConnectionError) as exc:
            log.info("node lifecycle: tainting node %s failed (%s); it stays queued", name, exc)
        return False

    def _no_execute_now(self, node: dict) -> bool:
        """Whether the node's NoExecute readiness taint may be on now (upstream processTaintBaseEviction):
        not for a Ready node, nor anywhere while all zones are down; at once for a node that has one
        already (swapped to match its state); otherwise the node queues in its zone."""
        name = node["metadata"]["name"]
        tainter = self.zones.tainter(zone_key(node), self.clock.now())
        if ready_status(node) == "True" or self.zones.all_fully_disrupted:
            tainter.remove(name)
            return False
        if has_no_execute_readiness_taint(node):
            return True
        tainter.add(name)
        return False

    async def sync_node(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        now = self.wall()
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        if is_stale(node, lease, now, self.grace_period):
            conditions = unknown_conditions(node, now)
            if conditions is not None:
                log.warning("node lifecycle: node %s stopped posting status (grace %.0fs); marking it Unknown",
                            name, self.grace_period)
                updated = copy.deepcopy(node)
                updated.setdefault("status", {})["conditions"] = conditions
                node = await self.client.update_status(updated)
        taints = reconcile_taints((node.get("spec") or {}).get("taints") or [],
                                  wanted_taints(node, self._no_execute_now(node)), now)
        if taints is not None:
            updated = copy.deepcopy(node)
            updated.setdefault("spec", {})["taints"] = taints
            if not taints:
                updated["spec"].pop("taints")
            node = await self.client.update(updated)
            log.info("node lifecycle: node %s taints now %s", name,
                     ", ".join(f"{t['key']}:{t['effect']}" for t in taints) or "(none)")
        if ready_status(node) == "Unknown":
            await self._mark_pods_not_ready(name, now)

    async def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        for pod in self.pods.by_index("node", node_name):
            patch = pod_not_ready_patch(pod, now)
            if patch is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            meta = pod["metadata"]
            try:
                await self.client.patch_status("pods", meta["name"], patch, meta["namespace"],
                                               patch_type="strategic")
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise

    async def sync_pod(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return
        due = eviction_time(pod, (node.get("spec") or {}).get("taints") or [])
        if due is None:
            return
        wait = due - self.wall()
        if wait > 0:
            raise RequeueAfter(wait)
        namespace, name = split_key(key)
        log.info("taint eviction: deleting pod %s from node %s", key, node["metadata"]["name"])
        try:
            await self.client.delete("pods", name, namespace,
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except APIStatusError as exc:
            if not (is_not_found(exc) or exc.code == 409):
                raise
