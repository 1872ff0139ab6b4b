"""Pod-to-pod traffic between two nodes over host-gateway routes (issue #6 part 7).

Network safety: the test builds its whole world out of network namespaces it creates and deletes: a `lan`
namespace holding the test bridge `br0` that joins the two nodes (and whose own address on it plays a host
outside the cluster), two node namespaces (`eth0` on the lan, `cni0` bridge with the node's podCIDR gateway)
and one pod namespace per node (veth into `cni0`, default route via the gateway). No namespace has a route
out; nothing is added to the host's network namespace. The apiserver runs on loopback in the host namespace;
`HostGatewayRoutes` runs in the test process and programs each node namespace through `ip -n`/`ip netns exec`.
Every process the test starts is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyk8s.client import APIClient
from pyk8s.kubelet.routes import NFT_TABLE, ROUTE_PROTO, HostGatewayRoutes
from pyk8s.kubelet.runtime.containerd import Containerd, ContainerdConfig
from pyk8s.kubelet.runtime.cri import CRIClient, CRIError, pb
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import _remove_cgroup_tree, eventually_async, remove_all_sandboxes

CLUSTER_CIDR = "10.42.0.0/16"
LAN_PREFIX = "192.168.250"
OUTSIDE_IP = f"{LAN_PREFIX}.100"  # br0's own address in the lan namespace: a host outside the cluster
PORT = 8080

# Answers every connection with the address it came from, so the test sees whether traffic was NATed.
PEER_ECHO = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
while True:
    conn, peer = server.accept()
    conn.recv(4096)
    conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n" + peer[0].encode())
    conn.close()
"""


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


@dataclass
class FakeNode:
    name: str
    netns: str
    pod_netns: str
    ip: str
    pod_cidr: str
    pod_ip: str


@dataclass
class Lan:
    netns: str
    a: FakeNode
    b: FakeNode


