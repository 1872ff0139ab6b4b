"""RBAC benchmarks; prints one JSON line per result.

    .venv/bin/python benchmarks/rbac.py [--quick]

1. The authorizer's decision cache, in process, over the bootstrap policy plus 1,000 RoleBindings in
   100 namespaces: median microseconds of a repeated decision (a cache hit) and of a first decision
   after an RBAC change (index rebuild plus evaluation).
2. End to end against a real `pyk8s server`: single-object GET req/s and create/s for a user that
   RBAC authorizes through a RoleBinding, against the same workload by the admin (system:masters,
   allowed before RBAC is consulted). Each round runs both identities, in alternating order, and the
   medians are compared, so the ratio comes from one run on one machine. Besides throughput, the
   server process's CPU time per request is compared: on a shared, noisy machine it is the steadier
   measure of what RBAC costs.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop
from harness import ROOT, Server, cpu_seconds, emit

sys.path.insert(0, str(ROOT))

from pyk8s.api.kinds import REGISTRY  # noqa: E402
from pyk8s.apiserver.authn import UserInfo  # noqa: E402
from pyk8s.apiserver.authz import Attributes  # noqa: E402
from pyk8s.apiserver.authz import bootstrap_policy as policy  # noqa: E402
from pyk8s.apiserver.authz.rbac import RBACAuthorizer  # noqa: E402
from pyk8s.apiserver.watchcache import WatchCache  # noqa: E402
from pyk8s.server.pki import PKI  # noqa: E402
from pyk8s.store import Event, KeyValue  # noqa: E402

RBAC = "rbac.authorization.k8s.io"
NAMESPACE = "bench"


def _feed(cache: WatchCache, objects: list[dict], rv: int) -> int:
    for obj in objects:
        kind = REGISTRY.by_kind(RBAC, "v1", obj["kind"])
        meta = obj["metadata"]
        rv += 1
        kv = KeyValue(kind.key(meta.get("namespace", ""), meta["name"]), orjson.dumps(obj), rv, rv)
        cache.cache_for(kind).apply(Event("ADDED", kv, None))
    return rv


def decision_cache(quick: bool) -> None:
    kinds = [REGISTRY.by_kind(RBAC, "v1", k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    cache = WatchCache(store=None, kinds=kinds)  # type: ignore[arg-type]
    objects = policy.all_cluster_roles() + policy.all_cluster_role_bindings()
    for i in range(1000):
        binding = policy.role_binding(f"ns-{i % 100}", f"rb-{i}", [policy.user(f"user-{i}")])
        binding["roleRef"] = {"apiGroup": RBAC, "kind": "ClusterRole", "name": "system:aggregate-to-edit"}
        objects.append(binding)
    rv = _feed(cache, objects, 0)
    authorizer = RBACAuthorizer(cache)
    user = UserInfo("user-7", groups=("system:authenticated",))
    attrs = Attributes(user, "create", "ns-7", "", "configmaps")
    assert authorizer.authorize(attrs).allowed
    batches, calls = (10, 2000) if quick else (50, 10000)
    hits = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(calls):
            authorizer.authorize(attrs)
        hits.append((time.perf_counter() - started) / calls)
    misses = []
    for i in range(20 if quick else 100):
        rv = _feed(cache, [policy.cluster_role(f"churn-{i}", [])], rv)
        started = time.perf_counter()
        authorizer.authorize(attrs)
        misses.append(time.perf_counter() - started)
    emit(benchmark="rbac_decision_cache_hit", median_us=round(1e6 * statistics.median(hits), 2),
         bindings=1000 + len(policy.all_cluster_role_bindings()))
    emit(benchmark="rbac_decision_after_rbac_change", median_us=round(1e6 * statistics.median(misses), 1))


def _user_context(server: Server, name: str) -> ssl.SSLContext:
    tls = server.data_dir / "tls"
    cert, key = PKI.at(tls).issue_client_cert(name, [])
    (server.data_dir / f"{name}.crt").write_bytes(cert)
    (server.data_dir / f"{name}.key").write_bytes(key)
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(server.data_dir / f"{name}.crt"), str(server.data_dir / f"{name}.key"))
    return ctx


async def _post(session: aiohttp.ClientSession, url: str, obj: dict) -> None:
    async with session.post(url, data=orjson.dumps(obj), headers={"Content-Type": "application/json"}) as resp:
        body = await resp.read()
        assert resp.status == 201, (resp.status, body)


async def _grant(server: Server) -> None:
    """A namespace and a RoleBinding giving bench-user full access to its configmaps."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=server.ssl_context())) as admin:
        await _post(admin, server.url + "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        rbac = f"{server.url}/apis/{RBAC}/v1/namespaces/{NAMESPACE}"
        await _post(admin, rbac + "/roles", policy.namespaced_role(NAMESPACE, "configmap-writer", [
            policy.rule(("get", "list", "create", "delete"), ("",), ("configmaps",))]))
        await _post(admin, rbac + "/rolebindings",
                    policy.role_binding(NAMESPACE, "bench-user", [policy.user("bench-user")], role="configmap-writer"))
        await _post(admin, f"{server.url}/api/v1/namespaces/{NAMESPACE}/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {"a": "b"}})


async def _get_burst(url: str, ctx: ssl.SSLContext, seconds: float, concurrency: int) -> tuple[int, float]:
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
        return count, time.perf_counter() - started


async def _create_burst(url: str, ctx: ssl.SSLContext, prefix: str, count: int,
                        concurrency: int) -> tuple[int, float]:
    names = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency)) as session:
        async def worker() -> None:
            for i in names:
                await _post(session, url, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": f"{prefix}-{i:05d}"}, "data": {"k": "v" * 100}})

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count, time.perf_counter() - started


class Samples:
    """Per identity: requests/s and the server's CPU microseconds per request, one sample per burst."""

    def __init__(self) -> None:
        self.rate: dict[str, list[float]] = {}
        self.cpu_us: dict[str, list[float]] = {}

    async def measure(self, server_pid: int, identity: str, burst) -> None:
        before = cpu_seconds(server_pid)
        requests, seconds = await burst
        cpu = cpu_seconds(server_pid) - before
        self.rate.setdefault(identity, []).append(requests / seconds)
        self.cpu_us.setdefault(identity, []).append(1e6 * cpu / requests)

    def emit(self, label: str, rounds: int) -> None:
        rate = {k: statistics.median(v) for k, v in self.rate.items()}
        cpu = {k: statistics.median(v) for k, v in self.cpu_us.items()}
        emit(benchmark=f"rbac_overhead_{label}", rounds=rounds,
             privileged_per_s=round(rate["system:masters"]), rbac_user_per_s=round(rate["rbac-user"]),
             throughput_overhead_pct=round(100 * (1 - rate["rbac-user"] / rate["system:masters"]), 1),
             privileged_server_cpu_us=round(cpu["system:masters"]), rbac_user_server_cpu_us=round(cpu["rbac-user"]),
             cpu_overhead_pct=round(100 * (cpu["rbac-user"] / cpu["system:masters"] - 1), 1))


async def end_to_end(quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-rbac-") as tmp:
        server = Server(Path(tmp))
        try:
            await server.wait_ready()
            await _grant(server)
            contexts = {"system:masters": server.ssl_context(), "rbac-user": _user_context(server, "bench-user")}
            get_url = f"{server.url}/api/v1/namespaces/{NAMESPACE}/configmaps/target"
            create_url = f"{server.url}/api/v1/namespaces/{NAMESPACE}/configmaps"
            rounds, seconds, creates = (3, 2.0, 300) if quick else (11, 3.0, 1000)
            gets, posts = Samples(), Samples()
            for r in range(rounds):
                order = list(contexts.items())
                for turn, (name, ctx) in enumerate(order if r % 2 == 0 else order[::-1]):  # alternate who goes first
                    await gets.measure(server.proc.pid, name, _get_burst(get_url, ctx, seconds, 16))
                    # Names sort in creation order whoever creates them, so both write at the end of the key space.
                    burst = _create_burst(create_url, ctx, f"cm-{r:03d}-{turn}", creates, 16)
                    await posts.measure(server.proc.pid, name, burst)
            gets.emit("get", rounds)
            posts.emit("create", rounds)
        finally:
            server.stop()


async def main(quick: bool) -> None:
    decision_cache(quick)
    await end_to_end(quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    uvloop.run(main(parser.parse_args().quick))
