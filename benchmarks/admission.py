"""What the admission chain costs on creates; prints one JSON line per result.

    .venv/bin/python benchmarks/admission.py [--quick]

First, in process (no HTTP, no store, so other load on the machine hardly matters): microseconds of
`admit` + `validate` per create of a pod and of a ConfigMap, with no policy objects and with a
LimitRange, a ResourceQuota, PodSecurity labels and a webhook configuration that does not match.
Then, end to end:
Three servers run side by side and take turns (only one is driven at a time), so the ratios come
from one run on one machine: every admission plugin disabled; the default chain with no policy
objects (the common case: the chain must cost next to nothing); the default chain in a namespace
with a LimitRange, a ResourceQuota and PodSecurity enforce=baseline/warn=restricted labels, where
every pod is defaulted, checked and charged. Pods and ConfigMaps are created with 64 concurrent
requests; each figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop
from harness import ROOT, Server, emit, free_port

sys.path.insert(0, str(ROOT))  # this checkout's pyk8s, the one the servers run
from pyk8s.api.kinds import REGISTRY  # noqa: E402
from pyk8s.apiserver import strategy  # noqa: E402
from pyk8s.apiserver.admission import (  # noqa: E402
    CREATE,
    ORDERED_PLUGINS,
    AdmissionConfig,
    Attributes,
    ClusterState,
    build_chain,
)
from pyk8s.apiserver.watchcache import WatchCache  # noqa: E402


class _LoadedStore:
    """A never-started watch cache needs no store: every object is loaded into it directly."""

    current_revision = 0


def _state(*objects: dict) -> ClusterState:
    cache = WatchCache(_LoadedStore(), REGISTRY.stored_kinds())  # type: ignore[arg-type]
    for rv, obj in enumerate(objects, start=1):
        group, _, version = obj["apiVersion"].rpartition("/")
        kind = REGISTRY.by_kind(group, version, obj["kind"])
        meta = obj["metadata"]
        cache.cache_for(kind).load(kind.key(meta.get("namespace", ""), meta["name"]), obj, rv)
    return ClusterState(cache)


def _policy_objects(namespace: str) -> list[dict]:
    labels = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted"}
    hard = {"pods": "1000000", "requests.cpu": "1000000", "count/configmaps": "1000000"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": namespace},
         "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "1m"}}]}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "quota", "namespace": namespace},
         "spec": {"hard": hard}, "status": {"hard": hard, "used": {k: "0" for k in hard}}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "elsewhere"},
         "webhooks": [{"name": "elsewhere.example.com", "rules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                                                                   "apiVersions": ["v1"], "resources": ["*"]}],
                       "clientConfig": {"url": "https://127.0.0.1:1/"}, "sideEffects": "None",
                       "admissionReviewVersions": ["v1"]}]},
    ]


async def chain_microseconds(count: int) -> None:
    async def write_nothing(namespace: str, name: str, charge) -> None:
        return None  # the charge is a store write, which the end-to-end figures include

    setups = {"no_policies": _state({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
              "with_policies": _state(*_policy_objects("bench"))}
    for setup, state in setups.items():
        chain = build_chain(AdmissionConfig(), state, write_nothing)
        for plural, body in (("pods", pod), ("configmaps", configmap)):
            kind = REGISTRY.lookup("", "v1", plural)
            objects = []
            for i in range(count):
                obj = orjson.loads(body(f"o-{i}"))
                strategy.prepare_for_create(kind, obj, "bench")
                strategy.apply_defaults(kind, obj)
                objects.append(obj)
            started = time.perf_counter()
            for obj in objects:
                attrs = Attributes(kind, CREATE, "bench", obj["metadata"]["name"], obj)
                await chain.admit(attrs)
                await chain.validate(attrs)
            elapsed = time.perf_counter() - started
            emit(benchmark=f"admission_chain_in_process_{plural}", setup=setup, objects=count,
                 microseconds_per_create=round(1e6 * elapsed / count, 1))
        await chain.close()


class ConfiguredServer(Server):
    """The harness's server with extra `pyk8s server` flags."""

    def __init__(self, data_dir: Path, extra: tuple[str, ...]):
        # Not super().__init__(): that would start a second server without the flags.
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(data_dir), "--https-port",
             str(self.port), "--bind-address", "127.0.0.1", "--disable-agent", "--disable-controller-manager",
             "--disable-scheduler", *extra],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "wb"))


