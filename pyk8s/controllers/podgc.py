"""The pod garbage collector (upstream pkg/controller/podgc).

Every `gc_period` (and soon after a Node is deleted) it force-deletes (grace 0) pods bound to nodes
that no longer exist (checked against the server before acting) and terminating pods that were never
scheduled, and, when more than `terminated_pod_gc_threshold` pods have finished (Succeeded or
Failed), deletes the oldest of them down to the threshold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from ..client import APIClient, APIStatusError, SharedInformerFactory, is_not_found
from ..client.workqueue import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.controllers.podgc")

NAME = "pod-garbage-collector-controller"
DEFAULT_TERMINATED_POD_GC_THRESHOLD = 12500
DEFAULT_GC_PERIOD = 20.0


def terminated_to_delete(pods: Iterable[dict], threshold: int) -> list[dict]:
    """The finished pods beyond `threshold`, oldest (by creationTimestamp) first."""
    finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                and not (p.get("metadata") or {}).get("deletionTimestamp")]
    excess = len(finished) - threshold
    if threshold <= 0 or excess <= 0:
        return []
    finished.sort(key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "",
                                 (p.get("metadata") or {}).get("name") or ""))
    return finished[:excess]


def orphaned(pods: Iterable[dict], nodes: set[str]) -> list[dict]:
    """Pods bound to a node that is not in `nodes`."""
    return [p for p in pods if (node := (p.get("spec") or {}).get("nodeName")) and node not in nodes]


def unscheduled_terminating(pods: Iterable[dict]) -> list[dict]:
    return [p for p in pods if not (p.get("spec") or {}).get("nodeName")
            and (p.get("metadata") or {}).get("deletionTimestamp")]


class PodGCController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *,
                 terminated_pod_gc_threshold: int = DEFAULT_TERMINATED_POD_GC_THRESHOLD,
                 gc_period: float = DEFAULT_GC_PERIOD, clock: Clock = REAL_CLOCK):
        self.client = client
        self.threshold = terminated_pod_gc_threshold
        self.gc_period = gc_period
        self.clock = clock
        self.pods = factory.informer("pods")
        self.nodes = factory.informer("nodes")
        self._wake = asyncio.Event()
        self.nodes.add_handler(on_delete=lambda _node: self._wake.set())

    @classmethod
    def from_context(cls, ctx: Any) -> PodGCController:
        """Built by the manager; options: terminated_pod_gc_threshold, pod_gc_period (seconds)."""
        options = ctx.options or {}
        return cls(ctx.client, ctx.factory,
                   terminated_pod_gc_threshold=int(options.get("terminated_pod_gc_threshold",
                                                               DEFAULT_TERMINATED_POD_GC_THRESHOLD)),
                   gc_period=float(options.get("pod_gc_period", DEFAULT_GC_PERIOD)), clock=ctx.clock)

    async def run(self) -> None:
        await self.pods.wait_for_sync()
        await self.nodes.wait_for_sync()
        while True:
            try:
                await self.gc()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod gc: pass failed")
            self._wake.clear()
            try:
                async with asyncio.timeout(self.gc_period):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def gc(self) -> None:
        pods = self.pods.list()
        for pod in terminated_to_delete(pods, self.threshold):
            await self._delete(pod, "terminated pod beyond the threshold", grace=None)
        known = {n["metadata"]["name"] for n in self.nodes.list()}
        missing: dict[str, bool] = {}
        for pod in orphaned(pods, known):
            node = pod["spec"]["nodeName"]
            if node not in missing:
                missing[node] = await self._node_gone(node)
            if missing[node]:
                await self._delete(pod, f"bound to deleted node {node}", grace=0)
        for pod in unscheduled_terminating(pods):
            await self._delete(pod, "terminating and never scheduled", grace=0)

    async def _node_gone(self, name: str) -> bool:
        try:
            await self.client.get("nodes", name)
        except APIStatusError as exc:
            if is_not_found(exc):
                return True
            raise
        return False

    async def _delete(self, pod: dict, why: str, grace: int | None) -> None:
        meta = pod["metadata"]
        log.info("pod gc: deleting pod %s/%s (%s)", meta["namespace"], meta["name"], why)
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], grace_period_seconds=grace,
                                     preconditions={"uid": meta["uid"]})
        except APIStatusError as exc:
            if not (is_not_found(exc) or exc.code == 409):
                raise
