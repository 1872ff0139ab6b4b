"""Run a sync function often enough but not too often (kube-proxy's BoundedFrequencyRunner).

`run()` is a doorbell that never blocks: any number of rings before the loop wakes lead to one
call. Between two calls at least `min_interval` passes (`--min-sync-period`), so a burst of
Service and EndpointSlice events costs one nft transaction. A failed call is retried after
`retry_interval`; with no ring at all the function still runs every `max_interval`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..client import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.proxy.runner")


class BoundedFrequencyRunner:
    def __init__(self, name: str, fn: Callable[[], Awaitable[None]], *, min_interval: float,
                 retry_interval: float, max_interval: float, clock: Clock = REAL_CLOCK):
        self.name = name
        self.fn = fn
        self.min_interval = min_interval
        self.retry_interval = retry_interval
        self.max_interval = max_interval
        self.clock = clock
        self._doorbell = asyncio.Event()
        self.runs = 0

    def run(self) -> None:
        """Ask for a call soon; safe to call from informer handlers."""
        self._doorbell.set()

    async def _wait(self, timeout: float) -> None:
        """Until the doorbell rings or `timeout` passes on the injected clock."""
        ring = asyncio.ensure_future(self._doorbell.wait())
        timer = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait((ring, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ring, timer):
                task.cancel()
            await asyncio.gather(ring, timer, return_exceptions=True)

    async def loop(self) -> None:
        """Call `fn` whenever asked, at most once per `min_interval`, until cancelled."""
        timeout = self.max_interval
        while True:
            await self._wait(timeout)
            self._doorbell.clear()
            started = self.clock.now()
            try:
                await self.fn()
                timeout = self.max_interval
            except Exception:
                log.exception("%s: sync failed; retrying in %.0fs", self.name, self.retry_interval)
                timeout = self.retry_interval
            self.runs += 1
            await self.clock.sleep(self.min_interval - (self.clock.now() - started))
