"""Cluster DNS answers from in-memory Services, EndpointSlices and Namespaces (DNS messages via dnspython)."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pyk8s.dns.records import ClusterRecords
from pyk8s.dns.server import DNSHandler


def service(name: str, namespace: str = "default", cluster_ip: str = "10.43.0.20", ports=None, **spec) -> dict:
    ports = ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]
    body = {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports, **spec}
    if cluster_ip == "":
        body.pop("clusterIP"), body.pop("clusterIPs")
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": body}


def endpoint_slice(service_name: str, endpoints: list[dict], namespace: str = "default", suffix: str = "a",
                   ports=None, address_type: str = "IPv4") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


@pytest.fixture
def records() -> ClusterRecords:
    r = ClusterRecords("cluster.local", ttl=5, dns_ip="10.43.0.10")
    for ns in ("default", "kube-system", "apps"):
        r.set_object("namespaces", ns, {"metadata": {"name": ns}})
    r.set_object("services", "default/web", service("web", ports=[
        {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"},
        {"port": 9999, "protocol": "TCP"}]))
    r.set_object("services", "default/dual", service("dual", cluster_ip="10.43.0.21",
                                                     clusterIPs=["10.43.0.21", "fd00:43::21"]))
    r.set_object("services", "apps/db", service("db", namespace="apps", cluster_ip="None"))
    r.set_object("endpointslices", "apps/db-a", endpoint_slice("db", [
        {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["10.42.0.6"], "conditions": {"ready": True}},
        {"addresses": ["10.42.0.7"], "hostname": "db-2", "conditions": {"ready": False}},
    ], namespace="apps", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    r.set_object("services", "apps/empty", service("empty", namespace="apps", cluster_ip="None"))
    r.set_object("services", "default/ext", service("ext", cluster_ip="", type="ExternalName",
                                                    externalName="www.example.com"))
    r.set_object("services", "default/alias", service("alias", cluster_ip="", type="ExternalName",
                                                      externalName="web.default.svc.cluster.local"))
    return r


def ask(records: ClusterRecords, name: str, rdtype: str = "A", handler_forwarder=None) -> dns.message.Message:
    handler = DNSHandler(records, handler_forwarder)
    query = dns.message.make_query(name, rdtype)
    wire = asyncio.run(handler.handle(query.to_wire(), max_size=None))
    return dns.message.from_wire(wire)


def texts(response: dns.message.Message, rdtype: str | None = None) -> list[str]:
    return sorted(rdata.to_text() for rrset in response.answer
                  if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype) for rdata in rrset)


def test_cluster_ip_service_a_record(records):
    response = ask(records, "web.default.svc.cluster.local")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert texts(response) == ["10.43.0.20"]
    assert response.answer[0].ttl == 5


def test_names_are_case_insensitive_and_keep_the_askers_case(records):
    response = ask(records, "WEB.Default.SVC.cluster.local")
    assert texts(response) == ["10.43.0.20"]
    assert response.answer[0].name.to_text() == "WEB.Default.SVC.cluster.local."


def test_nodata_and_nxdomain_carry_the_soa(records):
    nodata = ask(records, "web.default.svc.cluster.local", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    assert nodata.authority[0].name == dns.name.from_text("cluster.local.")
    assert nodata.authority[0][0].mname == dns.name.from_text("ns.dns.cluster.local.")
    missing = ask(records, "nope.default.svc.cluster.local")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority[0].rdtype == dns.rdatatype.SOA
    # Names above records exist (empty non-terminals), an unknown namespace does not.
    assert ask(records, "default.svc.cluster.local").rcode() == dns.rcode.NOERROR
    assert ask(records, "svc.cluster.local").rcode() == dns.rcode.NOERROR
    assert ask(records, "nons.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_dual_stack_service_answers_a_and_aaaa(records):
    assert texts(ask(records, "dual.default.svc.cluster.local", "A")) == ["10.43.0.21"]
    assert texts(ask(records, "dual.default.svc.cluster.local", "AAAA")) == ["fd00:43::21"]


def test_srv_for_named_ports_only(records):
    response = ask(records, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert texts(response) == ["0 100 80 web.default.svc.cluster.local."]
    assert [r.to_text() for rrset in response.additional for r in rrset] == ["10.43.0.20"]
    assert texts(ask(records, "_dns._udp.web.default.svc.cluster.local", "SRV")) == [
        "0 100 53 web.default.svc.cluster.local."]
    assert ask(records, "_dns._tcp.web.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_headless_service_lists_ready_endpoints(records):
    assert texts(ask(records, "db.apps.svc.cluster.local")) == ["10.42.0.5", "10.42.0.6"]
    assert texts(ask(records, "db-0.db.apps.svc.cluster.local")) == ["10.42.0.5"]
    # Without a hostname the endpoint is named by its address.
    assert texts(ask(records, "10-42-0-6.db.apps.svc.cluster.local")) == ["10.42.0.6"]
    assert ask(records, "db-2.db.apps.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN  # not ready
    srv = ask(records, "_pg._tcp.db.apps.svc.cluster.local", "SRV")
    assert texts(srv) == ["0 50 5432 10-42-0-6.db.apps.svc.cluster.local.",
                          "0 50 5432 db-0.db.apps.svc.cluster.local."]
    assert sorted(r.to_text() for rrset in srv.additional for r in rrset) == ["10.42.0.5", "10.42.0.6"]


def test_headless_service_without_ready_endpoints_is_nxdomain(records):
    assert ask(records, "empty.apps.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_ptr_for_cluster_ips_and_endpoints(records):
    assert texts(ask(records, dns.reversename.from_address("10.43.0.20").to_text(), "PTR")) == [
        "web.default.svc.cluster.local."]
    assert texts(ask(records, dns.reversename.from_address("10.42.0.5").to_text(), "PTR")) == [
        "db-0.db.apps.svc.cluster.local."]
    assert records.lookup(dns.reversename.from_address("192.0.2.1"), dns.rdatatype.PTR) is None  # forwarded


def test_external_name_is_a_cname(records):
    response = ask(records, "ext.default.svc.cluster.local")
    assert texts(response, "CNAME") == ["www.example.com."]
    assert records.lookup(dns.name.from_text("ext.default.svc.cluster.local."), dns.rdatatype.A).chase == \
        dns.name.from_text("www.example.com.")
    # A target inside the cluster zone is followed here.
    alias = ask(records, "alias.default.svc.cluster.local")
    assert texts(alias, "CNAME") == ["web.default.svc.cluster.local."] and texts(alias, "A") == ["10.43.0.20"]


def test_pod_records_in_insecure_mode(records):
    assert texts(ask(records, "10-42-0-9.default.pod.cluster.local")) == ["10.42.0.9"]
    assert ask(records, "10-42-0-9.nons.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(records, "not-an-ip.default.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_schema_version_soa_and_ns(records):
    assert texts(ask(records, "dns-version.cluster.local", "TXT")) == ['"1.1.0"']
    assert ask(records, "cluster.local", "SOA").answer[0].rdtype == dns.rdatatype.SOA
    ns = ask(records, "cluster.local", "NS")
    assert texts(ns) == ["ns.dns.cluster.local."]
    assert [r.to_text() for rrset in ns.additional for r in rrset] == ["10.43.0.10"]


def test_changes_show_up_and_deletions_disappear(records):
    records.set_object("services", "default/web", None)
    assert ask(records, "web.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    records.set_object("endpointslices", "apps/db-a", None)
    assert ask(records, "db.apps.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    records.set_object("services", "default/new", service("new", cluster_ip="10.43.0.99"))
    assert texts(ask(records, "new.default.svc.cluster.local")) == ["10.43.0.99"]


def test_other_names_are_refused_without_upstreams(records):
    response = ask(records, "example.com")
    assert response.rcode() == dns.rcode.REFUSED and not response.flags & dns.flags.AA


def test_udp_answers_that_do_not_fit_are_truncated(records):
    endpoints = [{"addresses": [f"10.42.1.{i}"], "conditions": {"ready": True}} for i in range(1, 80)]
    records.set_object("endpointslices", "apps/db-b", endpoint_slice("db", endpoints, namespace="apps",
                                                                     suffix="b"))
    handler = DNSHandler(records, None)
    query = dns.message.make_query("db.apps.svc.cluster.local", "A")
    udp = dns.message.from_wire(asyncio.run(handler.handle(query.to_wire(), max_size=1232)))
    assert udp.flags & dns.flags.TC and udp.answer == []
    tcp = dns.message.from_wire(asyncio.run(handler.handle(query.to_wire(), max_size=None)))
    assert not tcp.flags & dns.flags.TC and len(texts(tcp)) == 81


def test_garbage_gets_formerr_or_nothing(records):
    handler = DNSHandler(records, None)
    assert asyncio.run(handler.handle(b"\x01\x02", max_size=512)) is None
    reply = asyncio.run(handler.handle(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff", max_size=512))
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR


def test_edns_queries_get_edns_answers_within_the_clients_buffer(records):
    endpoints = [{"addresses": [f"10.42.2.{i}"], "conditions": {"ready": True}} for i in range(1, 60)]
    records.set_object("endpointslices", "apps/db-c", endpoint_slice("db", endpoints, namespace="apps",
                                                                     suffix="c"))
    handler = DNSHandler(records, None)
    query = dns.message.make_query("db.apps.svc.cluster.local", "A", use_edns=0, payload=4096)
    reply = asyncio.run(handler.handle(query.to_wire(), max_size=1232))
    response = dns.message.from_wire(reply)
    assert response.edns == 0 and not response.flags & dns.flags.TC
    assert len(texts(response)) == 61 and len(reply) <= 1232


def test_an_endpoint_slice_that_changes_service_moves_its_records(records):
    moved = endpoint_slice("empty", [{"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
                                     {"addresses": ["10.42.0.6"], "conditions": {"ready": True}}],
                           namespace="apps", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}])
    moved["metadata"]["name"] = "db-a"  # the same slice, relabelled
    records.set_object("endpointslices", "apps/db-a", moved)
    assert ask(records, "db.apps.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert texts(ask(records, "empty.apps.svc.cluster.local")) == ["10.42.0.5", "10.42.0.6"]


def test_publish_not_ready_addresses_lists_unready_endpoints(records):
    db = service("db", namespace="apps", cluster_ip="None", publishNotReadyAddresses=True)
    records.set_object("services", "apps/db", db)
    assert texts(ask(records, "db-2.db.apps.svc.cluster.local")) == ["10.42.0.7"]
    assert len(texts(ask(records, "db.apps.svc.cluster.local"))) == 3


def test_cluster_names_are_servfail_until_the_caches_are_complete(records):
    handler = DNSHandler(records, None)
    handler.cluster_synced = False
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    response = dns.message.from_wire(asyncio.run(handler.handle(query.to_wire(), max_size=512)))
    assert response.rcode() == dns.rcode.SERVFAIL and not response.answer
