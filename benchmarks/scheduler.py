"""Scheduler throughput and memory against a real `pyk8s server`; prints one JSON line per result.

    .venv/bin/python benchmarks/scheduler.py [--nodes 1000] [--pods 2000] [--workload basic|anti-affinity]
                                             [--init-pods 0]

Nodes are plain Node objects (no kubelet: pods only need to be bound), spread over 10 zones. `--init-pods`
pods are created already bound (spread round-robin over the nodes) so the scheduler's cache holds them, like
scheduler_perf's init pods. Then `--pods` pending pods are created, and only then the scheduler starts, in
its own process (this script with --run-scheduler, on uvloop, client QPS unthrottled like scheduler_perf),
so its CPU and memory are its own. Throughput = measured pods / time from the scheduler's first binding to
its last, counted through a watch; and measured pods / the scheduler's CPU seconds over the same window
(what it does with one core of its own: on a shared machine the wall-clock figure mostly measures the
neighbours). Memory = the scheduler process's RSS once every pod is bound.

Workloads: `basic` (100m cpu, 128Mi), `anti-affinity` (upstream's SchedulingPodAntiAffinity shape: every
pod has the label color=green and required anti-affinity by hostname to color=green, so each node takes at
most one and every placed pod's term constrains every later pod).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import signal
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

NAMESPACE = "default"
ZONES = 10


def client_for(kubeconfig: Path) -> APIClient:
    config = ClientConfig.from_kubeconfig(kubeconfig)
    config.qps = 0  # the benchmark paces itself
    return APIClient(config)


async def bounded(n: int, limit: int, make) -> None:
    """Run make(i) for i in range(n) with at most `limit` in flight."""
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> None:
        async with sem:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(n)))


def node_name(i: int) -> str:
    return f"node-{i}"


async def create_nodes(client: APIClient, count: int) -> None:
    async def make(i: int) -> None:
        name = node_name(i)
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                      "topology.kubernetes.io/zone": f"zone-{i % ZONES}"}},
                "spec": {}}
        await client.create(node)
        status = {"capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                  "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
        await client.patch_status("nodes", name, {"status": status}, patch_type="merge")

    await bounded(count, 32, make)


def pod_manifest(name: str, workload: str, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                  "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    labels = {"bench": "yes"}
    if workload == "anti-affinity":
        labels["color"] = "green"
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"color": "green"}}}]}}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": spec}


async def create_pods(client: APIClient, prefix: str, count: int, workload: str, nodes: int = 0) -> float:
    start = time.monotonic()

    async def make(i: int) -> None:
        await client.create(pod_manifest(f"{prefix}-{i}", workload, node_name(i % nodes) if nodes else None),
                            namespace=NAMESPACE)

    await bounded(count, 32, make)
    return count / (time.monotonic() - start)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def count_bindings(client: APIClient, expected: int, since_rv: str, timeout: float,
                         scheduler: list[int]) -> tuple[float, float, float]:
    """(first, last) monotonic times at which pending pods were seen bound, through one watch, and the
    scheduler's CPU seconds between them (its start-up, listing every object, is left out)."""
    bound: set[str] = set()
    first = last = 0.0
    cpu_first = 0.0
    async with asyncio.timeout(timeout):
        async with client.watch("pods", NAMESPACE, resource_version=since_rv,
                                label_selector={"bench": "yes"}) as stream:
            async for event_type, pod in stream:
                if event_type != "MODIFIED" or not (pod.get("spec") or {}).get("nodeName"):
                    continue
                name = pod["metadata"]["name"]
                if not name.startswith("measured-") or name in bound:
                    continue
                bound.add(name)
                now = time.monotonic()
                if not first:
                    first, cpu_first = now, cpu_seconds(scheduler[0])
                last = now
                if len(bound) >= expected:
                    return first, last, cpu_seconds(scheduler[0]) - cpu_first
    return first, last, cpu_seconds(scheduler[0]) - cpu_first


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-sched-") as tmp:
        server = Server(Path(tmp))
        scheduler: subprocess.Popen | None = None
        try:
            await server.wait_ready()
            async with client_for(server.kubeconfig) as client:
                t0 = time.monotonic()
                await create_nodes(client, args.nodes)
                emit(bench="scheduler-setup", what="nodes", nodes=args.nodes,
                     seconds=round(time.monotonic() - t0, 1))
                if args.init_pods:
                    rate = await create_pods(client, "init", args.init_pods, "basic", args.nodes)
                    emit(bench="scheduler-setup", what="init-pods", pods=args.init_pods, creates_per_s=round(rate))
                rate = await create_pods(client, "measured", args.pods, args.workload)
                emit(bench="scheduler-setup", what="pending-pods", pods=args.pods, creates_per_s=round(rate))
                listed = await client.list("pods", NAMESPACE, limit=1, all_pages=False)
                rv = listed["metadata"]["resourceVersion"]
                scheduler_pid: list[int] = []
                counter = asyncio.create_task(count_bindings(client, args.pods, rv, args.timeout, scheduler_pid))
                profile = ["--profile", str(args.profile.resolve())] if args.profile else []
                scheduler = subprocess.Popen(
                    [sys.executable, __file__, "--run-scheduler", "--kubeconfig", str(server.kubeconfig), *profile],
                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "scheduler.log", "wb"))
                scheduler_pid.append(scheduler.pid)
                first, last, cpu = await counter
                seconds = last - first
                # Wall-clock throughput depends on how much CPU the shared machine left the scheduler;
                # pods per CPU-second is what it does with one core of its own.
                emit(bench="scheduler", workload=args.workload, nodes=args.nodes, init_pods=args.init_pods,
                     pods=args.pods, seconds=round(seconds, 2),
                     pods_per_s=round((args.pods - 1) / seconds, 1) if seconds > 0 else None,
                     scheduler_cpu_s=round(cpu, 2),
                     pods_per_cpu_s=round((args.pods - 1) / cpu, 1) if cpu > 0 else None,
                     scheduler_rss_mib=round(rss_mib(scheduler.pid), 1))
        finally:
            if scheduler is not None:
                scheduler.terminate()
                scheduler.wait(timeout=30)
            server.stop()


async def run_scheduler_process(kubeconfig: Path) -> None:
    from pyk8s.scheduler import Scheduler

    async with client_for(kubeconfig) as client:
        await Scheduler(client).run()


def run_scheduler_profiled(kubeconfig: Path, out: Path) -> None:
    """The scheduler under cProfile until SIGTERM; the stats go to `out` (where the time goes)."""
    profiler = cProfile.Profile()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    profiler.enable()
    try:
        uvloop.run(run_scheduler_process(kubeconfig))
    finally:
        profiler.disable()
        profiler.dump_stats(str(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--init-pods", type=int, default=0)
    parser.add_argument("--workload", choices=("basic", "anti-affinity"), default="basic")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--profile", type=Path, help="write the scheduler's cProfile stats to this file")
    parser.add_argument("--run-scheduler", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_scheduler:
        logging.basicConfig(level=logging.WARNING)
        if args.profile:
            run_scheduler_profiled(args.kubeconfig, args.profile)
        else:
            uvloop.run(run_scheduler_process(args.kubeconfig))
        return
    uvloop.run(bench(args))


if __name__ == "__main__":
    main()
