"""The pod lifecycle event generator (upstream's generic PLEG): relist the runtime every second and tell the
kubelet which pods changed (a container started, died or went away, a sandbox appeared or stopped), so their
workers sync without waiting for the periodic resync. The last relist is also what housekeeping and the node's
health look at: a PLEG that has not relisted for 3 minutes is unhealthy, as upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .runtime.cri import CRIError, pb

log = logging.getLogger(__name__)

RELIST_THRESHOLD = 180.0  # upstream's relistThreshold

RuntimePods = dict[str, tuple[list[pb.PodSandbox], list[pb.Container]]]


def _fingerprint(sandboxes: list[pb.PodSandbox], containers: list[pb.Container]) -> frozenset:
    return frozenset([("sandbox", s.id, s.state) for s in sandboxes] + [("container", c.id, c.state)
                                                                       for c in containers])


class GenericPLEG:
    def __init__(self, relist_source: Callable[[], Awaitable[RuntimePods]],
                 on_change: Callable[[str], None], period: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._list = relist_source
        self.on_change = on_change
        self.period = period
        self.clock = clock
        self.pods: RuntimePods = {}
        self._fingerprints: dict[str, frozenset] = {}
        self.last_relist: float | None = None
        self.relisted = asyncio.Event()

    async def relist(self) -> set[str]:
        """One relist; the UIDs whose runtime state changed since the last one (all of them the first time)."""
        pods = await self._list()
        fingerprints = {uid: _fingerprint(*entry) for uid, entry in pods.items()}
        changed = {uid for uid in fingerprints.keys() | self._fingerprints.keys()
                   if fingerprints.get(uid) != self._fingerprints.get(uid)}
        self.pods, self._fingerprints = pods, fingerprints
        self.last_relist = self.clock()
        self.relisted.set()
        for uid in changed:
            self.on_change(uid)
        return changed

    def healthy(self) -> bool:
        return self.last_relist is not None and self.clock() - self.last_relist <= RELIST_THRESHOLD

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except CRIError as exc:
                log.warning("PLEG relist failed: %s", exc)
            await asyncio.sleep(self.period)
