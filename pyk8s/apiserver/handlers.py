"""HTTP handlers for resource requests: one entry point that dispatches on the verb."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from datetime import UTC, datetime

import jsonpatch
import orjson
from aiohttp import web

from ..api import errors, managed_fields, printers, schemas, strategic_merge
from ..api.errors import APIError
from ..api.kinds import REGISTRY, Kind
from ..api.meta import now_rfc3339
from ..api.selectors import SelectorError, convert_field_selector, parse_field_selector, parse_label_selector
from ..store import CompactedError
from .negotiation import (
    APPLY_PATCH,
    JSON,
    JSON_PATCH,
    MERGE_PATCH,
    PROTOBUF,
    STRATEGIC_PATCH,
    YAML,
    Accept,
    decode_body,
    media_type,
    parse_accept,
    parse_bool,
    read_body,
)
from .requestinfo import RequestInfo
from .rest import REST, DeleteOptions, ListRequest, WriteOptions
from .watchcache import CachedObject, Watcher

log = logging.getLogger("pyk8s.apiserver.handlers")

JSON_HEADERS = {"Content-Type": "application/json"}
_BODY_TYPES = (JSON, YAML, "application/x-yaml", "text/yaml", PROTOBUF, "")
_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH]
BOOKMARK_INTERVAL = 60.0
DEFAULT_WATCH_TIMEOUT = 1800


def json_response(obj: dict | bytes, status: int = 200, headers: dict | None = None) -> web.Response:
    body = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return web.Response(body=body, status=status, headers={**JSON_HEADERS, **(headers or {})})


def _warning_header(warnings: list[str] | None) -> dict | None:
    """RFC 7234 warn-code 299 values, which kubectl prints as `Warning: <text>`."""
    if not warnings:
        return None
    quoted = (w.replace("\\", "\\\\").replace('"', '\\"') for w in dict.fromkeys(warnings))
    return {"Warning": ", ".join(f'299 - "{w}"' for w in quoted)}


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


def _without_nulls(value):
    """What decoding into Go types leaves of nulls that a strategic merge kept: nothing."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _quoted(text: str) -> str:
    """The inside of an HTTP quoted-string (warn-text), as upstream's warning recorder escapes it."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


class ResourceHandler:
    def __init__(self, rest: REST):
        self.rest = rest
        self._verbs = {"get": self._get, "list": self._list, "watch": self._watch, "create": self._create,
                       "update": self._update, "patch": self._patch, "delete": self._delete,
                       "deletecollection": self._delete_collection}

    # ---- entry -------------------------------------------------------------------------

    async def handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        kind = REGISTRY.lookup(info.group, info.version, info.resource)
        if kind is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        if info.namespace and not kind.namespaced:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if info.subresource and kind.subresource(info.subresource) is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if info.subresource:
            return await self._subresource(request, info, kind, info.verb)
        handler = self._verbs.get(info.verb)
        if handler is None:
            raise errors.method_not_allowed()
        return await handler(request, info, kind)

    # ---- helpers -----------------------------------------------------------------------

    def _storage(self, kind: Kind) -> Kind:
        return REGISTRY.storage_kind(kind)

    def _out(self, kind: Kind, obj: dict) -> dict:
        """The stored form as the requested served form (with apiVersion and kind set)."""
        if kind.from_storage is not None:
            obj = kind.from_storage(obj)
        out = {"apiVersion": kind.api_version, "kind": kind.kind}
        out.update(obj)
        out["apiVersion"], out["kind"] = kind.api_version, kind.kind
        return out

    def _out_cached(self, kind: Kind, cached: CachedObject) -> bytes:
        if kind.from_storage is None:
            return cached.raw
        return orjson.dumps(self._out(kind, cached.obj))

    def _in(self, kind: Kind, obj: dict) -> dict:
        if kind.to_storage is not None:
            obj = kind.to_storage(obj)
        storage = self._storage(kind)
        obj["apiVersion"], obj["kind"] = storage.api_version, storage.kind
        return obj

    async def _read_body(self, request: web.Request, kind: Kind, allowed: tuple[str, ...] = _BODY_TYPES) -> tuple[
            bytes, str]:
        raw = await read_body(request)
        ctype = media_type(request.headers.get("Content-Type"))
        if ctype not in allowed:
            raise errors.unsupported_media_type([JSON, YAML, PROTOBUF] if allowed is _BODY_TYPES else list(allowed))
        return raw, ctype

    def _write_options(self, request: web.Request, kind: Kind) -> WriteOptions:
        dry_run = request.query.getall("dryRun", [])
        for value in dry_run:
            if value != "All":
                raise errors.bad_request(f'Invalid dry run value: "{value}". Valid values are: "All"')
        manager = request.query.get("fieldManager", "")
        if len(manager) > 128:
            raise APIError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not '
                                           "be more than 128 bytes")
        # Without a fieldManager, upstream names the writer after its User-Agent's product ("kubectl").
        manager = manager or request.headers.get("User-Agent", "").split("/", 1)[0]
        return WriteOptions(dry_run=bool(dry_run), field_manager=manager, served=kind, user=request.get("user"))

    def _field_validation(self, request: web.Request) -> str:
        value = request.query.get("fieldValidation", "")
        if value == "":
            return "Warn"
        if value not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"fieldValidation parameter unsupported: {value}")
        return value

    def _cannot_handle(self, kind: Kind, detail: str) -> APIError:
        return errors.bad_request(f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                                  f"{detail}")

    def _check_fields(self, request: web.Request, kind: Kind, raw: bytes | None, obj: dict,
                      warnings: list[str]) -> None:
        """Decoding as upstream does: type errors are 400s; unknown and duplicate fields are
        400s under fieldValidation=Strict and Warning headers under Warn."""
        problem = schemas.type_error(kind.group, kind.version, kind.kind, obj)
        if problem:
            raise self._cannot_handle(kind, problem)
        mode = self._field_validation(request)
        if mode == "Ignore":
            return
        if kind.custom is not None:
            # A custom resource's unknown fields are those its schema prunes (the stored object loses them).
            problems = []
            if kind.custom.schema is not None:
                problems = [f'unknown field "{path}"' for path in kind.custom.schema.prune(copy.deepcopy(obj))]
            if raw is not None:
                problems = schemas.duplicate_fields(raw) + problems
        elif raw is not None:
            problems = schemas.strict_errors(kind.group, kind.version, kind.kind, raw)
        else:
            problems = schemas.unknown_fields(kind.group, kind.version, kind.kind, obj)
        if not problems:
            return
        if mode == "Strict":
            raise self._cannot_handle(kind, "strict decoding error: " + ", ".join(problems))
        warnings.extend(problems)

    def _check_type(self, kind: Kind, obj: dict, info: RequestInfo) -> None:
        api_version, obj_kind = obj.get("apiVersion"), obj.get("kind")
        if obj_kind and obj_kind != kind.kind:
            raise errors.bad_request(f"the object provided is unrecognized (must be of type {kind.kind}): "
                                     f"couldn't get version/kind; expected kind {kind.kind}, got {obj_kind}")
        if api_version and api_version != kind.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                     f"API version ({kind.api_version})")
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise errors.bad_request(f"{kind.kind} in version \"{kind.version}\" cannot be handled as a {kind.kind}: "
                                     "json: cannot unmarshal non-object into Go struct field "
                                     f"{kind.kind}.metadata of type v1.ObjectMeta")

    def _respond_object(self, request: web.Request, kind: Kind, obj: dict, status: int = 200,
                        warnings: list[str] | None = None) -> web.Response:
        accept = parse_accept(request.headers.get("Accept"))
        headers = _warning_header(warnings)
        if accept.table:
            return json_response(self._table(kind, [obj], accept, request), status, headers)
        return json_response(self._out(kind, obj), status, headers)

    def _table(self, kind: Kind, stored: list[dict], accept: Accept, request: web.Request,
               list_meta: dict | None = None, with_headers: bool = True) -> dict:
        """A Table of stored-form objects (printers read the stored form of every kind)."""
        include = request.query.get("includeObject", "Metadata")
        if include not in ("None", "Metadata", "Object"):
            raise errors.bad_request(f'includeObject: Unsupported value: "{include}"')
        if kind.custom is not None:
            printer = kind.custom.printer
        else:
            printer = getattr(printers, self._storage(kind).name, printers.DEFAULT)
        table = printers.table(printer, stored, datetime.now(UTC), include_object=include,
                               with_headers=with_headers)
        if include == "Object":
            for row, obj in zip(table["rows"], stored, strict=True):
                row["object"] = self._out(kind, obj)
        table["apiVersion"] = accept.table
        table["metadata"] = list_meta or {}
        return table

    def _partial(self, kind: Kind, obj: dict, version: str) -> dict:
        return {"kind": "PartialObjectMetadata", "apiVersion": version, "metadata": obj["metadata"]}

    # ---- verbs -------------------------------------------------------------------------

    async def _get(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        storage = self._storage(kind)
        cached = await self.rest.get(storage, info.namespace, info.name)
        accept = parse_accept(request.headers.get("Accept"))
        if accept.table:
            return json_response(self._table(kind, [cached.obj], accept, request))
        if accept.partial_metadata:
            return json_response(self._partial(kind, cached.obj, accept.partial_metadata))
        return json_response(self._out_cached(kind, cached))

    def _list_request(self, request: web.Request, info: RequestInfo, kind: Kind) -> ListRequest:
        query = request.query
        try:
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(query.get("fieldSelector", ""))
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        try:
            # Checked against the served kind, renamed to the stored form's field names.
            fields = convert_field_selector(kind, fields)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        limit_raw = query.get("limit", "0") or "0"
        try:
            limit = max(int(limit_raw), 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {limit_raw}") from None
        return ListRequest(namespace=info.namespace, label_selector=labels, field_selector=fields, limit=limit,
                           continue_token=query.get("continue", ""),
                           resource_version=query.get("resourceVersion", ""),
                           resource_version_match=query.get("resourceVersionMatch", ""))

    async def _list(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        storage = self._storage(kind)
        req = self._list_request(request, info, kind)
        if req.resource_version_match and req.resource_version_match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(f"resourceVersionMatch: Unsupported value: \"{req.resource_version_match}\"")
        result = await self.rest.list(storage, req)
        list_meta: dict = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
            if result.remaining is not None:
                list_meta["remainingItemCount"] = result.remaining
        accept = parse_accept(request.headers.get("Accept"))
        if accept.table:
            return json_response(self._table(kind, [c.obj for c in result.items], accept, request, list_meta))
        if accept.partial_metadata:
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": accept.partial_metadata,
                                  "metadata": list_meta,
                                  "items": [self._partial(kind, c.obj, accept.partial_metadata)
                                            for c in result.items]})
        # Splice the cached per-object encodings instead of re-encoding every item.
        head = orjson.dumps({"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": list_meta})
        items = b",".join(self._out_cached(kind, c) for c in result.items)
        return json_response(head[:-1] + b',"items":[' + items + b"]}")

    async def _create(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        if info.name:
            raise errors.method_not_allowed()
        if kind.custom is not None and kind.custom.terminating:
            raise APIError(405, "MethodNotAllowed",
                           f'create is not supported on resources of kind "{kind.group_resource}"',
                           {"group": kind.group, "kind": kind.plural})
        obj, warnings = await self._decoded_object(request, info, kind)
        opts = self._write_options(request, kind)
        created = await self.rest.create(self._storage(kind), info.namespace, self._in(kind, obj), opts)
        return self._respond_object(request, kind, created, 201, warnings + opts.warnings)

    async def _decoded_object(self, request: web.Request, info: RequestInfo, kind: Kind) -> tuple[dict, list[str]]:
        """The request body of a create or update, checked against the URL and the schema."""
        raw, ctype = await self._read_body(request, kind)
        obj = decode_body(raw, ctype, kind.kind, kind.api_version)
        self._check_type(kind, obj, info)
        warnings: list[str] = []
        self._check_fields(request, kind, raw if ctype in (JSON, "") else None, obj, warnings)
        self._check_namespace(kind, info, obj)
        return obj, warnings

    def _check_namespace(self, kind: Kind, info: RequestInfo, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        body_ns = meta.get("namespace", "")
        if kind.namespaced and body_ns and body_ns != info.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        if info.name and meta.get("name") and meta["name"] != info.name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({info.name})")

    async def _update(self, request: web.Request, info: RequestInfo, kind: Kind, subresource: str = "") \
            -> web.Response:
        obj, warnings = await self._decoded_object(request, info, kind)
        opts = self._write_options(request, kind)
        obj.setdefault("metadata", {}).setdefault("name", info.name)
        stored_in = self._in(kind, obj)
        if kind.namespaced:
            stored_in["metadata"]["namespace"] = info.namespace

        def replace(current: dict) -> dict:
            return copy.deepcopy(stored_in)

        updated, created = await self.rest.update(
            self._storage(kind), info.namespace, info.name, replace, opts, subresource,
            allow_create_obj=None)
        return self._respond_object(request, kind, updated, 201 if created else 200, warnings + opts.warnings)

    async def _patch(self, request: web.Request, info: RequestInfo, kind: Kind, subresource: str = "") \
            -> web.Response:
        ctype = media_type(request.headers.get("Content-Type"))
        if ctype not in _PATCH_TYPES:
            raise errors.unsupported_media_type(_PATCH_TYPES)
        if ctype == APPLY_PATCH:
            return await self._apply(request, info, kind, subresource)
        raw, _ = await self._read_body(request, kind, tuple(_PATCH_TYPES))
        try:
            patch = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        if ctype == JSON_PATCH and not isinstance(patch, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if ctype != JSON_PATCH and not isinstance(patch, dict):
            raise errors.bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        opts = self._write_options(request, kind)
        if ctype != JSON_PATCH and self._field_validation(request) == "Strict":
            duplicates = schemas.duplicate_fields(raw)
            if duplicates:
                raise self._cannot_handle(kind, "strict decoding error: " + ", ".join(duplicates))
        warnings: list[str] = []

        def apply(current: dict) -> dict:
            served = self._out(kind, current)
            if ctype == JSON_PATCH:
                try:
                    patched = jsonpatch.JsonPatch(patch).apply(served)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                    raise APIError(422, "Invalid", f"the server rejected our request due to an error in our "
                                                   f"request: {exc}") from None
                except (TypeError, KeyError, ValueError, IndexError) as exc:
                    raise errors.bad_request(f"invalid JSON patch: {exc}") from None
            else:
                # A resourceVersion in a merge patch is a precondition (kubectl diff, apply).
                served["metadata"].pop("resourceVersion", None)
                if ctype == MERGE_PATCH:
                    patched = _merge_patch(served, copy.deepcopy(patch))
                else:
                    patched = self._strategic_merge(kind, served, patch)
            if not isinstance(patched, dict):
                raise errors.bad_request("patch produced a non-object")
            self._check_type(kind, patched, info)
            warnings.clear()
            self._check_fields(request, kind, None, patched, warnings)
            if ctype == JSON_PATCH and patched["metadata"].get("resourceVersion") == current["metadata"].get(
                    "resourceVersion"):
                patched["metadata"].pop("resourceVersion", None)
            return self._in(kind, patched)

        updated, _ = await self.rest.update(self._storage(kind), info.namespace, info.name, apply, opts,
                                            subresource)
        return self._respond_object(request, kind, updated, 200, warnings + opts.warnings)

    async def _apply(self, request: web.Request, info: RequestInfo, kind: Kind, subresource: str) -> web.Response:
        """Server-side apply (application/apply-patch+yaml): create-on-apply, ownership, conflicts."""
        if not request.query.get("fieldManager"):
            raise APIError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                           "is required for apply patch")
        raw, _ = await self._read_body(request, kind, (APPLY_PATCH,))
        config = decode_body(raw, APPLY_PATCH, kind.kind, kind.api_version)
        self._check_type(kind, config, info)
        warnings: list[str] = []
        self._check_fields(request, kind, None, config, warnings)
        self._check_namespace(kind, info, config)
        config.setdefault("apiVersion", kind.api_version)
        config.setdefault("kind", kind.kind)
        opts = self._write_options(request, kind)
        opts.applying = True
        force = parse_bool(request.query.get("force"))

        def apply_to(live: dict | None) -> dict:
            try:
                applied = managed_fields.apply(live, copy.deepcopy(config), manager=opts.field_manager, force=force,
                                               api_version=kind.api_version, subresource=subresource,
                                               now=now_rfc3339(),
                                               meta=kind.custom.field_types if kind.custom is not None else None)
            except managed_fields.ApplyConflict as exc:
                raise exc.api_error() from None
            return self._in(kind, applied)

        def apply_to_current(current: dict) -> dict:
            served = self._out(kind, current)
            served["metadata"].pop("resourceVersion", None)  # apply carries no precondition of its own
            return apply_to(served)

        create_obj = None if subresource else apply_to(None)
        if create_obj is not None:
            create_obj["metadata"].setdefault("name", info.name)
        updated, created = await self.rest.update(self._storage(kind), info.namespace, info.name, apply_to_current,
                                                  opts, subresource, allow_create_obj=create_obj)
        return self._respond_object(request, kind, updated, 201 if created else 200, warnings + opts.warnings)

    @staticmethod
    def _strategic_merge(kind: Kind, served: dict, patch: dict) -> dict:
        meta = strategic_merge.patch_meta(kind.group, kind.version, kind.kind)
        if meta is None:  # kinds without a schema (custom resources) cannot take SMP, as upstream
            raise errors.unsupported_media_type([JSON_PATCH, MERGE_PATCH])
        try:
            merged = strategic_merge.apply_strategic_merge_patch(served, patch, meta)
        except strategic_merge.StrategicMergeError as exc:
            raise exc.api_error() from None
        return _without_nulls(merged)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        body: dict = {}
        raw = await read_body(request) if request.can_read_body else b""
        if raw.strip():
            try:
                body = decode_body(raw, media_type(request.headers.get("Content-Type")), "DeleteOptions")
            except APIError:
                raise errors.bad_request("invalid DeleteOptions body") from None
        query = request.query
        grace = body.get("gracePeriodSeconds")
        if grace is None and query.get("gracePeriodSeconds", "") != "":
            try:
                grace = int(query["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request(f"invalid gracePeriodSeconds: {query['gracePeriodSeconds']}") from None
        policy = body.get("propagationPolicy") or query.get("propagationPolicy") or None
        orphan = body.get("orphanDependents")
        if orphan is None and "orphanDependents" in query:
            orphan = parse_bool(query["orphanDependents"])
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        if policy not in (None, "Orphan", "Foreground", "Background"):
            raise APIError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                                           f'Unsupported value: "{policy}": supported values: "Foreground", '
                                           f'"Background", "Orphan", "nil"')
        dry_run = list(body.get("dryRun") or []) + query.getall("dryRun", [])
        for value in dry_run:
            if value != "All":
                raise errors.bad_request(f'Invalid dry run value: "{value}". Valid values are: "All"')
        return DeleteOptions(grace_period_seconds=grace, propagation_policy=policy,
                             preconditions=body.get("preconditions") or {}, dry_run=bool(dry_run),
                             user=request.get("user"))

    async def _delete(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        options = await self._delete_options(request)
        obj, deleted_now = await self.rest.delete(self._storage(kind), info.namespace, info.name, options)
        if deleted_now and not kind.returns_deleted_object:
            details = {"name": info.name, "group": kind.group, "kind": kind.plural, "uid": obj["metadata"]["uid"]}
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "details": {k: v for k, v in details.items() if v}},
                                 headers=_warning_header(options.warnings))
        return self._respond_object(request, kind, obj, 200, options.warnings)

    async def _delete_collection(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        options = await self._delete_options(request)
        req = self._list_request(request, info, kind)
        storage = self._storage(kind)
        result = await self.rest.list(storage, req)
        deleted = []
        for cached in result.items:
            meta = cached.obj["metadata"]
            try:
                obj, _ = await self.rest.delete(storage, meta.get("namespace", ""), meta["name"], options)
            except APIError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(self._out(kind, obj))
        return json_response({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(self.rest.cache.revision)}, "items": deleted})

    # ---- watch -------------------------------------------------------------------------

    async def _watch(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.StreamResponse:
        storage = self._storage(kind)
        req = self._list_request(request, info, kind)
        if info.name:
            # A watch on /resource/NAME is a watch with a metadata.name field selector.
            req.field_selector = parse_field_selector(f"metadata.name={info.name}")
        query = request.query
        accept = parse_accept(request.headers.get("Accept"))
        bookmarks = parse_bool(query.get("allowWatchBookmarks"))
        send_initial = query.get("sendInitialEvents")
        rv = req.resource_version
        timeout_raw = query.get("timeoutSeconds", "")
        try:
            timeout = int(timeout_raw) if timeout_raw else DEFAULT_WATCH_TIMEOUT * (1 + random.random())
        except ValueError:
            raise errors.bad_request(f"invalid timeoutSeconds: {timeout_raw}") from None
        if send_initial not in (None, ""):
            if parse_bool(send_initial) and not bookmarks:
                raise APIError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: allowWatchBookmarks: '
                                               'Required value: allowWatchBookmarks required when '
                                               'sendInitialEvents is true')
        initial_events = parse_bool(send_initial) if send_initial not in (None, "") else rv in ("", "0")

        cache = self.rest.cache.cache_for(storage)
        if rv in ("", "0") or (initial_events and req.resource_version_match == "NotOlderThan"):
            if rv == "":
                await self.rest.cache.wait_fresh()
            elif rv != "0":
                try:
                    await self.rest.cache.wait_for(int(rv))
                except (ValueError, TimeoutError):
                    raise errors.bad_request(f"invalid resourceVersion: {rv}") from None
        matches = self.rest.watch_matcher(storage, req)
        namespace = info.namespace if storage.namespaced else ""
        watcher = Watcher(matches=matches, namespace=namespace)
        backlog: list[tuple[str, object]] = []
        start_rv = self.rest.cache.revision
        expired: str = ""
        if initial_events:
            prefix = f"{storage.storage_prefix}{namespace}/" if namespace else storage.storage_prefix
            backlog = [("ADDED", c) for c in cache.items(prefix) if matches(c.obj)]
        elif rv not in ("", "0"):
            try:
                since = int(rv)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion: {rv}") from None
            try:
                for event in cache.events_since(since):
                    watcher.offer(event)
            except CompactedError:
                expired = f"too old resource version: {since} ({self.rest.cache.revision})"
        if not expired:
            cache.watchers.add(watcher)

        response = web.StreamResponse(status=200, headers=JSON_HEADERS)
        response.enable_chunked_encoding()
        await response.prepare(request)
        encoder = _WatchEncoder(self, kind, accept, request)
        try:
            if expired:
                status = errors.gone(expired).status()
                await response.write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
                return response
            for type_, cached in backlog:
                await response.write(encoder.object_frame(type_, cached))
            if initial_events and parse_bool(send_initial) and bookmarks:
                await response.write(encoder.bookmark(start_rv, initial_end=True))
            await self._stream(response, watcher, encoder, timeout, bookmarks)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            cache.watchers.discard(watcher)
            watcher.closed = True
        return response

    async def _stream(self, response: web.StreamResponse, watcher: Watcher, encoder: _WatchEncoder,
                      timeout: float, bookmarks: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + BOOKMARK_INTERVAL
        last_rv = self.rest.cache.revision
        while True:
            now = loop.time()
            if now >= deadline:
                return
            wait = min(deadline, next_bookmark) - now if bookmarks else deadline - now
            try:
                item = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
            except TimeoutError:
                if bookmarks and loop.time() >= next_bookmark:
                    await response.write(encoder.bookmark(max(last_rv, self.rest.cache.revision)))
                    next_bookmark = loop.time() + BOOKMARK_INTERVAL
                continue
            if item is None:
                return  # dropped as too slow, or the server is stopping
            events = [item]
            while not watcher.queue.empty():  # write what is already queued in one go
                item = watcher.queue.get_nowait()
                if item is None:
                    break
                events.append(item)
            await response.write(b"".join(encoder.event_frame(type_, event) for type_, event in events))
            for _, event in events:
                event.delivered(self.rest.cache.fanout)
            last_rv = events[-1][1].rv
            if item is None:
                return

    # ---- subresources ------------------------------------------------------------------

    async def _subresource(self, request: web.Request, info: RequestInfo, kind: Kind, verb: str) \
            -> web.Response:
        sub = info.subresource
        if sub in ("status", "finalize", "approval", "ephemeralcontainers"):
            if verb == "get" and sub in ("status", "approval", "ephemeralcontainers"):
                return await self._get(request, info, kind)
            if verb == "update":
                return await self._update(request, info, kind, subresource=sub)
            if verb == "patch" and sub in ("status", "approval", "ephemeralcontainers"):
                return await self._patch(request, info, kind, subresource=sub)
            raise errors.method_not_allowed()
        if sub == "scale":
            from .subresources import scale

            return await scale(self, request, info, kind, verb)
        if sub == "binding" and verb == "create":
            from .subresources import binding

            return await binding(self, request, info, kind)
        if sub == "token" and verb == "create":
            from .tokenrequest import create_token

            return await create_token(self, request, info, kind)
        if sub == "eviction" and verb == "create":
            from .eviction import evict

            return await evict(self, request, info, kind)
        raise errors.method_not_allowed()


class _WatchEncoder:
    """Turns cache events into wire frames: shared pre-encoded bytes for plain JSON watches,
    one-row Tables when kubectl asked for them (headers only in the first frame)."""

    def __init__(self, handler: ResourceHandler, kind: Kind, accept: Accept, request: web.Request):
        self.handler = handler
        self.kind = kind
        self.accept = accept
        self.request = request
        self.first = True
        self.plain = not accept.table and not accept.partial_metadata and kind.from_storage is None

    def _object(self, cached: CachedObject) -> bytes:
        if self.accept.table:
            table = self.handler._table(self.kind, [cached.obj], self.accept,
                                        self.request, {"resourceVersion": str(cached.rv)}, with_headers=self.first)
            self.first = False
            return orjson.dumps(table)
        if self.accept.partial_metadata:
            return orjson.dumps(self.handler._partial(self.kind, cached.obj, self.accept.partial_metadata))
        return self.handler._out_cached(self.kind, cached)

    def object_frame(self, type_: str, cached: CachedObject) -> bytes:
        return b'{"type":"' + type_.encode() + b'","object":' + self._object(cached) + b"}\n"

    def event_frame(self, type_: str, event) -> bytes:
        if self.plain:
            return event.frame(type_)
        cached = event.cur
        if type_ == "DELETED" and event.type != "DELETED" and event.prev is not None:
            obj = copy.deepcopy(event.prev.obj)
            obj["metadata"]["resourceVersion"] = str(event.rv)
            cached = CachedObject(obj, event.rv)
        return self.object_frame(type_, cached)

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.kind.kind, "apiVersion": self.kind.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


