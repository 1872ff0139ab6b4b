"""Leader election against an in-memory Lease with resourceVersion checks, on a FakeClock.

The invariant under test: at no instant do two electors both believe they lead, even when the
leader is cut off from the apiserver and another candidate takes the lease over after expiry.
"""

from __future__ import annotations

import asyncio
import copy

import pytest

from pyk8s.client.api import APIConnectionError, APIStatusError
from pyk8s.client.leaderelection import LeaderElector, micro_time
from pyk8s.client.workqueue import FakeClock


class LeaseStore:
    def __init__(self):
        self.lease: dict | None = None
        self.rv = 0
        self.cut_off: set[str] = set()  # identities whose requests fail


class FakeLeaseClient:
    def __init__(self, store: LeaseStore, identity: str):
        self.store, self.identity = store, identity

    def _check(self) -> None:
        if self.identity in self.store.cut_off:
            raise APIConnectionError("partitioned")

    async def get(self, resource, name, namespace=None):
        self._check()
        if self.store.lease is None:
            raise APIStatusError({"kind": "Status", "code": 404, "reason": "NotFound"})
        return copy.deepcopy(self.store.lease)

    async def create(self, body):
        self._check()
        if self.store.lease is not None:
            raise APIStatusError({"kind": "Status", "code": 409, "reason": "AlreadyExists"})
        return self._store(body)

    async def update(self, obj):
        self._check()
        if obj["metadata"].get("resourceVersion") != self.store.lease["metadata"]["resourceVersion"]:
            raise APIStatusError({"kind": "Status", "code": 409, "reason": "Conflict"})
        return self._store(obj)

    def _store(self, obj: dict) -> dict:
        self.store.rv += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.store.rv)
        self.store.lease = stored
        return copy.deepcopy(stored)


async def run_for(clock: FakeClock, seconds: float, electors: list[LeaderElector], step: float = 0.05) -> None:
    """Advance fake time, checking after every step that at most one elector leads."""
    for _ in range(round(seconds / step)):
        clock.step(step)
        for _ in range(10):
            await asyncio.sleep(0)
        leaders = [e.identity for e in electors if e.is_leader]
        assert len(leaders) <= 1, f"two leaders at t={clock.now():.2f}: {leaders}"


def elector(store: LeaseStore, clock: FakeClock, identity: str, events: list, **kw) -> LeaderElector:
    async def lead():
        events.append(("start", identity, clock.now()))
        await asyncio.Event().wait()

    return LeaderElector(FakeLeaseClient(store, identity), "kube-system", "lock", identity, clock=clock,
                         on_started_leading=lead, on_stopped_leading=lambda: events.append(("stop", identity,
                                                                                           clock.now())), **kw)


async def test_only_one_leads_and_a_cut_off_leader_steps_down_before_takeover():
    clock, store, events = FakeClock(), LeaseStore(), []
    electors = [elector(store, clock, name, events) for name in ("a", "b")]
    tasks = [asyncio.create_task(e.run()) for e in electors]
    try:
        await run_for(clock, 10, electors)
        (leader,) = [e for e in electors if e.is_leader]
        other = next(e for e in electors if e is not leader)
        assert store.lease["spec"]["holderIdentity"] == leader.identity
        assert other.leader == leader.identity

        store.cut_off.add(leader.identity)
        cut_at = clock.now()
        await run_for(clock, 25, electors)
        stop = next(t for kind, who, t in events if kind == "stop" and who == leader.identity)
        start = next(t for kind, who, t in events if kind == "start" and who == other.identity)
        assert stop - cut_at <= 10 + 2 + 0.1, "the leader gives up within renew_deadline (+ one retry)"
        assert start - stop > 2, "the successor waits for the lease to expire"
        assert other.is_leader and store.lease["spec"]["holderIdentity"] == other.identity
        assert store.lease["spec"]["leaseTransitions"] == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_release_on_cancel_clears_the_holder():
    clock, store, events = FakeClock(), LeaseStore(), []
    first = elector(store, clock, "a", events)
    task = asyncio.create_task(first.run())
    await run_for(clock, 1, [first])
    assert first.is_leader
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    spec = store.lease["spec"]
    assert not spec.get("holderIdentity") and spec["leaseDurationSeconds"] == 1
    assert [e[:2] for e in events] == [("start", "a"), ("stop", "a")]


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "l", "me", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "l", "me", renew_deadline=2, retry_period=2)


def test_micro_time_format():
    from datetime import UTC, datetime

    assert micro_time(datetime(2024, 5, 6, 7, 8, 9, 12, tzinfo=UTC)) == "2024-05-06T07:08:09.000012Z"
