"""Async Kubernetes API client over aiohttp: typed-by-path, dict-shaped objects.

One `APIClient` per component process: one connection pool (keep-alive), one client-side
token bucket (QPS/burst from the config), retries on 429 and on 5xx with Retry-After (at most
10, as client-go), and every failure raised as `APIStatusError` carrying the server's Status.
Resources are named by a `Kind` from the registry, `(group, version, plural)`,
`(apiVersion, kind)`, a plural ("pods", "deployments.apps") or a kind name ("Deployment").
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ..api.kinds import REGISTRY, Kind
from .config import ClientConfig
from .workqueue import REAL_CLOCK, Clock, TokenBucket

log = logging.getLogger("pyk8s.client.api")

MAX_RETRIES = 10  # client-go's maxRetries for Retry-After answers
DEFAULT_PAGE_SIZE = 500  # client-go pager's default page size
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            406: "NotAcceptable", 409: "Conflict", 410: "Gone", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


# ---- errors ----------------------------------------------------------------------------


class APIStatusError(Exception):
    """The apiserver answered with a failure Status (or a non-Status error, turned into one)."""

    def __init__(self, status: dict, retry_after: float | None = None):
        self.status = status
        self.code: int = int(status.get("code") or 0)
        self.reason: str = status.get("reason") or _REASONS.get(self.code, "Unknown")
        self.message: str = status.get("message") or ""
        self.retry_after = retry_after
        super().__init__(f"{self.code} {self.reason}: {self.message}")

    @property
    def details(self) -> dict:
        return self.status.get("details") or {}


class APIConnectionError(ConnectionError):
    """No answer from the apiserver: refused, reset, timed out or cut mid-body."""


def _is(exc: BaseException, reason: str, code: int) -> bool:
    return isinstance(exc, APIStatusError) and (exc.reason == reason or (exc.code == code and not exc.status.get(
        "reason")))


def is_not_found(exc: BaseException) -> bool:
    return _is(exc, "NotFound", 404)


def is_already_exists(exc: BaseException) -> bool:
    return isinstance(exc, APIStatusError) and exc.reason == "AlreadyExists"


def is_conflict(exc: BaseException) -> bool:
    """An optimistic-concurrency failure (409 Conflict, not AlreadyExists)."""
    return _is(exc, "Conflict", 409)


def is_gone(exc: BaseException) -> bool:
    """410: the requested resourceVersion or continue token is too old (reason Gone or Expired)."""
    return isinstance(exc, APIStatusError) and exc.code == 410


def is_too_large_resource_version(exc: BaseException) -> bool:
    return isinstance(exc, APIStatusError) and exc.code == 504 and any(
        c.get("reason") == "ResourceVersionTooLarge" for c in exc.details.get("causes") or [])


def _status_from_body(code: int, body: bytes, http_reason: str | None) -> dict:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        parsed.setdefault("code", code)
        return parsed
    text = body.decode("utf-8", "replace").strip() if body else ""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": code,
            "reason": _REASONS.get(code, "Unknown"),
            "message": text or http_reason or f"the server responded with status {code}"}


# ---- resources -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: /api[s]/<group>/<version>/[namespaces/<ns>/]<plural>."""

    group: str
    version: str
    plural: str
    kind: str = ""
    namespaced: bool | None = None  # None: unknown (not in the registry); follows the namespace given

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @classmethod
    def of_kind(cls, kind: Kind) -> Resource:
        return cls(kind.group, kind.version, kind.plural, kind.kind, kind.namespaced)

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if namespace and self.namespaced is not False:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        elif self.namespaced and name is not None:
            raise ValueError(f"{self.plural} are namespaced: a namespace is required")
        parts.append(self.plural)
        if name is not None:
            if not name:
                raise ValueError(f"{self.plural}: an empty name is not valid")
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


ResourceRef = Kind | Resource | tuple[str, str, str] | tuple[str, str] | str


def _preferred(kinds: list[Kind]) -> Kind | None:
    if not kinds:
        return None
    order = REGISTRY.group_versions()
    return min(kinds, key=lambda k: order[k.group].index(k.version))


