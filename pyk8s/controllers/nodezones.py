"""Zone-aware pacing of taint-based eviction for the node lifecycle controller (upstream
pkg/controller/nodelifecycle: zone states, per-zone rate-limited NoExecute tainting).

Nodes are grouped in zones by their region and zone labels. A zone is Normal, PartialDisruption
(more than two nodes not ready and at least `unhealthy_zone_threshold` of them) or FullDisruption
(none ready). NoExecute taints, which make pods go, are put on failed nodes through one queue per
zone drained by a token bucket: `eviction_qps` in a Normal or fully disrupted zone; in a partly
disrupted one `secondary_eviction_qps` when the zone has more than `large_cluster_threshold`
nodes, else nothing. When every zone is fully disrupted the fault is taken to be the control
plane's, not the nodes': the NoExecute taints come off and none are added until a node is Ready.
Nodes labelled node.kubernetes.io/exclude-disruption do not count towards any zone's state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

log = logging.getLogger("pyk8s.controllers.nodelifecycle")

STATE_INITIAL = "Initial"
STATE_NORMAL = "Normal"
STATE_PARTIAL = "PartialDisruption"
STATE_FULL = "FullDisruption"

LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE_BETA = "failure-domain.beta.kubernetes.io/zone"
LABEL_REGION_BETA = "failure-domain.beta.kubernetes.io/region"
LABEL_EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"

DEFAULT_EVICTION_QPS = 0.1  # --node-eviction-rate
DEFAULT_SECONDARY_EVICTION_QPS = 0.01  # --secondary-node-eviction-rate
DEFAULT_UNHEALTHY_ZONE_THRESHOLD = 0.55  # --unhealthy-zone-threshold
DEFAULT_LARGE_CLUSTER_THRESHOLD = 50  # --large-cluster-size-threshold
EVICTION_BURST = 1


def zone_key(node: Mapping) -> str:
    """upstream GetZoneKey: "<region>:\\x00:<zone>", or "" for a node with neither label."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    region = labels.get(LABEL_REGION) or labels.get(LABEL_REGION_BETA) or ""
    zone = labels.get(LABEL_ZONE) or labels.get(LABEL_ZONE_BETA) or ""
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def excluded_from_disruption(node: Mapping) -> bool:
    return LABEL_EXCLUDE_DISRUPTION in ((node.get("metadata") or {}).get("labels") or {})


def compute_zone_state(ready_statuses: Iterable[str], threshold: float = DEFAULT_UNHEALTHY_ZONE_THRESHOLD) \
        -> tuple[int, str]:
    """(not-ready node count, state) of a zone from its nodes' Ready statuses."""
    statuses = list(ready_statuses)
    ready = sum(1 for s in statuses if s == "True")
    not_ready = len(statuses) - ready
    if ready == 0 and not_ready > 0:
        return not_ready, STATE_FULL
    if not_ready > 2 and not_ready / (not_ready + ready) >= threshold:
        return not_ready, STATE_PARTIAL
    return not_ready, STATE_NORMAL


class TokenBucket:
    """client-go's token bucket limiter (TryAccept only); qps <= 0 never accepts."""

    def __init__(self, qps: float, now: float, burst: int = EVICTION_BURST):
        self.qps = qps
        self.burst = burst
        self.tokens = float(burst)
        self.last = now

    def try_accept(self, now: float) -> bool:
        if self.qps <= 0:
            return False
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ZoneTainter:
    """A zone's queue of nodes waiting for their NoExecute taint, drained at the zone's rate."""

    def __init__(self, qps: float, now: float):
        self.limiter = TokenBucket(qps, now)
        self.queue: dict[str, None] = {}  # insertion-ordered set of node names

    def add(self, name: str) -> None:
        self.queue.setdefault(name, None)

    def remove(self, name: str) -> None:
        self.queue.pop(name, None)

    def clear(self) -> None:
        self.queue.clear()

    def swap_limiter(self, qps: float, now: float) -> None:
        """A new rate; a limiter that had no token left hands that debt to the new one (upstream)."""
        if qps == self.limiter.qps:
            return
        exhausted = not self.limiter.try_accept(now)
        self.limiter = TokenBucket(qps, now)
        if exhausted:
            self.limiter.try_accept(now)

    async def try_pass(self, now: float, taint: Callable[[str], Awaitable[bool]]) -> None:
        """Taint queued nodes while the limiter allows; one that fails goes to the back."""
        for name in list(self.queue):
            if not self.limiter.try_accept(now):
                return
            self.queue.pop(name, None)
            if not await taint(name):
                self.queue[name] = None


class Zones:
    """Every zone's state and tainter; `observe` is upstream's handleDisruption."""

    def __init__(self, *, eviction_qps: float = DEFAULT_EVICTION_QPS,
                 secondary_eviction_qps: float = DEFAULT_SECONDARY_EVICTION_QPS,
                 unhealthy_zone_threshold: float = DEFAULT_UNHEALTHY_ZONE_THRESHOLD,
                 large_cluster_threshold: int = DEFAULT_LARGE_CLUSTER_THRESHOLD):
        self.eviction_qps = eviction_qps
        self.secondary_eviction_qps = secondary_eviction_qps
        self.threshold = unhealthy_zone_threshold
        self.large_cluster_threshold = large_cluster_threshold
        self.states: dict[str, str] = {}
        self.tainters: dict[str, ZoneTainter] = {}

    def tainter(self, zone: str, now: float) -> ZoneTainter:
        if zone not in self.tainters:
            self.states.setdefault(zone, STATE_INITIAL)
            self.tainters[zone] = ZoneTainter(self.eviction_qps, now)
        return self.tainters[zone]

    @property
    def all_fully_disrupted(self) -> bool:
        return bool(self.states) and all(s == STATE_FULL for s in self.states.values())

    def qps_for(self, state: str, zone_size: int) -> float:
        if state == STATE_PARTIAL:
            return self.secondary_eviction_qps if zone_size > self.large_cluster_threshold else 0.0
        return self.eviction_qps  # Normal, and FullDisruption of a zone while others still work

    def observe(self, zone_statuses: Mapping[str, list[str]], now: float) -> bool:
        """Take in each zone's nodes' Ready statuses; True when the whole cluster has just become
        fully disrupted (the caller then takes the NoExecute taints off)."""
        new_states = {}
        for zone, statuses in zone_statuses.items():
            new_states[zone] = compute_zone_state(statuses, self.threshold)[1]
            self.tainter(zone, now)
        all_now = bool(new_states) and all(s == STATE_FULL for s in new_states.values())
        for zone in [z for z in self.states if z not in zone_statuses]:
            del self.states[zone]
            self.tainters.pop(zone, None)
        all_before = bool(self.states) and all(s == STATE_FULL for s in self.states.values())
        if all_now and all_before:
            return False
        if all_now:
            log.info("node lifecycle: all nodes are not ready; entering master disruption mode (no evictions)")
            for zone, tainter in self.tainters.items():
                tainter.swap_limiter(0.0, now)
                tainter.clear()
                self.states[zone] = STATE_FULL
            return True
        if all_before:
            log.info("node lifecycle: some nodes are ready; exiting master disruption mode")
        for zone, state in new_states.items():
            if all_before or self.states.get(zone) != state:
                if not all_before:
                    log.info("node lifecycle: zone %r is now in state %s", zone, state)
                self.tainters[zone].swap_limiter(self.qps_for(state, len(zone_statuses[zone])), now)
                self.states[zone] = state
        return False
