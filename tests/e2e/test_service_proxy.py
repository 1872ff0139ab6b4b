"""`pyk8s proxy` routing real traffic with nftables, all inside a network namespace the test creates.

The node is a netns holding a bridge (cni0, 10.42.0.1/24), two "pod" netns on veths (10.42.0.11 and
10.42.0.12) each running busybox httpd, the apiserver (on the node's loopback) and the proxy. Services
and EndpointSlices are written with kubectl inside the node netns; requests are busybox wget, wrapped
in `timeout` (its own -T segfaults on a refused connection).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server_process import ServerProcess, eventually, free_port

NODE_NAME = "node-e2e"
BRIDGE_IP = "10.42.0.1"
PODS = {"a": "10.42.0.11", "b": "10.42.0.12"}
NODE_PORT = 30080


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


EXTERNAL_NODE_IP, EXTERNAL_CLIENT_IP = "192.168.77.1", "192.168.77.2"


@dataclass
class PodNetwork:
    node: str
    pods: dict[str, str]  # pod name → its netns
    external: str  # a client outside the cluster, on its own link to the node


@pytest.fixture
def pod_network(node_netns: str, tmp_path: Path) -> Iterator[PodNetwork]:
    """The bridge and two pod netns with httpd; every netns and process is removed afterwards."""
    if not Path("/usr/sbin/nft").exists() and not Path("/sbin/nft").exists():
        pytest.fail("nft is missing: apt-get install nftables")
    node = ["ip", "netns", "exec", node_netns]
    pods: dict[str, str] = {}
    servers: list[subprocess.Popen] = []
    try:
        _run(*node, "ip", "link", "add", "cni0", "type", "bridge")
        _run(*node, "ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", "cni0")
        _run(*node, "ip", "link", "set", "cni0", "up")
        _run(*node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for name, ip in PODS.items():
            netns = f"{node_netns}-{name}"
            _run("ip", "netns", "add", netns)
            pods[name] = netns
            pod = ["ip", "netns", "exec", netns]
            _run(*node, "ip", "link", "add", f"veth{name}", "type", "veth", "peer", "name", "eth0", "netns", netns)
            _run(*node, "ip", "link", "set", f"veth{name}", "master", "cni0", "up")
            # What the CNI bridge plugin's hairpinMode does: a pod can reach itself through a Service.
            _run(*node, "bridge", "link", "set", "dev", f"veth{name}", "hairpin", "on")
            _run(*pod, "ip", "link", "set", "lo", "up")
            _run(*pod, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            _run(*pod, "ip", "link", "set", "eth0", "up")
            _run(*pod, "ip", "route", "add", "default", "via", BRIDGE_IP)
            www = tmp_path / f"www-{name}"
            www.mkdir()
            (www / "index.html").write_text(f"pod-{name}\n")
            servers.append(subprocess.Popen([*pod, "busybox", "httpd", "-f", "-p", "80", "-h", str(www)]))
        external = f"{node_netns}-ext"
        _run("ip", "netns", "add", external)
        pods["ext"] = external  # deleted with the pods
        client = ["ip", "netns", "exec", external]
        _run(*node, "ip", "link", "add", "vext", "type", "veth", "peer", "name", "eth0", "netns", external)
        _run(*node, "ip", "addr", "add", f"{EXTERNAL_NODE_IP}/24", "dev", "vext")
        _run(*node, "ip", "link", "set", "vext", "up")
        _run(*client, "ip", "link", "set", "lo", "up")
        _run(*client, "ip", "addr", "add", f"{EXTERNAL_CLIENT_IP}/24", "dev", "eth0")
        _run(*client, "ip", "link", "set", "eth0", "up")
        _run(*client, "ip", "route", "add", "default", "via", EXTERNAL_NODE_IP)
        for ip in PODS.values():
            eventually(lambda ip=ip: _wget(pods["a"], f"http://{ip}/").returncode == 0, timeout=30)
        yield PodNetwork(node=node_netns, pods=pods, external=external)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        for netns in pods.values():
            _run("ip", "netns", "delete", netns, check=False)


def _wget(netns: str, url: str) -> subprocess.CompletedProcess:
    return _run("ip", "netns", "exec", netns, "timeout", "10", "busybox", "wget", "-q", "-O-", url, check=False)


def _answer(netns: str, url: str) -> str:
    result = _wget(netns, url)
    assert result.returncode == 0, f"{url} from {netns}: rc {result.returncode} {result.stderr}"
    return result.stdout.strip()


@dataclass
class ProxyNode:
    net: PodNetwork
    server: ServerProcess
    proxy: subprocess.Popen
    healthz_port: int
    proxy_log: Path


@pytest.fixture
def proxy_node(pod_network: PodNetwork, tmp_path: Path) -> Iterator[ProxyNode]:
    server = ServerProcess(tmp_path / "server", netns=pod_network.node)
    server.start()
    healthz_port = free_port()
    proxy_log = tmp_path / "proxy.log"
    proxy = None
    try:
        with open(proxy_log, "wb") as log:
            proxy = subprocess.Popen(
                ["ip", "netns", "exec", pod_network.node, sys.executable, "-m", "pyk8s.cli", "proxy",
                 "--kubeconfig", str(server.component_kubeconfig("system:kube-proxy")),
                 "--hostname-override", NODE_NAME,
                 "--cluster-cidr", "10.42.0.0/16", "--service-cidr", "10.43.0.0/16",
                 "--healthz-bind-address", f"127.0.0.1:{healthz_port}", "--metrics-bind-address", "",
                 "--min-sync-period", "0.2"],
                stdout=log, stderr=subprocess.STDOUT)
        yield ProxyNode(pod_network, server, proxy, healthz_port, proxy_log)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        server.stop()
        # The proxy leaves its table behind on exit (as kube-proxy does); the netns goes with it.


def _service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}], **spec}}


def _slice(service: str, pods: list[str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [PODS[p]], "conditions": {"ready": True}, "nodeName": NODE_NAME}
                          for p in pods],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


def _cluster_ip(node: ProxyNode, name: str) -> str:
    return node.server.get("service", name, "-n", "default")["spec"]["clusterIP"]


def _responders(netns: str, url: str, tries: int = 30) -> set[str]:
    return {_answer(netns, url) for _ in range(tries)}


def test_cluster_ip_node_port_hairpin_reject_and_updates(proxy_node: ProxyNode):
    net, server = proxy_node.net, proxy_node.server
    server.apply(_service("web", type="NodePort",
                          ports=[{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP",
                                  "nodePort": NODE_PORT}]),
                 _slice("web", ["a", "b"]),
                 _service("only-a"), _slice("only-a", ["a"]),
                 _service("empty"),
                 _service("sticky", sessionAffinity="ClientIP"), _slice("sticky", ["a", "b"]))
    web_ip, only_a_ip, empty_ip = (_cluster_ip(proxy_node, n) for n in ("web", "only-a", "empty"))
    sticky_ip = _cluster_ip(proxy_node, "sticky")
    url = f"http://{web_ip}/"

    eventually(lambda: _wget(net.pods["b"], url).returncode == 0, timeout=60)
    # Both endpoints get traffic, from a pod and from the node itself.
    assert _responders(net.pods["b"], url) == {"pod-a", "pod-b"}
    assert _responders(net.node, url) == {"pod-a", "pod-b"}
    # NodePort on the node's address, from a pod and from the node.
    node_port_url = f"http://{BRIDGE_IP}:{NODE_PORT}/"
    assert _responders(net.pods["a"], node_port_url) == {"pod-a", "pod-b"}
    assert _responders(net.node, node_port_url) == {"pod-a", "pod-b"}
    # Hairpin: pod a reaches itself through a Service whose only endpoint it is.
    assert _answer(net.pods["a"], f"http://{only_a_ip}/") == "pod-a"
    # ClientIP affinity: one client keeps its endpoint.
    assert len(_responders(net.pods["b"], f"http://{sticky_ip}/", tries=12)) == 1
    # A Service without endpoints refuses at once (reject), rather than timing out.
    refused = _wget(net.pods["b"], f"http://{empty_ip}/")
    assert refused.returncode not in (0, 124) and "refused" in refused.stderr, refused
    # A ClusterIP answers only on its Service's ports (a NodePort number included).
    wrong_port = _wget(net.pods["b"], f"http://{web_ip}:8080/")
    assert wrong_port.returncode not in (0, 124), wrong_port
    assert _wget(net.pods["b"], f"http://{web_ip}:{NODE_PORT}/").returncode not in (0, 124)

    # Endpoints change: the rules follow (a partial sync).
    server.apply(_slice("web", ["b"]), _slice("empty", ["b"]))
    eventually(lambda: _responders(net.pods["a"], url, tries=10) == {"pod-b"}, timeout=60)
    eventually(lambda: _wget(net.pods["a"], f"http://{empty_ip}/").stdout.strip() == "pod-b", timeout=60)
    # The Service goes: its ClusterIP stops answering.
    server.kubectl("delete", "service", "only-a", "-n", "default")
    eventually(lambda: _wget(net.pods["a"], f"http://{only_a_ip}/").returncode != 0, timeout=60)

    health = _run("ip", "netns", "exec", net.node, "timeout", "10", "busybox", "wget", "-q", "-O-",
                  f"http://127.0.0.1:{proxy_node.healthz_port}/healthz", check=False)
    assert health.returncode == 0, (health.stderr, proxy_node.proxy_log.read_text()[-2000:])
    assert json.loads(health.stdout)["nodeHealthy"] is True
    assert proxy_node.proxy.poll() is None, proxy_node.proxy_log.read_text()[-3000:]


def test_pods_resolve_names_through_the_cluster_dns_service(proxy_node: ProxyNode, tmp_path: Path):
    """`pyk8s dns` on the node's bridge address publishes kube-dns (10.43.0.10); the proxy routes pods to it."""
    net, server = proxy_node.net, proxy_node.server
    server.apply(_service("web"), _slice("web", ["a"]))
    web_ip = _cluster_ip(proxy_node, "web")
    log_path = tmp_path / "dns.log"
    with open(log_path, "wb") as log:
        dns_server = subprocess.Popen(
            ["ip", "netns", "exec", net.node, sys.executable, "-m", "pyk8s.cli", "dns",
             "--kubeconfig", str(server.component_kubeconfig("system:coredns")),
             "--bind", f"{BRIDGE_IP}:53", "--advertise-address", BRIDGE_IP, "--hostname-override", NODE_NAME,
             "--cluster-dns", "10.43.0.10", "--upstream", "127.0.0.1:1", "--metrics-bind-address", ""],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        def resolved() -> str:
            assert dns_server.poll() is None, log_path.read_text()[-3000:]
            result = _run("ip", "netns", "exec", net.pods["b"], "timeout", "10", "busybox", "nslookup",
                          "web.default.svc.cluster.local", "10.43.0.10", check=False)
            return result.stdout if result.returncode == 0 else ""

        answer = eventually(resolved, timeout=60)
        assert f"Address: {web_ip}" in answer, answer
        # And the name leads to the Service, through the proxy, as a pod would use it.
        assert _answer(net.pods["b"], f"http://{web_ip}/") == "pod-a"
    finally:
        dns_server.terminate()
        dns_server.wait(timeout=30)


def test_external_traffic_policy_local_serves_external_clients_from_this_node_only(proxy_node: ProxyNode):
    """pod-a runs on this node, pod-b (as the EndpointSlice says) on another one."""
    net, server = proxy_node.net, proxy_node.server
    remote_b = _slice("local-only", ["a", "b"])
    remote_b["endpoints"][1]["nodeName"] = "other-node"
    cluster_b = _slice("everywhere", ["a", "b"])
    cluster_b["endpoints"][1]["nodeName"] = "other-node"
    server.apply(
        _service("local-only", type="NodePort", externalTrafficPolicy="Local",
                 ports=[{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP", "nodePort": 30081}]),
        remote_b,
        _service("everywhere", type="NodePort",
                 ports=[{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP", "nodePort": 30082}]),
        cluster_b)
    local_url = f"http://{EXTERNAL_NODE_IP}:30081/"
    eventually(lambda: _wget(net.external, local_url).returncode == 0, timeout=60)
    # From outside: only the local endpoint. Pods and the node itself still reach every endpoint.
    assert _responders(net.external, local_url) == {"pod-a"}
    assert _responders(net.pods["b"], local_url) == {"pod-a", "pod-b"}
    assert _responders(net.node, local_url) == {"pod-a", "pod-b"}
    # With the Cluster policy, outside clients are spread over every endpoint (and masqueraded).
    eventually(lambda: _wget(net.external, f"http://{EXTERNAL_NODE_IP}:30082/").returncode == 0, timeout=60)
    assert _responders(net.external, f"http://{EXTERNAL_NODE_IP}:30082/") == {"pod-a", "pod-b"}
    # No local endpoint left: outside clients are dropped (they time out), pods still get through.
    remote_b["endpoints"] = remote_b["endpoints"][1:]
    server.apply(remote_b)
    eventually(lambda: _wget(net.external, local_url).returncode == 124, timeout=60)
    assert _responders(net.pods["b"], local_url, tries=5) == {"pod-b"}
