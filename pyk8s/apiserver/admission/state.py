"""Admission's read-only view of cluster objects, served from the watch cache.

Plugins never read the store per request: a namespace, a LimitRange list or a PriorityClass is
an in-memory lookup, so the chain costs next to nothing where no policy objects exist. A name
that is missing is looked up once more after the cache catches up with the store (upstream's
live lookup after a cache miss), so an object created just before is found.
"""

from __future__ import annotations

from ...api.kinds import REGISTRY, Kind
from ..watchcache import WatchCache


class ClusterState:
    def __init__(self, cache: WatchCache):
        self.cache = cache

    @staticmethod
    def kind(group: str, version: str, kind: str) -> Kind:
        found = REGISTRY.by_kind(group, version, kind)
        assert found is not None, f"{group}/{version} {kind} is not served"
        return found

    def peek(self, kind: Kind, namespace: str, name: str) -> dict | None:
        cached = self.cache.cache_for(kind).objects.get(kind.key(namespace, name))
        return cached.obj if cached is not None else None

    async def get(self, kind: Kind, namespace: str, name: str) -> dict | None:
        obj = self.peek(kind, namespace, name)
        if obj is None:
            await self.cache.wait_fresh()
            obj = self.peek(kind, namespace, name)
        return obj

    def has_any(self, kind: Kind) -> bool:
        """Whether any object of the kind exists: the cheap first question of plugins whose policy objects
        (webhook configurations, policy bindings, quotas) most clusters have none of."""
        return bool(self.cache.cache_for(kind).objects)

    def list(self, kind: Kind, namespace: str = "") -> list[dict]:
        prefix = f"{kind.storage_prefix}{namespace}/" if namespace and kind.namespaced else kind.storage_prefix
        return [c.obj for c in self.cache.cache_for(kind).items(prefix)]
