"""Rate-limited work queue and the controller worker loop built on it.

Semantics follow upstream's workqueue (client-go util/workqueue): a FIFO plus a *dirty* set
plus a *processing* set, so a key is never queued twice and never handled by two workers at
once; a key added while it is being processed is queued again when the worker calls `done`.
Rate-limited requeues take the maximum of a per-item exponential backoff (5 ms doubling up to
1000 s) and an overall token bucket (10 qps, burst 100), as DefaultControllerRateLimiter does.

Time comes from an injected `Clock` so tests drive the queue with `FakeClock.step()` and never
sleep for real. The clock and token bucket live here because the queue is their main user;
the API client imports `TokenBucket` for its QPS limit.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("pyk8s.client.workqueue")

K = TypeVar("K", bound=Hashable)


# ---- clocks ----------------------------------------------------------------------------


class Clock(Protocol):
    """Monotonic time in seconds and a way to wait for it."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


REAL_CLOCK = RealClock()


class FakeClock:
    """A clock that moves only when a test calls `step`; sleepers wake when their time is reached."""

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    def step(self, seconds: float) -> None:
        """Advance time and wake every sleeper whose deadline has passed."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def waiters(self) -> int:
        """Sleepers still pending (cancelled ones excluded); lets tests know a task is parked."""
        return sum(1 for _, _, f in self._sleepers if not f.done())


# ---- rate limiters ---------------------------------------------------------------------


class TokenBucket:
    """Token bucket refilled at `qps` up to `burst` tokens.

    `reserve()` always takes a token, going into debt when empty, and returns how long the
    caller must wait for it; so concurrent callers queue up fairly instead of polling.
    """

    def __init__(self, qps: float, burst: int, clock: Clock = REAL_CLOCK):
        if qps <= 0 or burst < 1:
            raise ValueError("token bucket needs qps > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._last = clock.now()

    def _refill(self) -> None:
        now = self.clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now

    def reserve(self) -> float:
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def try_accept(self) -> bool:
        """Take a token only if one is available now (spam filters drop instead of waiting)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await self.clock.sleep(delay)


class RateLimiter(Protocol[K]):
    def when(self, item: K) -> float: ...

    def forget(self, item: K) -> None: ...

    def num_requeues(self, item: K) -> int: ...


class ItemExponentialFailureRateLimiter(Generic[K]):
    """base * 2**failures per item, capped; `forget` clears the item's history."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0):
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[K, int] = {}

    def when(self, item: K) -> float:
        failures = self._failures.get(item, 0)
        self._failures[item] = failures + 1
        if failures >= 64:  # 2**64 * base is past any cap; avoid huge floats
            return self.max_delay
        return min(self.base_delay * (2 ** failures), self.max_delay)

    def forget(self, item: K) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: K) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(Generic[K]):
    """One token bucket shared by all items: bounds the overall retry rate."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock = REAL_CLOCK):
        self.bucket = TokenBucket(qps, burst, clock)

    def when(self, item: K) -> float:
        return self.bucket.reserve()

    def forget(self, item: K) -> None:
        pass

    def num_requeues(self, item: K) -> int:
        return 0


class MaxOfRateLimiter(Generic[K]):
    """The longest delay any of the limiters asks for."""

    def __init__(self, *limiters: RateLimiter[K]):
        self.limiters = limiters

    def when(self, item: K) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: K) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter:
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100, clock))


# ---- the queue -------------------------------------------------------------------------


class ShutDown(Exception):
    """Raised by `WorkQueue.get()` once the queue is shut down (and drained, when draining)."""


