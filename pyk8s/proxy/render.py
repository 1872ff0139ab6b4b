"""Services and EndpointSlices → the desired nftables ruleset of table `ip pyk8s` (pure, no I/O).

The shape is kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go): verdict maps keyed on
`daddr . l4proto . dport` send service traffic to one chain per service port, which picks an
endpoint with `numgen random` (after ClientIP affinity sets, if any) and jumps to one chain per
endpoint that DNATs. Masquerading is a mark set on the way in and acted on in postrouting: for
traffic to a ClusterIP from outside the cluster CIDR, for every external (NodePort, externalIP,
LoadBalancer) connection unless `externalTrafficPolicy: Local`, and for hairpin traffic (an
endpoint reaching itself through its service). Filter chains reject connections to services
without endpoints, drop those that a Local policy leaves without a local endpoint, reject
unknown ports of ClusterIPs and drop unallocated ClusterIPs.

`script` turns a desired `Ruleset` into one `nft -f` transaction: a full replacement when nothing
is known to be installed, otherwise the difference from the last ruleset applied (changed chains
are flushed and refilled, map elements added and deleted, stale chains and sets deleted last).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .servicemodel import (
    PROTOCOLS,
    Endpoint,
    RoutedEndpoints,
    ServicePort,
    categorize,
    service_ports,
    slice_endpoints,
    slices_by_service,
)

FAMILY = "ip"
TABLE = "pyk8s"
MASQUERADE_MARK = "0x4000"
ELEMENTS_PER_STATEMENT = 500  # keeps each `add element` line a manageable size

BASE_CHAINS = {
    "filter-prerouting-pre-dnat": "type filter hook prerouting priority -110 ;",
    "filter-output-pre-dnat": "type filter hook output priority -110 ;",
    "filter-forward": "type filter hook forward priority 0 ;",
    "filter-input": "type filter hook input priority 0 ;",
    "filter-output": "type filter hook output priority 0 ;",
    "nat-prerouting": "type nat hook prerouting priority -100 ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority 100 ;",
}

SERVICE_KEY = "ipv4_addr . inet_proto . inet_service"
NODEPORT_KEY = "inet_proto . inet_service"


@dataclass(frozen=True)
class ProxyConfig:
    node_name: str
    cluster_cidr: str = ""  # pod traffic comes from here; anything else to a ClusterIP is masqueraded
    service_cidr: str = ""  # traffic to unallocated addresses in it is dropped
    masquerade_all: bool = False
    # Addresses that accept NodePort traffic; None means every local address except 127.0.0.0/8.
    node_port_ips: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Collection:
    """A named set or map; `elements` maps an element's key to its value (None in a set).

    Dynamic sets (ClientIP affinity) are filled by the kernel: their elements are never managed here.
    """

    kind: str  # "set" or "map"
    spec: str  # what goes inside `{ ... }` when it is created
    elements: Mapping[str, str | None] = field(default_factory=dict)
    dynamic: bool = False


@dataclass
class Ruleset:
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every chain → its rules, in order
    collections: dict[str, Collection] = field(default_factory=dict)


@functools.lru_cache(maxsize=65536)
def _hash(text: str) -> str:
    """Eight base32 characters of the SHA-256 (they come from its first five bytes)."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:5]).decode()


def _port_id(port: ServicePort) -> str:
    return f"{port.namespace}/{port.name}/{PROTOCOLS[port.protocol]}/{port.port_name}"


def _chain_name(prefix: str, port: ServicePort) -> str:
    port_id = _port_id(port)
    return f"{prefix}-{_hash(port_id)}-{port_id}"


def _endpoint_id(port: ServicePort, endpoint: Endpoint) -> str:
    return f"{_port_id(port)}__{endpoint.ip}/{endpoint.port}"


def endpoint_chain_name(port: ServicePort, endpoint: Endpoint) -> str:
    endpoint_id = _endpoint_id(port, endpoint)
    return f"endpoint-{_hash(endpoint_id)}-{endpoint_id}"


def affinity_set_name(port: ServicePort, endpoint: Endpoint) -> str:
    endpoint_id = _endpoint_id(port, endpoint)
    return f"affinity-{_hash(endpoint_id)}-{endpoint_id}"


