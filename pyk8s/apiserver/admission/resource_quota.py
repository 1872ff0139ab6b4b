"""ResourceQuota (upstream plugin/pkg/admission/resourcequota): a request that would take a
namespace's usage past a quota's hard limits is refused; an accepted one is charged to the
quota's status.used before the object is stored.

As upstream's quota evaluator does, requests are checked per namespace in batches by one worker:
the requests waiting when the worker comes round are checked in arrival order against the quotas
(each accepted one counts against the next), then every touched quota gets one compare-and-swap
status write for the whole batch, re-checked against the freshly read quota. So concurrent creates
cannot overshoot, and a busy namespace pays one quota write per batch, not per request. Usage of
objects that go away is released by the resourcequota controller, which recounts. Quotas come
from the watch cache: a namespace without quotas costs one lookup.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ...api.errors import APIError
from ...api.quota import (
    Usage,
    add,
    matching_resources,
    parse_list,
    pod_constraints,
    pretty,
    quota_matches,
    render_list,
    subtract_non_negative,
    usage_of,
)
from .interfaces import CREATE, UPDATE, AdmissionPlugin, Attributes
from .state import ClusterState

# write(namespace, name, charge): applies `charge` to the current stored quota and writes its status.
QuotaStatusWriter = Callable[[str, str, Callable[[dict], dict]], Awaitable[None]]
# Resources whose updates can change usage; every other resource is charged on create only.
_CHARGED_ON_UPDATE = {("", "services"), ("", "persistentvolumeclaims")}
_BATCH_ATTEMPTS = 3  # re-checks of a batch whose quotas the controller rewrote meanwhile


def _mask(usage: Usage, names: list[str]) -> Usage:
    return {k: v for k, v in usage.items() if k in names}


class _StaleQuota(Exception):
    """The stored quota moved on since the batch was checked (the controller recounted)."""


@dataclass
class _Waiter:
    attrs: Attributes
    done: asyncio.Future
    charges: list[tuple[str, Usage]] = field(default_factory=list)
    refusal: APIError | None = None


class ResourceQuota(AdmissionPlugin):
    name = "ResourceQuota"
    validating = True

    def __init__(self, state: ClusterState, write_status: QuotaStatusWriter):
        self.state = state
        self.write_status = write_status
        self.quotas = state.kind("", "v1", "ResourceQuota")
        self._waiting: dict[str, list[_Waiter]] = {}
        self._workers: dict[str, asyncio.Task] = {}

    def handles(self, attrs: Attributes) -> bool:
        if attrs.subresource or not attrs.namespace or attrs.obj is None:
            return False
        if attrs.operation == CREATE:
            return True
        return attrs.operation == UPDATE and attrs.resource in _CHARGED_ON_UPDATE

    async def validate(self, attrs: Attributes) -> None:
        if not self.state.has_any(self.quotas):
            return
        quotas = self.state.list(self.quotas, attrs.namespace)
        if not quotas:
            return
        if attrs.dry_run:
            self.check(attrs, quotas)  # checked, never charged
            return
        waiter = _Waiter(attrs, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(attrs.namespace, []).append(waiter)
        if attrs.namespace not in self._workers:
            self._workers[attrs.namespace] = asyncio.create_task(self._work(attrs.namespace),
                                                                 name=f"quota-{attrs.namespace}")
        await waiter.done

    async def _work(self, namespace: str) -> None:
        """Take the waiting requests batch by batch until none are left (no await between the last
        check and leaving, so a request queued meanwhile always finds a worker)."""
        try:
            while self._waiting.get(namespace):
                batch = self._waiting.pop(namespace)
                try:
                    await self._admit_batch(namespace, batch)
                except Exception as exc:  # never leave a request hanging
                    for waiter in batch:
                        if not waiter.done.done():
                            waiter.done.set_exception(exc)
        finally:
            self._workers.pop(namespace, None)

    async def _admit_batch(self, namespace: str, batch: list[_Waiter]) -> None:
        for _ in range(_BATCH_ATTEMPTS):
            working = {q["metadata"]["name"]: copy.deepcopy(q) for q in self.state.list(self.quotas, namespace)}
            totals: dict[str, Usage] = {}
            for waiter in batch:
                waiter.charges, waiter.refusal = [], None
                try:
                    waiter.charges = self.check(waiter.attrs, list(working.values()))
                except APIError as exc:
                    waiter.refusal = exc
                    continue
                for name, requested in waiter.charges:
                    status = working[name].setdefault("status", {})
                    status["used"] = {**(status.get("used") or {}),
                                      **render_list(add(parse_list(status.get("used")), requested))}
                    totals[name] = add(totals.get(name, {}), requested)
            try:
                for name, total in totals.items():
                    await self.write_status(namespace, name, self._charger(total))
            except _StaleQuota:
                continue
            for waiter in batch:
                if waiter.done.done():  # the client went away
                    continue
                if waiter.refusal is not None:
                    waiter.done.set_exception(waiter.refusal)
                else:
                    waiter.done.set_result(None)
            return
        raise APIError(409, "Conflict", f"the resource quotas of namespace {namespace} kept changing while this "
                                        "request was checked against them; please retry")

    def _delta(self, attrs: Attributes) -> Usage:
        group, plural = attrs.resource
        delta = usage_of(group, plural, attrs.obj or {})
        if attrs.operation == UPDATE and attrs.old is not None:
            delta = subtract_non_negative(delta, usage_of(group, plural, attrs.old))
        return {k: v for k, v in delta.items() if v.value != 0}

    def check(self, attrs: Attributes, quotas: list[dict]) -> list[tuple[str, Usage]]:
        """The (quota, usage to charge) pairs for this request; raises 403 if a quota refuses it."""
        group, plural = attrs.resource
        obj = attrs.obj or {}
        interesting = []
        for quota in quotas:
            if not quota_matches(quota, group, plural, obj):
                continue
            status = quota.get("status") or {}
            restricted = matching_resources(group, plural, status.get("hard") or {})
            if not restricted:
                continue
            name = quota["metadata"]["name"]
            if (group, plural) == ("", "pods"):
                problem = pod_constraints(restricted, obj)
                if problem:
                    raise attrs.forbidden(f"failed quota: {name}: {problem}")
            used = status.get("used") or {}
            if any(r not in used for r in restricted):
                raise attrs.forbidden(f"status unknown for quota: {name}, resources: {','.join(restricted)}")
            interesting.append(quota)
        if not interesting:
            return []
        delta = self._delta(attrs)
        if not delta:
            return []
        charges = []
        for quota in interesting:
            requested = self._exceeds(attrs, quota, delta)
            if requested:
                charges.append((quota["metadata"]["name"], requested))
        return charges

    @staticmethod
    def _exceeds(attrs: Attributes, quota: dict, delta: Usage) -> Usage:
        """The part of `delta` this quota limits; raises 403 when it does not fit."""
        status = quota.get("status") or {}
        hard, used = parse_list(status.get("hard")), parse_list(status.get("used"))
        requested = {k: v for k, v in delta.items() if k in hard}
        new_used = add(used, requested)
        exceeded = sorted(k for k in requested if new_used[k].value > hard[k].value)
        if exceeded:
            raise attrs.forbidden(
                f"exceeded quota: {quota['metadata']['name']}, requested: {pretty(_mask(requested, exceeded))}, "
                f"used: {pretty(_mask(used, exceeded))}, limited: {pretty(_mask(hard, exceeded))}")
        return requested

    @staticmethod
    def _charger(total: Usage) -> Callable[[dict], dict]:
        def charge(current: dict) -> dict:
            status = current.setdefault("status", {})
            hard, used = parse_list(status.get("hard")), parse_list(status.get("used"))
            new_used = add(_mask(used, list(total)), total)
            if any(name in hard and new_used[name].value > hard[name].value for name in total):
                raise _StaleQuota()  # check the batch again against what is stored now
            status["used"] = {**(status.get("used") or {}), **render_list(new_used)}
            return current

        return charge
