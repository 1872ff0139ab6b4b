"""The kubelet's HTTPS server in front of a real containerd: container logs (with follow and tail) read from
the CRI log files containerd writes, and /stats/summary reporting the running container's cgroup usage.

containerd runs inside the test's own network namespace (the `containerd_node` fixture); the apiserver the
kubelet server checks its callers with, and the kubelet server itself, listen on loopback.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.client import APIClient
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image
from pyk8s.kubelet.server import KubeletServer
from pyk8s.server.kubeconfig import write_kubeconfig
from pyk8s.server.pki import PKI

from conftest import Node, eventually_async

NODE = "e2e-node"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A component-less `pyk8s server` on loopback: (data dir, URL)."""
    data_dir = tmp_path / "server"
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(data_dir), "--https-port", str(port),
         "--bind-address", "127.0.0.1", "--disable-agent", "--disable-controller-manager", "--disable-scheduler"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "pyk8s server not ready in time"
            if (data_dir / "kubeconfig.yaml").exists():
                try:
                    ctx = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.crt"))
                    with urllib.request.urlopen(f"{url}/readyz", context=ctx, timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
            time.sleep(0.2)
        yield data_dir, url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _serving_cert(pki: PKI, out: Path) -> tuple[Path, Path]:
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{NODE}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out.mkdir(parents=True, exist_ok=True)
    (out / "kubelet.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "kubelet.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return out / "kubelet.crt", out / "kubelet.key"


@pytest.fixture
async def kubelet(containerd_node: Node, apiserver, tmp_path: Path) -> AsyncIterator[tuple[KubeletServer, PKI]]:
    data_dir, url = apiserver
    pki = PKI.at(data_dir / "tls")
    cert, key = _serving_cert(pki, tmp_path / "kubelet-pki")
    node_cert, node_key = pki.issue_client_cert(f"system:node:{NODE}", ["system:nodes"])
    write_kubeconfig(tmp_path / "kubelet.kubeconfig", url, pki.ca_pem(), node_cert, node_key)
    client = APIClient.from_kubeconfig(str(tmp_path / "kubelet.kubeconfig"), qps=0)
    server = KubeletServer(client, containerd_node.cri, KubeletPaths(tmp_path / "node-data"), NODE, cert, key,
                           pki.ca_cert)
    await server.start("127.0.0.1", 0)
    try:
        yield server, pki
    finally:
        await server.stop()
        await client.close()


def _admin_tls(pki: PKI) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.check_hostname = False
    ctx.load_cert_chain(pki.admin_cert, pki.admin_key)
    return ctx


async def _run_pod(node: Node, paths: KubeletPaths, image: str, pod: dict, command: list[str]) -> tuple[str, str]:
    """A sandbox and one container labelled and logging as the kubelet contracts say: (sandbox id, container id)."""
    meta = pod["metadata"]
    labels = {"io.kubernetes.pod.name": meta["name"], "io.kubernetes.pod.namespace": meta["namespace"],
              "io.kubernetes.pod.uid": meta["uid"]}
    log_dir = paths.pod_log_dir(meta["namespace"], meta["name"], meta["uid"])
    log_dir.mkdir(parents=True, exist_ok=True)
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=meta["name"], uid=meta["uid"], namespace=meta["namespace"], attempt=0),
        hostname=meta["name"], log_directory=str(log_dir), labels=labels,
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"{node.cgroup_parent}/pod{meta['uid']}",
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD))))
    sandbox_id = await node.cri.run_pod_sandbox(sandbox_config)
    container_config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0), image=pb.ImageSpec(image=image), command=command,
        log_path=paths.container_log_path("app", 0),
        labels={**labels, "io.kubernetes.container.name": "app"},
        annotations={"io.kubernetes.container.restartCount": "0"})
    container_id = await node.cri.create_container(sandbox_id, container_config, sandbox_config)
    await node.cri.start_container(container_id)
    return sandbox_id, container_id


async def test_container_logs_and_stats_from_a_real_container(containerd_node: Node, kubelet, tmp_path: Path):
    server, pki = kubelet
    data_dir = containerd_node.config.data_dir
    busybox = build_oci_archive(busybox_image("pyk8s.local/busybox-e2e:1.35"), tmp_path / "busybox.tar")
    imported = subprocess.run([sys.executable, "-c", "from pyk8s.cli import main; main()", "images", "import",
                               str(tmp_path / "busybox.tar"), "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr

    admin = APIClient.from_kubeconfig(str(pki.dir.parent / "kubeconfig.yaml"), qps=0)
    try:
        await admin.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
        await admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "e2e"}})
        await admin.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default",
                                                                                        "namespace": "e2e"}})
        pod = await admin.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "counter",
                                                                                  "namespace": "e2e"},
                                  "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": busybox.name}]}})
        # Ten numbered lines, then one more every 0.3 s until stopped.
        script = "i=1; while true; do echo line $i; i=$((i+1)); if [ $i -gt 10 ]; then sleep 0.3; fi; done"
        _, container_id = await _run_pod(containerd_node, server.paths, busybox.name, pod, ["sh", "-c", script])
        pod["status"] = {"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": True, "restartCount": 0, "image": busybox.name, "imageID": "",
            "containerID": f"containerd://{container_id}",
            "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}]}
        await admin.update_status(pod)
    finally:
        await admin.close()

    base = f"https://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as http:
        async def get(path: str) -> tuple[int, str]:
            async with http.get(base + path, ssl=_admin_tls(pki)) as resp:
                return resp.status, await resp.text()

        async def ten_lines():
            status, text = await get("/containerLogs/e2e/counter/app")
            return text if status == 200 and text.count("\n") >= 10 else None

        text = await eventually_async(ten_lines, timeout=60)
        assert text.splitlines()[:10] == [f"line {i}" for i in range(1, 11)]
        status, tail = await get("/containerLogs/e2e/counter/app?tailLines=2&timestamps=true")
        assert status == 200 and len(tail.splitlines()) == 2
        stamp, _, line = tail.splitlines()[-1].partition(" ")
        assert line.startswith("line ") and stamp.endswith("Z")

        # follow: lines keep arriving as the container writes them.
        async with http.get(base + "/containerLogs/e2e/counter/app?follow=true&tailLines=1",
                            ssl=_admin_tls(pki)) as resp:
            assert resp.status == 200
            first = int((await asyncio.wait_for(resp.content.readline(), 30)).split()[1])
            later = [int((await asyncio.wait_for(resp.content.readline(), 30)).split()[1]) for _ in range(3)]
        assert later == [first + 1, first + 2, first + 3]

        status, body = await get("/stats/summary")
        assert status == 200
        summary = json.loads(body)
        pods = {p["podRef"]["name"]: p for p in summary["pods"]}
        container = pods["counter"]["containers"][0]
        assert container["name"] == "app"
        assert container["cpu"]["usageCoreNanoSeconds"] > 0
        assert container["memory"]["workingSetBytes"] > 0
        assert container["logs"]["usedBytes"] > 0
        status, metrics = await get("/metrics/resource")
        assert 'container_cpu_usage_seconds_total{container="app",namespace="e2e",pod="counter"} ' in metrics

        # A stopped container ends a follow once everything it wrote has been sent.
        async with http.get(base + "/containerLogs/e2e/counter/app?follow=true&tailLines=0",
                            ssl=_admin_tls(pki)) as resp:
            await containerd_node.cri.stop_container(container_id, grace_seconds=0)
            await asyncio.wait_for(resp.content.read(), 30)
    assert os.path.exists(server.paths.pod_log_dir("e2e", "counter", pod["metadata"]["uid"]) / "app" / "0.log")
