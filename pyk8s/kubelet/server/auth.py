"""Who may call the kubelet's API, decided like upstream's kubelet in webhook mode.

Authentication: a client certificate the TLS layer verified against the cluster CA (user = subject CN, groups =
O values), else a bearer token checked with a TokenReview. Authorization: a SubjectAccessReview for the
`nodes` resource named after this node, with the subresource picked from the path (upstream's
NodeAuthorizerAttributesGetter): /stats -> stats, /metrics -> metrics, /logs -> log, everything else -> proxy; the
verb comes from the HTTP method. Both answers are cached for a while, as the webhook authenticator/authorizer
do (2 minutes for tokens, 5 minutes allowed / 30 seconds denied for access decisions).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiohttp import web

from ...client import APIClient

log = logging.getLogger("pyk8s.kubelet.server.auth")

TOKEN_CACHE_SECONDS = 120.0
ALLOWED_CACHE_SECONDS = 300.0
DENIED_CACHE_SECONDS = 30.0
_CACHE_LIMIT = 4096

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Caller:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


def request_attributes(method: str, path: str, node_name: str) -> dict:
    """The SubjectAccessReview resourceAttributes for a request to `path`."""
    subresource = "proxy"
    for prefix, name in (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/checkpoint",
                                                                                            "checkpoint")):
        if path == prefix or path.startswith(prefix + "/"):
            subresource = name
            break
    return {"verb": _VERBS.get(method, method.lower()), "group": "", "version": "v1", "resource": "nodes",
            "subresource": subresource, "name": node_name}


def certificate_caller(peercert: dict | None) -> Caller | None:
    """The identity in a verified client certificate, as kube-apiserver's x509 authenticator reads it."""
    if not peercert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                name = value
            elif attr == "organizationName":
                groups.append(value)
    if not name:
        return None
    return Caller(name, groups=(*groups, "system:authenticated"))


class _TTLCache:
    def __init__(self) -> None:
        self._entries: dict = {}

    def get(self, key):
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    def put(self, key, value, ttl: float) -> None:
        if len(self._entries) >= _CACHE_LIMIT:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[1] >= now}
            if len(self._entries) >= _CACHE_LIMIT:
                self._entries.clear()
        self._entries[key] = (value, time.monotonic() + ttl)


class KubeletAuth:
    def __init__(self, client: APIClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._tokens = _TTLCache()
        self._decisions = _TTLCache()

    async def check(self, request: web.Request) -> Caller:
        """The caller, or an HTTP 401/403 in upstream's words."""
        caller = await self.authenticate(request)
        if caller is None:
            raise web.HTTPUnauthorized(text="Unauthorized")
        attributes = request_attributes(request.method, request.path, self.node_name)
        if not await self.authorize(caller, attributes):
            raise web.HTTPForbidden(text=f"Forbidden (user={caller.name}, verb={attributes['verb']}, "
                                         f"resource={attributes['resource']}, "
                                         f"subresource={attributes['subresource']})")
        return caller

    async def authenticate(self, request: web.Request) -> Caller | None:
        transport = request.transport
        caller = certificate_caller(transport.get_extra_info("peercert") if transport is not None else None)
        if caller is not None:
            return caller
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return await self._review_token(token)

    async def _review_token(self, token: str) -> Caller | None:
        cached = self._tokens.get(token)
        if cached is not None:
            return cached or None
        review = await self.client.create({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                           "spec": {"token": token}})
        status = review.get("status") or {}
        caller: Caller | None = None
        if status.get("authenticated"):
            user = status.get("user") or {}
            extra = tuple(sorted((k, tuple(v)) for k, v in (user.get("extra") or {}).items()))
            caller = Caller(user.get("username", ""), user.get("uid", ""), tuple(user.get("groups") or ()), extra)
        else:
            log.debug("token rejected by the apiserver: %s", status.get("error", ""))
        self._tokens.put(token, caller or False, TOKEN_CACHE_SECONDS)
        return caller

    async def authorize(self, caller: Caller, attributes: dict) -> bool:
        key = (caller, tuple(sorted(attributes.items())))
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        spec: dict = {"user": caller.name, "groups": list(caller.groups), "resourceAttributes": attributes}
        if caller.uid:
            spec["uid"] = caller.uid
        if caller.extra:
            spec["extra"] = {k: list(v) for k, v in caller.extra}
        review = await self.client.create({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                           "spec": spec})
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, ALLOWED_CACHE_SECONDS if allowed else DENIED_CACHE_SECONDS)
        return allowed
