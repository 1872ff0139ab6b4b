"""Informers: list+watch one resource into a local indexed cache and tell handlers what changed.

The reflector loop follows upstream's (client-go tools/cache/reflector.go): the first list asks
for resourceVersion "0" (served from the apiserver's watch cache, paged), later relists ask for
"at least as new as what we had" (unpaged, so the watch cache can answer), and fall back to a
consistent list ("") if that version is unavailable. It then watches from the list's version
with bookmarks and a random 5-10 minute timeout, re-watches from the last seen version when the
stream ends, and relists on 410 Gone. Failures back off 0.8 s doubling to 30 s, reset after two
healthy minutes.

Handlers are *sync and cheap* (compute a key, enqueue it): asyncio has one thread, so a handler
that awaited or blocked would stall every other informer. They run in event order. Cached
objects are shared: treat them as read-only and deep-copy before changing one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .api import (
    APIClient,
    APIConnectionError,
    APIStatusError,
    Resource,
    ResourceRef,
    is_gone,
    is_too_large_resource_version,
    resolve,
    selector_string,
)
from .workqueue import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.client.informer")

NAMESPACE_INDEX = "namespace"
LIST_PAGE_SIZE = 500
MIN_WATCH_TIMEOUT = 300  # seconds; each watch asks for a random timeout in [5, 10) minutes


def object_key(obj: Mapping) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (upstream MetaNamespaceKeyFunc)."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.key
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name); namespace is "" for cluster-scoped keys."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def namespace_index(obj: Mapping) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


@dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """Handed to on_delete when a relist found an object gone without our seeing its deletion:
    `obj` is the last state we knew, possibly stale."""

    key: str
    obj: dict


IndexFunc = Callable[[dict], Iterable[str]]


class Indexer:
    """The cache: objects by key plus secondary indices (index name -> value -> keys)."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None):
        self.items: dict[str, dict] = {}
        self.indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index, **(indexers or {})}
        self.indices: dict[str, dict[str, set[str]]] = {name: {} for name in self.indexers}

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self.indexers[name] = fn
        index: dict[str, set[str]] = {}
        for key, obj in self.items.items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)
        self.indices[name] = index

    def get(self, key: str) -> dict | None:
        return self.items.get(key)

    def list(self) -> list[dict]:
        return list(self.items.values())

    def keys(self) -> list[str]:
        return list(self.items)

    def index_keys(self, index: str, value: str) -> list[str]:
        if index not in self.indices:
            raise KeyError(f"no index named {index!r}")
        return sorted(self.indices[index].get(value, ()))

    def by_index(self, index: str, value: str) -> list[dict]:
        return [self.items[key] for key in self.index_keys(index, value)]

    def upsert(self, key: str, obj: dict) -> dict | None:
        old = self.items.get(key)
        if old is not None:
            self._unindex(key, old)
        self.items[key] = obj
        for name, fn in self.indexers.items():
            for value in fn(obj):
                self.indices[name].setdefault(value, set()).add(key)
        return old

    def remove(self, key: str) -> dict | None:
        old = self.items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: dict) -> None:
        for name, fn in self.indexers.items():
            index = self.indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


AddHandler = Callable[[dict], None]
UpdateHandler = Callable[[dict, dict], None]
DeleteHandler = Callable[[dict | DeletedFinalStateUnknown], None]


@dataclass(eq=False)
class HandlerRegistration:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None
    informer: Informer

    @property
    def has_synced(self) -> bool:
        return self.informer.has_synced


class _Backoff:
    """0.8 s doubling to 30 s with jitter; forgets failures after two healthy minutes."""

    def __init__(self, clock: Clock, initial: float = 0.8, cap: float = 30.0, reset_after: float = 120.0):
        self.clock, self.initial, self.cap, self.reset_after = clock, initial, cap, reset_after
        self._delay = 0.0
        self._last_failure = float("-inf")

    def next(self) -> float:
        now = self.clock.now()
        if now - self._last_failure > self.reset_after:
            self._delay = 0.0
        self._delay = min(self.cap, self._delay * 2 if self._delay else self.initial)
        self._last_failure = now
        return self._delay * (1 + random.random())


