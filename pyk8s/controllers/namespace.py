"""The namespace controller: empties a terminating namespace, then removes its `kubernetes` finalizer
(upstream pkg/controller/namespace and its deletion package).

A namespace being deleted has a deletionTimestamp, status.phase Terminating and "kubernetes" in
spec.finalizers. Each sync deletes every namespaced resource in it (deletecollection with Background
propagation, or list + delete where deletecollection is not served), lists again to see what is
left, records why on the namespace's status conditions (upstream's five deletion conditions, with
their reasons and messages), and once nothing is left PUTs /finalize without the finalizer, after
which the apiserver removes the namespace. Content still terminating (pods in their grace period,
objects held by finalizers) makes it look again later, as upstream does.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..api.kinds import REGISTRY, Kind
from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
)
from ..client.workqueue import REAL_CLOCK, BucketRateLimiter, Clock, ItemExponentialFailureRateLimiter, MaxOfRateLimiter
from .discovery import custom_resources

log = logging.getLogger("pyk8s.controllers.namespace")

NAME = "namespace-controller"
FINALIZER_KUBERNETES = "kubernetes"
DEFAULT_WORKERS = 10  # upstream --concurrent-namespace-syncs
# Upstream waits this long after a namespace event before acting, so that admission caches everywhere
# have seen the namespace terminate and no new content can slip in behind the sweep.
DELETION_GRACE_PERIOD = 5.0
# Objects held by finalizers get this long before the next look (upstream finalizerEstimateSeconds).
FINALIZER_ESTIMATE_SECONDS = 15
DEFAULT_POD_GRACE_SECONDS = 30

# Condition types and their "all is well" variants, in upstream's order.
DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GROUP_VERSION_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONDITION_TYPES = (DISCOVERY_FAILURE, GROUP_VERSION_PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING,
                   FINALIZERS_REMAINING)
OK_REASONS = {
    DISCOVERY_FAILURE: "ResourcesDiscovered",
    GROUP_VERSION_PARSING_FAILURE: "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    CONTENT_REMAINING: "ContentRemoved",
    FINALIZERS_REMAINING: "ContentHasNoFinalizers",
}
OK_MESSAGES = {
    DISCOVERY_FAILURE: "All resources successfully discovered",
    GROUP_VERSION_PARSING_FAILURE: "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    CONTENT_REMAINING: "All content successfully removed",
    FINALIZERS_REMAINING: "All content-preserving finalizers finished",
}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def aggregate_message(errors: list[BaseException]) -> str:
    """Upstream's aggregate error text: one error as itself, several as "[a, b]"."""
    texts = [str(err) for err in errors]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


class ResourcesRemaining(Exception):  # noqa: N818 - upstream's ResourcesRemainingError
    def __init__(self, estimate: int):
        super().__init__(f"some content remains in the namespace, estimate {estimate} seconds before it is removed")
        self.estimate = estimate


@dataclass
class ContentTotals:
    """What a sweep left behind: instances per resource and per finalizer."""

    remaining: dict[Kind, int] = field(default_factory=dict)
    finalizers: dict[str, int] = field(default_factory=dict)


class ConditionUpdater:
    """Collects what went wrong in one sweep and writes it as the namespace's deletion conditions."""

    def __init__(self, now: str | None = None):
        self.now = now or now_rfc3339()
        self.new_conditions: list[dict] = []
        self.delete_content_errors: list[BaseException] = []

    def _condition(self, type_: str, reason: str, message: str, status: str = "True") -> dict:
        return {"type": type_, "status": status, "lastTransitionTime": self.now, "reason": reason,
                "message": message}

    def process_discovery_errors(self, failures: Mapping[str, str]) -> None:
        items = sorted(f"{gv}: {err}" for gv, err in failures.items())
        self.new_conditions.append(self._condition(
            DISCOVERY_FAILURE, "DiscoveryFailed",
            f"Discovery failed for some groups, {len(items)} failing: {', '.join(items)}"))

    def process_delete_content_error(self, err: BaseException) -> None:
        self.delete_content_errors.append(err)

    def process_content_totals(self, totals: ContentTotals) -> None:
        resources = sorted(f"{kind.plural}.{kind.group} has {count} resource instances"
                           for kind, count in totals.remaining.items() if count)
        if resources:
            self.new_conditions.append(self._condition(
                CONTENT_REMAINING, "SomeResourcesRemain", f"Some resources are remaining: {', '.join(resources)}"))
        finalizers = sorted(f"{name} in {count} resource instances" for name, count in totals.finalizers.items()
                            if count)
        if finalizers:
            self.new_conditions.append(self._condition(
                FINALIZERS_REMAINING, "SomeFinalizersRemain",
                f"Some content in the namespace has finalizers remaining: {', '.join(finalizers)}"))

    def update(self, namespace: dict) -> bool:
        """Merge the conditions into namespace.status (in place); True if anything changed. Every
        deletion condition is present afterwards, the "ok" variant (status False) where nothing failed."""
        new = list(self.new_conditions)
        if self.delete_content_errors:
            new.append(self._condition(
                CONTENT_FAILURE, "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(self.delete_content_errors)} remaining: "
                f"{aggregate_message(self.delete_content_errors)}"))
        by_type = {c["type"]: c for c in new}
        status = namespace.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        changed = False
        for type_ in CONDITION_TYPES:
            wanted = by_type.get(type_) or self._condition(type_, OK_REASONS[type_], OK_MESSAGES[type_], "False")
            current = next((c for c in conditions if c.get("type") == type_), None)
            if current is None:
                conditions.append(wanted)
                changed = True
            elif any(current.get(k) != wanted[k] for k in ("status", "reason", "message")):
                if current.get("status") != wanted["status"]:
                    current["lastTransitionTime"] = self.now
                current.update(status=wanted["status"], reason=wanted["reason"], message=wanted["message"])
                changed = True
        return changed