def resolve(ref: ResourceRef) -> Resource:
    """Turn any accepted resource reference into a `Resource`."""
    if isinstance(ref, Resource):
        return ref
    if isinstance(ref, Kind):
        return Resource.of_kind(ref)
    if isinstance(ref, tuple) and len(ref) == 3:
        group, version, plural = ref
        kind = REGISTRY.lookup(group, version, plural)
        return Resource.of_kind(kind) if kind else Resource(group, version, plural)
    if isinstance(ref, tuple) and len(ref) == 2:
        api_version, kind_name = ref
        group, _, version = api_version.rpartition("/")
        kind = REGISTRY.by_kind(group, version, kind_name)
        if kind is None:
            raise ValueError(f"unknown kind {kind_name} in {api_version}; address it as (group, version, plural)")
        return Resource.of_kind(kind)
    if isinstance(ref, str):
        plural, _, group = ref.partition(".")
        by_plural = [k for k in REGISTRY.kinds if k.plural == plural and (k.group == group or not group)]
        if not group:  # a bare plural means the core group first, as kubectl resolves "events"
            by_plural = [k for k in by_plural if k.group == ""] or by_plural
        kind = _preferred(by_plural) or _preferred([k for k in REGISTRY.kinds if k.kind == ref and k.group == ""]) \
            or _preferred([k for k in REGISTRY.kinds if k.kind == ref])
        if kind is None:
            raise ValueError(f"unknown resource {ref!r}")
        return Resource.of_kind(kind)
    raise TypeError(f"cannot address a resource by {ref!r}")


def resource_of(obj: Mapping) -> Resource:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        raise ValueError("object needs apiVersion and kind (or pass resource=)")
    return resolve((api_version, kind))


def selector_string(selector: str | Mapping[str, str] | None) -> str | None:
    """Selectors as strings; a mapping means equality on every entry (matchLabels)."""
    if selector is None or isinstance(selector, str):
        return selector or None
    return ",".join(f"{k}={v}" for k, v in selector.items()) or None


def _delete_options(grace_period_seconds: int | None, propagation_policy: str | None,
                    preconditions: Mapping[str, str] | None, dry_run: bool) -> dict | None:
    body: dict[str, Any] = {}
    if grace_period_seconds is not None:
        body["gracePeriodSeconds"] = grace_period_seconds
    if propagation_policy is not None:
        body["propagationPolicy"] = propagation_policy
    if preconditions:
        body["preconditions"] = dict(preconditions)
    if dry_run:
        body["dryRun"] = ["All"]
    return {"apiVersion": "v1", "kind": "DeleteOptions", **body} if body else None


def _write_params(dry_run: bool, field_manager: str | None, field_validation: str | None = None) -> dict:
    params: dict[str, str] = {}
    if dry_run:
        params["dryRun"] = "All"
    if field_manager:
        params["fieldManager"] = field_manager
    if field_validation:
        params["fieldValidation"] = field_validation
    return params


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(int(value.strip())))
    except ValueError:
        return None  # HTTP-date form: upstream ignores it too


# ---- the client ------------------------------------------------------------------------


