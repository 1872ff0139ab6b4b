"""Leader election on a coordination.k8s.io/v1 Lease (client-go tools/leaderelection semantics).

Safety comes from two rules. Every write carries the resourceVersion we read, so of two
candidates racing for the same lease exactly one write succeeds. And a candidate judges a
lease expired by *its own* clock: it notes when it last saw the lease record change and waits
a full leaseDurationSeconds after that, so clock skew between machines cannot make two leaders.
The leader must renew within `renew_deadline` (< `lease_duration`) or step down, so it stops
acting before anyone else may take over.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from .api import APIClient, APIConnectionError, APIStatusError, is_already_exists, is_conflict, is_not_found
from .workqueue import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.client.leaderelection")

LEASES = ("coordination.k8s.io", "v1", "leases")
JITTER_FACTOR = 1.2  # retries wait retry_period * [1, 1 + 1.2), as upstream


def micro_time(when: datetime | None = None) -> str:
    """metav1.MicroTime: RFC 3339 with exactly six fractional digits, UTC."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(lease: dict) -> tuple:
    """The fields whose change means the holder is alive (or changed)."""
    spec = lease.get("spec") or {}
    return (spec.get("holderIdentity") or "", spec.get("leaseDurationSeconds"), spec.get("acquireTime"),
            spec.get("renewTime"), spec.get("leaseTransitions"))