def namespaced_kinds() -> list[Kind]:
    """Every namespaced resource that can be deleted (the stored form of each)."""
    return [kind for kind in REGISTRY.stored_kinds() if kind.namespaced and "delete" in kind.verbs]


def estimate_pod_grace(pods: Iterable[dict]) -> int:
    """The longest graceful termination among pods that are not finished yet."""
    estimate = 0
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        grace = DEFAULT_POD_GRACE_SECONDS if grace is None else grace
        deletion_grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
        if deletion_grace is not None:
            grace = deletion_grace
        estimate = max(estimate, int(grace))
    return estimate


class NamespacedResourcesDeleter:
    """Deletes everything in a namespace and finalizes it (upstream namespacedResourcesDeleter)."""

    def __init__(self, client: APIClient, kinds: Iterable[Kind] | None = None):
        self.client = client
        # Without an explicit list, custom resources are discovered on every sweep (CRDs come and go).
        self.discover = kinds is None
        self.kinds = list(kinds) if kinds is not None else namespaced_kinds()
        self._deletecollection_unsupported: set[Kind] = set()
        self._list_unsupported: set[Kind] = set()

    async def delete(self, name: str) -> None:
        """One pass; raises ResourcesRemaining when content is still terminating."""
        try:
            namespace = await self.client.get("namespaces", name)
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            raise
        if not namespace["metadata"].get("deletionTimestamp"):
            return
        namespace = await self._retry_on_conflict(namespace, self._ensure_terminating)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        if not (namespace.get("spec") or {}).get("finalizers"):
            return  # finalized already; the apiserver removes it once other finalizers are done
        estimate = await self.delete_all_content(namespace)
        if estimate > 0:
            raise ResourcesRemaining(estimate)
        await self._retry_on_conflict(namespace, self._finalize)
        log.info("namespace controller: namespace %s is empty; finalized", name)

    async def _retry_on_conflict(self, namespace: dict, update) -> dict | None:
        """Apply `update`, re-reading the namespace after a conflict; None if it is gone."""
        for _ in range(5):
            try:
                return await update(namespace)
            except APIStatusError as exc:
                if is_not_found(exc):
                    return None
                if not is_conflict(exc):
                    raise
            try:
                namespace = await self.client.get("namespaces", namespace["metadata"]["name"])
            except APIStatusError as exc:
                if is_not_found(exc):
                    return None
                raise
        raise RuntimeError(f"namespace {namespace['metadata']['name']}: too many conflicts")

    async def _ensure_terminating(self, namespace: dict) -> dict:
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            return namespace
        updated = copy.deepcopy(namespace)
        updated.setdefault("status", {})["phase"] = "Terminating"
        return await self.client.update_status(updated)

    async def _finalize(self, namespace: dict) -> dict:
        finalizers = (namespace.get("spec") or {}).get("finalizers") or []
        remaining = list(dict.fromkeys(f for f in finalizers if f != FINALIZER_KUBERNETES))
        if remaining == finalizers:
            return namespace
        updated = copy.deepcopy(namespace)
        updated.setdefault("spec", {})["finalizers"] = remaining
        return await self.client.update(updated, subresource="finalize")

    async def delete_all_content(self, namespace: dict) -> int:
        """Delete what is there, report what is left on the status; returns the seconds to wait."""
        name = namespace["metadata"]["name"]
        deleted_at = _parse_time(namespace["metadata"].get("deletionTimestamp")) or datetime.now(UTC)
        conditions = ConditionUpdater()
        totals = ContentTotals()
        kinds = list(self.kinds)
        if self.discover:
            found = await custom_resources(self.client)
            kinds += [k for k in found.preferred if k.namespaced and "delete" in k.verbs]
            if found.failures:
                conditions.process_discovery_errors(found.failures)
        results = await asyncio.gather(*(self._delete_kind(kind, name, deleted_at) for kind in kinds),
                                       return_exceptions=True)
        estimate = 0
        errors: list[BaseException] = []
        for kind, result in zip(kinds, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                errors.append(result)
                conditions.process_delete_content_error(result)
                result = getattr(result, "partial", None)
                if result is None:
                    continue
            kind_estimate, remaining, finalizers = result
            estimate = max(estimate, kind_estimate)
            if remaining:
                totals.remaining[kind] = remaining
                for finalizer, count in finalizers.items():
                    totals.finalizers[finalizer] = totals.finalizers.get(finalizer, 0) + count
        conditions.process_content_totals(totals)
        updated = copy.deepcopy(namespace)
        if conditions.update(updated):
            try:
                await self.client.update_status(updated)
            except APIStatusError as exc:
                log.warning("namespace controller: couldn't update status conditions for namespace %s: %s", name,
                            exc)
        if errors:
            raise ContentDeletionFailed(aggregate_message(errors))
        return estimate

    async def _delete_kind(self, kind: Kind, namespace: str, deleted_at: datetime) -> tuple[int, int, dict[str, int]]:
        """(estimate seconds, instances left, finalizer -> instances) for one resource."""
        estimate = 0
        if kind.group == "" and kind.plural == "pods":
            estimate = estimate_pod_grace((await self.client.list(kind, namespace)).get("items") or [])
            elapsed = (datetime.now(UTC) - deleted_at).total_seconds()
            if elapsed >= estimate:
                estimate = 0
        try:
            if not await self._delete_collection(kind, namespace):
                await self._delete_each(kind, namespace)
            items = await self._list(kind, namespace)
        except APIStatusError as exc:
            raise _KindFailure(f"{kind.group_resource}: {exc.message or exc}", (estimate, 0, {})) from exc
        if not items:
            return estimate, 0, {}
        finalizers: dict[str, int] = {}
        for item in items:
            for finalizer in (item.get("metadata") or {}).get("finalizers") or ():
                finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        if estimate:
            return estimate, len(items), finalizers
        if finalizers:
            return FINALIZER_ESTIMATE_SECONDS, len(items), finalizers
        raise _KindFailure(f"unexpected items still remain in namespace: {namespace} for gvr: "
                           f"{kind.group}/{kind.version}, Resource={kind.plural}", (estimate, len(items), finalizers))

    async def _delete_collection(self, kind: Kind, namespace: str) -> bool:
        if kind in self._deletecollection_unsupported or "deletecollection" not in kind.verbs:
            return False
        try:
            await self.client.delete_collection(kind, namespace, propagation_policy="Background")
        except APIStatusError as exc:
            if exc.code in (404, 405):
                self._deletecollection_unsupported.add(kind)
                return False
            raise
        return True

    async def _delete_each(self, kind: Kind, namespace: str) -> None:
        for item in await self._list(kind, namespace):
            try:
                await self.client.delete(kind, item["metadata"]["name"], namespace, propagation_policy="Background")
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise

    async def _list(self, kind: Kind, namespace: str) -> list[dict]:
        if kind in self._list_unsupported or "list" not in kind.verbs:
            return []
        try:
            return (await self.client.list(kind, namespace)).get("items") or []
        except APIStatusError as exc:
            if exc.code in (404, 405):
                self._list_unsupported.add(kind)
                return []
            raise


class _KindFailure(Exception):
    """A resource could not be emptied; carries what was learned anyway for the totals."""

    def __init__(self, message: str, partial: tuple[int, int, dict[str, int]]):
        super().__init__(message)
        self.partial = partial


class ContentDeletionFailed(Exception):
    """Some resources could not be deleted; the namespace is looked at again with backoff."""


def namespace_rate_limiter(clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter:
    """Upstream's namespace queue limiter: 5 ms doubling to 60 s per item, 10 qps overall."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 60.0), BucketRateLimiter(10.0, 100, clock))


class NamespaceController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *, workers: int = DEFAULT_WORKERS,
                 deletion_grace_period: float = DELETION_GRACE_PERIOD, clock: Clock = REAL_CLOCK,
                 deleter: NamespacedResourcesDeleter | None = None):
        self.client = client
        self.deletion_grace_period = deletion_grace_period
        self.deleter = deleter or NamespacedResourcesDeleter(client)
        self.informer = factory.informer("namespaces")
        self.queue = WorkQueue("namespace", rate_limiter=namespace_rate_limiter(clock), clock=clock)
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=workers, queue=self.queue, clock=clock,
                                                      wait_for=[self.informer.wait_for_sync])
        self.informer.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, namespace: dict | DeletedFinalStateUnknown) -> None:
        if isinstance(namespace, DeletedFinalStateUnknown):
            return
        meta = namespace.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.queue.add_after(meta["name"], self.deletion_grace_period)

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, name: str) -> None:
        if self.informer.get(name) is None:
            log.debug("namespace controller: namespace %s has been deleted", name)
            return
        try:
            await self.deleter.delete(name)
        except ResourcesRemaining as remaining:
            delay = remaining.estimate // 2 + 1
            log.info("namespace controller: content remaining in namespace %s, waiting %d seconds", name, delay)
            raise RequeueAfter(delay) from None
