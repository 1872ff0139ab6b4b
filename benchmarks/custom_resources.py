"""Custom resources through the apiserver, next to a built-in kind of the same size, in one run.

Prints one JSON object per line:
  crd_established  ms from POSTing a CRD to its resource answering (names, establishing, cache, discovery)
  create / get     median and p90 ms of sequential POSTs and GETs, for ConfigMaps and for custom resources
                   (schema with defaults, a CEL rule, status and scale subresources, printer columns), and
                   the custom/built-in ratio of the medians (target: close to 1)

Usage: python benchmarks/custom_resources.py [--objects N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from harness import Server, emit

GROUP = "bench.pyk8s.test"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                    "statusReplicasPath": ".status.replicas"}},
                           "additionalPrinterColumns": [{"name": "Replicas", "type": "integer",
                                                         "jsonPath": ".spec.replicas"}],
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object",
                                        "x-kubernetes-validations": [{"rule": "self.replicas <= 100"}],
                                        "properties": {"replicas": {"type": "integer", "minimum": 0},
                                                       "color": {"type": "string", "default": "blue"},
                                                       "labels": {"type": "object",
                                                                  "additionalProperties": {"type": "string"}}}},
                               "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}}]},
}


def _ms(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 3)}


async def _timed(session: aiohttp.ClientSession, method: str, url: str, body: dict | None = None) -> float:
    started = time.perf_counter()
    async with session.request(method, url, json=body) as resp:
        await resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status}")
    return time.perf_counter() - started


async def run(objects: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            await server.wait_ready()
            connector = aiohttp.TCPConnector(ssl=server.ssl_context(), limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                started = time.perf_counter()
                await _timed(session, "POST", f"{server.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                             CRD)
                widgets = f"{server.url}/apis/{GROUP}/v1/namespaces/default/widgets"
                while True:
                    async with session.get(widgets) as resp:
                        await resp.read()
                        if resp.status == 200:
                            break
                    await asyncio.sleep(0.005)
                emit(benchmark="custom_resources", metric="crd_established",
                     ms=round((time.perf_counter() - started) * 1000, 1))
                configmaps = f"{server.url}/api/v1/namespaces/default/configmaps"
                timings: dict[str, list[float]] = {k: [] for k in ("cm_create", "cr_create", "cm_get", "cr_get")}
                for i in range(objects):  # interleaved, so both kinds see the same machine load
                    labels = {"app": "bench", "index": str(i)}
                    timings["cm_create"].append(await _timed(session, "POST", configmaps, {
                        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"o{i}", "labels": labels},
                        "data": {"replicas": "3", "color": "red"}}))
                    timings["cr_create"].append(await _timed(session, "POST", widgets, {
                        "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": f"o{i}", "labels": labels},
                        "spec": {"replicas": 3, "labels": labels}}))
                for i in range(objects):
                    timings["cm_get"].append(await _timed(session, "GET", f"{configmaps}/o{i}"))
                    timings["cr_get"].append(await _timed(session, "GET", f"{widgets}/o{i}"))
                for verb in ("create", "get"):
                    built_in, custom = _ms(timings[f"cm_{verb}"]), _ms(timings[f"cr_{verb}"])
                    emit(benchmark="custom_resources", metric=verb, objects=objects, configmap=built_in,
                         custom_resource=custom, ratio=round(custom["median_ms"] / built_in["median_ms"], 2))
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=300)
    asyncio.run(run(parser.parse_args().objects))


if __name__ == "__main__":
    main()
