"""The proxy's pure core: Services + EndpointSlices → the nftables ruleset, and the transaction that installs it."""

from __future__ import annotations

import pytest

from pyk8s.proxy.render import ProxyConfig, Ruleset, render, script
from pyk8s.proxy.servicemodel import Endpoint, ServicePort, categorize, service_ports, slice_endpoints

NODE = "node-1"
CONFIG = ProxyConfig(node_name=NODE, cluster_cidr="10.42.0.0/16", service_cidr="10.43.0.0/16",
                     node_port_ips=("192.168.0.2",))


def service(name: str = "svc1", namespace: str = "ns1", cluster_ip: str = "10.43.0.41", port: int = 80,
            protocol: str = "TCP", port_name: str = "p80", node_port: int = 0, status: dict | None = None,
            **spec) -> dict:
    port_spec = {"name": port_name, "port": port, "protocol": protocol}
    if node_port:
        port_spec["nodePort"] = node_port
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
           "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": [port_spec], **spec}}
    if status:
        obj["status"] = status
    return obj


def endpoint(ip: str, node: str | None = NODE, **conditions) -> dict:
    out: dict = {"addresses": [ip], "conditions": {"ready": True, **conditions}}
    if node:
        out["nodeName"] = node
    return out


def endpoint_slice(*endpoints: dict, name: str = "svc1", namespace: str = "ns1", port: int = 80,
                   port_name: str = "p80", protocol: str = "TCP", suffix: str = "x") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{suffix}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": list(endpoints),
            "ports": [{"name": port_name, "port": port, "protocol": protocol}]}


def elements(ruleset: Ruleset, name: str) -> dict:
    return dict(ruleset.collections[name].elements)


SVC1 = "service-ULMVA6XW-ns1/svc1/tcp/p80"
EP1 = "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def test_cluster_ip_with_one_endpoint_matches_upstream_shape():
    ruleset = render([service()], [endpoint_slice(endpoint("10.180.0.1", node=None))], CONFIG)
    assert ruleset.chains[SVC1] == (
        "ip daddr 10.43.0.41 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 1 vmap {{ 0 : goto {EP1} }}",
    )
    assert ruleset.chains[EP1] == (
        "ip saddr 10.180.0.1 jump mark-for-masquerade",
        "meta l4proto tcp dnat to 10.180.0.1:80",
    )
    assert elements(ruleset, "service-ips") == {"10.43.0.41 . tcp . 80": f"goto {SVC1}"}
    assert elements(ruleset, "cluster-ips") == {"10.43.0.41": None}
    assert elements(ruleset, "no-endpoint-services") == {}


def test_base_chains_hook_the_tables_and_masquerade_by_mark():
    ruleset = render([], [], CONFIG)
    assert ruleset.chains["nat-prerouting"] == ("jump services",)
    assert ruleset.chains["nat-output"] == ("jump services",)
    assert ruleset.chains["masquerading"] == ("mark and 0x4000 == 0 return", "mark set mark xor 0x4000",
                                              "masquerade fully-random")
    assert ruleset.chains["services"][1] == \
        "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
    assert elements(ruleset, "nodeport-ips") == {"192.168.0.2": None}
    assert 'ip daddr { 10.43.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"' in \
        ruleset.chains["cluster-ips-check"]
    every_local = render([], [], ProxyConfig(node_name=NODE))
    assert every_local.chains["services"][1].startswith("fib daddr type local ip daddr != 127.0.0.0/8 ")
    assert len(every_local.chains["cluster-ips-check"]) == 1
    # ClusterIPs are local addresses too (the AnyIP route): they are no NodePort addresses.
    with_services = render([], [], ProxyConfig(node_name=NODE, service_cidr="10.43.0.0/16"))
    assert with_services.chains["services"][1].startswith(
        "fib daddr type local ip daddr != { 127.0.0.0/8, 10.43.0.0/16 } ")


