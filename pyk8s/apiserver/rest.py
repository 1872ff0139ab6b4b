"""Generic REST storage for every kind: create, get, list, update, delete over the store.

Objects here are always in their stored form (see `Registry.storage_kind`); handlers
convert other served forms on the way in and out. Reads come from the watch cache;
writes go to the store with optimistic concurrency and come back through the cache.
"""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from ..api import certificates, crd, errors, managed_fields
from ..api.errors import APIError
from ..api.kinds import Kind
from ..api.meta import metadata, now_rfc3339
from ..api.selectors import FieldSelector, LabelSelector, selectable_fields
from ..store import CompactedError, KeyExistsError, KeyNotFoundError, RevisionMismatchError, Store
from . import strategy
from .admission import CREATE, DELETE, UPDATE, AdmissionChain, Attributes
from .watchcache import CachedObject, WatchCache

log = logging.getLogger("pyk8s.apiserver.rest")

_UPDATE_RETRIES = 16


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    # A server-side apply already set managedFields; other writes record their Update manager.
    applying: bool = False
    # The kind (version) the request named; a custom resource is pruned, defaulted and validated with
    # that version's schema and subresources, as upstream's per-version storage does.
    served: Kind | None = None
    user: object | None = None  # who asks (authn.UserInfo), for admission; None for the server's own writes
    # Filled by admission: `Warning` headers for the response.
    warnings: list[str] = field(default_factory=list)


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions: dict = field(default_factory=dict)
    dry_run: bool = False
    user: object | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListRequest:
    namespace: str = ""
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass
class ListResult:
    items: list[CachedObject]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


class Hooks:
    """Kind-specific side effects that need server state (allocators, admission)."""

    async def before_create(self, kind: Kind, obj: dict, dry_run: bool) -> None: ...

    async def before_update(self, kind: Kind, obj: dict, old: dict, dry_run: bool) -> None: ...

    async def after_delete(self, kind: Kind, obj: dict) -> None: ...


def _strategy_kind(kind: Kind, opts: WriteOptions) -> Kind:
    """The kind whose strategy applies: the requested version of a custom resource, else the stored kind."""
    served = opts.served
    return served if served is not None and served.custom is not None else kind


def _field_types(kind: Kind) -> managed_fields.TypeInfo | None:
    """A custom resource's managedFields follow its CRD schema; None: the built-in kind's definition."""
    return kind.custom.field_types if kind.custom is not None else None


def _encode(obj: dict) -> bytes:
    """Stored bytes: the object without its resourceVersion (the store's revision is the truth)."""
    meta = obj["metadata"]
    rv = meta.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def _decode(value: bytes, revision: int) -> dict:
    obj = orjson.loads(value)
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


def encode_continue(revision: int, key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), str(data["start"])
    except Exception as exc:
        raise errors.bad_request(f"invalid continue token: {exc}") from None


EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list."
)