class Informer:
    """List+watch cache of one resource (optionally one namespace / selector) with event handlers."""

    def __init__(self, client: APIClient, kind: ResourceRef, namespace: str | None = None,
                 label_selector: str | Mapping[str, str] | None = None,
                 field_selector: str | Mapping[str, str] | None = None, resync_period: float = 0,
                 indexers: Mapping[str, IndexFunc] | None = None, *, page_size: int = LIST_PAGE_SIZE,
                 clock: Clock = REAL_CLOCK):
        self.client = client
        self.resource: Resource = resolve(kind)
        self.namespace = namespace or None
        self.label_selector = selector_string(label_selector)
        self.field_selector = selector_string(field_selector)
        self.resync_period = resync_period
        self.page_size = page_size
        self.clock = clock
        self.indexer = Indexer(indexers)
        self._handlers: list[HandlerRegistration] = []
        self._synced = asyncio.Event()
        self._last_rv = ""
        self._rv_unavailable = False
        self._tasks: list[asyncio.Task] = []
        self.list_count = 0  # lists done so far: 1 after the initial sync, more after relists

    @property
    def name(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource.plural}{'.' + self.resource.group if self.resource.group else ''}{scope}"

    # ---- cache reads -------------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        return self.indexer.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> dict | None:
        return self.indexer.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[dict]:
        if namespace is not None:
            return self.indexer.by_index(NAMESPACE_INDEX, namespace)
        return self.indexer.list()

    def keys(self) -> list[str]:
        return self.indexer.keys()

    def by_index(self, index: str, value: str) -> list[dict]:
        return self.indexer.by_index(index, value)

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self.indexer.add_indexer(name, fn)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    @property
    def last_sync_resource_version(self) -> str:
        return self._last_rv

    # ---- handlers ----------------------------------------------------------------------

    def add_handler(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> HandlerRegistration:
        """Register sync callbacks. A handler added after the cache filled first sees an add for
        every cached object, so late registrations miss nothing."""
        for fn in (on_add, on_update, on_delete):
            if fn is not None and (inspect.iscoroutinefunction(fn) or not callable(fn)):
                raise TypeError("informer handlers must be plain (sync) callables: enqueue work, don't await it")
        registration = HandlerRegistration(on_add, on_update, on_delete, self)
        self._handlers.append(registration)
        if on_add is not None and self.has_synced:
            for obj in self.indexer.list():
                self._call(on_add, obj)
        return registration

    def remove_handler(self, registration: HandlerRegistration) -> None:
        if registration in self._handlers:
            self._handlers.remove(registration)

    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer %s: handler %s failed", self.name, getattr(fn, "__qualname__", fn))

    def _notify_add(self, obj: dict) -> None:
        for h in tuple(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _notify_update(self, old: dict, new: dict) -> None:
        for h in tuple(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _notify_delete(self, obj: dict | DeletedFinalStateUnknown) -> None:
        for h in tuple(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the reflector (and resync) tasks; idempotent. Register handlers first."""
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._reflect(), name=f"informer-{self.name}")]
        if self.resync_period > 0:
            self._tasks.append(loop.create_task(self._resync_loop(), name=f"informer-resync-{self.name}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        """Run until cancelled (for callers that own a TaskGroup)."""
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    # ---- reflector ---------------------------------------------------------------------

    async def _reflect(self) -> None:
        backoff = _Backoff(self.clock)
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                started = self.clock.now()
                events = await self._watch()
                if events == 0 and self.clock.now() - started < 1.0:
                    # The server ended the watch at once (shutting down?): don't spin on it.
                    delay = backoff.next()
                    log.info("informer %s: watch closed immediately; re-watching in %.1fs", self.name, delay)
                    await self.clock.sleep(delay)
            except asyncio.CancelledError:
                raise
            except APIStatusError as exc:
                if is_gone(exc) and not need_list:
                    # Our resourceVersion fell out of the server's history: relist at once.
                    log.info("informer %s: watch from %s expired (%s); relisting", self.name, self._last_rv,
                             exc.message)
                    need_list = True
                    continue
                need_list = True
                delay = backoff.next()
                log.warning("informer %s: %s; relisting in %.1fs", self.name, exc, delay)
                await self.clock.sleep(delay)
            except APIConnectionError as exc:
                # Re-watch from the last version we saw; a list only if we never completed one.
                delay = backoff.next()
                log.warning("informer %s: %s; retrying in %.1fs", self.name, exc, delay)
                await self.clock.sleep(delay)
            except Exception:
                need_list = True
                delay = backoff.next()
                log.exception("informer %s: unexpected error; relisting in %.1fs", self.name, delay)
                await self.clock.sleep(delay)

    def _relist_resource_version(self) -> str:
        if self._rv_unavailable:
            return ""
        return self._last_rv or "0"

    async def _list_and_replace(self) -> None:
        rv = self._relist_resource_version()
        try:
            result = await self._list(rv)
        except APIStatusError as exc:
            if rv in ("", "0") or not (is_gone(exc) or is_too_large_resource_version(exc)):
                raise
            log.info("informer %s: resourceVersion %s unavailable for list (%s); listing the latest", self.name,
                     rv, exc.message)
            self._rv_unavailable = True
            result = await self._list("")
        self._rv_unavailable = False
        self.list_count += 1
        self._replace(result.get("items") or [], (result.get("metadata") or {}).get("resourceVersion", ""))

    async def _list(self, rv: str) -> dict:
        # Pages only for "0"/"": a list at a specific version stays unpaged so the watch cache
        # answers it instead of the store (upstream does the same to spare etcd on relists).
        paged = rv in ("", "0") and self.page_size > 0
        return await self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                                      field_selector=self.field_selector,
                                      limit=self.page_size if paged else None, resource_version=rv)

    def _replace(self, items: list[dict], rv: str) -> None:
        fresh = {object_key(obj): obj for obj in items}
        previous = self.indexer.items
        changes: list[tuple[str, dict | None, dict]] = []
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None or _changed(old, obj):
                changes.append((key, old, obj))
        gone = [key for key in previous if key not in fresh]
        for key, old, obj in changes:
            self.indexer.upsert(key, obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        for key in gone:
            last = self.indexer.remove(key)
            if last is not None:
                self._notify_delete(DeletedFinalStateUnknown(key, last))
        self._last_rv = rv
        if not self._synced.is_set():
            log.info("informer %s: synced %d objects at resourceVersion %s", self.name, len(fresh), rv)
            self._synced.set()
        elif changes or gone:
            log.info("informer %s: relist at %s: %d changed, %d gone", self.name, rv, len(changes), len(gone))

    async def _watch(self) -> int:
        events = 0
        timeout = random.randrange(MIN_WATCH_TIMEOUT, 2 * MIN_WATCH_TIMEOUT)
        stream = self.client.watch(self.resource, self.namespace, label_selector=self.label_selector,
                                   field_selector=self.field_selector, resource_version=self._last_rv,
                                   allow_watch_bookmarks=True, timeout_seconds=timeout)
        async with stream:
            async for type_, obj in stream:
                events += 1
                rv = (obj.get("metadata") or {}).get("resourceVersion", "")
                if type_ == "BOOKMARK":
                    self._last_rv = rv or self._last_rv
                    continue
                self._apply(type_, obj)
                self._last_rv = rv or self._last_rv
        return events

    def _apply(self, type_: str, obj: dict) -> None:
        key = object_key(obj)
        if type_ in ("ADDED", "MODIFIED"):
            old = self.indexer.upsert(key, obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        elif type_ == "DELETED":
            self.indexer.remove(key)
            self._notify_delete(obj)  # the final state the server sent is the newest we know
        else:
            log.warning("informer %s: ignoring watch event of type %r", self.name, type_)

    async def _resync_loop(self) -> None:
        """Re-deliver every cached object as an update so level-triggered controllers re-check them."""
        while True:
            await self.clock.sleep(self.resync_period)
            if not self.has_synced:
                continue
            for obj in self.indexer.list():
                self._notify_update(obj, obj)


def _changed(old: dict, new: dict) -> bool:
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return old_meta.get("resourceVersion") != new_meta.get("resourceVersion") or old_meta.get("uid") != new_meta.get(
        "uid")


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors) per process, so controllers share caches.

    Ask for every informer and register every handler first, then `start()`: an informer started
    earlier would deliver its initial adds before late handlers existed (they would still get
    them on registration, but in a separate burst).
    """

    def __init__(self, client: APIClient, *, resync_period: float = 0, namespace: str | None = None,
                 clock: Clock = REAL_CLOCK):
        self.client = client
        self.resync_period = resync_period
        self.namespace = namespace
        self.clock = clock
        self._informers: dict[tuple, Informer] = {}

    def informer(self, kind: ResourceRef, namespace: str | None = None, *,
                 label_selector: str | Mapping[str, str] | None = None,
                 field_selector: str | Mapping[str, str] | None = None,
                 indexers: Mapping[str, IndexFunc] | None = None) -> Informer:
        resource = resolve(kind)
        namespace = namespace or self.namespace
        key = (resource, namespace or "", selector_string(label_selector) or "", selector_string(field_selector) or "")
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, resource, namespace, label_selector=label_selector,
                                field_selector=field_selector, resync_period=self.resync_period, clock=self.clock)
            self._informers[key] = informer
        for name, fn in (indexers or {}).items():
            if name not in informer.indexer.indexers:
                informer.add_indexer(name, fn)
        return informer

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(i.wait_for_sync() for i in self._informers.values()))
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
