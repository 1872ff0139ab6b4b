"""What the proxy needs from Services and EndpointSlices, as plain values (no I/O).

Follows kube-proxy's `ServicePort` and `Endpoint` views (pkg/proxy/serviceport.go, endpoint.go) and
its endpoint categorisation (pkg/proxy/topology.go `CategorizeEndpoints`): which endpoints serve
traffic from inside the cluster, which serve external traffic under `externalTrafficPolicy: Local`,
and the fallback to serving-but-terminating endpoints when none is ready.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds; upstream's DefaultClientIPServiceAffinitySeconds
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with everything that decides how its traffic is routed."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    port: int
    cluster_ip: str
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges, as normalised IPv4 CIDRs
    affinity_timeout: int = 0  # seconds of ClientIP affinity; 0 = none
    internal_policy_local: bool = False
    external_policy_local: bool = False

    @property
    def key(self) -> str:
        """`ns/name:port`, upstream's ServicePortName as logs and comments print it."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or (self.externally_accessible and not self.external_policy_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.externally_accessible and self.external_policy_local)


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = field(default="", compare=False)


@functools.lru_cache(maxsize=65536)
def _ipv4(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


def _ipv4_network(value: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None
    return network if network.version == 4 else None


def service_ports(service: Mapping) -> list[ServicePort]:
    """The proxiable IPv4 ports of a Service: none for headless or ExternalName Services."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    cluster_ip = next((ip for ip in map(_ipv4, spec.get("clusterIPs") or [spec.get("clusterIP") or ""]) if ip),
                      None)
    if cluster_ip is None:  # headless ("None"), not yet allocated, or IPv6-only
        return []
    external_ips = tuple(ip for ip in map(_ipv4, spec.get("externalIPs") or []) if ip)
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    lb_ips = tuple(ip for ip in (_ipv4(entry.get("ip") or "") for entry in ingress
                                 if entry.get("ipMode", "VIP") == "VIP") if ip) \
        if spec.get("type") == "LoadBalancer" else ()
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
                      or DEFAULT_AFFINITY_TIMEOUT)
    external_local = spec.get("externalTrafficPolicy") == "Local" and (
        spec.get("type") in ("NodePort", "LoadBalancer") or bool(external_ips))
    source_ranges = tuple(sorted({str(net) for net in map(_ipv4_network, spec.get("loadBalancerSourceRanges") or [])
                                  if net is not None}))
    out = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        node_port = int(port.get("nodePort") or 0) if spec.get("type") in ("NodePort", "LoadBalancer") else 0
        out.append(ServicePort(
            namespace=meta.get("namespace") or "", name=meta.get("name") or "", port_name=port.get("name") or "",
            protocol=protocol, port=int(port["port"]), cluster_ip=cluster_ip, node_port=node_port,
            external_ips=external_ips, load_balancer_ips=lb_ips, source_ranges=source_ranges, affinity_timeout=timeout,
            internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
            external_policy_local=external_local))
    return out


def service_of_slice(endpoint_slice: Mapping) -> tuple[str, str] | None:
    """(namespace, service name) an EndpointSlice belongs to, by its `kubernetes.io/service-name` label."""
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return (meta.get("namespace") or "", name) if name else None


def slices_by_service(endpoint_slices: Iterable[Mapping]) -> dict[tuple[str, str], list[Mapping]]:
    out: dict[tuple[str, str], list[Mapping]] = {}
    for endpoint_slice in endpoint_slices:
        owner = service_of_slice(endpoint_slice)
        if owner is not None:
            out.setdefault(owner, []).append(endpoint_slice)
    return out


def slice_endpoints(endpoint_slices: Iterable[Mapping]) -> dict[tuple[str, str], list[Endpoint]]:
    """Merge one Service's IPv4 EndpointSlices into endpoints per (port name, protocol), deduplicated.

    A missing `ready` counts as ready, a missing `serving` follows `ready` and a missing `terminating`
    is false, as the EndpointSlice API documents.
    """
    merged: dict[tuple[str, str], dict[tuple[str, int], Endpoint]] = {}
    for endpoint_slice in endpoint_slices:
        if endpoint_slice.get("addressType") != "IPv4":
            continue
        for port in endpoint_slice.get("ports") or []:
            if port.get("port") is None:
                continue
            bucket = merged.setdefault((port.get("name") or "", port.get("protocol") or "TCP"), {})
            for entry in endpoint_slice.get("endpoints") or []:
                addresses = entry.get("addresses") or []
                ip = _ipv4(addresses[0]) if addresses else None
                if ip is None:
                    continue
                conditions = entry.get("conditions") or {}
                ready = conditions.get("ready") is not False
                serving = conditions["serving"] if conditions.get("serving") is not None else ready
                endpoint = Endpoint(ip=ip, port=int(port["port"]), ready=ready, serving=bool(serving),
                                    terminating=bool(conditions.get("terminating")),
                                    node_name=entry.get("nodeName") or "")
                bucket.setdefault((ip, endpoint.port), endpoint)
    return {key: sorted(bucket.values()) for key, bucket in merged.items()}


@dataclass(frozen=True)
class RoutedEndpoints:
    """Which endpoints take a service port's traffic (CategorizeEndpoints)."""

    cluster: tuple[Endpoint, ...]  # any node's endpoints, for the Cluster traffic policies
    local: tuple[Endpoint, ...]  # this node's endpoints, for the Local traffic policies
    all_reachable: tuple[Endpoint, ...]  # every endpoint some rule may send traffic to
    has_any: bool  # some endpoint, here or elsewhere, is ready or serving: without one, connections are rejected


def _usable(endpoints: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    """Ready endpoints, or if there are none, those still serving while they terminate."""
    endpoints = tuple(endpoints)
    ready = tuple(ep for ep in endpoints if ep.ready)
    return ready or tuple(ep for ep in endpoints if ep.serving and ep.terminating)


def categorize(port: ServicePort, endpoints: Iterable[Endpoint], node_name: str) -> RoutedEndpoints:
    endpoints = tuple(endpoints)
    cluster = _usable(endpoints) if port.uses_cluster_endpoints else ()
    local: tuple[Endpoint, ...] = ()
    if port.uses_local_endpoints:
        local = _usable(ep for ep in endpoints if node_name and ep.node_name == node_name)
    has_any = any(ep.ready or (ep.serving and ep.terminating) for ep in endpoints)
    return RoutedEndpoints(cluster=cluster, local=local, all_reachable=tuple(sorted(set(cluster) | set(local))),
                           has_any=has_any)
