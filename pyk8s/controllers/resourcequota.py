"""The resource quota controller (upstream pkg/controller/resourcequota).

It keeps every ResourceQuota's status: `hard` follows `spec.hard` and `used` is recounted from
the objects in the namespace. The apiserver's ResourceQuota admission charges new objects as they
are created; this recount is what gives usage back when objects go away (a pod is deleted or
finishes, a service loses its node ports, a claim is removed). Recounts happen when a quota
changes, when a tracked object in its namespace is deleted or stops being charged, and every
`resync_period` for everything (upstream's full resync, 5 minutes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from ..api.quota import (
    ZERO,
    Usage,
    add,
    matching_resources,
    parse_list,
    quota_matches,
    render_list,
    resource_of_count,
    usage_of,
)
from ..client import APIClient, APIStatusError, Controller, DeletedFinalStateUnknown, SharedInformerFactory, WorkQueue
from ..client.api import is_conflict, is_not_found
from ..client.workqueue import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.controllers.resourcequota")

NAME = "resourcequota-controller"
DEFAULT_RESYNC_PERIOD = 300.0
DEFAULT_WORKERS = 5
# Resources counted from shared informers; any other `count/<resource>.<group>` is listed on demand.
INFORMED = (("", "pods"), ("", "services"), ("", "persistentvolumeclaims"), ("", "configmaps"), ("", "secrets"),
            ("", "replicationcontrollers"), ("", "resourcequotas"))


def _informer_name(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def releases_usage(group: str, plural: str, old: dict, new: dict) -> bool:
    """Whether an update can lower what the object is charged (so its quotas need a recount)."""
    if (group, plural) == ("", "pods"):
        old_phase, new_phase = ((old.get("status") or {}).get("phase"), (new.get("status") or {}).get("phase"))
        finished = new_phase in ("Succeeded", "Failed") and old_phase != new_phase
        return finished or bool(new["metadata"].get("deletionTimestamp")) != bool(
            old["metadata"].get("deletionTimestamp"))
    if (group, plural) in (("", "services"), ("", "persistentvolumeclaims")):
        return old.get("spec") != new.get("spec") or old.get("status") != new.get("status")
    return False


def compute_usage(quota: dict, objects_by_resource: dict[tuple[str, str], list[dict]]) -> Usage:
    """The usage of every resource in spec.hard that can be counted: sums over the matching objects."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    used: Usage = {}
    for (group, plural), objects in objects_by_resource.items():
        names = matching_resources(group, plural, hard)
        if not names:
            continue
        total: Usage = {name: ZERO for name in names}
        for obj in objects:
            if quota_matches(quota, group, plural, obj):
                total = add(total, {k: v for k, v in usage_of(group, plural, obj).items() if k in names})
        used.update(total)
    return used


def resources_of(quota: dict) -> set[tuple[str, str]]:
    resources = set()
    for name in (quota.get("spec") or {}).get("hard") or {}:
        resource = resource_of_count(name)
        if resource is not None:
            resources.add(resource)
    return resources


