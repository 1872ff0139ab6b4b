"""The apiextensions controllers, in-process as in kube-apiserver: they turn CustomResourceDefinitions
into served resources.

- names: accept a CRD's names unless another CRD of its group uses them (NamesAccepted, with
  PluralConflict/SingularConflict/ShortNamesConflict/KindConflict/ListKindConflict reasons), and
  establish it (Established) once its names are accepted;
- serving: add the CRD's versions to the kinds registry, start their watch cache, and tell the
  server to rebuild discovery and OpenAPI (`on_change`);
- finalizer: a deleted CRD (finalizer `customresourcecleanup.apiextensions.k8s.io`, Terminating
  condition) has every custom resource deleted, waits for their finalizers, then drops its finalizer;
  when it is gone its resource disappears.

The controllers follow the CRD watch cache (level-triggered: every change of a CRD re-runs
`_reconcile`) and write CRDs through the REST storage like any other client.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable

import orjson

from ..api import crd as crds
from ..api.errors import APIError
from ..api.kinds import Kind, Registry
from .rest import REST, DeleteOptions, WriteOptions
from .watchcache import Watcher

log = logging.getLogger("pyk8s.apiserver.crds")

_MANAGER = "kube-apiserver"
_CLEANUP_RETRY_SECONDS = 0.5


def _compile(schema: dict):
    from ..api.structural import CompiledSchema  # the schema engine (CEL compilation happens here, once)

    return CompiledSchema(schema)


def _in_use(requested: str, accepted: str, used: set[str]) -> str:
    """upstream's equalToAcceptedOrFresh: "" when the name may be used, else the reason it may not."""
    if requested == accepted or requested not in used:
        return ""
    return f'"{requested}" is already in use'


def accepted_names(crd: dict, others: list[dict]) -> tuple[dict, str, str]:
    """(acceptedNames, conflict reason or "", message) against the other CRDs of the same group."""
    group = crds.spec(crd).get("group")
    used: dict[str, set[str]] = {"plural": set(), "singular": set(), "shortNames": set(), "kind": set(),
                                 "listKind": set()}
    for other in others:
        if crds.spec(other).get("group") != group:
            continue
        names = (other.get("status") or {}).get("acceptedNames") or {}
        used["plural"].add(names.get("plural", ""))
        used["singular"].add(names.get("singular", ""))
        used["shortNames"].update(names.get("shortNames") or [])
        used["kind"].add(names.get("kind", ""))
        used["listKind"].add(names.get("listKind", ""))
    requested = crds.spec(crd).get("names") or {}
    accepted = dict((crd.get("status") or {}).get("acceptedNames") or {})
    new = dict(accepted)
    reason = message = ""
    for key, conflict in (("plural", "PluralConflict"), ("singular", "SingularConflict")):
        problem = _in_use(requested.get(key, ""), accepted.get(key, ""), used[key])
        if problem:
            reason, message = conflict, problem
        else:
            new[key] = requested.get(key, "")
    short_problem = ""
    for short in requested.get("shortNames") or []:
        if short not in (accepted.get("shortNames") or []) and short in used["shortNames"]:
            short_problem = f'"{short}" is already in use'
    if short_problem:
        reason, message = "ShortNamesConflict", short_problem
    else:
        new["shortNames"] = list(requested.get("shortNames") or [])
    for key, conflict in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        problem = _in_use(requested.get(key, ""), accepted.get(key, ""), used[key])
        if problem:
            reason, message = conflict, problem
        else:
            new[key] = requested.get(key, "")
    new["categories"] = list(requested.get("categories") or [])
    return {k: v for k, v in new.items() if v not in ("", [], None) or k in ("plural", "kind")}, reason, message


