"""Deleting a namespace that holds 5,000 objects, against a real `pyk8s server`.

    .venv/bin/python benchmarks/namespace_deletion.py [--objects 5000] [--runs 3]

The namespace is filled with ConfigMaps, Secrets and Services (created with 32 requests in
flight); then it is deleted and the clock runs until the Namespace object is gone (seen by
polling GET). The namespace controller and garbage collector run in their own
`pyk8s controller-manager` process, whose CPU seconds and peak RSS over the deletion are
reported beside the wall time, with the apiserver's CPU seconds (target: ≤ 30 s for 5,000
objects). Medians over the runs.
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

import psutil
from harness import ROOT, Server, emit

sys.path.insert(0, str(ROOT))

from pyk8s.client import APIClient  # noqa: E402
from pyk8s.client.api import APIStatusError  # noqa: E402

IN_FLIGHT = 32


def object_for(i: int, namespace: str) -> dict:
    name = f"obj-{i:05d}"
    meta = {"name": name, "namespace": namespace, "labels": {"bench": "namespace-deletion"}}
    if i % 3 == 0:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v" * 100}}
    if i % 3 == 1:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v" * 100}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}


async def fill(client: APIClient, namespace: str, count: int) -> None:
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await client.create(object_for(i, namespace))

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def delete_and_wait(client: APIClient, namespace: str, manager: psutil.Process,
                          apiserver: psutil.Process) -> dict:
    cpu_before = sum(manager.cpu_times()[:2])
    apiserver_cpu_before = sum(apiserver.cpu_times()[:2])
    peak_rss = manager.memory_info().rss
    started = time.perf_counter()
    await client.delete("namespaces", namespace)
    while True:
        try:
            await client.get("namespaces", namespace)
        except APIStatusError as exc:
            if exc.code == 404:
                break
            raise
        peak_rss = max(peak_rss, manager.memory_info().rss)
        await asyncio.sleep(0.05)
    return {"seconds": time.perf_counter() - started, "cpu": sum(manager.cpu_times()[:2]) - cpu_before,
            "apiserver_cpu": sum(apiserver.cpu_times()[:2]) - apiserver_cpu_before, "rss": peak_rss}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-nsdel-") as tmp:
        server = Server(Path(tmp))
        manager_proc = None
        try:
            await server.wait_ready()
            manager_proc = subprocess.Popen(
                [sys.executable, "-m", "pyk8s.cli", "controller-manager", "--kubeconfig", str(server.kubeconfig),
                 "--controllers", "namespace-controller,garbage-collector-controller", "--no-leader-elect"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "controller-manager.log", "wb"))
            manager = psutil.Process(manager_proc.pid)
            client = APIClient.from_kubeconfig(str(server.kubeconfig), qps=0)
            results = []
            try:
                for run in range(args.runs):
                    namespace = f"doomed-{run}"
                    await fill(client, namespace, args.objects)
                    results.append(await delete_and_wait(client, namespace, manager, psutil.Process(server.proc.pid)))
            finally:
                await client.close()
            emit(benchmark="namespace_deletion", objects=args.objects, runs=args.runs,
                 median_seconds=round(statistics.median(r["seconds"] for r in results), 2),
                 controller_manager_cpu_seconds=round(statistics.median(r["cpu"] for r in results), 2),
                 controller_manager_peak_rss_mb=round(max(r["rss"] for r in results) / 2**20, 1),
                 apiserver_cpu_seconds=round(statistics.median(r["apiserver_cpu"] for r in results), 2))
        finally:
            if manager_proc is not None:
                manager_proc.terminate()
                manager_proc.wait(timeout=30)
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
