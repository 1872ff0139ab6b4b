"""`pyk8s dns`: informers → ClusterRecords, the UDP/TCP server, the kube-dns registration, /metrics."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..client import APIClient, DeletedFinalStateUnknown, Informer, object_key
from .forward import Forwarder
from .records import ClusterRecords
from .registration import DNSRegistration
from .server import DNSHandler, DNSServer

log = logging.getLogger("pyk8s.dns")

SYNC_TIMEOUT = 30.0  # serve anyway after this long without a complete cache (CoreDNS waits 5 s)
REGISTRATION_PERIOD = 30.0


@dataclass(frozen=True)
class DNSOptions:
    kubeconfig: Path
    bind_host: str = "127.0.0.1"
    bind_port: int = 53
    cluster_domain: str = "cluster.local"
    cluster_dns_ip: str = "10.43.0.10"
    upstreams: tuple[tuple[str, int], ...] = ()
    publish: bool = True
    advertise_address: str = ""  # the address written into kube-dns's endpoints (default: the bind address)
    node_name: str = ""
    metrics_bind_address: str = "127.0.0.1:9153"
    ttl: int = 5


def published_address(options: DNSOptions) -> str:
    """The address kube-dns's endpoints get: the advertise address, else the bind address.

    The API refuses loopback and unspecified endpoint addresses (and pods could not reach them).
    """
    address = options.advertise_address or options.bind_host
    parsed = ipaddress.ip_address(address)
    if parsed.is_loopback or parsed.is_unspecified:
        raise ValueError(f"{address} cannot be a Service endpoint: give an advertise address that pods reach "
                         "(the node's address), or do not publish the Service")
    return address


def _own_resolvers(upstreams: list[tuple[str, int]], options: DNSOptions) -> list[tuple[str, int]]:
    """Leave ourselves out of the upstream list: forwarding to ourselves would loop."""
    own = {(options.bind_host, options.bind_port), (options.cluster_dns_ip, 53)}
    return [u for u in upstreams if u not in own]


def _follow(informer: Informer, records: ClusterRecords, kind: str) -> None:
    def upsert(obj: dict) -> None:
        records.set_object(kind, object_key(obj), obj)

    def remove(obj: dict | DeletedFinalStateUnknown) -> None:
        records.set_object(kind, obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj), None)

    informer.add_handler(on_add=upsert, on_update=lambda _old, new: upsert(new), on_delete=remove)


def _stop_on_signals(task: asyncio.Task | None) -> None:
    """A signal cancels the server, so that it withdraws its endpoint before it exits."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, task.cancel)
        except (NotImplementedError, RuntimeError, AttributeError):  # not the main thread, or no task
            return


def metrics_app(handler: DNSHandler, forwarder: Forwarder, ready: asyncio.Event) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        lines = [
            "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.",
            "# TYPE coredns_dns_requests_total counter",
            f"coredns_dns_requests_total {handler.queries}",
            "# HELP coredns_cache_hits_total The count of cache hits.",
            "# TYPE coredns_cache_hits_total counter",
            f"coredns_cache_hits_total {forwarder.cache_hits}",
            "# HELP coredns_cache_misses_total The count of cache misses.",
            "# TYPE coredns_cache_misses_total counter",
            f"coredns_cache_misses_total {forwarder.cache_misses}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def readiness(_: web.Request) -> web.Response:
        return web.Response(text="OK" if ready.is_set() else "not synced", status=200 if ready.is_set() else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", readiness)
    return app


async def run_dns(options: DNSOptions) -> None:
    """Serve until cancelled, or until SIGTERM/SIGINT."""
    _stop_on_signals(asyncio.current_task())
    records = ClusterRecords(options.cluster_domain, options.ttl, dns_ip=options.cluster_dns_ip)
    forwarder = Forwarder(_own_resolvers(list(options.upstreams), options))
    handler = DNSHandler(records, forwarder)
    client = APIClient.from_kubeconfig(str(options.kubeconfig))
    informers = {"services": Informer(client, "services"),
                 "endpointslices": Informer(client, ("discovery.k8s.io", "v1", "endpointslices"),
                                            label_selector="kubernetes.io/service-name"),
                 "namespaces": Informer(client, "namespaces")}
    for kind, informer in informers.items():
        _follow(informer, records, kind)
        informer.start()
    ready = asyncio.Event()
    server = DNSServer(handler, options.bind_host, options.bind_port)
    metrics_runner = None
    registration = None
    try:
        # Listen at once, so a taken port fails the start; cluster names get SERVFAIL (clients retry)
        # until the caches are complete, instead of NXDOMAINs that would be cached.
        handler.cluster_synced = False
        await server.start()
        if options.metrics_bind_address:
            host, _, port = options.metrics_bind_address.rpartition(":")
            metrics_runner = web.AppRunner(metrics_app(handler, forwarder, ready), access_log=None)
            await metrics_runner.setup()
            await web.TCPSite(metrics_runner, host.strip("[]") or "0.0.0.0", int(port)).start()
        synced = await asyncio.gather(*(i.wait_for_sync(SYNC_TIMEOUT) for i in informers.values()))
        if not all(synced):
            log.warning("dns: caches not complete after %.0fs; serving what is known", SYNC_TIMEOUT)
        handler.cluster_synced = True
        ready.set()
        if options.publish:
            address = published_address(options)
            metrics_port = int(options.metrics_bind_address.rpartition(":")[2]) \
                if options.metrics_bind_address else None
            registration = DNSRegistration(client, cluster_ip=options.cluster_dns_ip, address=address,
                                           dns_port=server.port, metrics_port=metrics_port,
                                           instance=options.node_name or socket.gethostname(),
                                           node_name=options.node_name)
        while True:
            if registration is not None:
                try:
                    await registration.ensure()
                except Exception:
                    log.exception("dns: could not publish the kube-dns Service; retrying")
            await asyncio.sleep(REGISTRATION_PERIOD)
    finally:
        if registration is not None:
            try:
                await registration.withdraw()
            except Exception:
                log.exception("dns: could not withdraw this server's endpoint")
        await server.stop()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        for informer in informers.values():
            await informer.stop()
        await client.close()