def test_endpoints_are_spread_by_numgen_over_every_ready_endpoint():
    ruleset = render([service(port=443)], [endpoint_slice(endpoint("10.180.0.2"), endpoint("10.180.0.1"),
                                                          endpoint("10.180.0.3", ready=False), port=8443)],
                     CONFIG)
    chain = next(name for name in ruleset.chains if name.startswith("service-") and "/" in name)
    dispatch = ruleset.chains[chain][-1]
    assert dispatch.startswith("numgen random mod 2 vmap { 0 : goto endpoint-")
    assert "10.180.0.1/8443" in dispatch and "10.180.0.2/8443" in dispatch and "10.180.0.3" not in dispatch
    dnats = {rules[-1] for name, rules in ruleset.chains.items() if name.startswith("endpoint-")}
    assert dnats == {"meta l4proto tcp dnat to 10.180.0.1:8443", "meta l4proto tcp dnat to 10.180.0.2:8443"}


@pytest.mark.parametrize("conditions, expected", [
    ({"ready": False, "serving": True, "terminating": True}, "goto service-"),  # terminating fallback
    ({"ready": False, "serving": False, "terminating": True}, None),  # nothing serves: reject
    ({"ready": False}, None),
], ids=["serving-terminating", "not-serving", "not-ready"])
def test_terminating_endpoints_serve_only_when_nothing_is_ready(conditions, expected):
    ruleset = render([service()], [endpoint_slice(endpoint("10.180.0.1", **conditions))], CONFIG)
    if expected:
        assert elements(ruleset, "service-ips")["10.43.0.41 . tcp . 80"].startswith(expected)
    else:
        assert elements(ruleset, "service-ips") == {}
        assert elements(ruleset, "no-endpoint-services") == {
            '10.43.0.41 . tcp . 80 comment "ns1/svc1:p80"': "goto reject-chain"}


def test_service_without_endpoints_rejects_on_every_address():
    lb = service(type="LoadBalancer", node_port=30001, externalIPs=["192.168.99.11"],
                 status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})
    ruleset = render([lb], [], CONFIG)
    comment = 'comment "ns1/svc1:p80"'
    assert elements(ruleset, "no-endpoint-services") == {
        f"10.43.0.41 . tcp . 80 {comment}": "goto reject-chain",
        f"192.168.99.11 . tcp . 80 {comment}": "goto reject-chain",
        f"1.2.3.4 . tcp . 80 {comment}": "goto reject-chain"}
    assert elements(ruleset, "no-endpoint-nodeports") == {f"tcp . 30001 {comment}": "goto reject-chain"}
    assert not any(name.startswith(("service-", "external-", "endpoint-")) for name in ruleset.chains if "/" in name)


def test_node_port_and_external_ips_masquerade_and_go_to_the_cluster_chain():
    svc = service(type="NodePort", node_port=30080, externalIPs=["192.168.99.33", "fd00::1"])
    ruleset = render([svc], [endpoint_slice(endpoint("10.180.0.1"))], CONFIG)
    external = SVC1.replace("service-", "external-")
    assert ruleset.chains[external] == ("jump mark-for-masquerade", f"goto {SVC1}")
    assert elements(ruleset, "service-nodeports") == {"tcp . 30080": f"goto {external}"}
    assert elements(ruleset, "service-ips")["192.168.99.33 . tcp . 80"] == f"goto {external}"
    assert len(elements(ruleset, "service-ips")) == 2  # IPv6 external IPs belong to an ip6 table


