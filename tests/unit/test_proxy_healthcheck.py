"""healthCheckNodePort listeners: 200 with local endpoints, 503 without, opened and closed with the Services."""

from __future__ import annotations

import socket

import aiohttp

from pyk8s.proxy.healthcheck import ServiceHealthServer, health_checks
from pyk8s.proxy.proxier import NftablesProxier
from pyk8s.proxy.render import ProxyConfig

from test_proxy_render import endpoint, endpoint_slice, service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lb(port: int, **spec) -> dict:
    return service(type="LoadBalancer", node_port=30001, externalTrafficPolicy="Local", healthCheckNodePort=port,
                   **spec)


def test_health_checks_count_ready_local_endpoints():
    slices = {("ns1", "svc1"): [endpoint_slice(endpoint("10.180.0.1"), endpoint("10.180.0.2", node="node-2"),
                                               endpoint("10.180.0.3", ready=False))]}
    assert health_checks([lb(31000)], slices, "node-1")[31000].local_endpoints == 1
    assert health_checks([lb(31000)], {}, "node-1")[31000].local_endpoints == 0
    cluster_policy = service(type="LoadBalancer", node_port=30001, healthCheckNodePort=31000)
    assert health_checks([cluster_policy], slices, "node-1") == {}


async def test_listeners_answer_and_follow_the_services():
    port = free_port()

    class Recorder:
        async def apply(self, text: str) -> None:
            pass

    proxier = NftablesProxier(ProxyConfig(node_name="node-1"), Recorder())
    proxier.health_server = ServiceHealthServer(proxier.healthy, host="127.0.0.1")
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    proxier.on_service_update(lb(port))
    try:
        await proxier.sync_proxy_rules()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.status == 503
                assert await resp.json() == {"service": {"namespace": "ns1", "name": "svc1"},
                                             "localEndpoints": 0, "serviceProxyHealthy": True}
            proxier.on_endpoint_slice_update(endpoint_slice(endpoint("10.180.0.1")))
            await proxier.sync_proxy_rules()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200 and resp.headers["X-Load-Balancing-Endpoint-Weight"] == "1"
            proxier.on_service_update(lb(port), deleted=True)
            await proxier.sync_proxy_rules()
            try:
                async with session.get(f"http://127.0.0.1:{port}/") as resp:
                    raise AssertionError(f"port {port} still answers: {resp.status}")
            except aiohttp.ClientConnectionError:
                pass
    finally:
        await proxier.health_server.close()