class LeaderElector:
    """Campaign for a lease, run `on_started_leading` while holding it, step down when renewals fail.

    `on_started_leading` is an async function run as a task while we lead (cancelled when we stop);
    `on_stopped_leading` (sync or async) runs after we stop leading; `on_new_leader(identity)`
    (sync) runs whenever the observed holder changes, including to ourselves.
    """

    def __init__(self, client: APIClient, lock_namespace: str, lock_name: str, identity: str, *,
                 lease_duration: float = 15, renew_deadline: float = 10, retry_period: float = 2,
                 on_started_leading: Callable[[], Awaitable[None]] | None = None,
                 on_stopped_leading: Callable[[], object] | None = None,
                 on_new_leader: Callable[[str], None] | None = None,
                 release_on_cancel: bool = True, clock: Clock = REAL_CLOCK):
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError("renew_deadline must be greater than retry_period * 1.2")
        if not identity:
            raise ValueError("identity must not be empty")
        self.client = client
        self.namespace = lock_namespace
        self.name = lock_name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self.clock = clock
        self._observed: dict | None = None  # the lease as last read or written
        self._observed_record: tuple | None = None
        self._observed_at = float("-inf")  # our clock when the record last changed
        self._leader = ""
        self._leading = False
        self._attempt_started = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """The holder we last observed ("" if none)."""
        return self._leader

    async def run(self) -> None:
        """Acquire, lead, and return once leadership is lost. Cancelling it steps down (releasing the
        lease when `release_on_cancel`), so the next candidate need not wait for expiry."""
        leading_task: asyncio.Task | None = None
        try:
            await self._acquire()
            self._leading = True
            log.info("leader election %s/%s: %s became leader", self.namespace, self.name, self.identity)
            if self.on_started_leading is not None:
                leading_task = asyncio.get_running_loop().create_task(self.on_started_leading(),
                                                                      name=f"leading-{self.name}")
            await self._renew_loop(leading_task)
        finally:
            was_leading, self._leading = self._leading, False
            if leading_task is not None and not leading_task.done():  # we stepped down: stop the work
                leading_task.cancel()
                try:
                    await leading_task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("leader election %s/%s: leading task failed", self.namespace, self.name)
            if was_leading:
                if self.release_on_cancel:
                    await asyncio.shield(self._release())
                log.info("leader election %s/%s: %s stopped leading", self.namespace, self.name, self.identity)
                await self._call_stopped()

    async def _call_stopped(self) -> None:
        if self.on_stopped_leading is None:
            return
        try:
            result = self.on_stopped_leading()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("leader election %s/%s: on_stopped_leading failed", self.namespace, self.name)

    def _jittered(self) -> float:
        return self.retry_period * (1 + random.random() * JITTER_FACTOR)

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew(self.renew_deadline):
                return
            await self.clock.sleep(self._jittered())

    async def _renew_loop(self, leading_task: asyncio.Task | None) -> None:
        # Measured from *before* each successful write: others start their expiry countdown no
        # earlier than the write lands, so stepping down by this clock is always early enough.
        last_renew = self._attempt_started
        while True:
            await self.clock.sleep(self.retry_period)
            if leading_task is not None and leading_task.done() and not leading_task.cancelled() \
                    and leading_task.exception() is not None:
                # The leader's work crashed; step down so a healthy candidate takes over. (A task
                # that simply returned keeps us leading, as upstream: the lease outlives it.)
                log.error("leader election %s/%s: leading task failed: %r", self.namespace, self.name,
                          leading_task.exception())
                return
            # All attempts since the last success share one renew_deadline budget, as upstream's
            # renew context does, so a hung request cannot stretch leadership past the deadline.
            budget = self.renew_deadline - (self.clock.now() - last_renew)
            if budget > 0 and await self._try_acquire_or_renew(budget):
                last_renew = self._attempt_started
                continue
            if self._leader and self._leader != self.identity:
                log.warning("leader election %s/%s: lease taken by %s", self.namespace, self.name, self._leader)
                return
            if self.clock.now() - last_renew >= self.renew_deadline:
                log.warning("leader election %s/%s: failed to renew within %.1fs", self.namespace, self.name,
                            self.renew_deadline)
                return

    async def _try_acquire_or_renew(self, timeout: float) -> bool:
        self._attempt_started = self.clock.now()
        try:
            async with asyncio.timeout(timeout):
                return await self._attempt()
        except (APIStatusError, APIConnectionError, TimeoutError) as exc:
            log.info("leader election %s/%s: attempt failed: %s", self.namespace, self.name, exc)
            return False

    @property
    def _duration_seconds(self) -> int:
        return max(1, round(self.lease_duration))

    async def _attempt(self) -> bool:
        now = micro_time()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
            spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self._duration_seconds,
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            try:
                created = await self.client.create(body)
            except APIStatusError as create_exc:
                if is_already_exists(create_exc):
                    return False
                raise
            self._observe(created)
            return True

        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and self._observed_at + duration > self.clock.now():
            return False  # someone else holds an unexpired lease
        new_spec = dict(spec)
        new_spec.update(holderIdentity=self.identity, leaseDurationSeconds=self._duration_seconds, renewTime=now)
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        updated_lease = {**lease, "spec": new_spec}
        try:
            updated = await self.client.update(updated_lease)
        except APIStatusError as exc:
            if is_conflict(exc):
                return False  # someone wrote in between; look again next round
            raise
        self._observe(updated)
        return True

    def _observe(self, lease: dict) -> None:
        record = _record(lease)
        self._observed = lease
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = self.clock.now()
        holder = record[0]
        if holder != self._leader:
            self._leader = holder
            if holder and self.on_new_leader is not None:
                try:
                    self.on_new_leader(holder)
                except Exception:
                    log.exception("leader election %s/%s: on_new_leader failed", self.namespace, self.name)

    async def _release(self) -> None:
        """Hand the lease back: no holder and a 1 s duration, so the next candidate takes it at once.

        A renewal cancelled mid-flight may have landed without our seeing its answer, so a conflict
        re-reads the lease once and releases it if it is still ours."""
        lease = self._observed
        try:
            async with asyncio.timeout(self.renew_deadline):
                for attempt in range(2):
                    if lease is None or _record(lease)[0] != self.identity:
                        return
                    now = micro_time()
                    spec = {"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                            "leaseTransitions": (lease.get("spec") or {}).get("leaseTransitions") or 0}
                    try:
                        self._observe(await self.client.update({**lease, "spec": spec}))
                        return
                    except APIStatusError as exc:
                        if not is_conflict(exc) or attempt:
                            raise
                    lease = await self.client.get(LEASES, self.name, self.namespace)
        except (APIStatusError, APIConnectionError, TimeoutError) as exc:
            log.warning("leader election %s/%s: release failed: %s", self.namespace, self.name, exc)
