"""The scheduling queue: activeQ (priority, then arrival), backoffQ (1 s doubling to 10 s) and the
unschedulable pods that wait for a cluster change (or at most 5 minutes)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .cache import pod_uid

log = logging.getLogger(__name__)

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass
class QueuedPod:
    pod: dict
    timestamp: float
    attempts: int = 0
    where: str = ACTIVE
    seq: int = 0  # the heap entry that is current (older entries are stale)
    moved_while_in_flight: bool = False
    last_attempt: float = 0.0
    unschedulable_plugins: set[str] = field(default_factory=set)

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
                 unschedulable_timeout: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self.clock = clock
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, timestamp, seq, uid)
        self._backoff: list[tuple[float, int, str]] = []  # (expiry, seq, uid)
        self._unschedulable_since: dict[str, float] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pods)

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
        self._push_active(qp)

    def update(self, old: dict, new: dict) -> None:
        qp = self._pods.get(pod_uid(new))
        if qp is None:
            self.add(new)
            return
        qp.pod = new
        if qp.where == UNSCHEDULABLE and _spec_changed(old, new):
            self._requeue(qp)

    def delete(self, pod: dict) -> None:
        qp = self._pods.pop(pod_uid(pod), None)
        if qp is not None:
            self._unschedulable_since.pop(qp.uid, None)
            qp.where = ""  # heap entries become stale

    def move_all_unschedulable(self, event: str) -> None:
        """A cluster change that may let waiting pods fit: retry them (after their backoff)."""
        moved = 0
        for qp in list(self._pods.values()):
            if qp.where == UNSCHEDULABLE:
                self._requeue(qp)
                moved += 1
            elif qp.where == IN_FLIGHT:
                qp.moved_while_in_flight = True
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
                qp.attempts += 1
                qp.last_attempt = self.clock()
                qp.moved_while_in_flight = False
                return qp
            self._wake.clear()
            await self._wake.wait()

    def done(self, qp: QueuedPod) -> None:
        """The pod is bound (or gone): stop tracking it."""
        if self._pods.get(qp.uid) is qp:
            del self._pods[qp.uid]

    def add_unschedulable(self, qp: QueuedPod, *, error: bool = False) -> None:
        """Return a pod that failed: to backoffQ when something changed meanwhile (or on an error),
        else to the unschedulable pods."""
        if self._pods.get(qp.uid) is not qp:
            return  # deleted meanwhile
        if error or qp.moved_while_in_flight:
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
