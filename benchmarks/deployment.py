"""A big Deployment on simulated nodes: time to all-available and to a finished rolling update.

    .venv/bin/python benchmarks/deployment.py [--replicas 3000] [--nodes 300] [--qps 50]

A `pyk8s server` runs the apiserver alone; the simulated nodes, the scheduler and a controller-manager
running only the deployment and replicaset controllers are separate processes (as `pyk8s server` would
supervise them), so the controller-manager's CPU and memory are measured apart. Measured, each from the
request to the condition seen through a watch on the Deployment: all replicas available after the create
(target ≤ 60 s for 3,000 replicas on 300 nodes) and the rolling update to a new image complete (updated,
total and available replicas all equal to spec.replicas; target ≤ 120 s). Reported with each: the
controller-manager's CPU seconds and % of one core, its peak RSS, the scheduler's and apiserver's CPU, and
how long each process waited for a CPU while runnable (on a shared machine, the time other load took).
--qps is the controller-manager's client-side rate limit (upstream's kube-controller-manager default is 20).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import logging
import os
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

from harness import PeakRss, Server, emit  # noqa: E402
from simulated_nodes import CpuMeter, client_for, wait_nodes_ready  # noqa: E402

from pyk8s.client import APIClient, ClientConfig  # noqa: E402
from pyk8s.controllers.manager import ControllerManager  # noqa: E402

NAMESPACE = "bench-deploy"
NAME = "web"
NAME_PREFIX = "bench-"
CONTROLLERS = "deployment-controller,replicaset-controller"


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
                     "template": {"metadata": {"labels": {"app": NAME}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}


def all_available(d: dict) -> bool:
    status, replicas = d.get("status") or {}, d["spec"]["replicas"]
    return (status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas") == replicas and status.get("replicas") == replicas
            and status.get("availableReplicas") == replicas)


def runqueue_wait(proc: psutil.Process) -> float:
    """Seconds the threads of a process (and its children) have spent runnable but waiting for a CPU (Linux
    schedstat); on a shared machine this is the time other load took from it."""
    total = 0
    for pid in [proc.pid, *(c.pid for c in proc.children(recursive=True))]:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


async def wait_for(client: APIClient, check, timeout: float) -> None:
    """Watch the Deployment until `check(deployment)` holds."""
    async with asyncio.timeout(timeout):
        while True:
            current = await client.get("deployments", NAME, NAMESPACE)
            if check(current):
                return
            rv = current["metadata"]["resourceVersion"]
            async with client.watch("deployments", NAMESPACE, name=NAME, resource_version=rv,
                                    timeout_seconds=60) as stream:
                async for _, obj in stream:
                    if check(obj):
                        return


async def phase(name: str, client: APIClient, action, meters: dict[str, CpuMeter], timeout: float,
                **fields: object) -> None:
    totals = {k: m._total() for k, m in meters.items()}
    waits = {k: runqueue_wait(m.proc) for k, m in meters.items()}
    for meter in meters.values():
        meter.start()
    started = time.monotonic()
    await action()
    await wait_for(client, all_available, timeout)
    seconds = time.monotonic() - started
    emit(bench=name, seconds=round(seconds, 2), **fields,
         **{f"{k}_cpu_s": round(m._total() - totals[k], 1) for k, m in meters.items()},
         **{f"{k}_cpu_percent": round(m.percent(), 1) for k, m in meters.items()},
         **{f"{k}_runqueue_wait_s": round(runqueue_wait(m.proc) - waits[k], 1) for k, m in meters.items()},
         load_average_1m=round(os.getloadavg()[0], 1))


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pyk8s-deploybench-") as tmp:
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

            agent = spawn("agent", "-m", "pyk8s.cli", "agent", "--simulated", "--nodes", str(args.nodes),
                          "--kubeconfig", kubeconfig, "--name-prefix", NAME_PREFIX)
            scheduler = spawn("scheduler", "-m", "pyk8s.cli", "scheduler", "--kubeconfig", kubeconfig,
                              "--no-leader-elect")
            manager = spawn("controller-manager", __file__, "--controller-manager", "--kubeconfig", kubeconfig,
                            "--qps", str(args.qps), *(["--profile", str(args.profile)] if args.profile else []))
            async with client_for(server.kubeconfig) as client:
                await wait_nodes_ready(client, args.nodes, timeout=180)
                await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
                await asyncio.sleep(2)  # the controller-manager's informers sync
                meters = {"controller_manager": CpuMeter(manager.pid), "scheduler": CpuMeter(scheduler.pid),
                          "apiserver": CpuMeter(server.proc.pid), "simulated_nodes": CpuMeter(agent.pid)}
                rss = PeakRss(manager.pid)
                rss.start()
                common = {"replicas": args.replicas, "nodes": args.nodes, "controller_manager_qps": args.qps}

                async def create() -> None:
                    await client.create(deployment(args.replicas))

                await phase("deployment.available", client, create, meters, args.timeout, **common)

                async def roll() -> None:
                    await client.patch("deployments", NAME, {"spec": {"template": {"spec": {"containers": [
                        {"name": "web", "image": "nginx:1.28"}]}}}}, NAMESPACE, patch_type="strategic")

                await phase("deployment.rolling_update", client, roll, meters, args.timeout * 2, **common)
                emit(bench="deployment.controller_manager_memory", peak_rss_mb=rss.stop(),
                     rss_now_mb=round(psutil.Process(manager.pid).memory_info().rss / 2**20, 1))
        finally:
            for proc in children:
                proc.send_signal(signal.SIGINT)
            for proc in children:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            server.stop()


def controller_manager_main(kubeconfig: Path, qps: float, profile: Path | None) -> None:
    """The deployment and replicaset controllers in one controller-manager with the given client QPS;
    with `profile`, under cProfile, its stats written there (pstats format) when the process stops."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gc.set_threshold(50_000, 20, 100)  # as the pyk8s servers

    async def run() -> None:
        config = ClientConfig.from_kubeconfig(str(kubeconfig))
        config.qps = qps
        config.burst = max(config.burst, int(qps * 2))
        async with APIClient(config) as client:
            await ControllerManager(client, controllers=CONTROLLERS, leader_elect=False).run()

    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3000)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--qps", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the first phase (twice that "
                        "for the rolling update) before giving up")
    parser.add_argument("--profile", type=Path, help="write the controller-manager's cProfile stats to this file")
    parser.add_argument("--controller-manager", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.controller_manager:
        controller_manager_main(args.kubeconfig, args.qps, args.profile)
        return
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvloop.run(bench(args))


if __name__ == "__main__":
    main()