class CustomResourceDefinitions:
    def __init__(self, rest: REST, registry: Registry, on_change: Callable[[str], None]):
        self.rest = rest
        self.cache = rest.cache
        self.registry = registry
        self.on_change = on_change
        self.crd_kind = registry.by_kind(crds.GROUP, "v1", "CustomResourceDefinition")
        self._served: dict[str, bytes] = {}  # CRD name -> what its served kinds were built from
        self._resources: dict[str, Kind] = {}  # CRD name -> stored kind of its resource
        self._cleanups: dict[str, asyncio.Task] = {}
        self._task: asyncio.Task | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    async def load(self) -> None:
        """Before the watch cache starts: serve the established CRDs in the store, so their
        objects are cached and their resources answer from the first request (as on restart)."""
        result = await self.rest.store.list(self.crd_kind.storage_prefix)
        for kv in result.items:
            crd = orjson.loads(kv.value)
            if crds.condition_true(crd, "Established"):
                await self._serve(crd, notify=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crd-controllers")

    async def stop(self) -> None:
        for task in [self._task, *self._cleanups.values()]:
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass

    def _subscribe(self) -> Watcher:
        watcher = Watcher(matches=lambda obj: True)
        self.cache.cache_for(self.crd_kind).watchers.add(watcher)
        return watcher

    async def _run(self) -> None:
        while True:
            watcher = self._subscribe()
            for cached in list(self.cache.cache_for(self.crd_kind).objects.values()):
                await self._sync(cached.obj["metadata"]["name"])
            while True:
                item = await watcher.queue.get()
                if item is None:
                    break  # fell behind: subscribe again and resync every CRD
                _, event = item
                event.delivered(self.cache.fanout)
                name = event.cur.obj["metadata"]["name"]
                await self._sync(name)
                if event.type == "DELETED":
                    # Names it held are free now: CRDs of its group that wanted them try again.
                    group = crds.spec(event.cur.obj).get("group")
                    for other in self._others(name):
                        if crds.spec(other).get("group") == group and not crds.condition_true(other,
                                                                                              "NamesAccepted"):
                            await self._sync(other["metadata"]["name"])

    async def _sync(self, name: str) -> None:
        """Level-triggered: act on the CRD as the cache holds it now (gone: stop serving it)."""
        try:
            cached = self.cache.cache_for(self.crd_kind).objects.get(self.crd_kind.key("", name))
            if cached is None:
                self._unserve(name)
            else:
                await self._reconcile(cached.obj)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad CRD must not stop the controllers
            log.exception("reconciling CustomResourceDefinition %s", name)

    # ---- reconcile ---------------------------------------------------------------------

    def _others(self, name: str) -> list[dict]:
        return [c.obj for c in self.cache.cache_for(self.crd_kind).objects.values()
                if c.obj["metadata"]["name"] != name]

    async def _reconcile(self, crd: dict) -> None:
        name = crd["metadata"]["name"]
        if crd["metadata"].get("deletionTimestamp"):
            if crds.condition_true(crd, "Established"):
                await self._serve(crd)
            if crds.CLEANUP_FINALIZER in (crd["metadata"].get("finalizers") or []) and name not in self._cleanups:
                self._cleanups[name] = asyncio.create_task(self._cleanup(name), name=f"crd-cleanup-{name}")
            return
        desired = self._with_names(copy.deepcopy(crd))
        if desired.get("status") != crd.get("status"):
            await self._write_status(name, self._with_names)
            return  # the status write comes back as an event
        if crds.condition_true(crd, "Established"):
            await self._serve(crd)

    def _with_names(self, crd: dict) -> dict:
        names, reason, message = accepted_names(crd, self._others(crd["metadata"]["name"]))
        crd.setdefault("status", {})["acceptedNames"] = names
        if reason:
            crds.set_condition(crd, "NamesAccepted", "False", reason, message)
        else:
            crds.set_condition(crd, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
        if crds.condition_true(crd, "Established") or not reason:
            crds.set_condition(crd, "Established", "True", "InitialNamesAccepted",
                               "the initial names have been accepted")
        else:
            crds.set_condition(crd, "Established", "False", "NotAccepted", "not all names are accepted")
        return crd

    async def _write_status(self, name: str, change: Callable[[dict], dict]) -> dict | None:
        try:
            updated, _ = await self.rest.update(self.crd_kind, "", name, change,
                                                WriteOptions(field_manager=_MANAGER), "status")
            return updated
        except APIError as exc:
            if exc.code != 404:
                raise
            return None

    # ---- serving -----------------------------------------------------------------------

    async def _serve(self, crd: dict, notify: bool = True) -> None:
        name = crd["metadata"]["name"]
        signature = orjson.dumps([crd.get("spec"), (crd.get("status") or {}).get("acceptedNames"),
                                  bool(crd["metadata"].get("deletionTimestamp"))], option=orjson.OPT_SORT_KEYS)
        if self._served.get(name) == signature:
            return
        kinds = crds.kinds(crd, _compile)
        stored = next((k for k in kinds if k.storage_of is None), None)
        if stored is None or not stored.plural or not stored.kind:
            return
        previous = self._resources.get(name)
        if previous is not None and (previous.group, previous.plural) != (stored.group, stored.plural):
            self._unserve(name)
        self.registry.add(kinds)
        await self.cache.add_resource(stored)
        self._served[name], self._resources[name] = signature, stored
        log.info("serving %s (%s)", stored.group_resource, ", ".join(k.version for k in kinds if k.served))
        if notify:
            self.on_change(stored.group)

    def _unserve(self, name: str) -> None:
        stored = self._resources.pop(name, None)
        self._served.pop(name, None)
        if stored is None:
            return
        self.registry.remove(stored.group, stored.plural)
        self.cache.remove_resource(stored)
        log.info("no longer serving %s", stored.group_resource)
        self.on_change(stored.group)

    # ---- deletion ----------------------------------------------------------------------

    async def _cleanup(self, name: str) -> None:
        """upstream's finalizing controller: delete every instance, then release the CRD."""
        try:
            while True:
                stored = self._resources.get(name)
                remaining = await self._delete_instances(name, stored) if stored is not None else 0
                if remaining == 0:
                    break

                def checking(crd: dict, count: int = remaining) -> dict:
                    crds.set_condition(crd, "Terminating", "True", "InstanceDeletionCheck",
                                       f"could not confirm zero CustomResources remaining: {count} remaining")
                    return crd

                if await self._write_status(name, checking) is None:
                    return
                await asyncio.sleep(_CLEANUP_RETRY_SECONDS)

            def completed(crd: dict) -> dict:
                crds.set_condition(crd, "Terminating", "False", "InstanceDeletionCompleted", "removed all instances")
                return crd

            if await self._write_status(name, completed) is None:
                return

            def release(crd: dict) -> dict:
                finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != crds.CLEANUP_FINALIZER]
                crd["metadata"]["finalizers"] = finalizers
                return crd

            try:
                await self.rest.update(self.crd_kind, "", name, release, WriteOptions(field_manager=_MANAGER))
            except APIError as exc:
                if exc.code != 404:
                    raise
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cleaning up CustomResourceDefinition %s", name)
        finally:
            self._cleanups.pop(name, None)

    async def _delete_instances(self, name: str, stored: Kind) -> int:
        """Delete (or mark for deletion) every instance; how many are still there afterwards."""
        first = True

        def in_progress(crd: dict) -> dict:
            crds.set_condition(crd, "Terminating", "True", "InstanceDeletionInProgress",
                               "CustomResource deletion is in progress")
            return crd

        cache = self.cache.cache_for(stored)
        for cached in list(cache.objects.values()):
            if first:
                await self._write_status(name, in_progress)
                first = False
            meta = cached.obj["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                await self.rest.delete(stored, meta.get("namespace", ""), meta["name"], DeleteOptions())
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise
        await self.cache.wait_fresh()
        return len(cache.objects)
