"""Many short Jobs to completion on simulated nodes; prints one JSON line per result.

    .venv/bin/python benchmarks/jobs.py [--jobs 1000] [--nodes 20] [--run-seconds 1] [--qps 50]

A `pyk8s server` runs the apiserver alone; the scheduler, the simulated nodes and a controller-manager
running only the job-controller are separate processes (as `pyk8s server` would supervise them), so the
controller-manager's CPU and memory can be measured apart. Each Job runs one pod whose simulated
container exits 0 after --run-seconds. Measured: the time from the first Job create request until every
Job carries the Complete condition (seen through a watch; target ≤ 60 s for 1,000 Jobs of 1 s), the
controller-manager's CPU (seconds and % of one core over that window) and its peak RSS, and the
apiserver's CPU. --qps is the controller-manager's client-side rate limit (pyk8s default 50, upstream's
kube-controller-manager default 20): the Job controller's API writes are what it paces.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import PeakRss, Server, emit  # noqa: E402
from simulated_nodes import CpuMeter, client_for, wait_nodes_ready  # noqa: E402

from pyk8s.client import APIClient, ClientConfig  # noqa: E402
from pyk8s.controllers.manager import ControllerManager  # noqa: E402

NAMESPACE = "bench-jobs"
NAME_PREFIX = "bench-"


def job(i: int, run_seconds: float) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"j{i}", "namespace": NAMESPACE},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": {"sim.pyk8s.io/run-seconds": str(run_seconds)}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}


def is_complete(obj: dict) -> bool:
    return any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or ())


async def run_jobs(client: APIClient, count: int, run_seconds: float, concurrency: int = 50) -> float:
    """Create `count` Jobs and return the seconds until all are Complete."""
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    rv = (await client.list("jobs", NAMESPACE))["metadata"]["resourceVersion"]
    complete: set[str] = set()
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal rv
        while not done.is_set():
            async with client.watch("jobs", NAMESPACE, resource_version=rv, timeout_seconds=300) as stream:
                async for _, obj in stream:
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if is_complete(obj):
                        complete.add(obj["metadata"]["name"])
                        if len(complete) >= count:
                            done.set()
                            return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    started = time.monotonic()
    limit = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with limit:
            await client.create(job(i, run_seconds))

    await asyncio.gather(*(create(i) for i in range(count)))
    emit(bench="jobs.created", jobs=count, seconds=round(time.monotonic() - started, 2))
    try:
        async with asyncio.timeout(900):
            await done.wait()
    finally:
        watcher.cancel()
    return time.monotonic() - started


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pyk8s-jobbench-") as tmp:
        server = Server(Path(tmp))
        children: list[subprocess.Popen] = []
        try:
            await server.wait_ready()
            kubeconfig = str(server.kubeconfig)

            def spawn(name: str, *argv: str) -> subprocess.Popen:
                proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=open(Path(tmp) / f"{name}.log", "wb"))
                children.append(proc)
                return proc

            spawn("agent", "-m", "pyk8s.cli", "agent", "--simulated", "--nodes", str(args.nodes),
                  "--kubeconfig", kubeconfig, "--name-prefix", NAME_PREFIX)
            spawn("scheduler", "-m", "pyk8s.cli", "scheduler", "--kubeconfig", kubeconfig, "--no-leader-elect")
            manager = spawn("controller-manager", __file__, "--controller-manager", "--kubeconfig", kubeconfig,
                            "--qps", str(args.qps), "--workers", str(args.workers))
            async with client_for(server.kubeconfig) as client:
                await wait_nodes_ready(client, args.nodes, timeout=120)
                await asyncio.sleep(2)  # the controller-manager's informers sync
                manager_cpu, server_cpu = CpuMeter(manager.pid), CpuMeter(server.proc.pid)
                rss = PeakRss(manager.pid)
                manager_cpu.start()
                server_cpu.start()
                cpu_before = manager_cpu._total()
                rss.start()
                seconds = await run_jobs(client, args.jobs, args.run_seconds)
                emit(bench="jobs.complete", jobs=args.jobs, nodes=args.nodes, run_seconds=args.run_seconds,
                     controller_manager_qps=args.qps, workers=args.workers, seconds=round(seconds, 2),
                     jobs_per_s=round(args.jobs / seconds, 1),
                     controller_manager_cpu_s=round(manager_cpu._total() - cpu_before, 1),
                     controller_manager_cpu_percent=round(manager_cpu.percent(), 1),
                     controller_manager_peak_rss_mb=rss.stop(),
                     apiserver_cpu_percent=round(server_cpu.percent(), 1))
        finally:
            for proc in children:
                proc.send_signal(signal.SIGINT)
            for proc in children:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            server.stop()


def controller_manager_main(kubeconfig: Path, qps: float, workers: int) -> None:
    """The job-controller alone in a controller-manager, with the given client QPS (--kube-api-qps)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gc.set_threshold(50_000, 20, 100)  # as the pyk8s servers

    async def run() -> None:
        config = ClientConfig.from_kubeconfig(str(kubeconfig))
        config.qps = qps
        config.burst = max(config.burst, int(qps * 2))
        async with APIClient(config) as client:
            await ControllerManager(client, controllers="job-controller", leader_elect=False,
                                    options={"concurrent_job_syncs": workers}).run()

    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--run-seconds", type=float, default=1.0)
    parser.add_argument("--qps", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=5, help="the job controller's concurrent syncs")
    parser.add_argument("--controller-manager", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.controller_manager:
        controller_manager_main(args.kubeconfig, args.qps, args.workers)
        return
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvloop.run(bench(args))


if __name__ == "__main__":
    main()
