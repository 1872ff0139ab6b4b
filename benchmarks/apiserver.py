"""Apiserver benchmarks against a real `pyk8s server` process; prints one JSON line per result.

    .venv/bin/python benchmarks/apiserver.py [--quick]

Measures (medians of repeated runs where it matters): single-object GET req/s over HTTPS and
the ratio to a bare aiohttp TLS server returning the same bytes with the same client; sustained
creates/s; p50/p99 create latency at a paced 200 creates/s; LIST of 10,000 pods from the
cache; one write delivered to 1,000 concurrent watchers; idle CPU and RSS of the server.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import uvloop
from harness import Server, emit, free_port

BARE_SERVER = r"""
import ssl, sys
from aiohttp import web
body = open(sys.argv[1], "rb").read()
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
async def handle(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[4]), ssl_context=ctx, print=None, access_log=None)
"""


async def hammer_get(url: str, ctx: ssl.SSLContext, seconds: float, concurrency: int) -> float:
    """Requests per second of GET `url` with `concurrency` keep-alive connections."""
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency)) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def configmap(name: str, size: int = 200) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                         "data": {"payload": "x" * size}})


def pod(name: str) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})


async def create_many(session: aiohttp.ClientSession, url: str, bodies: list[bytes], concurrency: int) -> float:
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                assert resp.status == 201, (resp.status, await resp.text())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - started)


async def paced_create_latencies(session: aiohttp.ClientSession, url: str, rate: float, count: int) -> list[float]:
    latencies: list[float] = []

    async def one(i: int) -> None:
        started = time.perf_counter()
        async with session.post(url, data=configmap(f"paced-{i}"), headers={"Content-Type": "application/json"}) \
                as resp:
            await resp.read()
            assert resp.status == 201
        latencies.append(time.perf_counter() - started)

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


async def watch_fanout(server: Server, ctx: ssl.SSLContext, watchers: int) -> tuple[float, float]:
    """(client, server) seconds for one write to reach `watchers` watchers: from issuing the write until
    every watcher has read its event, and the server's own time from the event reaching its watch cache
    to the last watcher's write (its pyk8s_watch_fanout_last_seconds metric)."""
    url = server.url + "/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=watchers + 10)) as session:
        async with session.get(url) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        received: list[float] = []
        connected = 0
        all_connected = asyncio.Event()

        async def watch() -> None:
            nonlocal connected
            async with session.get(url, params={"watch": "true", "resourceVersion": rv,
                                                "timeoutSeconds": "60"}) as resp:
                connected += 1
                if connected == watchers:
                    all_connected.set()
                await resp.content.readline()
                received.append(time.perf_counter())

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await asyncio.wait_for(all_connected.wait(), 120)
        await asyncio.sleep(1.0)  # let the server register every watcher
        started = time.perf_counter()
        async with session.post(url, data=configmap("fanout"), headers={"Content-Type": "application/json"}) as r:
            await r.read()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        async with session.get(server.url + "/metrics") as r:
            metrics = await r.text()
        server_seconds = next(float(line.split()[1]) for line in metrics.splitlines()
                              if line.startswith("pyk8s_watch_fanout_last_seconds "))
        async with session.delete(url + "/fanout") as r:
            await r.read()
        return max(received) - started, server_seconds


async def main(quick: bool) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="pyk8s-bench-"))
    server = Server(data_dir)
    try:
        await server.wait_ready()
        ctx = server.ssl_context()
        ns_url = server.url + "/api/v1/namespaces/default/configmaps"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64)) as session:
            async with session.post(ns_url, data=configmap("target"), headers={"Content-Type": "application/json"}) \
                    as resp:
                target_body = await resp.read()
        await asyncio.sleep(1)

        # Idle cost first, while nothing else runs.
        proc = psutil.Process(server.proc.pid)
        cpu_before = sum(proc.cpu_times()[:2])
        idle_seconds = 5 if quick else 10
        await asyncio.sleep(idle_seconds)
        emit(benchmark="idle", cpu_percent=round(100 * (sum(proc.cpu_times()[:2]) - cpu_before) / idle_seconds, 2),
             rss_mib=round(proc.memory_info().rss / 2**20, 1))

        # GET req/s vs a bare aiohttp TLS server returning the same bytes, alternating runs.
        body_file = data_dir / "body.json"
        body_file.write_bytes(target_body)
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(body_file),
                                 str(data_dir / "tls" / "serving.crt"), str(data_dir / "tls" / "serving.key"),
                                 str(bare_port)])
        await asyncio.sleep(1.5)
        bare_ctx = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.crt"))
        ours, theirs = [], []
        for _ in range(3 if quick else 5):
            ours.append(await hammer_get(ns_url + "/target", ctx, 3, 32))
            theirs.append(await hammer_get(f"https://127.0.0.1:{bare_port}/x", bare_ctx, 3, 32))
        bare.terminate()
        bare.wait()
        emit(benchmark="get_single_object", req_per_s=round(statistics.median(ours)),
             bare_aiohttp_req_per_s=round(statistics.median(theirs)),
             ratio=round(statistics.median(ours) / statistics.median(theirs), 3))

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=128)) as session:
            count = 2000 if quick else 5000
            rate = await create_many(session, ns_url, [configmap(f"c-{i}") for i in range(count)], 64)
            emit(benchmark="creates_sustained", objects=count, creates_per_s=round(rate))

            latencies = await paced_create_latencies(session, ns_url, 200, 1000 if quick else 2000)
            latencies.sort()
            emit(benchmark="create_latency_at_200_per_s", p50_ms=round(1000 * latencies[len(latencies) // 2], 2),
                 p99_ms=round(1000 * latencies[int(len(latencies) * 0.99)], 2))

            pods = 10_000
            pod_url = server.url + "/api/v1/namespaces/default/pods"
            await create_many(session, pod_url, [pod(f"p-{i}") for i in range(pods)], 64)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                async with session.get(server.url + "/api/v1/pods", params={"resourceVersion": "0"}) as resp:
                    data = await resp.read()
                times.append(time.perf_counter() - started)
            assert len(orjson.loads(data)["items"]) == pods
            emit(benchmark="list_10000_pods_from_cache", median_ms=round(1000 * statistics.median(times), 1),
                 bytes=len(data))

        fanout = [await watch_fanout(server, ctx, 1000) for _ in range(5)]
        emit(benchmark="watch_fanout_1000",
             server_median_ms=round(1000 * statistics.median(f[1] for f in fanout), 1),
             client_observed_median_ms=round(1000 * statistics.median(f[0] for f in fanout), 1))
        emit(benchmark="rss_after_load", rss_mib=round(proc.memory_info().rss / 2**20, 1))
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    uvloop.run(main(parser.parse_args().quick))
