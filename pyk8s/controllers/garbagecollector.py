"""The garbage collector: deletes objects whose owners are gone and carries out Foreground and Orphan
deletion (upstream pkg/controller/garbagecollector).

Two halves:
- `GraphBuilder` (pure, no I/O) keeps the owner -> dependents graph, uid-keyed, from every informer
  event. An owner referenced but not (yet) seen is a *virtual* node, queued so a live GET can confirm
  or refute it. The builder decides what needs a look and puts uids on two queues: attempt-to-delete
  (dependents of vanished or foreground-deleting owners, owners waiting on dependents, changed
  references) and attempt-to-orphan (owners that gained the `orphan` finalizer).
- `GarbageCollector` runs workers over those queues. Every decision re-reads the live object and
  its owners from the apiserver (never the cache), so a stale graph can delay work but never delete
  the wrong thing; deletes carry a uid precondition and patches a resourceVersion precondition.

Asyncio runs one thread and every graph mutation is synchronous, so the graph needs no locks: informer
handlers and the workers' "this object is gone" verdicts (upstream's virtual delete events) apply
their changes directly, in the order they happen. Nothing is remembered outside the apiserver: a
restarted collector rebuilds the graph from the initial lists, whose add events re-trigger every
pending foreground/orphan deletion and every dangling reference.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import orjson

from ..api.kinds import REGISTRY, Kind
from ..client import (
    WARNING,
    APIClient,
    DeletedFinalStateUnknown,
    EventRecorder,
    Informer,
    SharedInformerFactory,
    ShutDown,
    WorkQueue,
    is_conflict,
    is_not_found,
    resolve,
)
from ..client.api import Resource
from ..client.workqueue import REAL_CLOCK, Clock
from .discovery import custom_resources

log = logging.getLogger("pyk8s.controllers.garbagecollector")

NAME = "garbage-collector-controller"
FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"
# Upstream's default --concurrent-gc-syncs and the size of its absent-owner LRU.
DEFAULT_WORKERS = 20
ABSENT_OWNER_CACHE_SIZE = 500
# Resources the collector never watches (upstream's DefaultIgnoredResources): events are many and
# short-lived, and nothing owns them.
IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})
PATCH_RETRIES = 5
CUSTOM_RESOURCE_RESYNC_SECONDS = 10.0  # how soon a new CRD's resources are monitored (upstream: 30 s)


# ---- identities and the graph -----------------------------------------------------------


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class ObjectIdentity:
    """Where an object is: the owner-reference coordinates plus a namespace ("" = cluster-scoped)."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str = ""

    @classmethod
    def of(cls, obj: Mapping) -> ObjectIdentity:
        meta = obj.get("metadata") or {}
        return cls(obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name", ""), meta.get("uid", ""),
                   meta.get("namespace") or "")

    @classmethod
    def of_reference(cls, ref: Mapping, namespace: str) -> ObjectIdentity:
        return cls(ref.get("apiVersion", ""), ref.get("kind", ""), ref.get("name", ""), ref.get("uid", ""), namespace)

    def matches(self, ref: Mapping) -> bool:
        """Same object as an ownerReference names, ignoring the version (as upstream compares)."""
        return (ref.get("uid") == self.uid and ref.get("name") == self.name and ref.get("kind") == self.kind
                and _group(ref.get("apiVersion", "")) == _group(self.api_version))

    def sort_key(self) -> tuple[str, ...]:
        return (self.api_version, self.kind, self.namespace, self.name, self.uid)

    def __str__(self) -> str:
        return f"[{self.api_version}/{self.kind}, namespace: {self.namespace}, name: {self.name}, uid: {self.uid}]"