def _build_node(lan: str, node: FakeNode, lan_port: str, hand_made_pod: bool) -> None:
    sh("ip", "netns", "add", node.netns)
    sh("ip", "-n", node.netns, "link", "set", "lo", "up")
    sh("ip", "-n", node.netns, "link", "add", "eth0", "type", "veth", "peer", "name", lan_port, "netns", lan)
    sh("ip", "-n", lan, "link", "set", lan_port, "master", "br0", "up")
    sh("ip", "-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
    sh("ip", "-n", node.netns, "link", "set", "eth0", "up")
    if not hand_made_pod:
        return
    # What the CNI bridge plugin would do for one pod (host-runtime-facts §2).
    gateway = node.pod_cidr.rsplit(".", 1)[0] + ".1"
    sh("ip", "netns", "add", node.pod_netns)
    sh("ip", "-n", node.netns, "link", "add", "cni0", "type", "bridge")
    sh("ip", "-n", node.netns, "addr", "add", f"{gateway}/24", "dev", "cni0")
    sh("ip", "-n", node.netns, "link", "set", "cni0", "up")
    sh("ip", "-n", node.netns, "link", "add", "vethpod", "type", "veth", "peer", "name", "eth0", "netns",
       node.pod_netns)
    sh("ip", "-n", node.netns, "link", "set", "vethpod", "master", "cni0", "up")
    sh("ip", "-n", node.pod_netns, "link", "set", "lo", "up")
    sh("ip", "-n", node.pod_netns, "addr", "add", f"{node.pod_ip}/24", "dev", "eth0")
    sh("ip", "-n", node.pod_netns, "link", "set", "eth0", "up")
    sh("ip", "-n", node.pod_netns, "route", "add", "default", "via", gateway)


@contextmanager
def two_node_lan(hand_made_pods: bool) -> Iterator[Lan]:
    """Two nodes joined by a test bridge (each with one pod on its own cni0 bridge if `hand_made_pods`);
    every namespace is deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    prefix = f"pyk8s-e2e-{secrets.token_hex(3)}"
    world = Lan(f"{prefix}-lan",
                FakeNode("node-a", f"{prefix}-a", f"{prefix}-a-pod", f"{LAN_PREFIX}.1", "10.42.0.0/24", "10.42.0.10"),
                FakeNode("node-b", f"{prefix}-b", f"{prefix}-b-pod", f"{LAN_PREFIX}.2", "10.42.1.0/24", "10.42.1.10"))
    created = sh("ip", "netns", "add", world.netns, check=False)
    if created.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {created.stderr.strip()}")
    try:
        sh("ip", "-n", world.netns, "link", "set", "lo", "up")
        sh("ip", "-n", world.netns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", world.netns, "addr", "add", f"{OUTSIDE_IP}/24", "dev", "br0")
        sh("ip", "-n", world.netns, "link", "set", "br0", "up")
        _build_node(world.netns, world.a, "port-a", hand_made_pods)
        _build_node(world.netns, world.b, "port-b", hand_made_pods)
        for netns in (world.netns, world.a.netns, world.b.netns):
            routes = sh("ip", "-n", netns, "-4", "route", "show", "table", "main").stdout
            assert "default" not in routes, f"{netns} has a route out: {routes}"
        yield world
    finally:
        for netns in (world.a.pod_netns, world.b.pod_netns, world.a.netns, world.b.netns, world.netns):
            sh("ip", "netns", "delete", netns, check=False)


@pytest.fixture
def lan() -> Iterator[Lan]:
    with two_node_lan(hand_made_pods=True) as world:
        yield world


@pytest.fixture
def bare_lan() -> Iterator[Lan]:
    """The two nodes without pods: containerd's CNI bridge plugin makes cni0 and the pods."""
    with two_node_lan(hand_made_pods=False) as world:
        yield world


@contextmanager
def peer_echo_servers(*places: tuple[str, str]) -> Iterator[None]:
    """PEER_ECHO on (netns, address) each, started and stopped by PID."""
    processes = [subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", PEER_ECHO, address, str(PORT)])
                 for netns, address in places]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def echo_servers(lan: Lan) -> Iterator[None]:
    with peer_echo_servers((lan.b.pod_netns, lan.b.pod_ip), (lan.a.pod_netns, lan.a.pod_ip), (lan.netns, OUTSIDE_IP)):
        yield


async def register(client: APIClient, node: FakeNode) -> None:
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name},
                         "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}})
    current = await client.get("nodes", node.name)
    current["status"] = {"addresses": [{"type": "InternalIP", "address": node.ip},
                                       {"type": "Hostname", "address": node.name}]}
    await client.update_status(current)


def our_routes(netns: str) -> dict[str, str]:
    routes = json.loads(sh("ip", "-n", netns, "-j", "route", "show", "proto", str(ROUTE_PROTO)).stdout or "[]")
    return {route["dst"]: route.get("gateway", "") for route in routes}