class WorkQueue(Generic[K]):
    """De-duplicating FIFO with delayed and rate-limited adds. `add` is sync, safe from handlers."""

    def __init__(self, name: str = "", rate_limiter: RateLimiter[K] | None = None, clock: Clock = REAL_CLOCK):
        self.name = name
        self.clock = clock
        self.rate_limiter: RateLimiter[K] = rate_limiter or default_controller_rate_limiter(clock)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._shutting_down = False
        self._draining = False
        self._changed = asyncio.Event()  # doorbell for get() and drain waiters
        # Delayed adds: a heap with lazy deletion; `_waiting` holds each item's earliest ready time.
        self._heap: list[tuple[float, int, K]] = []
        self._waiting: dict[K, float] = {}
        self._seq = itertools.count()
        self._heap_changed = asyncio.Event()
        self._timer: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def len(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, item: K) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # `done` re-queues it, so one worker at a time sees the key
        self._queue.append(item)
        self._changed.set()

    async def get(self) -> K:
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._changed.clear()
            await self._changed.wait()
        if self._shutting_down and not self._draining:
            raise ShutDown(self.name)
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: K) -> None:
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
        self._changed.set()

    def add_after(self, item: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready_at = self.clock.now() + delay
        previous = self._waiting.get(item)
        if previous is not None and previous <= ready_at:
            return  # already waiting to be added sooner
        self._waiting[item] = ready_at
        heapq.heappush(self._heap, (ready_at, next(self._seq), item))
        self._heap_changed.set()
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._run_timer(), name=f"workqueue-{self.name}")

    def add_rate_limited(self, item: K) -> None:
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: K) -> None:
        self.rate_limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return self.rate_limiter.num_requeues(item)

    def shut_down(self) -> None:
        """Stop now: new adds are ignored, `get` raises ShutDown, queued items are left unprocessed."""
        self._shutting_down = True
        self._stop_timer()
        self._changed.set()

    async def shut_down_with_drain(self) -> None:
        """Ignore new adds, let workers finish everything already queued, and wait until nothing is
        being processed."""
        self._shutting_down = True
        self._draining = True
        self._stop_timer()
        self._changed.set()
        while self._queue or self._processing:
            self._changed.clear()
            await self._changed.wait()
        self._changed.set()  # let idle getters see the empty, shut-down queue

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._waiting.clear()

    async def _run_timer(self) -> None:
        while self._heap:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                ready_at, _, item = heapq.heappop(self._heap)
                if self._waiting.get(item) == ready_at:
                    del self._waiting[item]
                    self.add(item)
            if not self._heap:
                break
            self._heap_changed.clear()
            sleeper = asyncio.ensure_future(self.clock.sleep(self._heap[0][0] - now))
            changed = asyncio.ensure_future(self._heap_changed.wait())
            try:
                await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()


# ---- the controller worker loop --------------------------------------------------------


class RequeueAfter(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raise from `reconcile` to look at the key again after `delay` seconds without counting a failure."""

    def __init__(self, delay: float):
        super().__init__(delay)
        self.delay = delay


class Controller(Generic[K]):
    """N workers that take keys from a WorkQueue and reconcile them one key at a time.

    Success forgets the key's failure history; an exception logs and requeues with backoff;
    `RequeueAfter` schedules a fresh look. Reconcile must be idempotent and level-triggered: it
    re-reads current state (from informers) rather than trusting the event that queued the key.
    """

    def __init__(self, name: str, reconcile: Callable[[K], Awaitable[None]], *, workers: int = 5,
                 queue: WorkQueue[K] | None = None, clock: Clock = REAL_CLOCK,
                 wait_for: Iterable[Callable[[], Awaitable[object]]] = ()):
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.queue: WorkQueue[K] = queue if queue is not None else WorkQueue(name, clock=clock)
        self._wait_for = tuple(wait_for)  # e.g. informer.wait_for_sync, awaited before workers start

    async def run(self) -> None:
        """Run until cancelled; the queue is shut down on the way out."""
        for waiter in self._wait_for:
            await waiter()
        log.info("controller %s: starting %d workers", self.name, self.workers)
        try:
            async with asyncio.TaskGroup() as group:
                for i in range(self.workers):
                    group.create_task(self._worker(), name=f"{self.name}-worker-{i}")
        finally:
            self.queue.shut_down()
            log.info("controller %s: stopped", self.name)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: K) -> None:
        try:
            await self.reconcile(key)
        except RequeueAfter as requeue:
            self.queue.forget(key)
            self.queue.add_after(key, requeue.delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("controller %s: reconcile %s failed (requeue %d)", self.name, key,
                          self.queue.num_requeues(key) + 1)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
