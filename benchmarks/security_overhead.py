"""What authentication, authorization and admission cost on the apiserver's GET and create paths.

    .venv/bin/python benchmarks/security_overhead.py [--quick]

Two `pyk8s server` processes run side by side and are driven alternately, so both see the same machine:
- **on**: as shipped. The client is an ordinary user with an x509 client certificate (not system:masters,
  so RBAC decides every request: a ClusterRole granting configmaps and pods), `--authorization-mode
  Node,RBAC` and the full default admission chain;
- **off**: `--authorization-mode AlwaysAllow`, every admission plugin disabled, anonymous requests.

Prints one JSON line per measurement: the median over the rounds of the client's rate and of the server
process's CPU time per request (all threads, from the scheduler's counters; other load on a shared machine
disturbs it far less than the rate), each with the overhead of on over off in percent.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import uvloop
from harness import ROOT, Server, cpu_seconds, emit

sys.path.insert(0, str(ROOT))

from pyk8s.apiserver.admission import ORDERED_PLUGINS  # noqa: E402
from pyk8s.server.pki import PKI  # noqa: E402

BENCH_USER = "bench-user"
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "bench"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["get", "list", "create"]}]}
BINDING = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "bench"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench"},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": BENCH_USER}]}
OFF_FLAGS = ("--authorization-mode", "AlwaysAllow", "--disable-admission-plugins", ",".join(ORDERED_PLUGINS))


def configmap(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                         "data": {"payload": "x" * 200}})


def pod(name: str) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})


class Target:
    """One server and the TLS context its benchmark client uses."""

    def __init__(self, name: str, server: Server, ctx: ssl.SSLContext):
        self.name = name
        self.server = server
        self.ctx = ctx

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.server.proc.pid)

    def url(self, plural: str) -> str:
        return f"{self.server.url}/api/v1/namespaces/default/{plural}"


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        text = await resp.read()
        assert resp.status == 201, (resp.status, text[:300])


async def user_context(server: Server) -> ssl.SSLContext:
    """An x509 user bound to the bench ClusterRole on the secured server."""
    tls = server.data_dir / "tls"
    cert, key = PKI.at(tls).issue_client_cert(BENCH_USER, [])
    (tls / "bench.crt").write_bytes(cert)
    (tls / "bench.key").write_bytes(key)
    admin = server.ssl_context()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin)) as session:
        for obj, plural in ((ROLE, "clusterroles"), (BINDING, "clusterrolebindings")):
            await post(session, f"{server.url}/apis/rbac.authorization.k8s.io/v1/{plural}", orjson.dumps(obj))
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "bench.crt"), str(tls / "bench.key"))
    return ctx


Measurement = tuple[float, float]  # (requests per second, server CPU microseconds per request)


async def hammer_get(target: Target, seconds: float, concurrency: int) -> Measurement:
    url = target.url("configmaps") + "/target"
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=target.ctx, limit=concurrency)) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                count += 1

        started, cpu = time.perf_counter(), target.cpu_seconds()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started), 1e6 * (target.cpu_seconds() - cpu) / count


async def create_rate(target: Target, plural: str, make: Callable[[str], bytes], prefix: str, count: int,
                      concurrency: int = 64) -> Measurement:
    url = target.url(plural)
    names = [f"{prefix}-{i}" for i in range(count)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=target.ctx, limit=concurrency)) as session:
        async def worker() -> None:
            while names:
                await post(session, url, make(names.pop()))

        started, cpu = time.perf_counter(), target.cpu_seconds()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started), 1e6 * (target.cpu_seconds() - cpu) / count


async def alternate(targets: list[Target], rounds: int,
                    measure: Callable[[Target, int], Awaitable[Measurement]]) -> dict[str, Measurement]:
    """Medians per target of `rounds` runs, on and off taking turns (the first in each round alternates)."""
    results: dict[str, list[Measurement]] = {t.name: [] for t in targets}
    for i in range(rounds):
        for target in (targets if i % 2 == 0 else list(reversed(targets))):
            results[target.name].append(await measure(target, i))
    return {name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
            for name, values in results.items()}


def report(benchmark: str, unit: str, medians: dict[str, Measurement], rounds: int) -> None:
    (on_rate, on_cpu), (off_rate, off_cpu) = medians["on"], medians["off"]
    emit(benchmark=benchmark, unit=unit, security_on=round(on_rate), security_off=round(off_rate),
         throughput_overhead_percent=round(100 * (off_rate - on_rate) / off_rate, 1),
         server_cpu_us_per_request_on=round(on_cpu, 1), server_cpu_us_per_request_off=round(off_cpu, 1),
         cpu_overhead_percent=round(100 * (on_cpu - off_cpu) / off_cpu, 1), rounds=rounds)


async def main(quick: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyk8s-secbench-"))
    (root / "on").mkdir()
    (root / "off").mkdir()
    secured, open_server = Server(root / "on"), Server(root / "off", OFF_FLAGS)
    try:
        await asyncio.gather(secured.wait_ready(), open_server.wait_ready())
        anonymous = ssl.create_default_context(cafile=str(root / "off" / "tls" / "ca.crt"))
        targets = [Target("on", secured, await user_context(secured)), Target("off", open_server, anonymous)]
        for target in targets:
            admin = aiohttp.TCPConnector(ssl=target.server.ssl_context())
            async with aiohttp.ClientSession(connector=admin) as session:
                await post(session, target.url("configmaps"), configmap("target"))
                # What the controller-manager (not running here) creates in every namespace; pods use it.
                await post(session, target.url("serviceaccounts"), orjson.dumps(
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}))
        rounds = 3 if quick else 7
        seconds = 2 if quick else 3
        await alternate(targets, 2, lambda t, _: hammer_get(t, 1, 32))  # warm both up
        report("get_single_object", "req/s", await alternate(targets, rounds, lambda t, _: hammer_get(t, seconds, 32)),
               rounds)
        count = 500 if quick else 1500
        report("create_configmaps", "creates/s", await alternate(
            targets, rounds, lambda t, i: create_rate(t, "configmaps", configmap, f"cm{i}", count)), rounds)
        report("create_pods", "creates/s", await alternate(
            targets, rounds, lambda t, i: create_rate(t, "pods", pod, f"pod{i}", count)), rounds)
    finally:
        secured.stop()
        open_server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    uvloop.run(main(parser.parse_args().quick))