async def fetch(from_netns: str, address: str) -> str | None:
    """What the peer-echo server at `address` saw as our address, or None if it was unreachable."""
    result = await asyncio.to_thread(sh, "timeout", "10", "ip", "netns", "exec", from_netns, "busybox", "wget",
                                     "-q", "-O-", f"http://{address}:{PORT}/", check=False, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else None


async def ping(from_netns: str, address: str) -> bool:
    result = await asyncio.to_thread(sh, "timeout", "10", "ip", "netns", "exec", from_netns, "busybox", "ping",
                                     "-c", "1", "-W", "3", address, check=False, timeout=30)
    return result.returncode == 0


async def test_pods_on_two_nodes_reach_each_other_by_pod_ip(lan: Lan, client: APIClient, echo_servers: None):
    a, b = lan.a, lan.b
    # An administrator's route in node A: no business of the route manager's, it must survive everything.
    sh("ip", "-n", a.netns, "route", "add", "10.99.0.0/24", "via", b.ip)
    assert not await ping(a.pod_netns, b.pod_ip), "pods must not reach each other before any route exists"

    await register(client, a)
    await register(client, b)
    # A node whose address is on no subnet node A or B is connected to: its route cannot go in, the others must.
    await register(client, FakeNode("node-far", "", "", "10.77.0.5", "10.42.9.0/24", ""))
    managers = {node.name: HostGatewayRoutes(client, node.name, cluster_cidrs=[CLUSTER_CIDR], netns=node.netns,
                                             resync_period=5) for node in (a, b)}
    tasks = [asyncio.create_task(manager.run()) for manager in managers.values()]
    try:
        await eventually_async(lambda: asyncio.to_thread(our_routes, a.netns), timeout=60)
        assert our_routes(a.netns) == {b.pod_cidr: b.ip}
        await eventually_async(lambda: asyncio.to_thread(our_routes, b.netns), timeout=60)
        assert our_routes(b.netns) == {a.pod_cidr: a.ip}
        for node in (a, b):
            assert sh("ip", "netns", "exec", node.netns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"

        # Both ways, by pod IP, and the receiving pod sees the sending pod's own address (no NAT between pods).
        assert await ping(a.pod_netns, b.pod_ip)
        assert await ping(b.pod_netns, a.pod_ip)
        assert await fetch(a.pod_netns, b.pod_ip) == a.pod_ip
        assert await fetch(b.pod_netns, a.pod_ip) == b.pod_ip
        # Leaving the cluster CIDR, pod traffic takes its node's address (masquerade).
        assert await fetch(a.pod_netns, OUTSIDE_IP) == a.ip
        assert await fetch(b.pod_netns, OUTSIDE_IP) == b.ip

        # A route the kernel (or someone) dropped comes back with the next resync.
        sh("ip", "-n", a.netns, "route", "del", b.pod_cidr, "via", b.ip, "proto", str(ROUTE_PROTO))
        await eventually_async(lambda: asyncio.to_thread(lambda: our_routes(a.netns) == {b.pod_cidr: b.ip}),
                               timeout=60)

        # Node B leaves the cluster: its route goes from node A, and so does pod A's way to pod B.
        await client.delete("nodes", b.name)
        await eventually_async(lambda: asyncio.to_thread(lambda: our_routes(a.netns) == {}), timeout=60)
        assert not await ping(a.pod_netns, b.pod_ip)
        assert "10.99.0.0/24" in sh("ip", "-n", a.netns, "route", "show").stdout
    finally:
        for manager in managers.values():
            await manager.stop()
        for task in tasks:
            await task

    # Stopping leaves routes in place (pods keep talking while an agent restarts); remove_all takes ours away.
    assert our_routes(b.netns) == {a.pod_cidr: a.ip}
    await managers[b.name].remove_all()
    assert our_routes(b.netns) == {}
    tables = sh("ip", "netns", "exec", b.netns, "nft", "list", "tables").stdout
    assert NFT_TABLE not in tables
    assert NFT_TABLE in sh("ip", "netns", "exec", a.netns, "nft", "list", "tables").stdout


# ---- the same through containerd: pods made by the CRI and the node's real CNI config ------------------------

# Serves /cgi-bin/peer, which answers with the caller's address (busybox httpd CGI), on port PORT.
PEER_HTTPD = ("mkdir -p /tmp/www/cgi-bin && echo '#!/bin/sh' > /tmp/www/cgi-bin/peer"
              " && echo 'echo Content-Type: text/plain; echo; echo $REMOTE_ADDR' >> /tmp/www/cgi-bin/peer"
              f" && busybox chmod 755 /tmp/www/cgi-bin/peer && exec httpd -f -p 0.0.0.0:{PORT} -h /tmp/www")


@dataclass
class RuntimeNode:
    node: FakeNode
    containerd: Containerd
    cri: CRIClient
    cgroup_parent: str


@pytest.fixture
async def runtime_nodes(bare_lan: Lan, tmp_path: Path) -> AsyncIterator[list[RuntimeNode]]:
    """containerd inside each node's namespace, with the node's podCIDR in its CNI bridge config."""
    started: list[RuntimeNode] = []
    try:
        for node in (bare_lan.a, bare_lan.b):
            suffix = node.netns.removeprefix("pyk8s-e2e-")
            config = ContainerdConfig(data_dir=tmp_path / node.name, netns=node.netns, pod_cidr=node.pod_cidr,
                                      sandbox_image=f"pyk8s.local/pause-e2e-{suffix}:1.0")
            containerd = Containerd(config)
            await containerd.start(timeout=60)
            started.append(RuntimeNode(node, containerd, CRIClient(config.endpoint), f"/pyk8s-e2e-{suffix}"))
        yield started
    finally:
        for runtime in started:
            try:
                await remove_all_sandboxes(runtime.cri)
            finally:
                await runtime.cri.close()
                await runtime.containerd.stop()
                _remove_cgroup_tree(runtime.cgroup_parent)


async def run_pod(runtime: RuntimeNode, image: str, tmp_path: Path) -> tuple[str, str]:
    """A sandbox with one container serving PEER_HTTPD; returns (container id, pod IP)."""
    uid = secrets.token_hex(8)
    name = f"web-{runtime.node.name}"
    log_dir = tmp_path / "pods" / name
    log_dir.mkdir(parents=True)
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0), hostname=name,
        log_directory=str(log_dir),
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": uid},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{runtime.cgroup_parent}/pod{uid}"))
    sandbox_id = await runtime.cri.run_pod_sandbox(sandbox_config)
    container_config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="web", attempt=0), image=pb.ImageSpec(image=image),
        command=["sh", "-c", PEER_HTTPD], log_path="web/0.log")
    container_id = await runtime.cri.create_container(sandbox_id, container_config, sandbox_config)
    await runtime.cri.start_container(container_id)
    pod_ip = (await runtime.cri.pod_sandbox_status(sandbox_id)).status.network.ip
    return container_id, pod_ip


