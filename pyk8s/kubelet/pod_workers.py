"""Pod workers (upstream's pod_workers.go): one task per pod UID driving the pod through sync → terminating →
terminated. Updates are merged, latest wins (a worker never works through a backlog of stale pods); a kill
request cancels an in-flight sync so termination starts at once; the grace period of a kill can only shrink.
After a sync the worker waits for the next update, the resync its sync asked for (a backoff ending), or the
periodic resync; after an error it retries after `error_backoff` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass
class SyncOutcome:
    terminal: bool = False  # the pod reached Succeeded/Failed: terminate it
    requeue_after: float | None = None


class PodSyncer(Protocol):
    async def sync_pod(self, pod: dict) -> SyncOutcome: ...

    async def sync_terminating_pod(self, pod: dict, grace: int | None) -> None: ...

    async def sync_terminated_pod(self, pod: dict) -> None: ...


@dataclass
class PodWorker:
    uid: str
    pod: dict
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    current: asyncio.Task | None = None  # the in-flight sync_pod
    kill_requested: bool = False
    grace: int | None = None
    terminal: bool = False
    terminated: bool = False
    finalized: bool = False  # sync_terminated_pod ran for a pod with a deletionTimestamp
    syncs: int = 0

    @property
    def deleting(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))


class PodWorkers:
    def __init__(self, syncer: PodSyncer, resync_interval: float = 60.0, error_backoff: float = 10.0) -> None:
        self.syncer = syncer
        self.resync_interval = resync_interval
        self.error_backoff = error_backoff
        self.workers: dict[str, PodWorker] = {}

    def get(self, uid: str) -> PodWorker | None:
        return self.workers.get(uid)

    def update_pod(self, pod: dict, *, kill: bool = False, grace: int | None = None, wake: bool = True) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        worker = self.workers.get(uid)
        if worker is None:
            worker = self.workers[uid] = PodWorker(uid, pod)
            worker.task = asyncio.get_running_loop().create_task(self._run(worker), name=f"pod-worker-{uid}")
        worker.pod = pod
        if kill:
            if grace is not None:
                worker.grace = grace if worker.grace is None else min(worker.grace, grace)
            if not worker.kill_requested:
                worker.kill_requested = True
                if worker.current is not None and not worker.current.done():
                    worker.current.cancel()
            wake = True
        if wake:
            worker.wake.set()

    def kill_pod(self, pod: dict, grace: int | None) -> None:
        self.update_pod(pod, kill=True, grace=grace)

    async def forget(self, uid: str) -> None:
        worker = self.workers.pop(uid, None)
        if worker is not None and worker.task is not None:
            worker.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task

    async def stop(self) -> None:
        for uid in list(self.workers):
            await self.forget(uid)

    async def _run(self, worker: PodWorker) -> None:
        delay: float | None = 0.0
        while True:
            if delay is None:
                await worker.wake.wait()
            elif delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker.wake.wait(), delay)
            worker.wake.clear()
            pod = worker.pod
            try:
                if worker.terminated:
                    if worker.deleting and not worker.finalized:
                        await self.syncer.sync_terminated_pod(pod)
                        worker.finalized = True
                    delay = None
                    continue
                if worker.kill_requested or worker.terminal:
                    await self.syncer.sync_terminating_pod(pod, worker.grace)
                    await self.syncer.sync_terminated_pod(worker.pod)
                    worker.terminated = True
                    worker.finalized = worker.deleting  # sync_terminated_pod has finished the deletion
                    delay = None
                    continue
                worker.current = asyncio.get_running_loop().create_task(self.syncer.sync_pod(pod))
                try:
                    outcome = await worker.current
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # the worker itself is being stopped
                    delay = 0.0  # a kill cancelled the sync: terminate now
                    continue
                finally:
                    worker.current = None
                worker.syncs += 1
                if outcome.terminal:
                    worker.terminal = True
                    delay = 0.0
                    continue
                delay = outcome.requeue_after if outcome.requeue_after is not None else self.resync_interval
                delay = min(delay, self.resync_interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod worker %s: sync failed; retrying in %.0fs", worker.uid, self.error_backoff)
                delay = self.error_backoff
