"""`pyk8s proxy`: the service proxy as a process (kube-proxy's nftables mode) with /healthz and /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..client import APIClient, Informer
from .healthcheck import ServiceHealthServer
from .proxier import NftablesProxier, NftApplier
from .render import ProxyConfig

log = logging.getLogger("pyk8s.proxy")

# kube-proxy ignores Services that another proxy implementation claims.
SERVICE_SELECTOR = "!service.kubernetes.io/service-proxy-name"
ENDPOINT_SLICE_SELECTOR = "kubernetes.io/service-name"


@dataclass(frozen=True)
class ProxyOptions:
    kubeconfig: Path
    node_name: str
    cluster_cidr: str = ""
    service_cidr: str = "10.43.0.0/16"
    node_port_addresses: str = "primary"
    masquerade_all: bool = False
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    healthz_bind_address: str = "0.0.0.0:10256"
    metrics_bind_address: str = "127.0.0.1:10249"


def _split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def health_app(proxier: NftablesProxier) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        now = time.time()
        healthy = proxier.healthy(now)
        body = {"lastUpdated": _rfc3339(proxier.last_updated), "currentTime": _rfc3339(now),
                "nodeName": proxier.config.node_name, "nodeHealthy": healthy}
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(_: web.Request) -> web.Response:
        lines = [
            "# HELP kubeproxy_sync_proxy_rules_total Syncs of the proxy rules that wrote or confirmed them.",
            "# TYPE kubeproxy_sync_proxy_rules_total counter",
            f"kubeproxy_sync_proxy_rules_total {proxier.syncs}",
            "# HELP kubeproxy_sync_proxy_rules_failures_total Syncs of the proxy rules that failed.",
            "# TYPE kubeproxy_sync_proxy_rules_failures_total counter",
            f"kubeproxy_sync_proxy_rules_failures_total {proxier.sync_failures}",
            "# HELP kubeproxy_sync_proxy_rules_last_duration_seconds How long the last sync took.",
            "# TYPE kubeproxy_sync_proxy_rules_last_duration_seconds gauge",
            f"kubeproxy_sync_proxy_rules_last_duration_seconds {proxier.last_sync_seconds:.6f}",
            "# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds When the rules were last written.",
            "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge",
            f"kubeproxy_sync_proxy_rules_last_timestamp_seconds {proxier.last_updated:.3f}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def _rfc3339(timestamp: float) -> str:
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _watch(informer: Informer, on_update, on_synced) -> asyncio.Task:
    """Feed an informer's events to the proxier, and tell it once the informer's cache is complete."""
    informer.add_handler(on_add=lambda obj: on_update(obj),
                         on_update=lambda _old, new: on_update(new),
                         on_delete=lambda obj: on_update(obj, True))

    async def announce() -> None:
        await informer.wait_for_sync()
        on_synced()

    return asyncio.get_running_loop().create_task(announce())


async def run_proxy(options: ProxyOptions) -> None:
    """Run until cancelled."""
    config = ProxyConfig(node_name=options.node_name, cluster_cidr=options.cluster_cidr,
                         service_cidr=options.service_cidr, masquerade_all=options.masquerade_all)
    applier = NftApplier()
    proxier = NftablesProxier(config, applier, node_port_setting=options.node_port_addresses,
                              min_sync_period=options.min_sync_period, sync_period=options.sync_period)
    proxier.health_server = ServiceHealthServer(proxier.healthy)
    if options.service_cidr:
        await applier.ensure_local_route(options.service_cidr)
    client = APIClient.from_kubeconfig(str(options.kubeconfig))
    services = Informer(client, "services", label_selector=SERVICE_SELECTOR)
    slices = Informer(client, ("discovery.k8s.io", "v1", "endpointslices"), label_selector=ENDPOINT_SLICE_SELECTOR)
    nodes = Informer(client, "nodes", field_selector={"metadata.name": options.node_name})
    announcers = [_watch(services, proxier.on_service_update, proxier.on_services_synced),
                  _watch(slices, proxier.on_endpoint_slice_update, proxier.on_endpoint_slices_synced)]
    nodes.add_handler(on_add=proxier.on_node_update, on_update=lambda _old, new: proxier.on_node_update(new),
                      on_delete=lambda _obj: proxier.on_node_update(None))
    runners = []
    for address, app in ((options.healthz_bind_address, health_app(proxier)),
                         (options.metrics_bind_address, health_app(proxier))):
        if not address:
            continue
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = _split_host_port(address)
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    if not options.cluster_cidr and not options.masquerade_all:
        log.warning("proxy: no --cluster-cidr: traffic to ClusterIPs from outside the cluster is not masqueraded")
    log.info("proxy: node %s, cluster CIDR %s, service CIDR %s, nftables table ip pyk8s", options.node_name,
             options.cluster_cidr or "(none)", options.service_cidr or "(none)")
    for informer in (services, slices, nodes):
        informer.start()
    try:
        await proxier.runner.loop()
    finally:
        for task in announcers:
            task.cancel()
        for informer in (services, slices, nodes):
            await informer.stop()
        for runner in runners:
            await runner.cleanup()
        await proxier.health_server.close()
        await client.close()
