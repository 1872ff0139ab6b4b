"""Service health checks: one HTTP listener per `healthCheckNodePort` (pkg/proxy/healthcheck/service_health.go).

A LoadBalancer Service with `externalTrafficPolicy: Local` gets a health-check node port; the load
balancer asks every node there and sends traffic only to nodes that answer 200, i.e. that have a
local endpoint for it. The body is upstream's JSON; 503 means no local endpoint (or an unhealthy proxy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from .servicemodel import categorize, service_ports, slice_endpoints

log = logging.getLogger("pyk8s.proxy.healthcheck")


@dataclass(frozen=True)
class HealthCheck:
    namespace: str
    name: str
    local_endpoints: int


def health_checks(services: Iterable[Mapping], slices_by_service: Mapping[tuple[str, str], list[Mapping]],
                  node_name: str) -> dict[int, HealthCheck]:
    """healthCheckNodePort → the Service it reports on and its number of ready local endpoints."""
    out = {}
    for service in services:
        spec = service.get("spec") or {}
        port = int(spec.get("healthCheckNodePort") or 0)
        ports = service_ports(service)
        if not port or spec.get("type") != "LoadBalancer" or not ports or not ports[0].external_policy_local:
            continue
        meta = service.get("metadata") or {}
        owner = (meta.get("namespace") or "", meta.get("name") or "")
        merged = slice_endpoints(slices_by_service.get(owner, ()))
        local = {ep.ip for service_port in ports
                 for ep in categorize(service_port, merged.get((service_port.port_name, service_port.protocol), []),
                                      node_name).local}
        out[port] = HealthCheck(owner[0], owner[1], len(local))
    return out


class ServiceHealthServer:
    """Opens and closes the listeners so that exactly the wanted health-check ports answer."""

    def __init__(self, proxy_healthy: Callable[[], bool], host: str = "0.0.0.0"):
        self.proxy_healthy = proxy_healthy
        self.host = host
        self.checks: dict[int, HealthCheck] = {}
        self._runners: dict[int, web.AppRunner] = {}

    def _app(self, port: int) -> web.Application:
        async def answer(_: web.Request) -> web.Response:
            check = self.checks.get(port)
            if check is None:
                return web.Response(status=404)
            healthy = self.proxy_healthy()
            body = {"service": {"namespace": check.namespace, "name": check.name},
                    "localEndpoints": check.local_endpoints, "serviceProxyHealthy": healthy}
            ok = check.local_endpoints > 0 and healthy
            return web.json_response(body, status=200 if ok else 503,
                                     headers={"X-Content-Type-Options": "nosniff",
                                              "X-Load-Balancing-Endpoint-Weight": str(check.local_endpoints)})

        app = web.Application()
        app.router.add_get("/{tail:.*}", answer)
        return app

    async def sync(self, checks: dict[int, HealthCheck]) -> None:
        self.checks = checks
        for port in [p for p in self._runners if p not in checks]:
            await self._runners.pop(port).cleanup()
        for port in checks:
            if port in self._runners:
                continue
            runner = web.AppRunner(self._app(port), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, self.host, port).start()
            except OSError as exc:
                log.warning("proxy: cannot serve the health check of %s/%s on port %d: %s",
                            checks[port].namespace, checks[port].name, port, exc)
                await runner.cleanup()
                continue
            self._runners[port] = runner

    async def close(self) -> None:
        await self.sync({})
