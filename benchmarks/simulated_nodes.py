"""Simulated nodes at scale against a real `pyk8s server`; prints one JSON line per result.

    .venv/bin/python benchmarks/simulated_nodes.py [--nodes 1000] [--idle-seconds 30] [--pods 200] [--rate 20]

The agent runs in its own process (this script with --agent, on uvloop like `pyk8s server`) so
its CPU can be measured apart from the apiserver's. Measures: time until every node is
registered and Ready (seen through a watch); CPU of the agent and of the apiserver over an idle
window once heartbeats are in steady state (targets: agent < 15% of one core); pod startup
latency, from the create request to Running seen by a watch, for pods created and bound at a
fixed rate (target: p99 <= 1 s with the default 0.5 s simulated container start).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Server, emit  # noqa: E402

from pyk8s.client import APIClient, ClientConfig  # noqa: E402
from pyk8s.kubelet.simulated import run_simulated_agent  # noqa: E402

NAME_PREFIX = "bench-"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class CpuMeter:
    """CPU seconds of a process (and its children) between start() and stop(), as % of one core."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)

    def _total(self) -> float:
        procs = [self.proc, *self.proc.children(recursive=True)]
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def start(self) -> None:
        self._cpu, self._wall = self._total(), time.monotonic()

    def percent(self) -> float:
        return 100.0 * (self._total() - self._cpu) / (time.monotonic() - self._wall)


def client_for(kubeconfig: Path) -> APIClient:
    config = ClientConfig.from_kubeconfig(kubeconfig)
    config.qps = 0  # the benchmark paces itself
    return APIClient(config)


async def wait_nodes_ready(client: APIClient, count: int, timeout: float) -> None:
    """Wait until `count` simulated nodes exist with Ready=True (counted from a watch)."""
    ready: set[str] = set()
    listed = await client.list("nodes", label_selector={"node.kubernetes.io/instance-type": "simulated"})
    rv = listed["metadata"]["resourceVersion"]

    def is_ready(node: dict) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (node.get("status") or {}).get("conditions") or [])

    ready.update(n["metadata"]["name"] for n in listed["items"] if is_ready(n))
    async with asyncio.timeout(timeout):
        while len(ready) < count:
            async with client.watch("nodes", resource_version=rv, timeout_seconds=int(timeout),
                                    label_selector={"node.kubernetes.io/instance-type": "simulated"}) as stream:
                async for type_, node in stream:
                    rv = node["metadata"].get("resourceVersion", rv)
                    if type_ in ("ADDED", "MODIFIED") and is_ready(node):
                        ready.add(node["metadata"]["name"])
                        if len(ready) >= count:
                            break


async def count_lease_renewals(client: APIClient, seconds: float) -> int:
    events = 0
    rv = (await client.list("leases", "kube-node-lease", limit=1, all_pages=False))["metadata"]["resourceVersion"]
    try:
        async with asyncio.timeout(seconds):
            async with client.watch("leases", "kube-node-lease", resource_version=rv) as stream:
                async for type_, _ in stream:
                    events += type_ == "MODIFIED"
    except TimeoutError:
        pass
    return events


async def pod_startup(client: APIClient, nodes: int, count: int, rate: float) -> list[float]:
    namespace = "bench-startup"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    rv = (await client.list("pods", namespace))["metadata"]["resourceVersion"]
    done = asyncio.Event()

    async def watch() -> None:
        async with client.watch("pods", namespace, resource_version=rv) as stream:
            async for _, pod in stream:
                name = pod["metadata"]["name"]
                if name not in running and (pod.get("status") or {}).get("phase") == "Running":
                    running[name] = time.monotonic()
                    if len(running) >= count:
                        done.set()
                        return

    async def create_and_bind(i: int) -> None:
        name = f"p{i}"
        sent[name] = time.monotonic()
        await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                             "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
        await client.create_subresource("pods", name, "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": f"{NAME_PREFIX}{i % nodes}"}}, namespace)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    tasks = []
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(create_and_bind(i)))
    await asyncio.gather(*tasks)
    async with asyncio.timeout(60):
        await done.wait()
    watcher.cancel()
    return [running[name] - sent[name] for name in running]


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pyk8s-simbench-") as tmp:
        server = Server(Path(tmp))
        agent: subprocess.Popen | None = None
        try:
            await server.wait_ready()
            async with client_for(server.kubeconfig) as client:
                started = time.monotonic()
                agent = subprocess.Popen([sys.executable, __file__, "--agent", "--kubeconfig", str(server.kubeconfig),
                                          "--nodes", str(args.nodes)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                         stderr=open(Path(tmp) / "agent.log", "wb"))
                await wait_nodes_ready(client, args.nodes, timeout=600)
                # From the agent process's start (interpreter and imports included) to the last node Ready.
                emit(bench="simulated_nodes.register", nodes=args.nodes, seconds=round(time.monotonic() - started, 2))

                # Let the first round of spread-out heartbeats and pod CIDR assignment settle.
                await asyncio.sleep(12)
                agent_cpu, server_cpu = CpuMeter(agent.pid), CpuMeter(server.proc.pid)
                agent_cpu.start()
                server_cpu.start()
                renewals = await count_lease_renewals(client, args.idle_seconds)
                emit(bench="simulated_nodes.idle_cpu", nodes=args.nodes, window_s=args.idle_seconds,
                     agent_cpu_percent=round(agent_cpu.percent(), 1),
                     apiserver_cpu_percent=round(server_cpu.percent(), 1),
                     lease_renewals_per_s=round(renewals / args.idle_seconds, 1),
                     agent_rss_mb=round(psutil.Process(agent.pid).memory_info().rss / 2**20, 1))

                agent_cpu.start()
                server_cpu.start()
                latencies = await pod_startup(client, args.nodes, args.pods, args.rate)
                emit(bench="simulated_nodes.pod_startup", nodes=args.nodes, pods=len(latencies), rate_per_s=args.rate,
                     p50_ms=round(1000 * statistics.median(latencies)),
                     p99_ms=round(1000 * percentile(latencies, 0.99)),
                     max_ms=round(1000 * max(latencies)), agent_cpu_percent=round(agent_cpu.percent(), 1),
                     apiserver_cpu_percent=round(server_cpu.percent(), 1))
        finally:
            if agent is not None:
                agent.send_signal(signal.SIGINT)
                try:
                    agent.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    agent.kill()
            server.stop()


def agent_main(kubeconfig: Path, nodes: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gc.set_threshold(50_000, 20, 100)  # as the pyk8s servers: fewer young-generation collections
    try:
        uvloop.run(run_simulated_agent(kubeconfig, nodes, {}, NAME_PREFIX))
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="100 nodes, 10 s idle window, 50 pods")
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        agent_main(args.kubeconfig, args.nodes)
        return
    if args.quick:
        args.nodes, args.idle_seconds, args.pods = 100, 10.0, 50
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvloop.run(bench(args))


if __name__ == "__main__":
    main()
