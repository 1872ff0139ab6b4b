"""The apiserver: an aiohttp application over a store, serving the Kubernetes API on HTTPS.

Request pipeline (upstream's order): authentication → impersonation → authorization → admission and the
kind's strategy (inside the REST storage) → store. Non-resource paths (discovery,
openapi, version, health, metrics) are answered here.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from ..api import errors
from ..api.errors import APIError
from ..api.kinds import REGISTRY
from ..store import Store
from .admission import AdmissionConfig, ClusterState, build_chain
from .admission.priority import ensure_system_priority_classes
from .allocators import ServiceAllocator
from .audit import Auditor
from .authn import Authenticator, Unauthenticated, UserInfo
from .authn.bootstrap_tokens import BootstrapTokenAuthenticator
from .authn.impersonation import impersonate, wants_impersonation
from .authn.oidc import IssuerDiscovery
from .authn.reviews import AuthenticationReviews
from .authn.serviceaccount import (
    ISSUER,
    LegacyServiceAccountTokenAuthenticator,
    ServiceAccountTokenAuthenticator,
    TokenSigner,
)
from .authz import Attributes, forbidden
from .authz.chain import DEFAULT_MODES, AuthorizerChain
from .authz.escalation import current_request, escalation_hooks
from .authz.reviews import AccessReviews
from .bootstrap import bootstrap
from .crds import CustomResourceDefinitions
from .discovery import Discovery, wants_aggregated
from .handlers import ResourceHandler, json_response
from .metrics import Metrics
from .negotiation import parse_bool
from .node_proxy import KubeletClientConfig, NodeProxy
from .openapi import OpenAPIDocs
from .requestinfo import RequestInfo, parse_request_info
from .rest import REST, WriteOptions
from .tokenrequest import TOKEN_ISSUING, TokenIssuing
from .watchcache import WatchCache

log = logging.getLogger("pyk8s.apiserver")

VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0+pyk8s", "gitCommit": "", "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64",
}


@dataclass
class APIServerConfig:
    bind_address: str = "127.0.0.1"
    secure_port: int = 6443
    advertise_address: str = "127.0.0.1"
    service_cidr: str = "10.43.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    service_account_issuer: str = ISSUER
    # Audiences a token must be meant for to be accepted by this server (upstream --api-audiences,
    # which defaults to the issuer).
    api_audiences: tuple[str, ...] = ()
    # How pods/log, exec, attach, portforward and nodes/proxy reach kubelets (--kubelet-client-certificate...).
    kubelet_client: KubeletClientConfig = field(default_factory=KubeletClientConfig)
    # --authorization-mode: the authorizers after the system:masters check, in order (see authz/chain.py).
    authorization_modes: tuple[str, ...] = DEFAULT_MODES


class APIServer:
    def __init__(self, store: Store, config: APIServerConfig, ssl_context: ssl.SSLContext | None,
                 authenticator: Authenticator, service_account_key: ec.EllipticCurvePrivateKey | None = None,
                 auditor: Auditor | None = None):
        self.store = store
        self.audit = auditor or Auditor()
        self.config = config
        self.ssl_context = ssl_context
        self.cache = WatchCache(store, REGISTRY.stored_kinds())
        self.allocator = ServiceAllocator(config.service_cidr, config.node_port_range)
        self.authorizer = AuthorizerChain(self.cache, config.authorization_modes)
        self.rest = REST(store, self.cache, {"Service": self.allocator, **escalation_hooks(self.authorizer.rbac)})
        self.rest.admission = build_chain(config.admission, ClusterState(self.cache), self._write_quota_status,
                                          self.authorizer.authorize)
        self.resources = ResourceHandler(self.rest)
        self.node_proxy = NodeProxy(self.rest, self.authorizer, config.kubelet_client)
        # Without a persisted key (embedded test servers) tokens live as long as this process.
        self.token_signer = TokenSigner(service_account_key or ec.generate_private_key(ec.SECP256R1()),
                                        config.service_account_issuer)
        api_audiences = config.api_audiences or (config.service_account_issuer,)
        self.authenticator = authenticator
        authenticator.api_audiences = api_audiences
        authenticator.add_token_authenticator(ServiceAccountTokenAuthenticator(
            self.token_signer.public_key, config.service_account_issuer, api_audiences, self._lookup))
        authenticator.add_token_authenticator(LegacyServiceAccountTokenAuthenticator(
            self.token_signer.public_key, api_audiences, self._lookup))
        authenticator.add_token_authenticator(BootstrapTokenAuthenticator(self._lookup), audience_aware=False)
        self.token_issuing = TokenIssuing(self.token_signer, api_audiences)
        self.issuer_discovery: IssuerDiscovery | None = None
        # Kinds answered on create and never stored: (group, plural) -> handler(request, info, user).
        self.create_only = AuthenticationReviews(authenticator).handlers()
        self.create_only.update(AccessReviews(self.authorizer).handlers())
        self.discovery = Discovery(REGISTRY, f"{config.advertise_address}:{config.secure_port}")
        self.openapi = OpenAPIDocs(REGISTRY)
        self.crds = CustomResourceDefinitions(self.rest, REGISTRY, self._api_changed)
        self.metrics = Metrics()
        self.ready = False
        self._runner: web.AppRunner | None = None
        self.port = config.secure_port

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.crds.load()
        self._api_changed("")
        await self.cache.start()
        self.crds.start()
        await self.audit.start()
        services = REGISTRY.by_kind("", "v1", "Service")
        self.allocator.load([c.obj for c in self.cache.cache_for(services).objects.values()])
        app = web.Application(client_max_size=4 * 1024 * 1024, handler_args={"max_field_size": 65536})
        app[TOKEN_ISSUING] = self.token_issuing
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(self.audit.on_response_prepare)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.bind_address, self.config.secure_port,
                           ssl_context=self.ssl_context, reuse_address=True, backlog=1024)
        await site.start()
        sockets = site._server.sockets if site._server else []  # noqa: SLF001 - the bound port for port 0
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self.issuer_discovery = IssuerDiscovery(
            self.token_signer, f"https://{_host(self.config.advertise_address)}:{self.port}/openid/v1/jwks")
        await bootstrap(self.rest, advertise_address=self.config.advertise_address, secure_port=self.port,
                        service_ip=self.allocator.kubernetes_service_ip)
        await ensure_system_priority_classes(self.rest)
        self.ready = True
        log.info("apiserver serving on %s:%d", self.config.bind_address, self.port)

    async def stop(self) -> None:
        self.ready = False
        await self.crds.stop()
        if self.rest.admission is not None:
            await self.rest.admission.close()
        await self.cache.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.node_proxy.close()
        await self.audit.stop()

    def _api_changed(self, group: str) -> None:
        """The served resources changed (a CRD was established, changed or deleted): the next
        discovery and OpenAPI requests see the new set."""
        self.discovery = Discovery(REGISTRY, f"{self.config.advertise_address}:{self.port}")
        self.openapi.refresh(group)

    async def _write_quota_status(self, namespace: str, name: str, charge: Callable[[dict], dict]) -> None:
        """ResourceQuota admission's charge: a compare-and-swap write of the quota's status."""
        quotas = REGISTRY.by_kind("", "v1", "ResourceQuota")
        assert quotas is not None
        await self.rest.update(quotas, namespace, name, charge, WriteOptions(field_manager="kube-apiserver"),
                               "status")

    # ---- request pipeline --------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        info = parse_request_info(request.method, request.path, request.query, parse_bool)
        code = 500
        audit = self.audit.begin(request, info)
        result: web.StreamResponse | None = None
        try:
            try:
                user = await self.authenticator.authenticate(request)
            except Unauthenticated as exc:
                # The reason only; never the credential.
                log.debug("unable to authenticate %s %s: %s", request.method, request.path, exc)
                audit.authenticated(None)
                raise errors.unauthorized() from None
            audit.authenticated(user)
            if wants_impersonation(request.headers):
                user = await impersonate(request, user, self.authorizer)
                audit.impersonated = user
            attrs = Attributes.from_request(user, info)
            decision = self.authorizer.authorize(attrs)
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
            current_request.set(attrs)
            request["user"] = user
            if info.is_resource_request and (info.group, info.resource) in self.create_only:
                response = await self._create_only(request, info, user)
            elif info.is_resource_request and NodeProxy.serves(info):
                response = await self.node_proxy.handle(request, info, user)
            elif info.is_resource_request:
                if info.verb == "watch":
                    self.metrics.watchers[(info.group, info.resource)] += 1
                    try:
                        response = await self.resources.handle(request, info)
                    finally:
                        self.metrics.watchers[(info.group, info.resource)] -= 1
                else:
                    response = await self.resources.handle(request, info)
            else:
                response = await self._non_resource(request, info)
            code = response.status
            result = response
            return response
        except APIError as exc:
            code = exc.code
            result = json_response(exc.status(), exc.code, exc.headers)
            return result
        except web.HTTPException:
            raise
        except Exception as exc:  # the upstream panic filter: a 500 Status, never a dropped connection
            log.exception("internal error serving %s %s", request.method, request.path)
            err = errors.internal(str(exc) or type(exc).__name__)
            result = json_response(err.status(), 500)
            audit.complete(result, panicked=True)
            return result
        finally:
            audit.complete(result)
            current_request.set(None)  # requests on one keep-alive connection share a task (and its context)
            if info.is_resource_request:
                self.metrics.observe(info.verb, info.group, info.resource, info.subresource, code,
                                     time.perf_counter() - started)

    async def _lookup(self, plural: str, namespace: str, name: str) -> dict | None:
        """A core/v1 object as the API serves it now, for the token authenticators."""
        kind = REGISTRY.lookup("", "v1", plural)
        assert kind is not None
        try:
            return (await self.rest.get(kind, namespace, name)).obj
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def _create_only(self, request: web.Request, info: RequestInfo, user: UserInfo) -> web.Response:
        kind = REGISTRY.lookup(info.group, info.version, info.resource)
        if kind is None or (info.namespace and not kind.namespaced):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if info.verb != "create" or info.name or info.subresource:
            raise errors.method_not_allowed()
        return await self.create_only[(info.group, info.resource)](request, info, user)

    async def _non_resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        path = "/" + request.path.strip("/")
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        discovery_document = self.issuer_discovery.response(path) if self.issuer_discovery else None
        if discovery_document is not None:
            return discovery_document
        if path == "/version":
            return json_response(VERSION)
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            if path.startswith("/readyz") and not self.ready:
                return web.Response(status=500, text="[-]apiserver not ready\nreadyz check failed",
                                    content_type="text/plain")
            return web.Response(text="ok", content_type="text/plain")
        if path == "/metrics":
            return web.Response(text=self._metrics_text(), content_type="text/plain",
                                charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})
        if path == "/api":
            media = wants_aggregated(request.headers.get("Accept"))
            if media:
                return self._discovery_response(self.discovery.aggregated(media, core=True), media)
            return self._discovery_response(self.discovery.api_versions)
        if path == "/apis":
            media = wants_aggregated(request.headers.get("Accept"))
            if media:
                return self._discovery_response(self.discovery.aggregated(media, core=False), media)
            return self._discovery_response(self.discovery.group_list)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            body = self.discovery.resource_lists.get(("", parts[1]))
            if body is not None:
                return self._discovery_response(body)
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in self.discovery.group_docs:
            return self._discovery_response(self.discovery.group_docs[parts[1]])
        if parts[0] == "apis" and len(parts) == 3:
            body = self.discovery.resource_lists.get((parts[1], parts[2]))
            if body is not None:
                return self._discovery_response(body)
        if path == "/openapi/v3":
            return json_response(self.openapi.index())
        if path.startswith("/openapi/v3/"):
            doc = self.openapi.document(path[len("/openapi/v3/"):])
            if doc is not None:
                headers = {"Cache-Control": "public, immutable"} if request.query.get("hash") else None
                return json_response(doc, headers=headers)
        raise APIError(404, "NotFound", "the server could not find the requested resource",
                       {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})

    @staticmethod
    def _discovery_response(body: bytes, content_type: str = "application/json") -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type, "Vary": "Accept"})

    def _metrics_text(self) -> str:
        process = psutil.Process()
        with process.oneshot():
            extra = {"process_resident_memory_bytes": process.memory_info().rss,
                     "process_cpu_seconds_total": sum(process.cpu_times()[:2]),
                     "pyk8s_watch_fanout_events_total": self.cache.fanout.count,
                     "pyk8s_watch_fanout_seconds_total": self.cache.fanout.total_seconds,
                     "pyk8s_watch_fanout_last_seconds": self.cache.fanout.last_seconds}
        return self.metrics.render(self.store.current_revision, extra)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