class APIClient:
    """Async client for one apiserver; use as `async with APIClient(config) as client:`."""

    def __init__(self, config: ClientConfig, *, session: aiohttp.ClientSession | None = None,
                 clock: Clock = REAL_CLOCK):
        self.config = config
        self.clock = clock
        self._session = session
        self._owns_session = session is None
        self._ssl = config.ssl_context()
        # qps <= 0 turns client-side throttling off (as a negative QPS does in client-go).
        self.rate_limiter = TokenBucket(config.qps, config.burst, clock) if config.qps > 0 else None

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None, **overrides) -> APIClient:
        config = ClientConfig.from_kubeconfig(path, context)
        for key, value in overrides.items():
            setattr(config, key, value)
        return cls(config)

    async def __aenter__(self) -> APIClient:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # HTTP/1.1 pins one connection per open watch, so the pool is unbounded; the token
            # bucket is what bounds request bursts. 90 s idle keep-alive as Go's transport.
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=0,
                                             keepalive_timeout=90)
            headers = {"User-Agent": self.config.user_agent, "Accept": "application/json"}
            self._session = aiohttp.ClientSession(connector=connector, headers=headers,
                                                  auto_decompress=True, trust_env=False,
                                                  timeout=aiohttp.ClientTimeout(total=self.config.timeout,
                                                                                sock_connect=10))
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    # ---- raw requests ------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                    body: Any = None, content_type: str = "application/json",
                    timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientResponse:
        """One request with rate limiting and retries; the caller reads and releases the response."""
        session = self._ensure_session()
        data = body if isinstance(body, (bytes, type(None))) else orjson.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        clean = {k: ("true" if v is True else "false" if v is False else str(v))
                 for k, v in (params or {}).items() if v is not None}
        url = self.config.server + path
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        if self.config.tls_server_name:
            extra["server_hostname"] = self.config.tls_server_name
        attempt = 0
        while True:
            if self.rate_limiter is not None:
                await self.rate_limiter.wait()
            auth = self.config.auth_header()
            if auth:
                headers["Authorization"] = auth
            try:
                resp = await session.request(method, url, params=clean, data=data, headers=headers, **extra)
            except aiohttp.ClientConnectorError as exc:  # refused / unreachable: the caller decides
                raise APIConnectionError(f"{method} {path}: {exc}") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                # A reset or a dropped keep-alive connection: safe to repeat only for reads. A
                # timeout is not repeated: the caller's deadline is already spent.
                resettable = isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
                if resettable and method in ("GET", "HEAD") and attempt < MAX_RETRIES:
                    attempt += 1
                    log.debug("%s %s: %s; retry %d", method, path, exc, attempt)
                    await self.clock.sleep(min(attempt * 0.2, 1.0))
                    continue
                raise APIConnectionError(f"{method} {path}: {exc!r}") from exc
            warning = resp.headers.get("Warning")
            if warning:
                log.warning("%s %s: server warning: %s", method, path, warning)
            if resp.status < 400:
                return resp
            wait = _retry_after(resp.headers)
            retryable = resp.status == 429 or (resp.status >= 500 and wait is not None
                                               and method in IDEMPOTENT_METHODS)
            if retryable and attempt < MAX_RETRIES:
                attempt += 1
                resp.release()
                wait = 1.0 if wait is None else wait
                log.info("%s %s: %d, retry %d in %.1fs", method, path, resp.status, attempt, wait)
                await self.clock.sleep(wait)
                continue
            return resp

    async def _raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status >= 400:
            try:
                body = await resp.read()
            except aiohttp.ClientError:
                body = b""
            finally:
                resp.release()
            raise APIStatusError(_status_from_body(resp.status, body, resp.reason), _retry_after(resp.headers))

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                      content_type: str = "application/json", raw: bool = False) -> Any:
        """Any API call by path; decodes the JSON answer (or returns bytes with raw=True)."""
        try:
            resp = await self._send(method.upper(), path, params=params, body=body, content_type=content_type)
            await self._raise_for_status(resp)
            try:
                payload = await resp.read()
            finally:
                resp.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise APIConnectionError(f"{method} {path}: {exc!r}") from exc
        if raw:
            return payload
        return orjson.loads(payload) if payload else {}

    # ---- reads -------------------------------------------------------------------------

    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None, *,
                  resource_version: str | None = None) -> dict:
        res = resolve(resource)
        obj = await self.request("GET", res.path(namespace, name), params={"resourceVersion": resource_version})
        return _with_type(obj, res)

    async def list(self, resource: ResourceRef, namespace: str | None = None, *,
                   label_selector: str | Mapping[str, str] | None = None,
                   field_selector: str | Mapping[str, str] | None = None,
                   limit: int | None = None, continue_token: str | None = None,
                   resource_version: str | None = None, resource_version_match: str | None = None,
                   all_pages: bool = True) -> dict:
        """A list object. With `all_pages` (the default) `limit` is the page size and every page is
        fetched and joined; without it, exactly one page comes back with its `continue` token."""
        res = resolve(resource)
        path = res.path(namespace)
        params: dict[str, Any] = {"labelSelector": selector_string(label_selector),
                                  "fieldSelector": selector_string(field_selector), "limit": limit or None,
                                  "resourceVersion": resource_version,
                                  "resourceVersionMatch": resource_version_match, "continue": continue_token}
        page = await self.request("GET", path, params=params)
        if not all_pages:
            return _list_with_types(page, res)
        items = list(page.get("items") or [])
        while (token := (page.get("metadata") or {}).get("continue")):
            # The continue token pins the snapshot; resourceVersion may not be sent along with it.
            follow = {**params, "continue": token, "resourceVersion": None, "resourceVersionMatch": None}
            try:
                page = await self.request("GET", path, params=follow)
            except APIStatusError as exc:
                if not is_gone(exc):
                    raise
                # The snapshot was compacted between pages: fall back to one unpaged list.
                log.info("list %s: continue token expired, listing again without paging", path)
                page = await self.request("GET", path, params={**params, "limit": None, "continue": None})
                items = list(page.get("items") or [])
                break
            items.extend(page.get("items") or [])
        page["items"] = items
        meta = page.setdefault("metadata", {})
        meta.pop("continue", None)
        meta.pop("remainingItemCount", None)
        return _list_with_types(page, res)

    async def get_subresource(self, resource: ResourceRef, name: str, subresource: str,
                              namespace: str | None = None) -> dict:
        return await self.request("GET", resolve(resource).path(namespace, name, subresource))

    # ---- writes ------------------------------------------------------------------------

    async def create(self, obj: dict, *, resource: ResourceRef | None = None, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None,
                     field_validation: str | None = None) -> dict:
        res = resolve(resource) if resource is not None else resource_of(obj)
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        if res.namespaced and not ns:
            raise ValueError(f"create {res.plural}: a namespace is required")
        created = await self.request("POST", res.path(ns), body=obj,
                                     params=_write_params(dry_run, field_manager, field_validation))
        return _with_type(created, res)

    async def create_subresource(self, resource: ResourceRef, name: str, subresource: str, body: dict,
                                 namespace: str | None = None, *, dry_run: bool = False,
                                 field_manager: str | None = None) -> dict:
        """POST to a subresource, e.g. pods/binding or pods/eviction."""
        return await self.request("POST", resolve(resource).path(namespace, name, subresource), body=body,
                                  params=_write_params(dry_run, field_manager))

    async def update(self, obj: dict, *, resource: ResourceRef | None = None, subresource: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None,
                     field_validation: str | None = None) -> dict:
        """PUT the whole object; its metadata.resourceVersion makes the write conditional."""
        res = resolve(resource) if resource is not None else resource_of(obj)
        meta = obj.get("metadata") or {}
        path = res.path(meta.get("namespace"), meta.get("name", ""), subresource)
        updated = await self.request("PUT", path, body=obj,
                                     params=_write_params(dry_run, field_manager, field_validation))
        return _with_type(updated, res) if subresource in (None, "status") else updated

    async def update_status(self, obj: dict, **kwargs) -> dict:
        return await self.update(obj, subresource="status", **kwargs)

    async def patch(self, resource: ResourceRef, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None, field_manager: str | None = None,
                    force: bool | None = None, dry_run: bool = False, field_validation: str | None = None) -> dict:
        """patch_type: "merge" (RFC 7386), "json" (RFC 6902 list), "strategic" or "apply" (server-side
        apply; needs field_manager)."""
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"patch_type must be one of {sorted(PATCH_CONTENT_TYPES)}") from None
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        res = resolve(resource)
        params = _write_params(dry_run, field_manager, field_validation)
        if force is not None:
            params["force"] = force
        patched = await self.request("PATCH", res.path(namespace, name, subresource), body=patch,
                                     content_type=content_type, params=params)
        return _with_type(patched, res) if subresource in (None, "status") else patched

    async def patch_status(self, resource: ResourceRef, name: str, patch: Any, namespace: str | None = None,
                           **kwargs) -> dict:
        return await self.patch(resource, name, patch, namespace, subresource="status", **kwargs)

    async def apply(self, obj: dict, *, field_manager: str, force: bool = False, subresource: str | None = None,
                    dry_run: bool = False) -> dict:
        """Server-side apply of a (partial) object: PATCH application/apply-patch+yaml (JSON is YAML)."""
        res = resource_of(obj)
        meta = obj.get("metadata") or {}
        return await self.patch(res, meta.get("name", ""), obj, meta.get("namespace"), patch_type="apply",
                                field_manager=field_manager, force=force, subresource=subresource, dry_run=dry_run)

    async def delete(self, resource: ResourceRef, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: Mapping[str, str] | None = None, dry_run: bool = False) -> dict:
        """Returns what the server answers: the object (still terminating, or deleted for kinds that
        return it) or a Success Status. preconditions: {"uid": ..., "resourceVersion": ...}."""
        res = resolve(resource)
        body = _delete_options(grace_period_seconds, propagation_policy, preconditions, dry_run)
        return await self.request("DELETE", res.path(namespace, name), body=body)

    async def delete_collection(self, resource: ResourceRef, namespace: str | None = None, *,
                                label_selector: str | Mapping[str, str] | None = None,
                                field_selector: str | Mapping[str, str] | None = None,
                                grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                                dry_run: bool = False) -> dict:
        res = resolve(resource)
        body = _delete_options(grace_period_seconds, propagation_policy, None, dry_run)
        params = {"labelSelector": selector_string(label_selector), "fieldSelector": selector_string(field_selector)}
        return await self.request("DELETE", res.path(namespace), params=params, body=body)

    # ---- watch -------------------------------------------------------------------------

    def watch(self, resource: ResourceRef, namespace: str | None = None, *, name: str | None = None,
              label_selector: str | Mapping[str, str] | None = None,
              field_selector: str | Mapping[str, str] | None = None, resource_version: str | None = None,
              resource_version_match: str | None = None, allow_watch_bookmarks: bool = False,
              timeout_seconds: int | None = None, send_initial_events: bool | None = None) -> WatchStream:
        """Stream of (type, object): ADDED, MODIFIED, DELETED, BOOKMARK. An ERROR event raises
        APIStatusError (410 when `resource_version` is too old). Use `async with` to close early."""
        res = resolve(resource)
        fields = selector_string(field_selector)
        if name is not None:
            fields = ",".join(f for f in (f"metadata.name={name}", fields) if f)
        params = {"watch": True, "labelSelector": selector_string(label_selector), "fieldSelector": fields,
                  "resourceVersion": resource_version, "resourceVersionMatch": resource_version_match,
                  "allowWatchBookmarks": True if allow_watch_bookmarks else None,
                  "timeoutSeconds": timeout_seconds, "sendInitialEvents": send_initial_events}
        # No read timeout: a quiet watch is healthy. A whole-stream bound guards against a dead peer.
        total = timeout_seconds + 60 if timeout_seconds else None
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=10, sock_read=None)
        return WatchStream(self, res, res.path(namespace), params, timeout)


