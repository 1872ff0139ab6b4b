"""WorkQueue, rate limiters and the Controller loop, driven by a FakeClock (no real sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from pyk8s.client.workqueue import (
    BucketRateLimiter,
    Controller,
    FakeClock,
    ItemExponentialFailureRateLimiter,
    RequeueAfter,
    ShutDown,
    TokenBucket,
    WorkQueue,
    default_controller_rate_limiter,
)


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (timers woken by FakeClock.step need a few loop turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def drain_now(queue: WorkQueue) -> list:
    """Items available right now, in order (each marked done)."""
    out = []
    while len(queue):
        item = queue._queue[0]
        out.append(item)
        queue._queue.popleft()
        queue._dirty.discard(item)
    return out


# ---- the queue -------------------------------------------------------------------------


async def test_add_deduplicates_queued_items():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    for key in ("a", "b", "a", "a", "c", "b"):
        queue.add(key)
    assert len(queue) == 3
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_item_added_while_processing_is_requeued_after_done():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0, "a key being processed must not be handed to a second worker"
    queue.done("a")
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_done_without_new_add_does_not_requeue():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    queue.add("a")
    await queue.get()
    queue.done("a")
    assert len(queue) == 0


async def test_get_waits_for_an_add():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    getter = asyncio.create_task(queue.get())
    await settle()
    assert not getter.done()
    queue.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_add_after_waits_for_the_clock():
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 5)
    queue.add_after("b", 2)
    await settle()
    assert len(queue) == 0
    clock.step(1.9)
    await settle()
    assert len(queue) == 0
    clock.step(0.1)
    await settle()
    assert drain_now(queue) == ["b"]
    clock.step(3)
    await settle()
    assert drain_now(queue) == ["a"]


async def test_add_after_keeps_the_earliest_time():
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 10)
    queue.add_after("a", 1)  # sooner wins
    queue.add_after("a", 20)  # later is ignored
    clock.step(1)
    await settle()
    assert drain_now(queue) == ["a"]
    clock.step(30)
    await settle()
    assert len(queue) == 0, "the superseded timers must not add the item again"


async def test_add_after_zero_is_immediate():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    queue.add_after("a", 0)
    assert len(queue) == 1


async def test_rate_limited_requeue_backs_off_per_item():
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    expected = [0.005, 0.01, 0.02, 0.04]
    for delay in expected:
        queue.add_rate_limited("a")
        await settle()
        clock.step(delay * 0.99)
        await settle()
        assert len(queue) == 0
        clock.step(delay * 0.02)
        await settle()
        assert drain_now(queue) == ["a"]
    assert queue.num_requeues("a") == 4
    queue.forget("a")
    assert queue.num_requeues("a") == 0


async def test_shut_down_stops_getters_and_ignores_adds():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    waiting = asyncio.create_task(queue.get())
    await settle()
    queue.add("left-behind")
    assert await waiting == "left-behind"
    queue.add("x")
    queue.shut_down()
    with pytest.raises(ShutDown):
        await queue.get()
    queue.add("y")
    queue.add_after("z", 1)
    assert list(queue._queue) == ["x"], "nothing is added after shut_down; queued items are abandoned"


async def test_shut_down_wakes_idle_getters():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await settle()
    queue.shut_down()
    results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_shut_down_with_drain_finishes_queued_and_processing_items():
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    for key in "abc":
        queue.add(key)
    first = await queue.get()
    processed: list[str] = [first]
    drain = asyncio.create_task(queue.shut_down_with_drain())
    await settle()
    assert not drain.done(), "drain waits for items being processed"
    queue.add("late")  # ignored while shutting down
    queue.done(first)

    async def worker():
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            processed.append(key)
            queue.done(key)

    await asyncio.wait_for(asyncio.gather(worker(), drain), 1)
    assert processed == ["a", "b", "c"]


# ---- rate limiters ---------------------------------------------------------------------


def test_exponential_backoff_grows_and_caps():
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    delays = [limiter.when("a") for _ in range(22)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False))
    assert delays[-1] == 1000.0 and max(delays) == 1000.0
    assert delays[17] == pytest.approx(0.005 * 2 ** 17)  # 655 s, still under the cap
    assert [limiter.when("x") for _ in range(200)][-1] == 1000.0  # no overflow far past the cap
    assert limiter.when("b") == 0.005, "items back off independently"
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0 and limiter.when("a") == 0.005


def test_token_bucket_reserve_and_refill():
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2), "reservations queue up behind each other"
    clock.step(1.0)
    assert bucket.try_accept()


def test_token_bucket_try_accept_never_goes_into_debt():
    clock = FakeClock()
    bucket = TokenBucket(qps=0.5, burst=2, clock=clock)
    assert bucket.try_accept() and bucket.try_accept()
    assert not bucket.try_accept() and not bucket.try_accept()
    clock.step(2.0)
    assert bucket.try_accept()
    assert not bucket.try_accept()


def test_default_controller_rate_limiter_is_max_of_item_and_overall():
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)
    delays = [limiter.when(f"item-{i}") for i in range(101)]
    assert delays[:100] == [0.005] * 100, "within the burst only the per-item backoff applies"
    assert delays[100] == pytest.approx(0.1), "past the burst the 10 qps bucket dominates"
    clock.step(100)
    assert limiter.when("item-0") == 0.01
    assert limiter.num_requeues("item-0") == 2
    limiter.forget("item-0")
    assert limiter.num_requeues("item-0") == 0


def test_bucket_rate_limiter_ignores_the_item():
    limiter: BucketRateLimiter[str] = BucketRateLimiter(10, 1, FakeClock())
    assert limiter.when("a") == 0
    assert limiter.when("b") == pytest.approx(0.1)


# ---- controller ------------------------------------------------------------------------


async def test_controller_retries_with_backoff_then_forgets():
    clock = FakeClock()
    attempts: list[str] = []

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    controller: Controller[str] = Controller("test", reconcile, workers=2, clock=clock)
    runner = asyncio.create_task(controller.run())
    controller.queue.add("ns/a")
    await settle()
    assert attempts == ["ns/a"] and controller.queue.num_requeues("ns/a") == 1
    clock.step(0.005)
    await settle()
    assert attempts == ["ns/a"] * 2 and controller.queue.num_requeues("ns/a") == 2
    clock.step(0.01)
    await settle()
    assert attempts == ["ns/a"] * 3
    assert controller.queue.num_requeues("ns/a") == 0, "success forgets the failure history"
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert controller.queue.shutting_down


async def test_controller_requeue_after_and_one_worker_per_key():
    clock = FakeClock()
    running: set[str] = set()
    overlaps = 0
    calls = 0
    release = asyncio.Event()

    async def reconcile(key: str) -> None:
        nonlocal overlaps, calls
        calls += 1
        if key in running:
            overlaps += 1
        running.add(key)
        try:
            await release.wait()
        finally:
            running.discard(key)
        if calls == 1:
            raise RequeueAfter(30)

    controller: Controller[str] = Controller("test", reconcile, workers=4, clock=clock)
    runner = asyncio.create_task(controller.run())
    controller.queue.add("k")
    await settle()
    controller.queue.add("k")  # while it is processing
    controller.queue.add("k")
    await settle()
    assert calls == 1
    release.set()
    await settle()
    assert calls == 2, "the add during processing runs once more after done"
    assert controller.queue.num_requeues("k") == 0
    clock.step(30)
    await settle()
    assert calls == 3, "RequeueAfter brings the key back after its delay"
    assert overlaps == 0
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
