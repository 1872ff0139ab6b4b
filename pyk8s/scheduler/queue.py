"""The scheduling queue: activeQ (priority, then arrival), backoffQ (1 s doubling to 10 s), the unschedulable
pods that wait for a cluster change relevant to the plugins that rejected them (or at most 5 minutes), and
the gated pods that PreEnqueue plugins (scheduling gates) keep out until the pod changes."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .cache import pod_uid

log = logging.getLogger(__name__)

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT, GATED = "active", "backoff", "unschedulable", "in-flight", "gated"

# A PreEnqueue check: None lets the pod queue, else (plugin name, message) keeps it gated.
PreEnqueue = Callable[[dict], "tuple[str, str] | None"]
# plugin name -> the cluster events that may make a pod it rejected schedulable
PluginEvents = Mapping[str, frozenset[str]]


@dataclass
class QueuedPod:
    pod: dict
    timestamp: float
    attempts: int = 0
    where: str = ACTIVE
    seq: int = 0  # the heap entry that is current (older entries are stale)
    in_flight_events: list[str] = field(default_factory=list)
    last_attempt: float = 0.0
    unschedulable_plugins: set[str] = field(default_factory=set)
    gated_by: tuple[str, str] | None = None  # (plugin, message) while a PreEnqueue plugin holds the pod

    @property
    def uid(self) -> str:
        return pod_uid(self.pod)

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)


def _spec_changed(old: dict, new: dict) -> bool:
    """Updates that may make an unschedulable pod schedulable (not our own status writes)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels") \
        or om.get("annotations") != nm.get("annotations")


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 unschedulable_timeout: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 pre_enqueue: PreEnqueue | None = None, plugin_events: PluginEvents | None = None):
        self.pre_enqueue = pre_enqueue
        self.plugin_events = plugin_events or {}
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self.clock = clock
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, timestamp, seq, uid)
        self._backoff: list[tuple[float, int, str]] = []  # (expiry, seq, uid)
        self._unschedulable_since: dict[str, float] = {}  # exactly the pods in UNSCHEDULABLE
        self._in_flight: set[str] = set()
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pods)

    def get(self, uid: str) -> QueuedPod | None:
        return self._pods.get(uid)

    def where(self, uid: str) -> str | None:
        qp = self._pods.get(uid)
        return qp.where if qp else None

    # ---- informer side ---------------------------------------------------------------------

    def add(self, pod: dict) -> None:
        uid = pod_uid(pod)
        if uid in self._pods:
            self.update(self._pods[uid].pod, pod)
            return
        qp = QueuedPod(pod, self.clock())
        self._pods[uid] = qp
        self._enqueue(qp)

    def update(self, old: dict, new: dict) -> None:
        qp = self._pods.get(pod_uid(new))
        if qp is None:
            self.add(new)
            return
        qp.pod = new
        if qp.where == GATED:
            self._enqueue(qp)
        elif qp.where == UNSCHEDULABLE and _spec_changed(old, new):
            self._requeue(qp)

    def gated(self) -> list[QueuedPod]:
        return [qp for qp in self._pods.values() if qp.where == GATED]

    def _enqueue(self, qp: QueuedPod) -> None:
        """Into activeQ unless a PreEnqueue plugin holds the pod back."""
        qp.gated_by = self.pre_enqueue(qp.pod) if self.pre_enqueue else None
        if qp.gated_by is None:
            self._push_active(qp)
        else:
            qp.where = GATED

    def delete(self, pod: dict) -> None:
        qp = self._pods.pop(pod_uid(pod), None)
        if qp is not None:
            self._unschedulable_since.pop(qp.uid, None)
            self._in_flight.discard(qp.uid)
            qp.where = ""  # heap entries become stale

    def relevant(self, qp: QueuedPod, event: str) -> bool:
        """Whether `event` may help a pod that the plugins in qp.unschedulable_plugins rejected."""
        if not qp.unschedulable_plugins:
            return True
        return any(event in self.plugin_events.get(plugin, frozenset({event})) for plugin in qp.unschedulable_plugins)

    def move_all_unschedulable(self, event: str) -> None:
        """A cluster change that may let waiting pods fit: retry those it concerns (after their backoff)."""
        moved = 0
        for uid in list(self._unschedulable_since):
            qp = self._pods.get(uid)
            if qp is not None and qp.where == UNSCHEDULABLE and self.relevant(qp, event):
                self._requeue(qp)
                moved += 1
        for uid in self._in_flight:
            qp = self._pods.get(uid)
            if qp is not None and qp.where == IN_FLIGHT:
                qp.in_flight_events.append(event)
        if moved:
            log.debug("scheduling queue: %s moved %d unschedulable pods", event, moved)

    # ---- scheduler side --------------------------------------------------------------------

    async def pop(self) -> QueuedPod:
        while True:
            while self._active:
                _, _, seq, uid = heapq.heappop(self._active)
                qp = self._pods.get(uid)
                if qp is None or qp.where != ACTIVE or qp.seq != seq:
                    continue
                qp.where = IN_FLIGHT
                self._in_flight.add(uid)
                qp.attempts += 1
                qp.last_attempt = self.clock()
                qp.in_flight_events = []
                return qp
            self._wake.clear()
            await self._wake.wait()

    def done(self, qp: QueuedPod) -> None:
        """The pod is bound (or gone): stop tracking it."""
        self._in_flight.discard(qp.uid)
        if self._pods.get(qp.uid) is qp:
            del self._pods[qp.uid]

    def add_unschedulable(self, qp: QueuedPod, *, error: bool = False) -> None:
        """Return a pod that failed: to backoffQ when something relevant changed meanwhile (or on an
        error), else to the unschedulable pods. Set qp.unschedulable_plugins first."""
        self._in_flight.discard(qp.uid)
        if self._pods.get(qp.uid) is not qp:
            return  # deleted meanwhile
        if error or any(self.relevant(qp, event) for event in qp.in_flight_events):
            self._push_backoff(qp)
        else:
            qp.where = UNSCHEDULABLE
            self._unschedulable_since[qp.uid] = self.clock()

    def backoff_duration(self, qp: QueuedPod) -> float:
        return min(self.initial_backoff * 2 ** max(qp.attempts - 1, 0), self.max_backoff)

    def flush_backoff(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, uid = heapq.heappop(self._backoff)
            qp = self._pods.get(uid)
            if qp is not None and qp.where == BACKOFF and qp.seq == seq:
                self._push_active(qp)

    def flush_unschedulable_leftovers(self) -> None:
        now = self.clock()
        for uid, since in list(self._unschedulable_since.items()):
            qp = self._pods.get(uid)
            if qp is not None and qp.where == UNSCHEDULABLE and now - since >= self.unschedulable_timeout:
                self._requeue(qp)

    async def run(self) -> None:
        """Flush backoffQ every second and stale unschedulable pods every 30 s."""
        for tick in itertools.count():
            await asyncio.sleep(1.0)
            self.flush_backoff()
            if tick % 30 == 29:
                self.flush_unschedulable_leftovers()

    # ---- internals -------------------------------------------------------------------------

    def _requeue(self, qp: QueuedPod) -> None:
        self._unschedulable_since.pop(qp.uid, None)
        self._push_backoff(qp)
        self.flush_backoff()

    def _push_active(self, qp: QueuedPod) -> None:
        qp.where, qp.seq = ACTIVE, next(self._seq)
        heapq.heappush(self._active, (-qp.priority, qp.timestamp, qp.seq, qp.uid))
        self._wake.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        self._unschedulable_since.pop(qp.uid, None)
        qp.where, qp.seq = BACKOFF, next(self._seq)
        expiry = qp.last_attempt + self.backoff_duration(qp) if qp.attempts else self.clock()
        heapq.heappush(self._backoff, (expiry, qp.seq, qp.uid))