class WatchStream:
    """Newline-delimited watch events from one HTTP response."""

    def __init__(self, client: APIClient, resource: Resource, path: str, params: dict,
                 timeout: aiohttp.ClientTimeout):
        self._client = client
        self.resource = resource
        self._path = path
        self._params = params
        self._timeout = timeout
        self._resp: aiohttp.ClientResponse | None = None
        self._buffer = b""
        self._lines: deque[bytes] = deque()
        self._closed = False

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __aiter__(self) -> WatchStream:
        return self

    async def close(self) -> None:
        self._closed = True
        if self._resp is not None:
            self._resp.close()  # drop the connection: a half-read chunked stream cannot be reused
            self._resp = None

    def _finish(self) -> None:
        """The server ended the stream cleanly: the connection can go back to the pool."""
        self._closed = True
        if self._resp is not None:
            self._resp.release()
            self._resp = None

    async def _open(self) -> aiohttp.ClientResponse:
        resp = await self._client._send("GET", self._path, params=self._params, timeout=self._timeout)
        await self._client._raise_for_status(resp)
        self._resp = resp
        return resp

    async def __anext__(self) -> tuple[str, dict]:
        if self._closed:
            raise StopAsyncIteration
        try:
            resp = self._resp or await self._open()
            while not self._lines:
                chunk = await resp.content.readany()
                if not chunk:
                    tail, self._buffer = self._buffer.strip(), b""
                    if not tail:
                        self._finish()
                        raise StopAsyncIteration
                    self._lines.append(tail)
                    break
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(b"\n")
                self._lines.extend(line for line in lines if line.strip())
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self.close()
            raise APIConnectionError(f"watch {self._path}: {exc!r}") from exc
        except StopAsyncIteration:
            raise
        except BaseException:
            await self.close()
            raise
        try:
            event = orjson.loads(self._lines.popleft())
            type_, obj = event["type"], event.get("object") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await self.close()
            raise APIConnectionError(f"watch {self._path}: undecodable event: {exc}") from exc
        if type_ == "ERROR":
            await self.close()
            raise APIStatusError(obj if obj.get("kind") == "Status" else _status_from_body(500, b"", str(obj)))
        return type_, _with_type(obj, self.resource) if type_ != "BOOKMARK" else obj


def _with_type(obj: dict, res: Resource) -> dict:
    """Objects from lists may come without apiVersion/kind; caches and recorders want them."""
    if isinstance(obj, dict) and res.kind and obj.get("kind") in (None, ""):
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
    return obj


def _list_with_types(page: dict, res: Resource) -> dict:
    kind = res.kind or (page.get("kind") or "").removesuffix("List")
    for item in page.get("items") or []:
        if isinstance(item, dict) and not item.get("kind") and kind:
            item["apiVersion"] = page.get("apiVersion") or res.api_version
            item["kind"] = kind
    return page
