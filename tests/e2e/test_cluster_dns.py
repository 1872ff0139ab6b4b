"""`pyk8s dns` against a real apiserver on loopback: records follow the API, over UDP and TCP.

Other names go to a fake upstream resolver on loopback (never to the internet).
"""

from __future__ import annotations

import signal
import socketserver
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from server_process import ServerProcess, eventually, free_port

CLUSTER_DNS_IP = "10.43.0.10"
# Where pods would reach this node's DNS. Only written into the API here: the test sends it no traffic
# (a loopback address cannot be a Service endpoint).
ADVERTISED = "192.0.2.53"
NODE_NAME = "dns-node"


class _FakeUpstream(socketserver.BaseRequestHandler):
    """Every *.example.org name is 198.51.100.7."""

    questions: list[str] = []

    def handle(self) -> None:
        data, sock = self.request
        query = dns.message.from_wire(data)
        name = query.question[0].name
        type(self).questions.append(name.to_text())
        response = dns.message.make_response(query)
        if name.to_text().endswith("example.org."):
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "198.51.100.7"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(response.to_wire(), self.client_address)


@dataclass
class DNSNode:
    server: ServerProcess
    process: subprocess.Popen
    port: int
    metrics_port: int
    log_path: Path
    upstream_questions: list[str]


@pytest.fixture
def dns_node(tmp_path: Path) -> Iterator[DNSNode]:
    server = ServerProcess(tmp_path / "server")
    server.start()
    upstream = socketserver.UDPServer(("127.0.0.1", 0), _FakeUpstream)
    _FakeUpstream.questions = []
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    port, metrics_port = free_port(), free_port()
    log_path = tmp_path / "dns.log"
    process = None
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pyk8s.cli", "dns",
                 "--kubeconfig", str(server.component_kubeconfig("system:coredns")),
                 "--bind", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream.server_address[1]}",
                 "--cluster-dns", CLUSTER_DNS_IP, "--hostname-override", NODE_NAME, "--advertise-address", ADVERTISED,
                 "--metrics-bind-address", f"127.0.0.1:{metrics_port}"],
                stdout=log, stderr=subprocess.STDOUT)
        node = DNSNode(server, process, port, metrics_port, log_path, _FakeUpstream.questions)

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/ready", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        eventually(ready, timeout=60)
        yield node
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        upstream.shutdown()
        upstream.server_close()
        server.stop()


def query(node: DNSNode, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(message, "127.0.0.1", port=node.port, timeout=10)
    return dns.query.udp(message, "127.0.0.1", port=node.port, timeout=10)


def answers(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer for r in rrset)


def test_cluster_names_follow_the_api_over_udp_and_tcp(dns_node: DNSNode):
    server = dns_node.server
    kubernetes_ip = server.get("service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    for tcp in (False, True):
        response = query(dns_node, "kubernetes.default.svc.cluster.local", tcp=tcp)
        assert answers(response) == [kubernetes_ip] and response.answer[0].ttl == 5
    assert answers(query(dns_node, "_https._tcp.kubernetes.default.svc.cluster.local", "SRV")) == [
        "0 100 443 kubernetes.default.svc.cluster.local."]

    server.kubectl("create", "namespace", "apps")
    server.apply(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
         "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "apps"},
         "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "db-x", "namespace": "apps", "labels": {"kubernetes.io/service-name": "db"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
                       {"addresses": ["10.42.0.6"], "hostname": "db-1", "conditions": {"ready": True}}],
         "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "apps"},
         "spec": {"type": "ExternalName", "externalName": "db.example.org"}})
    web_ip = server.get("service", "web", "-n", "apps")["spec"]["clusterIP"]
    eventually(lambda: answers(query(dns_node, "web.apps.svc.cluster.local")) == [web_ip], timeout=30)
    eventually(lambda: answers(query(dns_node, "db.apps.svc.cluster.local", tcp=True)) == ["10.42.0.5", "10.42.0.6"],
               timeout=30)
    assert answers(query(dns_node, "db-1.db.apps.svc.cluster.local")) == ["10.42.0.6"]
    assert answers(query(dns_node, "_pg._tcp.db.apps.svc.cluster.local", "SRV")) == [
        "0 50 5432 db-0.db.apps.svc.cluster.local.", "0 50 5432 db-1.db.apps.svc.cluster.local."]
    reverse = ".".join(reversed(web_ip.split("."))) + ".in-addr.arpa"
    assert answers(query(dns_node, reverse, "PTR")) == ["web.apps.svc.cluster.local."]
    assert answers(query(dns_node, "10-42-0-9.apps.pod.cluster.local")) == ["10.42.0.9"]
    ext = query(dns_node, "ext.apps.svc.cluster.local")
    assert answers(ext) == ["198.51.100.7", "db.example.org."]

    nodata = query(dns_node, "web.apps.svc.cluster.local", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    assert query(dns_node, "nope.apps.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN

    # Other names go to the upstream resolver; cluster names never do.
    assert answers(query(dns_node, "www.example.org")) == ["198.51.100.7"]
    assert not any("cluster.local" in q for q in dns_node.upstream_questions)

    server.kubectl("delete", "service", "web", "-n", "apps")
    eventually(lambda: query(dns_node, "web.apps.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN, timeout=30)


def test_publishes_itself_as_the_kube_dns_service_and_withdraws_on_stop(dns_node: DNSNode):
    server = dns_node.server
    # The Endpoints object is written last.
    eventually(lambda: server.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system", check=False).returncode
               == 0, timeout=30)
    service = server.get("service", "kube-dns", "-n", "kube-system")
    assert service["spec"]["clusterIP"] == CLUSTER_DNS_IP
    assert [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("dns", 53, "UDP", dns_node.port), ("dns-tcp", 53, "TCP", dns_node.port),
        ("metrics", 9153, "TCP", dns_node.metrics_port)]
    endpoint_slice = server.get("endpointslice", f"kube-dns-{NODE_NAME}", "-n", "kube-system")
    assert endpoint_slice["endpoints"][0]["addresses"] == [ADVERTISED]
    assert endpoint_slice["endpoints"][0]["nodeName"] == NODE_NAME
    assert {p["port"] for p in endpoint_slice["ports"] if p["name"].startswith("dns")} == {dns_node.port}
    endpoints = server.get("endpoints", "kube-dns", "-n", "kube-system")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == [ADVERTISED]
    assert endpoints["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    with urllib.request.urlopen(f"http://127.0.0.1:{dns_node.metrics_port}/metrics", timeout=5) as resp:
        assert "coredns_dns_requests_total" in resp.read().decode()

    dns_node.process.send_signal(signal.SIGTERM)
    assert dns_node.process.wait(timeout=30) == 0, dns_node.log_path.read_text()[-3000:]
    assert server.kubectl("get", "endpointslice", f"kube-dns-{NODE_NAME}", "-n", "kube-system",
                          check=False).returncode != 0
    assert not server.get("endpoints", "kube-dns", "-n", "kube-system").get("subsets")
