"""The TTL-after-finished controller (upstream pkg/controller/ttlafterfinished).

A Job with spec.ttlSecondsAfterFinished is deleted that many seconds after it finished (the
lastTransitionTime of its Complete or Failed condition). Before deleting, the Job is read fresh from
the apiserver, so a TTL changed or a Job re-run in the meantime is honoured; the delete carries a uid
precondition and foreground propagation (as upstream), so the Job goes after its pods. Jobs that are not
due yet are queued again for the moment they expire; nothing polls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
    object_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, RequeueAfter
from .job_util import find_condition, parse_time

log = logging.getLogger("pyk8s.controllers.ttlafterfinished")

CONTROLLER_NAME = "ttl-after-finished-controller"
DEFAULT_WORKERS = 5  # upstream --concurrent-ttl-after-finished-syncs


def finish_time(job: Mapping) -> float | None:
    """When a Job finished: its Complete/Failed condition's transition time; None while it runs."""
    for type_ in ("Complete", "Failed"):
        cond = find_condition(job.get("status") or {}, type_)
        if cond is not None and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def seconds_until_expiry(job: Mapping, now: float) -> float | None:
    """None when the Job has no TTL, is not finished, or is being deleted; else the time left (≤ 0: expired)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + int(ttl) - now


class TTLAfterFinishedController:
    name = CONTROLLER_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *, workers: int = DEFAULT_WORKERS,
                 clock: Clock = REAL_CLOCK, wall: Callable[[], float] = time.time):
        self.client = client
        self.wall = wall
        self.job_informer = factory.informer("jobs")
        self.queue: WorkQueue[str] = WorkQueue(self.name, clock=clock)
        self.controller: Controller[str] = Controller(self.name, self.sync, workers=workers, queue=self.queue,
                                                      clock=clock, wait_for=[self.job_informer.wait_for_sync])
        self.job_informer.add_handler(on_add=self._maybe_enqueue, on_update=lambda _old, new: self._maybe_enqueue(new))

    @classmethod
    def from_context(cls, ctx) -> TTLAfterFinishedController:
        return cls(ctx.client, ctx.factory, clock=ctx.clock)

    async def run(self) -> None:
        await self.controller.run()

    def _maybe_enqueue(self, job: dict) -> None:
        if seconds_until_expiry(job, self.wall()) is not None:
            self.queue.add(object_key(job))

    async def sync(self, key: str) -> None:
        job = self.job_informer.get(key)
        if job is None:
            return
        left = seconds_until_expiry(job, self.wall())
        if left is None:
            return
        if left > 0:
            raise RequeueAfter(left)
        meta = job["metadata"]
        try:
            fresh = await self.client.get("jobs", meta["name"], meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            raise
        left = seconds_until_expiry(fresh, self.wall())
        if left is None:
            return
        if left > 0:
            raise RequeueAfter(left)
        log.info("%s: deleting job %s, its TTL after finishing expired", self.name, key)
        try:
            await self.client.delete("jobs", meta["name"], meta.get("namespace"), propagation_policy="Foreground",
                                     preconditions={"uid": fresh["metadata"]["uid"]})
        except APIStatusError as exc:
            if is_not_found(exc) or is_conflict(exc):
                return
            raise
