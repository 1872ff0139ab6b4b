"""The apiserver's memory under pod churn: does the watch cache's event history stay bounded in time?

    .venv/bin/python benchmarks/watch_cache_memory.py [--pods 500] [--rounds 3]

A bare `pyk8s server`; each round creates `--pods` pods, patches each one's status once and deletes
them all (three events per pod, as a pod's life in miniature). `--rounds` rounds run back to back,
then the server idles past the history's 75 s window, then as many rounds again. One JSON line per
round with the server's RSS. With a time-bounded history the second burst reuses the memory the
first one's events held, so RSS stops growing; a history bounded only by count keeps every event of
both bursts (up to 10,000 per resource) and RSS keeps climbing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import uvloop
from harness import Server, emit

IDLE_SECONDS = 80  # past the watch cache's 75 s history window
CONCURRENCY = 32


def pod(name: str) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "churn"}},
        "spec": {"nodeName": "nowhere", "containers": [{
            "name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})


STATUS = orjson.dumps({"status": {"phase": "Running", "podIP": "10.42.0.9", "conditions": [
    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})


async def run_all(session: aiohttp.ClientSession, requests: list[tuple[str, str, bytes | None, str]]) -> None:
    queue = list(reversed(requests))

    async def worker() -> None:
        while queue:
            method, url, body, content_type = queue.pop()
            async with session.request(method, url, data=body, headers={"Content-Type": content_type}) as resp:
                await resp.read()
                assert resp.status < 300, (method, url, resp.status)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def churn(session: aiohttp.ClientSession, base: str, pods: int, round_: int) -> None:
    names = [f"churn-{round_}-{i}" for i in range(pods)]
    await run_all(session, [("POST", base, pod(name), "application/json") for name in names])
    await run_all(session, [("PATCH", f"{base}/{name}/status", STATUS, "application/merge-patch+json")
                            for name in names])
    await run_all(session, [("DELETE", f"{base}/{name}?gracePeriodSeconds=0", None, "application/json")
                            for name in names])


async def main(pods: int, rounds: int) -> None:
    server = Server(Path(tempfile.mkdtemp(prefix="pyk8s-bench-")))
    try:
        await server.wait_ready()
        proc = psutil.Process(server.proc.pid)
        base = server.url + "/api/v1/namespaces/default/pods"
        rss = lambda: round(proc.memory_info().rss / 2**20, 1)  # noqa: E731
        emit(benchmark="watch_cache_memory", phase="start", rss_mib=rss())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=server.ssl_context())) as session:
            for round_ in range(2 * rounds):
                if round_ == rounds:
                    await asyncio.sleep(IDLE_SECONDS)
                started = time.perf_counter()
                await churn(session, base, pods, round_)
                emit(benchmark="watch_cache_memory", phase="burst 1" if round_ < rounds else "burst 2",
                     round=round_ + 1, pod_events=3 * pods * (round_ + 1),
                     seconds=round(time.perf_counter() - started, 1), rss_mib=rss())
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.pods, args.rounds))
