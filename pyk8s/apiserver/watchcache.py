"""The watch cache: every stored object in memory plus a ring of recent events.

One store watch over all of `/registry/` feeds one `ResourceCache` per stored resource.
LISTs with resourceVersion unset/"0" and every watch are served from here. Each event
and each object is encoded once and the same bytes go to every reader; a watcher that
cannot keep up is dropped (its stream ends and the client re-watches), never allowed to
stall the others.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ..api.kinds import Kind
from ..store import CompactedError, Event, Store, WatchOverflowError

log = logging.getLogger("pyk8s.apiserver.watchcache")

# Events kept per resource for watches that resume from a resourceVersion. Like upstream's watch cache, the
# history holds about the last 75 s (a minute's bookmark plus a margin) and never fewer than the 100 newest
# events; HISTORY_LIMIT bounds a burst (an event costs about 25 KB for a pod).
HISTORY_FRESH_SECONDS = 75.0
HISTORY_MIN = 100
HISTORY_LIMIT = 10_000
WATCHER_QUEUE = 1_000  # events buffered per watcher before it is considered too slow


class CachedObject:
    """A stored object as clients see it, with its JSON encoding computed at most once."""

    __slots__ = ("obj", "rv", "_raw")

    def __init__(self, obj: dict, rv: int):
        self.obj = obj
        self.rv = rv
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self.obj)
        return self._raw


class FanoutStats:
    """How long each event took from reaching the cache to being written to its last watcher."""

    def __init__(self) -> None:
        self.count = 0
        self.total_seconds = 0.0
        self.last_seconds = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total_seconds += seconds
        self.last_seconds = seconds


class CacheEvent:
    """One change; `frame(type)` is the newline-terminated watch event, encoded once per type.

    `pending` counts the watchers it was queued for that have not written it yet."""

    __slots__ = ("type", "cur", "prev", "rv", "_frames", "received", "pending")

    def __init__(self, type_: str, cur: CachedObject, prev: CachedObject | None, rv: int):
        self.type = type_
        self.cur = cur
        self.prev = prev
        self.rv = rv
        self._frames: dict[str, bytes] = {}
        self.received = time.perf_counter()
        self.pending = 0

    def delivered(self, stats: FanoutStats) -> None:
        """One watcher wrote this event; the last one records the fan-out time."""
        self.pending -= 1
        if self.pending == 0:
            stats.observe(time.perf_counter() - self.received)

    def frame(self, type_: str) -> bytes:
        frame = self._frames.get(type_)
        if frame is None:
            if type_ == "DELETED" and self.type != "DELETED" and self.prev is not None:
                # The object left a watcher's selector: like upstream, it sees the previous state
                # (the one it matched) stamped with this event's resourceVersion.
                gone = {**self.prev.obj, "metadata": {**self.prev.obj["metadata"], "resourceVersion": str(self.rv)}}
                raw = orjson.dumps(gone)
            else:
                raw = self.cur.raw
            frame = b'{"type":"' + type_.encode() + b'","object":' + raw + b"}\n"
            self._frames[type_] = frame
        return frame


@dataclass(eq=False)
class Watcher:
    """A subscription; `matches(obj)` applies the request's namespace/name/selectors."""

    matches: Callable[[dict], bool]
    namespace: str = ""
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(WATCHER_QUEUE))
    closed: bool = False

    def offer(self, event: CacheEvent) -> None:
        if self.closed:
            return
        if self.namespace and event.cur.obj["metadata"].get("namespace") != self.namespace:
            return
        if event.type == "DELETED":
            cur_match, prev_match = False, self.matches(event.cur.obj)
        else:
            cur_match = self.matches(event.cur.obj)
            prev_match = event.prev is not None and self.matches(event.prev.obj)
        if cur_match:
            type_ = "MODIFIED" if prev_match else "ADDED"
        elif prev_match:
            type_ = "DELETED"
        else:
            return
        event.pending += 1
        try:
            self.queue.put_nowait((type_, event))
        except asyncio.QueueFull:
            log.info("dropping a watcher that fell %d events behind", WATCHER_QUEUE)
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Wake the reader even when the queue is full.
            while True:
                try:
                    self.queue.put_nowait(None)
                    return
                except asyncio.QueueFull:
                    self.queue.get_nowait()


