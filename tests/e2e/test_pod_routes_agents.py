"""Two real nodes (issue #6's test): `pyk8s server` with its agent in one network namespace, `pyk8s agent`
joined from a second one, the two linked by a veth pair that carries both node addresses. Each agent keeps
host-gw routes to the other's pod CIDR, so a pod on one node reaches a pod on the other by its pod IP, and sees
the caller's pod address (no NAT between pods).

Network safety: both namespaces come from the e2e fixtures (no route out) and are deleted afterwards; every
process is stopped by PID; cgroups and data dirs are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from pyk8s.kubelet.routes import ROUTE_PROTO
from pyk8s.kubelet.runtime.cri import CRIClient
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import (
    REPO_ROOT,
    NetnsCluster,
    _ip,
    _remove_cgroup_tree,
    eventually_async,
    freeze_and_remove_sandboxes,
    processes_in_netns,
)

SERVER_IP, WORKER_IP = "10.254.1.1", "10.254.1.2"
BUSYBOX = "pyk8s.local/busybox-routes:1.35"
PORT = 8080
# Serves /cgi-bin/peer, which answers with the caller's address (busybox httpd CGI).
PEER_HTTPD = ("mkdir -p /tmp/www/cgi-bin && echo '#!/bin/sh' > /tmp/www/cgi-bin/peer"
              " && echo 'echo Content-Type: text/plain; echo; echo $REMOTE_ADDR' >> /tmp/www/cgi-bin/peer"
              f" && busybox chmod 755 /tmp/www/cgi-bin/peer && exec httpd -f -p 0.0.0.0:{PORT} -h /tmp/www")


def _import_image(archive: Path, data_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pyk8s.cli", "images", "import", str(archive), "--data-dir",
                             str(data_dir)], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


def _pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "web", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sh", "-c", PEER_HTTPD]}]}}


async def test_pods_on_two_agents_reach_each_other_by_pod_ip(node_netns: str, peer_netns: str) -> None:
    _ip("-n", node_netns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", peer_netns)
    for netns, address in ((node_netns, SERVER_IP), (peer_netns, WORKER_IP)):
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "lan0")
        _ip("-n", netns, "link", "set", "lan0", "up")
    suffix = node_netns.rsplit("-", 1)[-1]
    root = Path(f"/tmp/pyk8s-e2e-{suffix}")  # short: containerd's socket paths must stay under 108 bytes
    cluster = NetnsCluster(netns=node_netns, data_dir=root / "server", node_ip=SERVER_IP,
                           cgroup_root=f"/pyk8s-e2e-{suffix}")
    worker, worker_dir, worker_cgroup = f"worker-{suffix}", root / "worker", f"/pyk8s-e2e-{suffix}-w"
    worker_log = root / "worker.log"
    agent: subprocess.Popen | None = None
    try:
        await asyncio.to_thread(cluster.start)
        worker_dir.mkdir(parents=True)
        token = (cluster.data_dir / "token").read_text().strip()
        with open(worker_log, "ab") as log:
            agent = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{peer_netns}", sys.executable, "-m", "pyk8s.cli", "agent",
                 "--server", f"https://{SERVER_IP}:6443", "--node-name", worker, "--node-ip", WORKER_IP,
                 "--data-dir", str(worker_dir), "--cgroup-root", worker_cgroup],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                env={**os.environ, "PYK8S_TOKEN": token})

        def logs() -> str:
            return f"{worker_log.read_text(errors='replace')[-3000:]}\n{cluster.server_log()}"

        async def both_ready() -> bool:
            assert agent is not None and agent.poll() is None, f"agent exited:\n{logs()}"
            nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json", check=False).stdout or "{}")
            ready = [n for n in nodes.get("items", []) for c in n["status"].get("conditions", [])
                     if c["type"] == "Ready" and c["status"] == "True"]
            return len(ready) == 2

        try:
            await eventually_async(both_ready, timeout=240, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None

        archive = root / "busybox.tar"
        build_oci_archive(busybox_image(BUSYBOX), archive)
        _import_image(archive, cluster.agent_dir)
        _import_image(archive, worker_dir)
        for pod in (_pod("pod-a", cluster.node_name), _pod("pod-b", worker)):
            cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

        async def pod_ips() -> dict[str, str] | None:
            pods = cluster.kubectl_json("get", "pods", "-n", "default")["items"]
            ips = {p["metadata"]["name"]: p["status"].get("podIP")
                   for p in pods if p["status"].get("phase") == "Running"}
            return ips if len(ips) == 2 and all(ips.values()) else None

        try:
            ips = await eventually_async(pod_ips, timeout=180, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{cluster.kubectl('get', 'pods', '-o', 'wide').stdout}\n{logs()}") from None

        nodes = {n["metadata"]["name"]: n for n in cluster.kubectl_json("get", "nodes")["items"]}
        server_cidr, worker_cidr = nodes[cluster.node_name]["spec"]["podCIDR"], nodes[worker]["spec"]["podCIDR"]

        def routes(netns: str) -> dict[str, str]:
            out = _ip("-n", netns, "-j", "route", "show", "proto", str(ROUTE_PROTO)).stdout
            return {r["dst"]: r.get("gateway", "") for r in json.loads(out or "[]")}

        try:
            await eventually_async(lambda: asyncio.to_thread(
                lambda: routes(node_netns) == {worker_cidr: WORKER_IP}), timeout=60)
            await eventually_async(lambda: asyncio.to_thread(
                lambda: routes(peer_netns) == {server_cidr: SERVER_IP}), timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: routes {routes(node_netns)} / {routes(peer_netns)}, want "
                                 f"{worker_cidr} via {WORKER_IP} / {server_cidr} via {SERVER_IP}\n{logs()}") from None

        async def fetch(pod: str, address: str) -> str | None:
            result = cluster.kubectl("exec", pod, "--", "wget", "-q", "-O-", f"http://{address}:{PORT}/cgi-bin/peer",
                                     check=False, timeout=60)
            return result.stdout.strip() if result.returncode == 0 else None

        assert await eventually_async(lambda: fetch("pod-a", ips["pod-b"]), timeout=60) == ips["pod-a"]
        assert await eventually_async(lambda: fetch("pod-b", ips["pod-a"]), timeout=60) == ips["pod-b"]
    finally:
        # The worker's pods first, while its containerd still runs: sandboxes take containers and netns along. Its
        # agent is frozen meanwhile, then killed (its containerd dies with the namespace's processes below).
        worker_socket = worker_dir / "containerd" / "containerd.sock"
        worker_pid = agent.pid if agent is not None and agent.poll() is None else None
        if worker_socket.exists():
            cri = CRIClient(f"unix://{worker_socket}", timeout=30)
            try:
                await freeze_and_remove_sandboxes(worker_pid, cri)
            finally:
                await cri.close()
        elif agent is not None and worker_pid is not None:
            agent.kill()
        if agent is not None:
            agent.wait(timeout=30)
        await cluster.remove_pods_from_runtime()
        await asyncio.to_thread(cluster.stop)
        for netns in (node_netns, peer_netns):
            for pid in processes_in_netns(netns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # only what this test started lives in its namespaces
        if cluster.forwarder is not None:
            cluster.forwarder.close()
        _remove_cgroup_tree(cluster.cgroup_root)
        _remove_cgroup_tree(worker_cgroup)
        shutil.rmtree(root, ignore_errors=True)