async def container_fetch(runtime: RuntimeNode, container_id: str, url: str) -> str | None:
    try:
        result = await runtime.cri.exec_sync(container_id, ["wget", "-q", "-O-", url], timeout_seconds=10)
    except CRIError:
        return None
    return result.stdout.decode().strip() if result.exit_code == 0 else None


async def test_containerd_pods_on_two_nodes_reach_each_other(bare_lan: Lan, runtime_nodes: list[RuntimeNode],
                                                             client: APIClient, tmp_path: Path):
    image = build_oci_archive(busybox_image("pyk8s.local/busybox-e2e:1.35"), tmp_path / "busybox.tar")
    for runtime in runtime_nodes:
        config = runtime.containerd.config
        await import_archive(tmp_path / "busybox.tar", config.socket, snapshotter=config.snapshotter)
    (a_container, a_ip), (b_container, b_ip) = [await run_pod(runtime, image.name, tmp_path)
                                                for runtime in runtime_nodes]
    node_a, node_b = runtime_nodes
    assert ipaddress.ip_address(a_ip) in ipaddress.ip_network(bare_lan.a.pod_cidr)
    assert ipaddress.ip_address(b_ip) in ipaddress.ip_network(bare_lan.b.pod_cidr)

    await register(client, bare_lan.a)
    await register(client, bare_lan.b)
    managers = [HostGatewayRoutes(client, node.name, cluster_cidrs=[CLUSTER_CIDR], netns=node.netns)
                for node in (bare_lan.a, bare_lan.b)]
    tasks = [asyncio.create_task(manager.run()) for manager in managers]
    try:
        with peer_echo_servers((bare_lan.netns, OUTSIDE_IP)):
            # Pod to pod across nodes by pod IP, with the sender's pod address intact (the CNI config's
            # bridge does no masquerading of its own).
            assert await eventually_async(
                lambda: container_fetch(node_a, a_container, f"http://{b_ip}:{PORT}/cgi-bin/peer"), timeout=60) == a_ip
            assert await eventually_async(
                lambda: container_fetch(node_b, b_container, f"http://{a_ip}:{PORT}/cgi-bin/peer"), timeout=60) == b_ip
            # Out of the cluster CIDR with the node's address.
            assert await container_fetch(node_a, a_container, f"http://{OUTSIDE_IP}:{PORT}/") == bare_lan.a.ip
    finally:
        for manager in managers:
            await manager.stop()
        for task in tasks:
            await task