class ResourceQuotaController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *,
                 resync_period: float = DEFAULT_RESYNC_PERIOD, workers: int = DEFAULT_WORKERS,
                 clock: Clock = REAL_CLOCK):
        self.client = client
        self.resync_period = resync_period
        self.clock = clock
        self.quotas = factory.informer("resourcequotas")
        self.informers = {resource: factory.informer(_informer_name(*resource)) for resource in INFORMED}
        self.queue: WorkQueue[str] = WorkQueue(NAME, clock=clock)
        waits = [self.quotas.wait_for_sync] + [i.wait_for_sync for i in self.informers.values()]
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=workers, queue=self.queue, clock=clock,
                                                      wait_for=waits)
        self.quotas.add_handler(on_add=self._enqueue_quota, on_update=self._quota_updated)
        for (group, plural), informer in self.informers.items():
            informer.add_handler(on_update=self._usage_maybe_released(group, plural),
                                 on_delete=self._object_deleted)

    @classmethod
    def from_context(cls, ctx: Any) -> ResourceQuotaController:
        """Built by the manager; option: resource_quota_sync_period (seconds)."""
        options = ctx.options or {}
        return cls(ctx.client, ctx.factory, clock=ctx.clock,
                   resync_period=float(options.get("resource_quota_sync_period", DEFAULT_RESYNC_PERIOD)))

    # ---- event handlers (sync, never await) --------------------------------------------------

    def _enqueue_quota(self, quota: dict) -> None:
        meta = quota.get("metadata") or {}
        self.queue.add(f"{meta.get('namespace', '')}/{meta.get('name', '')}")

    def _quota_updated(self, old: dict, new: dict) -> None:
        # Our own status writes come back as updates; only a changed spec (or missing status) needs work.
        if old.get("spec") != new.get("spec") or not (new.get("status") or {}).get("used"):
            self._enqueue_quota(new)

    def _enqueue_namespace(self, namespace: str) -> None:
        for quota in self.quotas.list(namespace):
            self._enqueue_quota(quota)

    def _object_deleted(self, obj: dict | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            obj = obj.obj
        namespace = (obj.get("metadata") or {}).get("namespace")
        if namespace:
            self._enqueue_namespace(namespace)

    def _usage_maybe_released(self, group: str, plural: str):
        def handler(old: dict, new: dict) -> None:
            if releases_usage(group, plural, old, new):
                self._enqueue_namespace(new["metadata"].get("namespace", ""))

        return handler

    # ---- loops -------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.run(), name=f"{NAME}-workers")
            group.create_task(self._resync(), name=f"{NAME}-resync")

    async def _resync(self) -> None:
        await self.quotas.wait_for_sync()
        while True:
            await self.clock.sleep(self.resync_period)
            for quota in self.quotas.list():
                self._enqueue_quota(quota)

    async def _objects(self, namespace: str, resources: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list]:
        objects: dict[tuple[str, str], list] = {}
        for group, plural in resources:
            informer = self.informers.get((group, plural))
            if informer is not None:
                objects[(group, plural)] = informer.list(namespace)
                continue
            try:
                listed = await self.client.list(_informer_name(group, plural), namespace)
            except ValueError:
                log.debug("resourcequota: %s.%s is not served; its count stays unknown", plural, group)
                continue
            objects[(group, plural)] = listed.get("items") or []
        return objects

    async def sync(self, key: str) -> None:
        quota = self.quotas.get(key)
        if quota is None:
            return
        namespace = quota["metadata"]["namespace"]
        spec_hard = (quota.get("spec") or {}).get("hard") or {}
        objects = await self._objects(namespace, resources_of(quota))
        used = compute_usage(quota, objects)
        status = quota.get("status") or {}
        # Resources that cannot be counted keep what admission charged them.
        previous = {k: v for k, v in parse_list(status.get("used")).items() if k in spec_hard and k not in used}
        new_status = {"hard": dict(spec_hard), "used": {**render_list(previous), **render_list(used)}}
        if _same_quantities(status.get("hard"), new_status["hard"]) and _same_quantities(status.get("used"),
                                                                                         new_status["used"]):
            return
        updated = {**quota, "status": new_status}
        try:
            await self.client.update_status(updated, resource="resourcequotas", field_manager=NAME)
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            if is_conflict(exc):
                self.queue.add_rate_limited(key)  # admission charged it meanwhile; count again from fresh state
                return
            raise
        log.info("resourcequota: %s used %s", key, new_status["used"])


def _same_quantities(a: dict | None, b: dict | None) -> bool:
    parsed_a, parsed_b = parse_list(a), parse_list(b)
    return parsed_a.keys() == parsed_b.keys() and all(parsed_a[k].value == parsed_b[k].value for k in parsed_a)

