"""Forwarding names outside the cluster to a fake upstream resolver on loopback, with the cache."""

from __future__ import annotations

import asyncio
import socket

import dns.message
import dns.rcode
import dns.rrset
import pytest

from pyk8s.dns.forward import Forwarder, resolvers_from
from pyk8s.dns.records import ClusterRecords
from pyk8s.dns.server import DNSHandler


class FakeUpstream(asyncio.DatagramProtocol):
    """Answers A for *.example.com with 192.0.2.1 (TTL 300) and NXDOMAIN (with an SOA) for anything else."""

    def __init__(self):
        self.questions: list[str] = []
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text()
        self.questions.append(name)
        response = dns.message.make_response(query)
        if name.endswith("example.com."):
            response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", "192.0.2.1"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text("invalid.", 60, "IN", "SOA",
                                                          "ns.invalid. h.invalid. 1 2 3 4 20"))
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def upstream():
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(FakeUpstream, local_addr=("127.0.0.1", 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def ask(handler: DNSHandler, name: str, rdtype: str = "A") -> dns.message.Message:
    wire = await handler.handle(dns.message.make_query(name, rdtype).to_wire(), max_size=1232)
    return dns.message.from_wire(wire)


async def test_other_names_are_forwarded_and_cached(upstream):
    fake, port = upstream
    forwarder = Forwarder([("127.0.0.1", port)], max_ttl=30)
    handler = DNSHandler(ClusterRecords(), forwarder)
    first = await ask(handler, "www.example.com")
    assert [r.to_text() for r in first.answer[0]] == ["192.0.2.1"]
    assert first.answer[0].ttl == 30  # capped at the cache's maximum
    second = await ask(handler, "WWW.example.com")
    assert [r.to_text() for r in second.answer[0]] == ["192.0.2.1"]
    assert fake.questions == ["www.example.com."] and forwarder.cache_hits == 1
    # Negative answers are cached too, with their SOA.
    for _ in range(2):
        missing = await ask(handler, "nothing.invalid")
        assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority[0].rdtype == dns.rdatatype.SOA
    assert fake.questions.count("nothing.invalid.") == 1
    # Cluster names never leave.
    await ask(handler, "x.default.svc.cluster.local")
    assert not any("cluster.local" in q for q in fake.questions)


async def test_external_name_target_is_resolved_upstream(upstream):
    _, port = upstream
    records = ClusterRecords()
    records.set_object("services", "default/ext", {"metadata": {"name": "ext", "namespace": "default"},
                                                   "spec": {"type": "ExternalName", "externalName": "db.example.com"}})
    response = await ask(DNSHandler(records, Forwarder([("127.0.0.1", port)])), "ext.default.svc.cluster.local")
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert response.answer[1][0].to_text() == "192.0.2.1"


async def test_no_answering_upstream_is_servfail():
    handler = DNSHandler(ClusterRecords(), Forwarder([("127.0.0.1", _free_udp_port())], timeout=0.5))
    response = await ask(handler, "www.example.com")
    assert response.rcode() == dns.rcode.SERVFAIL


def test_resolvers_from_resolv_conf(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\noptions ndots:5\n")
    assert resolvers_from(path) == [("192.0.2.53", 53), ("fe80::1", 53)]
    assert resolvers_from(tmp_path / "missing") == []
