"""Watch-based cache of the ConfigMaps and Secrets the node's pods reference (upstream's watch-based object
manager, pkg/kubelet/util/manager/watch_based_manager.go: the kubelet's default change-detection strategy).

Each referenced object gets its own list+watch pinned to its name (`metadata.name=<name>`, the only list/watch
of them the node authorizer grants a node). It starts when the first pod on the node names the object and stops
when the last such pod is forgotten. Mounting a pod's volumes, building its containers' environment and
re-projecting its volumes then read the cache and cost no API requests. An immutable object cannot change: its
watch stops once it has been seen, and the cached copy serves the pods that still reference it.

`get` has the client's signature and errors: a missing object is a 404 `APIStatusError`, an object whose watch
has not listed it yet within `sync_timeout` an `APIConnectionError` (upstream: "failed to sync configmap
cache"). An object no registered pod names is read from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

from ..api.pod_references import pod_configmap_names, pod_secret_names
from ..client import APIClient, APIConnectionError, APIStatusError, Informer

log = logging.getLogger(__name__)

# How long a read waits for a new watch's first list (upstream waits 1 s; pods retry their sync after an error).
SYNC_TIMEOUT = 5.0

Key = tuple[str, str, str]  # (plural, namespace, name)


class ObjectSource(Protocol):
    """Where the kubelet reads ConfigMaps and Secrets: an ObjectCache, or the API client itself."""

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict: ...


class _Watched:
    """One object's single-name informer, and its frozen copy once it turned out immutable."""

    def __init__(self, client: APIClient, key: Key) -> None:
        plural, namespace, name = key
        self.key = key
        self.references = 0
        self.frozen: dict | None = None
        self.informer = Informer(client, plural, namespace, field_selector=f"metadata.name={name}")
        self.informer.add_handler(on_add=self._seen, on_update=lambda _old, new: self._seen(new))
        self.informer.start()
        self._stopping: asyncio.Task | None = None

    def _seen(self, obj: dict) -> None:
        if obj.get("immutable") is True and self.frozen is None:
            self.frozen = obj
            self.stop()

    def current(self) -> dict | None:
        if self.frozen is not None:
            return self.frozen
        return next(iter(self.informer.list()), None)

    async def synced(self, timeout: float) -> bool:
        if self.frozen is not None:
            return True
        return await self.informer.wait_for_sync(timeout)

    def stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self.informer.stop())

    @property
    def stopped(self) -> bool:
        return self._stopping is not None and self._stopping.done()

    async def wait_stopped(self) -> None:
        if self._stopping is not None:
            await self._stopping


class ObjectCache:
    """The ConfigMaps and Secrets named by the pods registered with it, each kept current by a watch."""

    def __init__(self, client: APIClient, *, sync_timeout: float = SYNC_TIMEOUT) -> None:
        self.client = client
        self.sync_timeout = sync_timeout
        self._watched: dict[Key, _Watched] = {}
        self._pod_keys: dict[str, set[Key]] = {}  # pod UID -> what it names
        self._retired: list[_Watched] = []  # watches being stopped

    def register_pod(self, pod: Mapping) -> None:
        """Watch what the pod names (again after a spec change: what it no longer names is released)."""
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        keys = {("configmaps", namespace, name) for name in pod_configmap_names(pod)}
        keys.update(("secrets", namespace, name) for name in pod_secret_names(pod))
        previous = self._pod_keys.get(meta.get("uid") or "", set())
        for key in keys - previous:
            watched = self._watched.get(key)
            if watched is None:
                watched = self._watched[key] = _Watched(self.client, key)
            watched.references += 1
        for key in previous - keys:
            self._release(key)
        self._pod_keys[meta.get("uid") or ""] = keys

    def unregister_pod(self, uid: str) -> None:
        for key in self._pod_keys.pop(uid, set()):
            self._release(key)

    def _release(self, key: Key) -> None:
        watched = self._watched[key]
        watched.references -= 1
        if watched.references == 0:
            del self._watched[key]
            watched.stop()
            self._retired = [w for w in self._retired if not w.stopped]
            self._retired.append(watched)

    @property
    def watched(self) -> set[Key]:
        """The objects watched now."""
        return set(self._watched)

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict:
        """The object as the cache (or, for an object no registered pod names, the API) has it."""
        watched = self._watched.get((plural, namespace or "", name))
        if watched is None:
            return await self.client.get(plural, name, namespace)
        if not await watched.synced(self.sync_timeout):
            raise APIConnectionError(f"failed to sync {plural} cache: timed out waiting for the condition")
        found = watched.current()
        if found is None:
            raise APIStatusError({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                  "reason": "NotFound", "message": f'{plural} "{name}" not found',
                                  "details": {"name": name, "kind": plural}})
        return found

    async def stop(self) -> None:
        """Stop every watch."""
        for watched in self._watched.values():
            watched.stop()
        everything = [*self._watched.values(), *self._retired]
        self._watched.clear()
        self._pod_keys.clear()
        self._retired = []
        for watched in everything:
            with contextlib.suppress(asyncio.CancelledError):
                await watched.wait_stopped()
