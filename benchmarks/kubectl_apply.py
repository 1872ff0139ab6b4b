"""`kubectl apply -f` of 1,000 objects, end to end, against a real `pyk8s server`.

    .venv/bin/python benchmarks/kubectl_apply.py [--objects 1000] [--runs 3]

One multi-document file holds ConfigMaps, Services and Deployments in equal thirds (the mix a
chart or a manifests folder brings). Each run applies it into a fresh namespace and reports the
wall time of: client-side apply creating everything, the same apply again (every object
unchanged: GET + no patch), a client-side apply changing every object (three-way strategic merge
patches), and a server-side apply creating everything. Medians over the runs are printed as JSON
lines. The real kubectl does all the client work, so the wall time includes its own CPU; the
apiserver's CPU seconds for the same phase are reported beside it to show where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from harness import Server, emit

KUBECTL = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "kubectl"


def manifests(count: int, namespace: str, generation: int) -> str:
    docs = []
    for i in range(count):
        name = f"obj-{i:04d}"
        labels = {"app": name, "bench": "kubectl-apply"}
        if i % 3 == 0:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                               "labels": labels},
                         "data": {"generation": str(generation), "payload": "x" * 200}})
        elif i % 3 == 1:
            docs.append({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": name, "namespace": namespace, "labels": labels},
                         "spec": {"selector": {"app": name},
                                  "ports": [{"name": "http", "port": 80, "targetPort": 8000 + generation}]}})
        else:
            container = {"name": "app", "image": f"registry.example/app:{generation}",
                         "ports": [{"containerPort": 8080}],
                         "env": [{"name": "GENERATION", "value": str(generation)}],
                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
            docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": name, "namespace": namespace, "labels": labels},
                         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                  "template": {"metadata": {"labels": labels},
                                               "spec": {"containers": [container]}}}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def server_cpu_seconds(server: Server) -> float:
    times = psutil.Process(server.proc.pid).cpu_times()
    return times.user + times.system


def kubectl(server: Server, *args: str) -> float:
    env = dict(os.environ, KUBECONFIG=str(server.kubeconfig))
    started = time.perf_counter()
    result = subprocess.run([str(KUBECTL), "--cache-dir", str(server.data_dir / "kubectl-cache"), *args],
                            env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr[-2000:]}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-apply-") as tmp:
        server = Server(Path(tmp))
        try:
            await server.wait_ready()
            phases = ("create", "unchanged", "update", "server_side_create")
            timings: dict[str, list[float]] = {phase: [] for phase in phases}
            server_cpu: dict[str, list[float]] = {phase: [] for phase in phases}
            for run in range(args.runs):
                client_ns, server_ns = f"apply-{run}", f"apply-ssa-{run}"
                files = {}
                for key, namespace, generation in (("v1", client_ns, 1), ("v2", client_ns, 2),
                                                   ("ssa", server_ns, 1)):
                    files[key] = Path(tmp) / f"{key}-{run}.yaml"
                    files[key].write_text(manifests(args.objects, namespace, generation))
                kubectl(server, "create", "namespace", client_ns)
                kubectl(server, "create", "namespace", server_ns)
                steps = {"create": ("apply", "-f", str(files["v1"])), "unchanged": ("apply", "-f", str(files["v1"])),
                         "update": ("apply", "-f", str(files["v2"])),
                         "server_side_create": ("apply", "--server-side", "-f", str(files["ssa"]))}
                for phase, command in steps.items():
                    cpu_before = server_cpu_seconds(server)
                    timings[phase].append(kubectl(server, *command))
                    server_cpu[phase].append(server_cpu_seconds(server) - cpu_before)
            for phase in phases:
                median = statistics.median(timings[phase])
                emit(benchmark="kubectl_apply", phase=phase, objects=args.objects, runs=args.runs,
                     median_seconds=round(median, 2), objects_per_second=round(args.objects / median, 1),
                     apiserver_cpu_seconds=round(statistics.median(server_cpu[phase]), 2))
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