@dataclass(eq=False)
class Node:
    identity: ObjectIdentity
    owners: list[dict] = field(default_factory=list)  # the object's ownerReferences as last observed
    dependents: set[str] = field(default_factory=set)  # uids of nodes whose ownerReferences name this one
    observed: bool = False  # seen through an informer; False = a "virtual" node, known only as an owner
    being_deleted: bool = False
    deleting_dependents: bool = False  # has deletionTimestamp and the foregroundDeletion finalizer

    @property
    def uid(self) -> str:
        return self.identity.uid

    def reference_to(self, owner_uid: str) -> dict | None:
        for ref in self.owners:
            if ref.get("uid") == owner_uid:
                return ref
        return None


class AbsentOwnerCache:
    """LRU of owner identities verified absent, so many dependents of one vanished owner cost one GET."""

    def __init__(self, size: int = ABSENT_OWNER_CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[ObjectIdentity, None] = OrderedDict()

    def add(self, identity: ObjectIdentity) -> None:
        self._items[identity] = None
        self._items.move_to_end(identity)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def has(self, identity: ObjectIdentity) -> bool:
        if identity in self._items:
            self._items.move_to_end(identity)
            return True
        return False

    def __len__(self) -> int:
        return len(self._items)


class UidQueue(Protocol):
    def add(self, item: str) -> None: ...

    def add_rate_limited(self, item: str) -> None: ...


def _being_deleted(obj: Mapping | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


def _has_finalizer(obj: Mapping | None, finalizer: str) -> bool:
    return bool(obj and finalizer in ((obj.get("metadata") or {}).get("finalizers") or ()))


def _starts_waiting(old: Mapping | None, new: Mapping, finalizer: str) -> bool:
    """The object just entered "deleting, held by `finalizer`" (an add counts: restarts see it again)."""
    if not (_being_deleted(new) and _has_finalizer(new, finalizer)):
        return False
    return not (_being_deleted(old) and _has_finalizer(old, finalizer))


def _blocks(ref: Mapping | None) -> bool:
    return bool(ref and ref.get("blockOwnerDeletion") is True)


def references_diff(old: list[dict], new: list[dict]) -> tuple[list[dict], list[dict], list[tuple[dict, dict]]]:
    """(added, removed, changed as (old, new)) between two ownerReferences lists, matched by uid."""
    old_by_uid = {ref.get("uid"): ref for ref in old}
    new_by_uid = {ref.get("uid"): ref for ref in new}
    added = [ref for uid, ref in new_by_uid.items() if uid not in old_by_uid]
    removed = [ref for uid, ref in old_by_uid.items() if uid not in new_by_uid]
    changed = [(old_by_uid[uid], ref) for uid, ref in new_by_uid.items()
               if uid in old_by_uid and old_by_uid[uid] != ref]
    return added, removed, changed


class GraphBuilder:
    """The dependency graph and the rules that turn observations into work (upstream graph_builder.go)."""

    def __init__(self, attempt_to_delete: UidQueue, attempt_to_orphan: UidQueue,
                 absent_owners: AbsentOwnerCache | None = None, *,
                 report_invalid_namespace: Callable[[Node, Mapping], None] | None = None):
        self.nodes: dict[str, Node] = {}
        self.attempt_to_delete = attempt_to_delete
        self.attempt_to_orphan = attempt_to_orphan
        self.absent_owners = absent_owners if absent_owners is not None else AbsentOwnerCache()
        # Called as report(dependent_node, owner_reference) for a reference across namespaces.
        self.report_invalid_namespace = report_invalid_namespace

    # ---- informer handlers (sync, cheap) ---------------------------------------------------

    def on_add(self, obj: dict) -> None:
        self.observe(obj, None)

    def on_update(self, old: dict, new: dict) -> None:
        old_uid = (old.get("metadata") or {}).get("uid")
        if old_uid and old_uid != (new.get("metadata") or {}).get("uid"):
            # The name was deleted and re-created between two looks (a relist): two objects.
            self.observe_deletion(old)
            self.observe(new, None)
            return
        self.observe(new, old)

    def on_delete(self, obj: dict | DeletedFinalStateUnknown) -> None:
        self.observe_deletion(obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj)

    # ---- graph changes ---------------------------------------------------------------------

    def observe(self, obj: dict, old: dict | None) -> None:
        """An add or update from an informer."""
        identity = ObjectIdentity.of(obj)
        if not identity.uid:
            return
        meta = obj.get("metadata") or {}
        owners = [dict(ref) for ref in meta.get("ownerReferences") or () if ref.get("uid")]
        node = self.nodes.get(identity.uid)
        if node is not None and not node.observed:
            self._mark_observed(node, identity)
        if node is None:
            node = Node(identity, owners=owners, observed=True, being_deleted=_being_deleted(obj),
                        deleting_dependents=_being_deleted(obj) and _has_finalizer(obj, FINALIZER_FOREGROUND))
            self.nodes[identity.uid] = node
            self._add_dependent_to_owners(node, owners)
        else:
            added, removed, changed = references_diff(node.owners, owners)
            if added or removed or changed:
                self._enqueue_unblocked_owners(removed, changed)
                node.owners = owners
                self._add_dependent_to_owners(node, added)
                self._remove_dependent_from_owners(node, removed)
            if _being_deleted(obj):
                node.being_deleted = True
        self._process_transitions(old, obj, node)

    def observe_deletion(self, obj: dict) -> None:
        """A delete seen by an informer."""
        identity = ObjectIdentity.of(obj)
        node = self.nodes.get(identity.uid)
        if node is None:
            return
        self._remove(node, identity)

    def virtual_delete(self, identity: ObjectIdentity) -> None:
        """A live lookup found no object at `identity` (upstream's virtual delete event)."""
        node = self.nodes.get(identity.uid)
        if node is None:
            return
        if not node.observed:
            # We only know this owner from references; dependents may disagree about its coordinates.
            matching, nonmatching = self._partition_dependents(node, identity)
            if nonmatching:
                if matching:
                    self.absent_owners.add(identity)
                    for dep in matching:
                        self.attempt_to_delete.add(dep.uid)
                if node.identity != identity:
                    return  # a verdict about coordinates we no longer assume
                alternate = self._alternate_identity(nonmatching, identity)
                if alternate is not None:
                    # Try the owner where the other dependents say it is.
                    node.identity = alternate
                    self.attempt_to_delete.add_rate_limited(node.uid)
                    return
                # Every place the dependents point to was verified empty: the owner does not exist.
        elif node.identity != identity:
            # The informer saw the object elsewhere: only references using these coordinates are dangling.
            matching, _ = self._partition_dependents(node, identity)
            if matching:
                self.absent_owners.add(identity)
                for dep in matching:
                    self.attempt_to_delete.add(dep.uid)
            return
        self._remove(node, identity)

    # ---- helpers ---------------------------------------------------------------------------

    def _remove(self, node: Node, identity: ObjectIdentity) -> None:
        self.nodes.pop(node.uid, None)
        self._remove_dependent_from_owners(node, node.owners)
        if node.dependents:
            self.absent_owners.add(identity)
        for dep_uid in sorted(node.dependents):
            self.attempt_to_delete.add(dep_uid)
        for ref in node.owners:
            owner = self.nodes.get(ref["uid"])
            if owner is not None and owner.deleting_dependents:
                # It may be waiting for exactly this dependent to go away.
                self.attempt_to_delete.add(owner.uid)

    def _mark_observed(self, node: Node, observed: ObjectIdentity) -> None:
        if observed != node.identity:
            # Dependents that named the owner by other coordinates may be wrong: verify them.
            _, suspicious = self._partition_dependents(node, observed)
            for dep in suspicious:
                if observed.namespace and dep.identity.namespace != observed.namespace:
                    self._report_invalid(dep, dep.reference_to(node.uid) or {})
                self.attempt_to_delete.add(dep.uid)
            node.identity = observed
        node.observed = True

    def _add_dependent_to_owners(self, node: Node, owners: Iterable[dict]) -> None:
        suspicious = False
        for ref in owners:
            owner = self.nodes.get(ref["uid"])
            if owner is None:
                # Not seen yet: a virtual owner, queued so a live GET confirms or removes it.
                owner = Node(ObjectIdentity.of_reference(ref, node.identity.namespace))
                self.nodes[owner.uid] = owner
                owner.dependents.add(node.uid)
                self.attempt_to_delete.add(owner.uid)
                continue
            owner.dependents.add(node.uid)
            if suspicious:
                continue
            owner_namespaced = bool(owner.identity.namespace)
            if owner_namespaced and owner.identity.namespace != node.identity.namespace:
                if owner.observed:
                    self._report_invalid(node, ref)
                suspicious = True
            elif not owner.identity.matches(ref):
                suspicious = True
            elif not owner_namespaced and node.identity.namespace and not owner.observed:
                # A virtual owner first named by a cluster-scoped dependent: maybe a namespaced kind.
                suspicious = True
        if suspicious:
            self.attempt_to_delete.add(node.uid)

    def _remove_dependent_from_owners(self, node: Node, owners: Iterable[dict]) -> None:
        for ref in owners:
            owner = self.nodes.get(ref["uid"])
            if owner is not None:
                owner.dependents.discard(node.uid)

    def _enqueue_unblocked_owners(self, removed: list[dict], changed: list[tuple[dict, dict]]) -> None:
        unblocked = [ref for ref in removed if _blocks(ref)]
        unblocked += [new for old, new in changed if _blocks(old) and not _blocks(new)]
        for ref in unblocked:
            if ref["uid"] in self.nodes:
                self.attempt_to_delete.add(ref["uid"])

    def _process_transitions(self, old: dict | None, new: dict, node: Node) -> None:
        if _starts_waiting(old, new, FINALIZER_ORPHAN):
            log.debug("%s: orphaning its dependents", node.identity)
            self.attempt_to_orphan.add(node.uid)
            return
        if _starts_waiting(old, new, FINALIZER_FOREGROUND):
            log.debug("%s: deleting its dependents in the foreground", node.identity)
            node.deleting_dependents = True
            for dep_uid in sorted(node.dependents):
                self.attempt_to_delete.add(dep_uid)
            self.attempt_to_delete.add(node.uid)

    def _partition_dependents(self, node: Node, owner: ObjectIdentity) -> tuple[list[Node], list[Node]]:
        """Dependents whose reference to `node` matches `owner`'s coordinates, and those whose does not."""
        matching: list[Node] = []
        nonmatching: list[Node] = []
        for dep in self.dependents(node):
            if owner.namespace and dep.identity.namespace != owner.namespace:
                nonmatching.append(dep)
                continue
            refs = [ref for ref in dep.owners if ref.get("uid") == owner.uid]
            if any(owner.matches(ref) for ref in refs):
                matching.append(dep)
            if any(not owner.matches(ref) for ref in refs):
                nonmatching.append(dep)
        return matching, nonmatching

    def _alternate_identity(self, dependents: list[Node], absent: ObjectIdentity) -> ObjectIdentity | None:
        """Another place the dependents say the owner is; candidates are tried in a fixed order so every
        one is eventually verified."""
        candidates: set[ObjectIdentity] = set()
        for dep in dependents:
            for ref in dep.owners:
                if ref.get("uid") != absent.uid:
                    continue
                if absent.matches(ref) and (not absent.namespace or absent.namespace == dep.identity.namespace):
                    continue
                candidate = ObjectIdentity.of_reference(ref, dep.identity.namespace)
                if not absent.namespace and candidate.api_version == absent.api_version \
                        and candidate.kind == absent.kind:
                    candidate = ObjectIdentity.of_reference(ref, "")  # we know this kind is cluster-scoped
                if candidate != absent and not self.absent_owners.has(candidate):
                    candidates.add(candidate)
        if not candidates:
            return None
        ordered = sorted(candidates, key=ObjectIdentity.sort_key)
        after = [c for c in ordered if c.sort_key() > absent.sort_key()]
        return (after or ordered)[0]

    def _report_invalid(self, dependent: Node, ref: Mapping) -> None:
        if self.report_invalid_namespace is not None:
            self.report_invalid_namespace(dependent, ref)

    # ---- queries ---------------------------------------------------------------------------

    def dependents(self, node: Node) -> list[Node]:
        return [self.nodes[uid] for uid in sorted(node.dependents) if uid in self.nodes]

    def blocking_dependents(self, node: Node) -> list[Node]:
        """Dependents whose reference to `node` has blockOwnerDeletion: foreground deletion waits for them."""
        return [dep for dep in self.dependents(node) if _blocks(dep.reference_to(node.uid))]


# ---- the collector ----------------------------------------------------------------------


class _Action(Enum):
    FORGET = "forget"
    REQUEUE = "requeue"


class ObjectGone(Exception):  # noqa: N818 - a control-flow signal
    """The live object is not the one the node describes; the graph was told (virtual delete)."""


class NamespacedOwnerOfClusterScopedObject(Exception):  # noqa: N818 - upstream's marker error
    """A cluster-scoped object names a namespaced owner: invalid, and retrying will not change that."""


class RestMappingError(Exception):
    """An ownerReference names a kind this cluster does not serve (yet)."""


def deletable_kinds(ignored: frozenset[tuple[str, str]] = IGNORED_RESOURCES) -> list[Kind]:
    """The stored form of every kind that can be listed, watched and deleted."""
    return [kind for kind in REGISTRY.stored_kinds()
            if (kind.group, kind.plural) not in ignored
            and all(verb in kind.verbs for verb in ("delete", "list", "watch"))]


class GarbageCollector:
    """Workers over the graph's two queues; every write is checked against live state first."""

    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *, workers: int = DEFAULT_WORKERS,
                 recorder: EventRecorder | None = None, clock: Clock = REAL_CLOCK,
                 kinds: Iterable[Kind] | None = None):
        self.client = client
        self.workers = workers
        self.recorder = recorder
        self.attempt_to_delete: WorkQueue[str] = WorkQueue("garbage_collector_attempt_to_delete", clock=clock)
        self.attempt_to_orphan: WorkQueue[str] = WorkQueue("garbage_collector_attempt_to_orphan", clock=clock)
        self.absent_owners = AbsentOwnerCache()
        self.graph = GraphBuilder(self.attempt_to_delete, self.attempt_to_orphan, self.absent_owners,
                                  report_invalid_namespace=self._report_invalid_namespace)
        self.factory = factory
        self.informers: list[Informer] = []
        for kind in kinds if kinds is not None else deletable_kinds():
            self._monitor(kind)
        # Without an explicit list, custom resources are discovered and monitored as CRDs come.
        self.discover = kinds is None
        self.custom: dict[tuple[str, str], Resource] = {}  # (apiVersion, kind) -> resource, from discovery
        self._custom_informers: dict[tuple[str, str], Informer] = {}  # (group, plural) -> its monitor
        self._running: set[tuple[str, str]] = set()  # custom resources monitored now

    def _monitor(self, kind: Kind | Resource) -> Informer:
        informer = self.factory.informer(kind)
        informer.add_handler(self.graph.on_add, self.graph.on_update, self.graph.on_delete)
        self.informers.append(informer)
        return informer

    async def sync_custom_resources(self) -> None:
        """Map the custom kinds' apiVersions, and monitor each new custom resource (upstream's resync)."""
        found = await custom_resources(self.client)
        if found.failures:
            return  # a partial view would stop monitors of resources that still exist
        self.custom = {(k.api_version, k.kind): Resource.of_kind(k) for k in found.kinds}
        wanted = {(k.group, k.plural): k for k in found.preferred
                  if all(verb in k.verbs for verb in ("delete", "list", "watch"))}
        for resource, kind in wanted.items():
            if resource in self._running:
                continue
            informer = self._custom_informers.get(resource)
            if informer is None:
                informer = self._custom_informers[resource] = self._monitor(kind)
            informer.start()  # a resource that comes back relists, which reports what went meanwhile
            self._running.add(resource)
            log.info("garbage collector: monitoring %s", kind.group_resource)
        for resource in self._running - wanted.keys():
            # Its CRD is gone (its instances were deleted first, and those deletions were seen).
            await self._custom_informers[resource].stop()
            self._running.discard(resource)
            log.info("garbage collector: no longer monitoring %s.%s", resource[1], resource[0])

    async def _follow_custom_resources(self) -> None:
        while True:
            try:
                await self.sync_custom_resources()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # discovery fails while the apiserver restarts; try again later
                log.warning("garbage collector: discovery failed: %s", exc)
            await asyncio.sleep(CUSTOM_RESOURCE_RESYNC_SECONDS)

    def _resource(self, api_version: str, kind: str) -> Resource:
        try:
            return resolve((api_version, kind))
        except ValueError as exc:
            custom = self.custom.get((api_version, kind))
            if custom is None:
                raise RestMappingError(str(exc)) from None
            return custom

    async def run(self) -> None:
        """Wait until every monitor has listed (the graph is complete), then work until cancelled."""
        await asyncio.gather(*(informer.wait_for_sync() for informer in self.informers))
        log.info("garbage collector: graph synced (%d nodes); starting %d workers", len(self.graph.nodes),
                 self.workers)
        try:
            async with asyncio.TaskGroup() as group:
                if self.discover:
                    group.create_task(self._follow_custom_resources(), name="gc-discovery")
                for i in range(self.workers):
                    group.create_task(self._work(self.attempt_to_delete, self._attempt_to_delete_worker),
                                      name=f"gc-delete-{i}")
                    group.create_task(self._work(self.attempt_to_orphan, self._attempt_to_orphan_worker),
                                      name=f"gc-orphan-{i}")
        finally:
            self.attempt_to_delete.shut_down()
            self.attempt_to_orphan.shut_down()

    @staticmethod
    async def _work(queue: WorkQueue[str], handle: Callable[[str], Awaitable[_Action]]) -> None:
        while True:
            try:
                uid = await queue.get()
            except ShutDown:
                return
            try:
                try:
                    action = await handle(uid)
                except asyncio.CancelledError:
                    raise
                except RestMappingError as exc:
                    log.debug("garbage collector: %s: %s; retrying", uid, exc)
                    action = _Action.REQUEUE
                except Exception as exc:
                    log.warning("garbage collector: %s %s failed: %s", queue.name, uid, exc)
                    action = _Action.REQUEUE
                if action is _Action.FORGET:
                    queue.forget(uid)
                else:
                    queue.add_rate_limited(uid)
            finally:
                queue.done(uid)

    # ---- attempt to delete -----------------------------------------------------------------

    async def _attempt_to_delete_worker(self, uid: str) -> _Action:
        node = self.graph.nodes.get(uid)
        if node is None:
            return _Action.FORGET  # removed from the graph since it was queued
        try:
            await self.attempt_to_delete_item(node)
        except (ObjectGone, NamespacedOwnerOfClusterScopedObject):
            return _Action.FORGET
        current = self.graph.nodes.get(uid)
        if current is not None and not current.observed:
            # It exists but no informer has shown it yet: look again until one does, so a virtual node
            # for an object created and deleted while a watch was down cannot linger.
            return _Action.REQUEUE
        return _Action.FORGET

    async def attempt_to_delete_item(self, node: Node) -> None:
        """Delete the object if every owner is gone, drop the references to owners that are gone if some
        remain, or finish a foreground deletion (upstream attemptToDeleteItem)."""
        if node.being_deleted and not node.deleting_dependents:
            return  # already on its way out; its dependents get their turn when it is gone
        identity = node.identity
        latest = await self._get_live(identity)
        if latest is None or (latest.get("metadata") or {}).get("uid") != identity.uid:
            log.debug("garbage collector: %s not found; removing it from the graph", identity)
            self.graph.virtual_delete(identity)
            raise ObjectGone(str(identity))
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return
        references = list((latest.get("metadata") or {}).get("ownerReferences") or ())
        if not references:
            return
        solid, dangling, waiting = await self._classify_references(node, references)
        if solid:
            if not dangling and not waiting:
                return
            # References to owners that are waiting for us must go too, or they wait forever.
            gone = {ref["uid"] for ref in dangling + waiting}
            log.info("garbage collector: %s keeps owners %s; removing references to %s", identity,
                     [ref.get("name") for ref in solid], sorted(ref.get("name", "") for ref in dangling + waiting))
            await self._patch_owner_references(identity, lambda refs: [r for r in refs if r.get("uid") not in gone])
        elif waiting and node.dependents:
            for dep in self.graph.dependents(node):
                if dep.deleting_dependents:
                    # A dependent of ours is itself waiting on its dependents while our owner waits on us:
                    # break the possible cycle by no longer blocking our owners.
                    log.info("garbage collector: %s: unblocking owner references to avoid a cycle", identity)
                    await self._patch_owner_references(identity, _unblocked)
                    break
            log.info("garbage collector: deleting %s in the foreground (an owner waits for it)", identity)
            await self._delete(identity, "Foreground")
        else:
            finalizers = (latest.get("metadata") or {}).get("finalizers") or ()
            policy = "Orphan" if FINALIZER_ORPHAN in finalizers else \
                "Foreground" if FINALIZER_FOREGROUND in finalizers else "Background"
            log.info("garbage collector: deleting %s (propagation %s): its owners are gone", identity, policy)
            await self._delete(identity, policy)

    async def _process_deleting_dependents(self, node: Node) -> None:
        blocking = self.graph.blocking_dependents(node)
        if not blocking:
            log.info("garbage collector: %s has no blocking dependents left; removing %s", node.identity,
                     FINALIZER_FOREGROUND)
            await self._remove_finalizer(node.identity, FINALIZER_FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.attempt_to_delete.add(dep.uid)

    async def _classify_references(self, node: Node, references: list[dict]) \
            -> tuple[list[dict], list[dict], list[dict]]:
        """(solid, dangling, waiting): owners that exist, owners that do not, and owners that exist but
        are deleting in the foreground."""
        solid: list[dict] = []
        dangling: list[dict] = []
        waiting: list[dict] = []
        for ref in references:
            owner = await self._live_owner(ref, node)
            if owner is None:
                dangling.append(ref)
            elif _being_deleted(owner) and _has_finalizer(owner, FINALIZER_FOREGROUND):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _live_owner(self, ref: dict, node: Node) -> dict | None:
        """The owner as it is now, or None if no object with its uid exists where the reference points."""
        cluster_key = ObjectIdentity.of_reference(ref, "")
        namespaced_key = ObjectIdentity.of_reference(ref, node.identity.namespace)
        if self.absent_owners.has(cluster_key) or self.absent_owners.has(namespaced_key):
            return None
        resource = self._resource(ref.get("apiVersion", ""), ref.get("kind", ""))
        if resource.namespaced and not node.identity.namespace:
            self._report_invalid_namespace(node, ref)
            raise NamespacedOwnerOfClusterScopedObject(
                f"{node.identity} is cluster-scoped but names the namespaced owner {ref.get('kind')} "
                f"{ref.get('name')}")
        key = namespaced_key if resource.namespaced else cluster_key
        try:
            owner = await self.client.get(resource, ref.get("name", ""), key.namespace or None)
        except Exception as exc:
            if is_not_found(exc):
                self.absent_owners.add(key)
                return None
            raise
        if (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
            self.absent_owners.add(key)
            return None
        return owner

    # ---- attempt to orphan -----------------------------------------------------------------

    async def _attempt_to_orphan_worker(self, uid: str) -> _Action:
        node = self.graph.nodes.get(uid)
        if node is None:
            return _Action.FORGET
        await self.orphan_dependents(node)
        log.info("garbage collector: orphaned the dependents of %s; removing %s", node.identity, FINALIZER_ORPHAN)
        await self._remove_finalizer(node.identity, FINALIZER_ORPHAN)
        return _Action.FORGET

    async def orphan_dependents(self, owner: Node) -> None:
        """Remove the reference to `owner` from every dependent the graph knows."""
        dependents = self.graph.dependents(owner)

        def without_owner(refs: list[dict]) -> list[dict]:
            return [ref for ref in refs if ref.get("uid") != owner.uid]

        async def orphan(dep: Node) -> None:
            await self._patch_owner_references(dep.identity, without_owner)

        results = await asyncio.gather(*(orphan(dep) for dep in dependents), return_exceptions=True)
        errors = [f"orphaning {dep.identity} failed: {result}" for dep, result in zip(dependents, results, strict=True)
                  if isinstance(result, BaseException)]
        if errors:
            raise RuntimeError(f"failed to orphan dependents of owner {owner.identity}: {'; '.join(errors)}")

    # ---- writes ----------------------------------------------------------------------------

    async def _get_live(self, identity: ObjectIdentity) -> dict | None:
        resource = self._resource(identity.api_version, identity.kind)
        if resource.namespaced and not identity.namespace:
            return None  # a namespaced kind named without a namespace: nothing can be there
        try:
            return await self.client.get(resource, identity.name, identity.namespace if resource.namespaced else None)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    async def _delete(self, identity: ObjectIdentity, policy: str) -> None:
        resource = self._resource(identity.api_version, identity.kind)
        await self.client.delete(resource, identity.name, identity.namespace if resource.namespaced else None,
                                 propagation_policy=policy, preconditions={"uid": identity.uid})

    async def _patch_owner_references(self, identity: ObjectIdentity,
                                      edit: Callable[[list[dict]], list[dict]]) -> None:
        await self._patch_metadata_list(identity, "ownerReferences", lambda refs: edit([dict(r) for r in refs]))

    async def _remove_finalizer(self, identity: ObjectIdentity, finalizer: str) -> None:
        await self._patch_metadata_list(identity, "finalizers", lambda names: [f for f in names if f != finalizer])

    async def _patch_metadata_list(self, identity: ObjectIdentity, field: str,
                                   edit: Callable[[list], list]) -> None:
        """Read-modify-write of a metadata list, conditional on the resourceVersion read (a merge patch
        replaces the whole list, so the precondition is what keeps concurrent writers' entries)."""
        resource = self._resource(identity.api_version, identity.kind)
        namespace = identity.namespace if resource.namespaced else None
        for _ in range(PATCH_RETRIES):
            latest = await self._get_live(identity)
            meta = (latest or {}).get("metadata") or {}
            if latest is None or meta.get("uid") != identity.uid:
                return  # gone: nothing to patch
            current = list(meta.get(field) or ())
            wanted = edit(current)
            if wanted == current:
                return
            patch = {"metadata": {field: wanted or None, "resourceVersion": meta.get("resourceVersion")}}
            try:
                await self.client.patch(resource, identity.name, patch, namespace, patch_type="merge")
                return
            except Exception as exc:
                if is_not_found(exc):
                    return
                if not is_conflict(exc):
                    raise
        raise RuntimeError(f"updating metadata.{field} of {identity}: too many conflicts")

    def _report_invalid_namespace(self, dependent: Node, ref: Mapping) -> None:
        coordinates = {k: ref.get(k) for k in ("apiVersion", "kind", "name", "uid")}
        message = (f"ownerRef {orjson.dumps(coordinates).decode()} does not exist in namespace "
                   f"\"{dependent.identity.namespace}\"")
        log.warning("garbage collector: %s: %s", dependent.identity, message)
        if self.recorder is not None:
            ident = dependent.identity
            obj = {"apiVersion": ident.api_version, "kind": ident.kind,
                   "metadata": {"name": ident.name, "namespace": ident.namespace, "uid": ident.uid}}
            self.recorder.event(obj, WARNING, "OwnerRefInvalidNamespace", message)


def _unblocked(references: list[dict]) -> list[dict]:
    return [{**ref, "blockOwnerDeletion": False} if _blocks(ref) else ref for ref in references]