class REST:
    def __init__(self, store: Store, cache: WatchCache, hooks: dict[str, Hooks],
                 admission: AdmissionChain | None = None):
        self.store = store
        self.cache = cache
        self.hooks = hooks
        self.admission = admission

    def _hooks(self, kind: Kind) -> Hooks | None:
        return self.hooks.get(kind.kind)

    # ---- reads -------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str, name: str) -> CachedObject:
        await self.cache.wait_fresh()
        cached = self.cache.cache_for(kind).objects.get(kind.key(namespace, name))
        if cached is None:
            raise errors.not_found(kind.plural, kind.group, name)
        return cached

    def _matcher(self, kind: Kind, req: ListRequest) -> Callable[[dict], bool]:
        labels, fields = req.label_selector, req.field_selector
        if labels is not None and labels.empty:
            labels = None
        if fields is not None and not fields.requirements:
            fields = None

        def matches(obj: dict) -> bool:
            if labels is not None and not labels.matches(obj["metadata"].get("labels")):
                return False
            if fields is not None and not fields.matches(selectable_fields(kind, obj)):
                return False
            return True

        return matches

    def watch_matcher(self, kind: Kind, req: ListRequest) -> Callable[[dict], bool]:
        return self._matcher(kind, req)

    def _prefix(self, kind: Kind, namespace: str) -> str:
        return f"{kind.storage_prefix}{namespace}/" if namespace and kind.namespaced else kind.storage_prefix

    async def list(self, kind: Kind, req: ListRequest) -> ListResult:
        matches = self._matcher(kind, req)
        prefix = self._prefix(kind, req.namespace)
        start_after = ""
        revision = 0
        if req.continue_token:
            revision, start_after = decode_continue(req.continue_token)
        elif req.resource_version not in ("", "0") and (req.resource_version_match == "Exact" or req.limit):
            try:
                revision = int(req.resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {req.resource_version}") from None
        elif req.resource_version not in ("", "0"):
            try:
                await self.cache.wait_for(int(req.resource_version))
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {req.resource_version}") from None
            except TimeoutError:
                raise APIError(504, "Timeout", f"Too large resource version: {req.resource_version}, current: "
                                               f"{self.cache.revision}", {"causes": [{
                                                   "reason": "ResourceVersionTooLarge",
                                                   "message": "Too large resource version"}],
                                                   "retryAfterSeconds": 1}) from None
        elif req.resource_version == "":
            await self.cache.wait_fresh()

        if revision and revision != self.cache.revision:
            return await self._list_from_store(kind, prefix, revision, start_after, req, matches)

        cache = self.cache.cache_for(kind)
        revision = self.cache.revision
        candidates = cache.items(prefix, start_after)
        if not req.limit:
            return ListResult([c for c in candidates if matches(c.obj)], revision)
        items: list[CachedObject] = []
        for i, cached in enumerate(candidates):
            if matches(cached.obj):
                items.append(cached)
                if len(items) == req.limit:
                    rest = candidates[i + 1:]
                    if not any(matches(c.obj) for c in rest):
                        break
                    last_key = kind.key(cached.obj["metadata"].get("namespace", ""), cached.obj["metadata"]["name"])
                    remaining = None
                    if req.label_selector is None and req.field_selector is None:
                        remaining = len(rest)
                    return ListResult(items, revision, encode_continue(revision, last_key), remaining)
        return ListResult(items, revision)

    async def _list_from_store(self, kind: Kind, prefix: str, revision: int, start_after: str,
                               req: ListRequest, matches: Callable[[dict], bool]) -> ListResult:
        items: list[CachedObject] = []
        batch = max(req.limit, 100) if req.limit else 0
        while True:
            try:
                result = await self.store.list(prefix, revision=revision, limit=batch, start_after=start_after)
            except CompactedError:
                if req.continue_token:
                    raise errors.gone(EXPIRED_CONTINUE) from None
                raise errors.gone(f"too old resource version: {revision} ({self.store.current_revision})") from None
            for kv in result.items:
                start_after = kv.key
                obj = _decode(kv.value, kv.mod_revision)
                if matches(obj):
                    items.append(CachedObject(obj, kv.mod_revision))
                    if req.limit and len(items) == req.limit:
                        return ListResult(items, revision, encode_continue(revision, kv.key))
            if not result.more:
                return ListResult(items, revision)

    # ---- writes ------------------------------------------------------------------------

    async def create(self, kind: Kind, namespace: str, obj: dict, opts: WriteOptions) -> dict:
        meta = metadata(obj)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        requested_name = meta.get("name", "")  # admission sees "" when the name is generated, as upstream
        rules = _strategy_kind(kind, opts)
        strategy.prepare_for_create(rules, obj, namespace)
        if kind.kind == "CertificateSigningRequest":
            certificates.set_requestor(obj, opts.user)
        strategy.apply_defaults(rules, obj)
        if not opts.applying:
            # Before admission, as upstream: fields admission adds belong to no manager.
            managed_fields.record_update(None, obj, manager=opts.field_manager, api_version=rules.api_version,
                                         subresource="", now=now_rfc3339(), meta=_field_types(rules))
        attrs = None
        if self.admission is not None:
            # Mutating admission sees the decoded, defaulted object; whatever it adds is defaulted too.
            attrs = Attributes(kind, CREATE, namespace, requested_name, obj, dry_run=opts.dry_run,
                               user=opts.user, warnings=opts.warnings)
            await self.admission.admit(attrs)
            strategy.apply_defaults(rules, obj)
            if kind.kind == "Pod":
                obj["status"]["qosClass"] = strategy.qos_class(obj.get("spec") or {})
        name = meta.get("name", "")
        errs = strategy.validate_create(rules, obj)
        if errs:
            raise errors.invalid_object(kind.kind, kind.group, name, errs)
        if attrs is not None:
            await self.admission.validate(attrs)
        hooks = self._hooks(kind)
        if hooks:
            await hooks.before_create(kind, obj, opts.dry_run)
        if opts.dry_run:
            return obj
        try:
            kv = await self.store.create(kind.key(namespace, name), _encode(obj))
        except KeyExistsError:
            if hooks:
                await hooks.after_delete(kind, obj)  # release what before_create allocated
            raise errors.already_exists(kind.plural, kind.group, name) from None
        meta["resourceVersion"] = str(kv.mod_revision)
        await self.cache.wait_for(kv.mod_revision)
        return obj

    async def _current(self, kind: Kind, namespace: str, name: str) -> tuple[dict, int] | None:
        kv = await self.store.get(kind.key(namespace, name))
        if kv is None:
            return None
        return _decode(kv.value, kv.mod_revision), kv.mod_revision

    async def update(self, kind: Kind, namespace: str, name: str,
                     transform: Callable[[dict], Awaitable[dict]] | Callable[[dict], dict],
                     opts: WriteOptions, subresource: str = "", *, expected_rv: str = "",
                     allow_create_obj: dict | None = None) -> tuple[dict, bool]:
        """Read-modify-write with optimistic concurrency (upstream GuaranteedUpdate).

        `transform(current)` returns the requested new object (already patched or replaced);
        a resourceVersion inside it (or `expected_rv`) is a precondition. Returns (object,
        created); `allow_create_obj` makes a missing object be created from it (PUT create)."""
        key = kind.key(namespace, name)
        warnings_before = len(opts.warnings)
        for _ in range(_UPDATE_RETRIES):
            del opts.warnings[warnings_before:]  # a retry runs admission again
            current = await self._current(kind, namespace, name)
            if current is None:
                if allow_create_obj is not None and not subresource:
                    return await self.create(kind, namespace, allow_create_obj, opts), True
                raise errors.not_found(kind.plural, kind.group, name)
            old, old_rev = current
            new = transform(copy.deepcopy(old))
            if hasattr(new, "__await__"):
                new = await new
            if not isinstance(new.get("metadata"), dict):
                new["metadata"] = {}
            requested_rv = expected_rv or new["metadata"].get("resourceVersion", "")
            if requested_rv and requested_rv != str(old_rev):
                raise errors.conflict(kind.plural, kind.group, name, errors.OPTIMISTIC_LOCK_MESSAGE)
            attrs = None
            if self.admission is not None:
                # Admission runs again on every retry, against the fresh object (upstream's update transformers).
                # A binding creates pods/binding, so admission sees it as a create of that subresource.
                attrs = Attributes(kind, CREATE if subresource == "binding" else UPDATE, namespace, name, new, old,
                                   subresource, opts.dry_run, opts.user)
                await self.admission.admit(attrs)
            rules = _strategy_kind(kind, opts)
            new = self._prepare_update(rules, new, old, subresource)
            if not opts.applying and subresource in ("", "status", "ephemeralcontainers"):
                managed_fields.record_update(old, new, manager=opts.field_manager, api_version=rules.api_version,
                                             subresource=subresource, now=now_rfc3339(), meta=_field_types(rules))
                managed_fields.keep_unchanged_timestamps(old, new)
            # A binding is the one sanctioned change of a pod's spec.nodeName.
            if subresource == "binding":
                errs = []
            elif subresource == "ephemeralcontainers":
                errs = strategy.validate_ephemeral_containers_update(rules, new, old)
            else:
                errs = strategy.validate_update(rules, new, old)
            if errs:
                raise errors.invalid_object(kind.kind, kind.group, name, errs)
            if attrs is not None:
                attrs.obj = new
                await self.admission.validate(attrs)
                opts.warnings.extend(attrs.warnings)
            hooks = self._hooks(kind)
            if hooks:
                await hooks.before_update(kind, new, old, opts.dry_run)
            new["metadata"]["resourceVersion"] = str(old_rev)
            if new == old and not self.store.needs_rewrite(key):
                return old, False  # a no-op write keeps the resourceVersion, as upstream
            if opts.dry_run:
                return new, False
            meta = new["metadata"]
            try:
                finished = meta.get("deletionTimestamp") and not meta.get("finalizers")
                if finished and not self._waits_for_grace(kind, new):
                    kv = await self.store.delete(key, old_rev)
                    if hooks:
                        await hooks.after_delete(kind, new)
                else:
                    kv = await self.store.update(key, _encode(new), old_rev)
            except RevisionMismatchError:
                if requested_rv:
                    raise errors.conflict(kind.plural, kind.group, name, errors.OPTIMISTIC_LOCK_MESSAGE) from None
                continue
            except KeyNotFoundError:
                raise errors.not_found(kind.plural, kind.group, name) from None
            meta["resourceVersion"] = str(kv.mod_revision)
            await self.cache.wait_for(kv.mod_revision)
            return new, False
        raise errors.conflict(kind.plural, kind.group, name, "too many concurrent updates, please retry")

    def _prepare_update(self, kind: Kind, new: dict, old: dict, subresource: str) -> dict:
        if kind.kind == "CertificateSigningRequest" and subresource == "status":
            return certificates.prepare_for_status_update(new, old)
        if subresource == "approval":
            return certificates.prepare_for_approval_update(new, old)
        if subresource == "status":
            return strategy.prepare_for_status_update(kind, new, old)
        if subresource == "finalize":
            return strategy.prepare_for_finalize(new, old)
        if subresource == "binding":
            return new
        if subresource == "ephemeralcontainers":
            return strategy.prepare_for_ephemeral_containers_update(kind, new, old)
        strategy.prepare_for_update(kind, new, old)
        strategy.apply_defaults(kind, new)
        return new

    @staticmethod
    def _waits_for_grace(kind: Kind, obj: dict) -> bool:
        """A pod being deleted gracefully stays until its kubelet finishes (or grace 0)."""
        if kind.kind == "Pod":
            return bool(obj["metadata"].get("deletionGracePeriodSeconds"))
        if kind.kind == "Namespace":
            return bool((obj.get("spec") or {}).get("finalizers"))
        return False

    async def delete(self, kind: Kind, namespace: str, name: str, options: DeleteOptions) -> tuple[dict, bool]:
        """Returns (object, deleted_now). Objects with finalizers or grace get a deletionTimestamp."""
        key = kind.key(namespace, name)
        warnings_before = len(options.warnings)
        for _ in range(_UPDATE_RETRIES):
            del options.warnings[warnings_before:]  # a retry runs admission again
            current = await self._current(kind, namespace, name)
            if current is None:
                raise errors.not_found(kind.plural, kind.group, name)
            obj, rev = current
            meta = obj["metadata"]
            pre = options.preconditions or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(kind.plural, kind.group, name,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != str(rev):
                raise errors.conflict(kind.plural, kind.group, name,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: {rev}")
            if self.admission is not None:
                attrs = Attributes(kind, DELETE, namespace, name, None, obj, dry_run=options.dry_run,
                                   user=options.user, warnings=options.warnings)
                await self.admission.admit(attrs)
                await self.admission.validate(attrs)
            marked = self._mark_for_deletion(kind, obj, options)
            if options.dry_run:
                return obj, not marked
            try:
                if marked:
                    kv = await self.store.update(key, _encode(obj), rev)
                    meta["resourceVersion"] = str(kv.mod_revision)
                    await self.cache.wait_for(kv.mod_revision)
                    return obj, False
                kv = await self.store.delete(key, rev)
            except RevisionMismatchError:
                continue
            except KeyNotFoundError:
                raise errors.not_found(kind.plural, kind.group, name) from None
            meta["resourceVersion"] = str(kv.mod_revision)
            hooks = self._hooks(kind)
            if hooks:
                await hooks.after_delete(kind, obj)
            await self.cache.wait_for(kv.mod_revision)
            return obj, True
        raise errors.conflict(kind.plural, kind.group, name, "too many concurrent updates, please retry")

    @staticmethod
    def _mark_for_deletion(kind: Kind, obj: dict, options: DeleteOptions) -> bool:
        """Set deletionTimestamp etc. when deletion must wait; False means delete now."""
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        policy = options.propagation_policy
        for wanted, other in (("Orphan", "foregroundDeletion"), ("Foreground", "orphan")):
            if policy == wanted:
                finalizer = "orphan" if wanted == "Orphan" else "foregroundDeletion"
                if finalizer not in finalizers:
                    finalizers.append(finalizer)
                if other in finalizers:
                    finalizers.remove(other)
        grace = 0
        if kind.kind == "Pod":
            grace = strategy.pod_grace_period(obj, options.grace_period_seconds)
        if kind.group == crd.GROUP and kind.kind == "CustomResourceDefinition":
            # Its instances are deleted first (pyk8s.apiserver.crds); the CRD waits, marked Terminating.
            if crd.CLEANUP_FINALIZER not in finalizers:
                finalizers.append(crd.CLEANUP_FINALIZER)
            if not meta.get("deletionTimestamp"):
                crd.set_condition(obj, "Terminating", "True", "InstanceDeletionPending",
                                  "CustomResourceDefinition marked for deletion; CustomResource deletion will begin "
                                  "soon")
        namespace_pending = kind.kind == "Namespace" and bool((obj.get("spec") or {}).get("finalizers"))
        if not finalizers and grace == 0 and not namespace_pending:
            return False
        already = meta.get("deletionTimestamp")
        if already and kind.kind == "Pod" and grace < (meta.get("deletionGracePeriodSeconds") or 0):
            meta["deletionTimestamp"] = strategy.deletion_timestamp(grace)
            meta["deletionGracePeriodSeconds"] = grace
        elif not already:
            meta["deletionTimestamp"] = strategy.deletion_timestamp(grace) if grace else now_rfc3339()
            meta["deletionGracePeriodSeconds"] = grace
            if meta.get("generation"):
                meta["generation"] += 1
        if kind.kind == "Pod" and grace == 0 and not finalizers:
            return False
        meta["finalizers"] = finalizers
        if not finalizers:
            meta.pop("finalizers")
        if kind.kind == "Namespace":
            obj.setdefault("status", {})["phase"] = "Terminating"
        return True