def pod(name: str) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                               "limits": {"cpu": "10m", "memory": "16Mi"}}}]}})


def configmap(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                         "data": {"payload": "x" * 200}})


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


async def prepare_policies(session: aiohttp.ClientSession, base: str, namespace: str, pods: int) -> None:
    """A namespace with every namespaced policy in place; the quota's status is written here because no
    controller runs (admission enforces only what status.hard lists)."""
    async def post(path: str, obj: dict) -> dict:
        async with session.post(base + path, data=orjson.dumps(obj),
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()

    labels = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted"}
    await post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": namespace, "labels": labels}})
    ns = f"/api/v1/namespaces/{namespace}"
    await post(f"{ns}/limitranges", {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
                                     "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"},
                                                          "min": {"cpu": "1m"}}]}})
    hard = {"pods": str(pods * 10), "requests.cpu": "1000", "count/configmaps": str(pods * 10)}
    quota = await post(f"{ns}/resourcequotas", {"apiVersion": "v1", "kind": "ResourceQuota",
                                                "metadata": {"name": "quota"}, "spec": {"hard": hard}})
    quota["status"] = {"hard": hard, "used": {"pods": "0", "requests.cpu": "0", "count/configmaps": "0"}}
    async with session.put(f"{base}{ns}/resourcequotas/quota/status", data=orjson.dumps(quota),
                           headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200, await resp.text()


async def main(quick: bool) -> None:
    count = 300 if quick else 1000
    rounds = 3 if quick else 5
    await chain_microseconds(count * 2)
    setups = {"chain_off": ("--disable-admission-plugins", ",".join(ORDERED_PLUGINS)),
              "chain_on_no_policies": (), "chain_on_with_policies": ()}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {name: ConfiguredServer(Path(tmp) / name, extra) for name, extra in setups.items()}
        try:
            for server in servers.values():
                await server.wait_ready()
            sessions = {name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=s.ssl_context(), limit=64))
                        for name, s in servers.items()}
            namespace = {"chain_off": "default", "chain_on_no_policies": "default",
                         "chain_on_with_policies": "policed"}
            await prepare_policies(sessions["chain_on_with_policies"], servers["chain_on_with_policies"].url,
                                   "policed", count * (rounds + 1))
            rates: dict[str, dict[str, list[float]]] = {name: {"pods": [], "configmaps": []} for name in servers}
            names = list(servers)
            for round_ in range(rounds + 1):  # round 0 warms every server up and is not counted
                # Rotate who goes first: load on a shared machine drifts, and drift should not favour one setup.
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    base = f"{servers[name].url}/api/v1/namespaces/{namespace[name]}"
                    pods_rate = await create_many(sessions[name], f"{base}/pods",
                                                  [pod(f"p-{round_}-{i}") for i in range(count)], 64)
                    maps_rate = await create_many(sessions[name], f"{base}/configmaps",
                                                  [configmap(f"c-{round_}-{i}") for i in range(count)], 64)
                    if round_:
                        rates[name]["pods"].append(pods_rate)
                        rates[name]["configmaps"].append(maps_rate)
            for session in sessions.values():
                await session.close()
        finally:
            for server in servers.values():
                server.stop()
    for resource in ("pods", "configmaps"):
        off = statistics.median(rates["chain_off"][resource])
        for name in servers:
            median = statistics.median(rates[name][resource])
            emit(benchmark=f"admission_creates_{resource}", setup=name, objects_per_round=count, rounds=rounds,
                 creates_per_s=round(median), relative_to_chain_off=round(median / off, 3))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    uvloop.run(main(parser.parse_args().quick))