def test_external_traffic_policy_local():
    svc = service(type="LoadBalancer", node_port=30001, externalTrafficPolicy="Local",
                  status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})
    remote_only = render([svc], [endpoint_slice(endpoint("10.180.0.2", node="node-2"))], CONFIG)
    external = SVC1.replace("service-", "external-")
    assert remote_only.chains[external] == (
        f'ip saddr 10.42.0.0/16 goto {SVC1} comment "short-circuit pod traffic"',
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto {SVC1} comment "short-circuit local traffic"')
    # No local endpoint: external clients are dropped (not rejected: other nodes may have some).
    assert elements(remote_only, "no-endpoint-nodeports") == {'tcp . 30001 comment "ns1/svc1:p80"': "drop"}
    assert elements(remote_only, "no-endpoint-services") == {'1.2.3.4 . tcp . 80 comment "ns1/svc1:p80"': "drop"}
    # ClusterIP traffic still reaches the remote endpoint.
    assert elements(remote_only, "service-ips")["10.43.0.41 . tcp . 80"] == f"goto {SVC1}"

    with_local = render([svc], [endpoint_slice(endpoint("10.180.0.2", node="node-2"), endpoint("10.180.0.1"))],
                        CONFIG)
    local = SVC1.replace("service-", "local-")
    assert with_local.chains[external][-1] == f"goto {local}"
    assert with_local.chains[local] == (f"numgen random mod 1 vmap {{ 0 : goto {EP1} }}",)
    assert "mark-for-masquerade" not in with_local.chains[external][-1]
    assert elements(with_local, "no-endpoint-nodeports") == {}


def test_internal_traffic_policy_local_drops_without_local_endpoints():
    svc = service(internalTrafficPolicy="Local")
    remote = render([svc], [endpoint_slice(endpoint("10.180.0.2", node="node-2"))], CONFIG)
    assert elements(remote, "no-endpoint-services") == {'10.43.0.41 . tcp . 80 comment "ns1/svc1:p80"': "drop"}
    local = render([svc], [endpoint_slice(endpoint("10.180.0.2", node="node-2"), endpoint("10.180.0.1"))], CONFIG)
    assert elements(local, "service-ips") == {"10.43.0.41 . tcp . 80": f"goto {SVC1.replace('service-', 'local-')}"}


def test_client_ip_affinity_uses_one_timed_set_per_endpoint():
    svc = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    ruleset = render([svc], [endpoint_slice(endpoint("10.180.0.1"))], CONFIG)
    affinity = EP1.replace("endpoint-", "affinity-")
    assert ruleset.collections[affinity].spec == "type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;"
    assert ruleset.chains[SVC1][1] == f"ip saddr @{affinity} goto {EP1}"
    assert ruleset.chains[EP1][1] == f"update @{affinity} {{ ip saddr }}"
    default_timeout = render([service(sessionAffinity="ClientIP")], [endpoint_slice(endpoint("10.180.0.1"))], CONFIG)
    assert "timeout 10800s" in default_timeout.collections[affinity].spec


def test_load_balancer_source_ranges():
    svc = service(type="LoadBalancer", node_port=30001, loadBalancerSourceRanges=[" 203.0.113.0/25", "bogus"],
                  status={"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}})
    ruleset = render([svc], [endpoint_slice(endpoint("10.180.0.1"))], CONFIG)
    firewall = SVC1.replace("service-", "firewall-")
    assert ruleset.chains[firewall] == ("ip saddr != { 203.0.113.0/25 } drop",)
    assert elements(ruleset, "firewall-ips") == {"5.6.7.8 . tcp . 80": f"goto {firewall}"}


@pytest.mark.parametrize("svc", [
    service(cluster_ip="None"),
    service(type="ExternalName", externalName="example.com", cluster_ip=""),
    service(cluster_ip="fd00::10"),
], ids=["headless", "external-name", "ipv6-only"])
def test_services_the_ipv4_proxy_does_not_handle(svc):
    ruleset = render([svc], [endpoint_slice(endpoint("10.180.0.1"))], CONFIG)
    assert elements(ruleset, "service-ips") == {} and elements(ruleset, "cluster-ips") == {}


def test_masquerade_all_and_no_cluster_cidr():
    slices = [endpoint_slice(endpoint("10.180.0.1"))]
    masq_all = render([service()], slices, ProxyConfig(node_name=NODE, masquerade_all=True))
    assert masq_all.chains[SVC1][0] == "ip daddr 10.43.0.41 jump mark-for-masquerade"
    no_cidr = render([service()], slices, ProxyConfig(node_name=NODE))
    assert no_cidr.chains[SVC1][0].startswith("numgen")


def test_endpoint_slices_merge_and_match_ports_by_name_and_protocol():
    slices = [endpoint_slice(endpoint("10.180.0.1"), endpoint("10.180.0.2"), suffix="a"),
              endpoint_slice(endpoint("10.180.0.2"), endpoint("10.180.0.3"), suffix="b"),
              endpoint_slice(endpoint("10.180.0.9"), port_name="p80", protocol="UDP", suffix="c"),
              {**endpoint_slice(endpoint("fd00::1"), suffix="d"), "addressType": "IPv6"}]
    merged = slice_endpoints(slices)
    assert [ep.ip for ep in merged[("p80", "TCP")]] == ["10.180.0.1", "10.180.0.2", "10.180.0.3"]
    assert [ep.ip for ep in merged[("p80", "UDP")]] == ["10.180.0.9"]


def test_categorize_follows_the_traffic_policies():
    port = ServicePort("ns", "s", "p", "TCP", 80, "10.43.0.1", node_port=30000, external_policy_local=True)
    here, there = Endpoint("10.0.0.1", 80, node_name=NODE), Endpoint("10.0.0.2", 80, node_name="other")
    routed = categorize(port, [here, there], NODE)
    assert routed.cluster == (here, there) and routed.local == (here,)
    assert set(routed.all_reachable) == {here, there}
    port_ids = service_ports(service(ports=[{"port": 53, "protocol": "UDP"}, {"port": 1, "protocol": "ICMP"}]))
    assert [(p.protocol, p.port) for p in port_ids] == [("UDP", 53)]


# ---- the transaction --------------------------------------------------------------------------

def test_full_script_replaces_the_table_atomically():
    text = script(render([service()], [endpoint_slice(endpoint("10.180.0.1", node=None))], CONFIG), None)
    lines = text.splitlines()
    assert lines[:3] == ['add table ip pyk8s { comment "rules for the pyk8s service proxy" ; }',
                         "delete table ip pyk8s",
                         'add table ip pyk8s { comment "rules for the pyk8s service proxy" ; }']
    assert "add chain ip pyk8s nat-prerouting { type nat hook prerouting priority -100 ; }" in lines
    assert f"add element ip pyk8s service-ips {{ 10.43.0.41 . tcp . 80 : goto {SVC1} }}" in lines
    # Chains and maps exist before anything refers to them.
    first_rule = next(i for i, line in enumerate(lines) if line.startswith("add rule"))
    assert all(not line.startswith(("add chain", "add map", "add set")) for line in lines[first_rule:])


def test_partial_script_is_the_difference():
    slices = [endpoint_slice(endpoint("10.180.0.1", node=None), endpoint("10.180.0.2"))]
    before = render([service(), service(name="svc2", cluster_ip="10.43.0.42")], slices, CONFIG)
    assert script(before, before) == ""
    after = render([service()], [endpoint_slice(endpoint("10.180.0.1", node=None))], CONFIG)
    lines = script(after, before).splitlines()
    removed_endpoint = next(name for name in before.chains if "10.180.0.2" in name)
    assert f"flush chain ip pyk8s {removed_endpoint}" in lines
    assert lines[-1] == f"delete chain ip pyk8s {removed_endpoint}"
    assert f"flush chain ip pyk8s {SVC1}" in lines  # its dispatch rule changed
    assert 'delete element ip pyk8s no-endpoint-services { 10.43.0.42 . tcp . 80 }' in lines
    assert "delete element ip pyk8s cluster-ips { 10.43.0.42 }" in lines
    assert not any(line.startswith(("delete table", "add table")) for line in lines)


def test_partial_script_adds_new_affinity_sets_and_changed_definitions_force_a_full_sync():
    slices = [endpoint_slice(endpoint("10.180.0.1"))]
    plain = render([service()], slices, CONFIG)
    sticky = render([service(sessionAffinity="ClientIP")], slices, CONFIG)
    lines = script(sticky, plain).splitlines()
    affinity = EP1.replace("endpoint-", "affinity-")
    assert lines[0] == f"add set ip pyk8s {affinity} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }}"
    assert f"update @{affinity} {{ ip saddr }}" in "\n".join(lines)
    assert f"delete set ip pyk8s {affinity}" in script(plain, sticky).splitlines()
    shorter = render([service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}})],
                     slices, CONFIG)
    assert script(shorter, sticky).startswith("add table ip pyk8s")


def test_external_ips_of_a_cluster_ip_service_follow_a_local_external_policy():
    svc = service(externalIPs=["192.168.99.44"], externalTrafficPolicy="Local")
    ruleset = render([svc], [endpoint_slice(endpoint("10.180.0.1"))], CONFIG)
    external = SVC1.replace("service-", "external-")
    assert ruleset.chains[external][-1] == f"goto {SVC1.replace('service-', 'local-')}"