def _dispatch_rules(port: ServicePort, endpoints: tuple[Endpoint, ...]) -> list[str]:
    """Affinity first (a client that used an endpoint recently goes back to it), then a random pick."""
    rules = []
    if port.affinity_timeout:
        rules += [f"ip saddr @{affinity_set_name(port, ep)} goto {endpoint_chain_name(port, ep)}" for ep in endpoints]
    choices = " , ".join(f"{i} : goto {endpoint_chain_name(port, ep)}" for i, ep in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


class _Builder:
    def __init__(self, config: ProxyConfig):
        self.config = config
        self.chains: dict[str, list[str]] = {}
        self.elements: dict[str, dict[str, str | None]] = {
            name: {} for name in ("cluster-ips", "nodeport-ips", "service-ips", "service-nodeports",
                                  "no-endpoint-services", "no-endpoint-nodeports", "firewall-ips")}
        self.affinity_sets: dict[str, int] = {}

    def chain(self, name: str, rules: Iterable[str] = ()) -> None:
        self.chains.setdefault(name, []).extend(rules)

    def base(self) -> None:
        c = self.config
        for name in BASE_CHAINS:
            self.chain(name)
        self.chain("filter-prerouting-pre-dnat", ["ct state new jump firewall-check"])
        self.chain("filter-output-pre-dnat", ["ct state new jump firewall-check"])
        self.chain("filter-forward", ["ct state new jump service-endpoints-check",
                                      "ct state new jump cluster-ips-check"])
        # Service IPs are local addresses on the node (see routes.py), so unknown ports and unallocated
        # ClusterIPs are refused on input as well: no host listener answers on a ClusterIP.
        self.chain("filter-input", ["ct state new jump nodeport-endpoints-check",
                                    "ct state new jump service-endpoints-check",
                                    "ct state new jump cluster-ips-check"])
        self.chain("filter-output", ["ct state new jump service-endpoints-check",
                                     "ct state new jump cluster-ips-check"])
        self.chain("nat-prerouting", ["jump services"])
        self.chain("nat-output", ["jump services"])
        self.chain("nat-postrouting", ["jump masquerading"])
        self.chain("firewall-check", ["ip daddr . meta l4proto . th dport vmap @firewall-ips"])
        self.chain("mark-for-masquerade", [f"mark set mark or {MASQUERADE_MARK}"])
        self.chain("masquerading", [f"mark and {MASQUERADE_MARK} == 0 return",
                                    f"mark set mark xor {MASQUERADE_MARK}", "masquerade fully-random"])
        self.chain("reject-chain", ["reject"])
        self.chain("services", ["ip daddr . meta l4proto . th dport vmap @service-ips"])
        self.chain("service-endpoints-check", ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"])
        cluster_ips_check = ['ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"']
        if c.service_cidr:
            cluster_ips_check.append(f'ip daddr {{ {c.service_cidr} }} drop comment '
                                     '"Drop traffic to unallocated ClusterIPs"')
        self.chain("cluster-ips-check", cluster_ips_check)
        if c.node_port_ips is None:
            # Every local address, but not loopback, and not the ClusterIPs the AnyIP route makes local.
            not_node = f"{{ 127.0.0.0/8, {c.service_cidr} }}" if c.service_cidr else "127.0.0.0/8"
            local = f"fib daddr type local ip daddr != {not_node}"
            self.chain("services", [f"{local} meta l4proto . th dport vmap @service-nodeports"])
            self.chain("nodeport-endpoints-check", [f"{local} meta l4proto . th dport vmap @no-endpoint-nodeports"])
        else:
            self.elements["nodeport-ips"].update(dict.fromkeys(c.node_port_ips))
            self.chain("services", ["ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"])
            self.chain("nodeport-endpoints-check",
                       ["ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"])

    def service_port(self, port: ServicePort, routed: RoutedEndpoints) -> None:
        c = self.config
        proto = PROTOCOLS[port.protocol]
        cluster_chain, local_chain = _chain_name("service", port), _chain_name("local", port)
        external_chain, firewall_chain = _chain_name("external", port), _chain_name("firewall", port)
        uses_cluster_chain = bool(routed.cluster) and port.uses_cluster_endpoints
        uses_local_chain = bool(routed.local) and port.uses_local_endpoints
        has_endpoints = bool(routed.all_reachable)
        has_internal = bool(routed.local if port.internal_policy_local else routed.cluster)
        has_external = bool(routed.local if port.external_policy_local else routed.cluster)
        uses_external_chain = has_endpoints and port.externally_accessible
        internal_chain = local_chain if port.internal_policy_local else cluster_chain
        no_endpoints = "goto reject-chain" if not routed.has_any else "drop"
        comment = f'comment "{port.key}"'

        self.elements["cluster-ips"][port.cluster_ip] = None
        cluster_key = f"{port.cluster_ip} . {proto} . {port.port}"
        if has_internal:
            self.elements["service-ips"][cluster_key] = f"goto {internal_chain}"
        else:
            self.elements["no-endpoint-services"][f"{cluster_key} {comment}"] = no_endpoints

        if uses_cluster_chain:
            rules = []
            if c.masquerade_all:
                rules.append(f"ip daddr {port.cluster_ip} jump mark-for-masquerade")
            elif c.cluster_cidr:
                rules.append(f"ip daddr {port.cluster_ip} ip saddr != {c.cluster_cidr} jump mark-for-masquerade")
            self.chain(cluster_chain, rules + _dispatch_rules(port, routed.cluster))
        if uses_local_chain:
            self.chain(local_chain, _dispatch_rules(port, routed.local))

        external_ips = port.external_ips + port.load_balancer_ips
        if uses_external_chain:
            rules = []
            if not port.external_policy_local:
                rules.append("jump mark-for-masquerade")
                if uses_cluster_chain:
                    rules.append(f"goto {cluster_chain}")
            else:
                if uses_cluster_chain:
                    if c.cluster_cidr:
                        rules.append(f'ip saddr {c.cluster_cidr} goto {cluster_chain} comment '
                                     '"short-circuit pod traffic"')
                    rules.append('fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"')
                    rules.append(f'fib saddr type local goto {cluster_chain} comment "short-circuit local traffic"')
                if uses_local_chain:
                    rules.append(f"goto {local_chain}")
            self.chain(external_chain, rules)
            for ip in external_ips:
                self.elements["service-ips"][f"{ip} . {proto} . {port.port}"] = f"goto {external_chain}"
            if port.node_port:
                self.elements["service-nodeports"][f"{proto} . {port.node_port}"] = f"goto {external_chain}"
        if not has_external:
            for ip in external_ips:
                self.elements["no-endpoint-services"][f"{ip} . {proto} . {port.port} {comment}"] = no_endpoints
            if port.node_port:
                self.elements["no-endpoint-nodeports"][f"{proto} . {port.node_port} {comment}"] = no_endpoints

        if port.source_ranges and port.load_balancer_ips:
            self.chain(firewall_chain, [f"ip saddr != {{ {', '.join(port.source_ranges)} }} drop"])
            for ip in port.load_balancer_ips:
                self.elements["firewall-ips"][f"{ip} . {proto} . {port.port}"] = f"goto {firewall_chain}"

        for endpoint in routed.all_reachable:
            rules = [f"ip saddr {endpoint.ip} jump mark-for-masquerade"]
            if port.affinity_timeout:
                affinity = affinity_set_name(port, endpoint)
                self.affinity_sets[affinity] = port.affinity_timeout
                rules.append(f"update @{affinity} {{ ip saddr }}")
            rules.append(f"meta l4proto {proto} dnat to {endpoint.ip}:{endpoint.port}")
            self.chain(endpoint_chain_name(port, endpoint), rules)

    def ruleset(self) -> Ruleset:
        specs = {
            "cluster-ips": ("set", 'type ipv4_addr ; comment "Active ClusterIPs" ;'),
            "nodeport-ips": ("set", 'type ipv4_addr ; comment "IPs that accept NodePort traffic" ;'),
            "service-ips": ("map", f'type {SERVICE_KEY} : verdict ; comment "ClusterIP, ExternalIP and '
                                   'LoadBalancer IP traffic" ;'),
            "service-nodeports": ("map", f'type {NODEPORT_KEY} : verdict ; comment "NodePort traffic" ;'),
            "no-endpoint-services": ("map", f'type {SERVICE_KEY} : verdict ; comment "vmap to drop or reject '
                                            'packets to services with no endpoints" ;'),
            "no-endpoint-nodeports": ("map", f'type {NODEPORT_KEY} : verdict ; comment "vmap to drop or reject '
                                             'packets to service nodeports with no endpoints" ;'),
            "firewall-ips": ("map", f'type {SERVICE_KEY} : verdict ; comment "destinations that are subject to '
                                    'LoadBalancerSourceRanges" ;'),
        }
        collections = {name: Collection(kind, spec, self.elements[name]) for name, (kind, spec) in specs.items()}
        for name, timeout in self.affinity_sets.items():
            collections[name] = Collection("set", f"type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ;",
                                           dynamic=True)
        return Ruleset(chains={name: tuple(rules) for name, rules in self.chains.items()}, collections=collections)


def render(services: Iterable[Mapping], endpoint_slices: Iterable[Mapping], config: ProxyConfig) -> Ruleset:
    """The whole desired ruleset for these Services and EndpointSlices as seen from `config.node_name`."""
    slices = slices_by_service(endpoint_slices)
    builder = _Builder(config)
    builder.base()
    ports = sorted((port for service in services for port in service_ports(service)), key=_port_id)
    merged: dict[tuple[str, str], dict[tuple[str, str], list[Endpoint]]] = {}
    for port in ports:
        owner = (port.namespace, port.name)
        if owner not in merged:
            merged[owner] = slice_endpoints(slices.get(owner, ()))
        endpoints = merged[owner].get((port.port_name, port.protocol), [])
        builder.service_port(port, categorize(port, endpoints, config.node_name))
    return builder.ruleset()


# ---- the nft transaction --------------------------------------------------------------------

def _object(kind: str, name: str) -> str:
    return f"{kind} {FAMILY} {TABLE} {name}"


def _element(key: str, value: str | None) -> str:
    return key if value is None else f"{key} : {value}"


def _element_statements(verb: str, name: str, items: list[str]) -> list[str]:
    return [f"{verb} element {FAMILY} {TABLE} {name} {{ {' , '.join(items[i:i + ELEMENTS_PER_STATEMENT])} }}"
            for i in range(0, len(items), ELEMENTS_PER_STATEMENT)]


def _element_key(key: str) -> str:
    """The key part of an element as written (a comment is not part of the key)."""
    return key.split(" comment ", 1)[0]


def _add_chain(name: str) -> str:
    spec = BASE_CHAINS.get(name)
    return _object("add chain", name) + (f" {{ {spec} }}" if spec else "")


def _add_collection(name: str, collection: Collection) -> str:
    return f"{_object('add ' + collection.kind, name)} {{ {collection.spec} }}"


def _full_script(desired: Ruleset) -> list[str]:
    lines = [f'add table {FAMILY} {TABLE} {{ comment "rules for the pyk8s service proxy" ; }}',
             f"delete table {FAMILY} {TABLE}",
             f'add table {FAMILY} {TABLE} {{ comment "rules for the pyk8s service proxy" ; }}']
    lines += [_add_chain(name) for name in desired.chains]
    lines += [_add_collection(name, coll) for name, coll in desired.collections.items()]
    for name, coll in desired.collections.items():
        lines += _element_statements("add", name, [_element(k, v) for k, v in coll.elements.items()])
    for name, rules in desired.chains.items():
        lines += [f"{_object('add rule', name)} {rule}" for rule in rules]
    return lines


def needs_full_sync(desired: Ruleset, installed: Ruleset | None) -> bool:
    """A changed set or map definition cannot be altered in place: start from a fresh table."""
    if installed is None:
        return True
    return any(name in installed.collections and installed.collections[name].spec != coll.spec
               for name, coll in desired.collections.items())


def script(desired: Ruleset, installed: Ruleset | None) -> str:
    """One `nft -f` transaction that turns `installed` (None: unknown) into `desired`; "" if nothing changes."""
    if needs_full_sync(desired, installed):
        return "\n".join(_full_script(desired)) + "\n"
    assert installed is not None
    lines = [_add_collection(name, coll) for name, coll in desired.collections.items()
             if name not in installed.collections]
    lines += [_add_chain(name) for name in desired.chains if name not in installed.chains]
    stale_chains = [name for name in installed.chains if name not in desired.chains]
    # Flush stale chains first, so nothing refers to a chain or set when it is deleted at the end.
    lines += [_object("flush chain", name) for name in stale_chains]
    for name, rules in desired.chains.items():
        if installed.chains.get(name) == rules:
            continue
        if name in installed.chains:
            lines.append(_object("flush chain", name))
        lines += [f"{_object('add rule', name)} {rule}" for rule in rules]
    for name, coll in desired.collections.items():
        if coll.dynamic:
            continue
        before = installed.collections.get(name)
        old = {_element_key(k): _element(k, v) for k, v in (before.elements if before else {}).items()}
        new = {_element_key(k): _element(k, v) for k, v in coll.elements.items()}
        removed = [key for key, text in old.items() if new.get(key) != text]
        added = [text for key, text in new.items() if old.get(key) != text]
        lines += _element_statements("delete", name, removed)
        lines += _element_statements("add", name, added)
    lines += [_object("delete chain", name) for name in stale_chains]
    lines += [_object(f"delete {coll.kind}", name) for name, coll in installed.collections.items()
              if name not in desired.collections]
    return "\n".join(lines) + "\n" if lines else ""

