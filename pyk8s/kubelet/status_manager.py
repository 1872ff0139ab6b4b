"""The status manager (upstream's pkg/kubelet/status): the kubelet's latest status per pod, written to
`pods/status` only when it differs from what the apiserver has. Writes are JSON merge patches of the fields the
kubelet owns; conditions are sent whole, with ours replacing the kubelet-owned types and every other condition
(readiness gates, DisruptionTarget, ...) kept as the server has it. A doorbell syncs changed pods at once and a
periodic tick reconciles everything (a write lost to a conflict or a restart is redone). Different pods' writes
go out concurrently (up to CONCURRENT_WRITES at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..client import APIClient, APIConnectionError, APIStatusError, is_not_found
from .pod_status import merge_conditions

log = logging.getLogger(__name__)

OWNED_FIELDS = ("phase", "conditions", "hostIP", "hostIPs", "podIP", "podIPs", "startTime", "initContainerStatuses",
                "containerStatuses", "ephemeralContainerStatuses", "qosClass", "message", "reason")

CONCURRENT_WRITES = 10

PodLookup = Callable[[str], dict | None]  # uid -> the pod as the apiserver has it (the informer's copy)


def status_patch(ours: dict, server: dict) -> dict:
    """The merge patch taking `server` (a pod status) to ours for the kubelet-owned fields; {} when equal."""
    desired = dict(ours)
    desired["conditions"] = merge_conditions(ours.get("conditions") or [], server.get("conditions") or [])
    patch = {}
    for key in OWNED_FIELDS:
        if desired.get(key) != server.get(key):
            patch[key] = desired.get(key)
    return patch


class StatusManager:
    def __init__(self, client: APIClient, lookup: PodLookup, period: float = 10.0) -> None:
        self.client = client
        self.lookup = lookup
        self.period = period
        self._statuses: dict[str, dict] = {}
        self._sent: dict[str, dict] = {}
        self._dirty: set[str] = set()
        self._doorbell = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        # Pods' writes go out side by side (each pod's own lock keeps its writes in order): written one after
        # another, a burst of starting pods queued every status behind the apiserver's round trips.
        self._writers = asyncio.Semaphore(CONCURRENT_WRITES)
        self._writing: dict[str, asyncio.Task] = {}

    def get(self, uid: str) -> dict | None:
        return self._statuses.get(uid)

    def set_pod_status(self, uid: str, status: dict) -> None:
        if self._statuses.get(uid) == status:
            return
        self._statuses[uid] = status
        self._dirty.add(uid)
        self._doorbell.set()

    def forget(self, uid: str) -> None:
        self._statuses.pop(uid, None)
        self._sent.pop(uid, None)
        self._dirty.discard(uid)
        self._locks.pop(uid, None)

    async def flush(self, uid: str) -> bool:
        """Write the pod's status now if it needs writing; True when the apiserver has it."""
        return await self._sync(uid, force=True)

    async def run(self) -> None:
        try:
            while True:
                try:
                    await asyncio.wait_for(self._doorbell.wait(), self.period)
                    reconcile = False
                except TimeoutError:
                    reconcile = True
                self._doorbell.clear()
                for uid in list(self._statuses) if reconcile else list(self._dirty):
                    if uid not in self._writing:
                        self._writing[uid] = asyncio.create_task(self._write(uid, reconcile),
                                                                 name=f"pod-status-{uid}")
        finally:
            writing = list(self._writing.values())
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)

    async def _write(self, uid: str, force: bool) -> None:
        """One pod's write, beside the others'; a status set while it was in flight rings the doorbell again
        (a failed write of an unchanged status waits for the periodic reconcile instead of spinning)."""
        written = self._statuses.get(uid)
        try:
            async with self._writers:
                await self._sync(uid, force=force)
        except Exception:
            log.exception("status of pod %s", uid)
        finally:
            self._writing.pop(uid, None)
            if uid in self._dirty and self._statuses.get(uid) is not written:
                self._doorbell.set()

    async def _sync(self, uid: str, force: bool) -> bool:
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            ours = self._statuses.get(uid)
            if ours is None:
                return False
            if not force and self._sent.get(uid) == ours:
                self._dirty.discard(uid)
                return True
            pod = self.lookup(uid)
            if pod is None:
                return False
            patch = status_patch(ours, pod.get("status") or {})
            self._dirty.discard(uid)
            if not patch:
                self._sent[uid] = ours
                return True
            meta = pod.get("metadata") or {}
            try:
                await self.client.patch_status("pods", meta.get("name", ""), {"status": patch},
                                               meta.get("namespace"), patch_type="merge")
            except APIStatusError as exc:
                if is_not_found(exc):
                    return False
                log.warning("status of pod %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
                self._dirty.add(uid)
                return False
            except APIConnectionError as exc:
                log.warning("status of pod %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
                self._dirty.add(uid)
                return False
            self._sent[uid] = ours
            return True