class ResourceCache:
    """All objects of one stored resource, keyed by store key, plus recent history."""

    def __init__(self, kind: Kind):
        self.kind = kind
        self.objects: dict[str, CachedObject] = {}
        self._keys: list[str] = []  # sorted, for prefix lists and stable paging
        self.history: deque[CacheEvent] = deque(maxlen=HISTORY_LIMIT)
        self.oldest_rv = 0  # events with rv > oldest_rv are in history
        self.watchers: set[Watcher] = set()

    def _read(self, obj: dict) -> None:
        """Custom resources are pruned and defaulted with the storage version's schema when read from
        storage, as upstream: objects stored before a default was added get it, fields a schema change
        removed are dropped, and writes through another version keep only what the storage version knows."""
        custom = self.kind.custom
        if custom is not None and custom.schema is not None:
            custom.schema.prune(obj)
            custom.schema.default(obj)

    def apply(self, event: Event) -> None:
        key = event.kv.key
        obj = orjson.loads(event.kv.value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(event.kv.mod_revision)
        self._read(obj)
        cur = CachedObject(obj, event.kv.mod_revision)
        prev = self.objects.get(key)
        if event.type == "DELETED":
            if prev is not None:
                del self.objects[key]
                self._keys.pop(bisect.bisect_left(self._keys, key))
        else:
            if prev is None:
                bisect.insort(self._keys, key)
            self.objects[key] = cur
        cache_event = CacheEvent(event.type, cur, prev, event.kv.mod_revision)
        if len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0].rv
        self.history.append(cache_event)
        self._forget_stale(cache_event.received)
        for watcher in tuple(self.watchers):
            watcher.offer(cache_event)
            if watcher.closed:
                self.watchers.discard(watcher)

    def _forget_stale(self, now: float) -> None:
        """Drop events older than HISTORY_FRESH_SECONDS beyond the HISTORY_MIN newest: a watch resuming from
        before them gets 410 Gone and relists, as upstream."""
        history = self.history
        while len(history) > HISTORY_MIN and now - history[0].received > HISTORY_FRESH_SECONDS:
            self.oldest_rv = history.popleft().rv

    def load(self, key: str, obj: dict, rv: int) -> None:
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        self._read(obj)
        if key not in self.objects:
            bisect.insort(self._keys, key)
        self.objects[key] = CachedObject(obj, rv)

    def items(self, prefix: str, start_after: str = "") -> list[CachedObject]:
        """Objects whose key starts with `prefix`, in key order, after `start_after`."""
        lo = bisect.bisect_right(self._keys, start_after) if start_after > prefix else bisect.bisect_left(
            self._keys, prefix)
        hi = bisect.bisect_left(self._keys, prefix + "\xff")
        objects = self.objects
        return [objects[k] for k in self._keys[lo:hi]]

    def events_since(self, rv: int) -> list[CacheEvent]:
        """History strictly after `rv`; raises CompactedError if it is no longer held."""
        if rv < self.oldest_rv:
            raise CompactedError(rv, self.oldest_rv, self.history[-1].rv if self.history else rv)
        idx = bisect.bisect_right([e.rv for e in self.history], rv) if self.history else 0
        return list(self.history)[idx:]


class WatchCache:
    """Feeds every ResourceCache from one store watch and tracks the revision it has reached."""

    def __init__(self, store: Store, kinds: list[Kind]):
        self.store = store
        self.caches: dict[str, ResourceCache] = {k.storage_prefix: ResourceCache(k) for k in kinds}
        self.revision = 0
        self.start_revision = 0
        self.fanout = FanoutStats()
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task | None = None

    def cache_for(self, kind: Kind) -> ResourceCache:
        return self.caches[kind.storage_prefix]

    async def start(self) -> None:
        result = await self.store.list("/registry/")
        for kv in result.items:
            cache = self._cache_for_key(kv.key)
            if cache is not None:
                cache.load(kv.key, orjson.loads(kv.value), kv.mod_revision)
        self.revision = self.start_revision = result.revision
        for cache in self.caches.values():
            cache.oldest_rv = result.revision
        self._task = asyncio.create_task(self._run(result.revision), name="watch-cache")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for cache in self.caches.values():
            for watcher in cache.watchers:
                watcher.close()
            cache.watchers.clear()

    async def add_resource(self, kind: Kind) -> None:
        """Start caching a resource that appeared at runtime (a custom resource's CRD was established),
        or take its changed definition.

        Events for its keys are applied from now on; objects already stored (a CRD deleted and
        created again before its instances were gone) are loaded from the store."""
        cache = self.caches.get(kind.storage_prefix)
        if cache is not None:
            # Its CRD changed: objects are read again from storage with the (possibly new) schema,
            # except those an event has replaced since the list.
            cache.kind = kind
            if kind.custom is None or kind.custom.schema is None:
                return
            result = await self.store.list(kind.storage_prefix)
            for kv in result.items:
                cached = cache.objects.get(kv.key)
                if cached is not None and cached.rv == kv.mod_revision:
                    cache.load(kv.key, orjson.loads(kv.value), kv.mod_revision)
            return
        cache = ResourceCache(kind)
        cache.oldest_rv = self.revision
        self.caches[kind.storage_prefix] = cache
        result = await self.store.list(kind.storage_prefix)
        for kv in result.items:
            if kv.key not in cache.objects and kv.mod_revision <= cache.oldest_rv:
                cache.load(kv.key, orjson.loads(kv.value), kv.mod_revision)

    def remove_resource(self, kind: Kind) -> None:
        """Stop caching a resource (its CRD is gone); its watchers' streams end."""
        cache = self.caches.pop(kind.storage_prefix, None)
        if cache is None:
            return
        for watcher in cache.watchers:
            watcher.close()
        cache.watchers.clear()

    def _cache_for_key(self, key: str) -> ResourceCache | None:
        # /registry/<group>/<plural>/...
        parts = key.split("/", 4)
        if len(parts) < 4:
            return None
        return self.caches.get(f"/registry/{parts[2]}/{parts[3]}/")

    async def _run(self, from_revision: int) -> None:
        revision = from_revision
        while True:
            try:
                async for event in self.store.watch("/registry/", revision):
                    cache = self._cache_for_key(event.kv.key)
                    if cache is not None:
                        cache.apply(event)
                    revision = self.revision = event.kv.mod_revision
                    async with self._advanced:
                        self._advanced.notify_all()
                log.info("store watch ended")
                return
            except WatchOverflowError:
                # A burst outran us; the store still holds the history, so resume where we were.
                log.warning("store watch overflowed at revision %d; resuming", revision)

    async def wait_for(self, revision: int, timeout: float = 3.0) -> None:
        """Wait until the cache has seen `revision` (a write that already committed)."""
        if self.revision >= revision:
            return
        async with asyncio.timeout(timeout):
            async with self._advanced:
                await self._advanced.wait_for(lambda: self.revision >= revision)

    async def wait_fresh(self) -> None:
        """Wait until the cache reflects every write committed so far (consistent reads)."""
        await self.wait_for(self.store.current_revision)
