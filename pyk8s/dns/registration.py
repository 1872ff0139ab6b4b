"""Publish the DNS server as the cluster DNS Service: `kube-system/kube-dns` on the cluster DNS IP.

pyk8s runs DNS as a node process, not a pod, so there is no selector: this server writes its own
address into an EndpointSlice (one per DNS instance, named after it) and into the Endpoints object
(marked to be skipped by EndpointSlice mirroring), and the service proxy routes 10.43.0.10 there.
On a clean stop it takes its address out again.
"""

from __future__ import annotations

import ipaddress
import logging
import re

from ..client import APIClient, APIStatusError, is_already_exists, is_conflict, is_not_found

log = logging.getLogger("pyk8s.dns.registration")

NAMESPACE = "kube-system"
SERVICE_NAME = "kube-dns"
MANAGED_BY = "pyk8s-dns"
SERVICE_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
ENDPOINT_SLICES = ("discovery.k8s.io", "v1", "endpointslices")


def service_manifest(cluster_ip: str, dns_port: int, metrics_port: int | None) -> dict:
    ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": dns_port},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": dns_port}]
    if metrics_port:
        ports.append({"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": metrics_port})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE, "labels": dict(SERVICE_LABELS),
                         "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports}}


def _slice_ports(dns_port: int, metrics_port: int | None) -> list[dict]:
    ports = [{"name": "dns", "port": dns_port, "protocol": "UDP"},
             {"name": "dns-tcp", "port": dns_port, "protocol": "TCP"}]
    if metrics_port:
        ports.append({"name": "metrics", "port": metrics_port, "protocol": "TCP"})
    return ports


def slice_name(instance: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", instance.lower()).strip("-")[:40]
    return f"{SERVICE_NAME}-{cleaned or 'dns'}"


def endpoint_slice_manifest(instance: str, address: str, node_name: str, dns_port: int,
                            metrics_port: int | None) -> dict:
    endpoint: dict = {"addresses": [address], "conditions": {"ready": True, "serving": True, "terminating": False}}
    if node_name:
        endpoint["nodeName"] = node_name
    family = "IPv4" if ipaddress.ip_address(address).version == 4 else "IPv6"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name(instance), "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": SERVICE_NAME,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": family, "endpoints": [endpoint], "ports": _slice_ports(dns_port, metrics_port)}


class DNSRegistration:
    def __init__(self, client: APIClient, *, cluster_ip: str, address: str, dns_port: int,
                 metrics_port: int | None, instance: str, node_name: str = ""):
        self.client = client
        self.cluster_ip = cluster_ip
        self.address = address
        self.dns_port = dns_port
        self.metrics_port = metrics_port
        self.instance = instance
        self.node_name = node_name

    async def ensure(self) -> None:
        """Create what is missing and correct what drifted; safe to call again at any time."""
        if await self._ensure_service():
            await self._ensure_endpoint_slice()
            await self._ensure_endpoints()

    async def _ensure_service(self) -> bool:
        """Create or correct the Service; False when it belongs to someone else (it has a selector)."""
        wanted = service_manifest(self.cluster_ip, self.dns_port, self.metrics_port)
        try:
            current = await self.client.get("services", SERVICE_NAME, NAMESPACE)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
            await self.client.create(wanted)
            log.info("dns: created Service %s/%s on %s", NAMESPACE, SERVICE_NAME, self.cluster_ip)
            return True
        spec = current.get("spec") or {}
        if spec.get("clusterIP") != self.cluster_ip:
            log.warning("dns: Service %s/%s has clusterIP %s, not %s (a ClusterIP cannot change; delete the "
                        "Service to move it)", NAMESPACE, SERVICE_NAME, spec.get("clusterIP"), self.cluster_ip)
        if spec.get("selector"):
            log.warning("dns: Service %s/%s has a selector: its endpoints are managed elsewhere, this server "
                        "does not publish itself", NAMESPACE, SERVICE_NAME)
            return False
        current_ports = [{k: p.get(k) for k in ("name", "port", "protocol", "targetPort")}
                         for p in spec.get("ports") or []]
        if current_ports != wanted["spec"]["ports"]:
            await self.client.patch("services", SERVICE_NAME, {"spec": {"ports": wanted["spec"]["ports"]}},
                                    NAMESPACE, patch_type="merge")
        return True

    async def _ensure_endpoint_slice(self) -> None:
        wanted = endpoint_slice_manifest(self.instance, self.address, self.node_name, self.dns_port,
                                         self.metrics_port)
        name = wanted["metadata"]["name"]
        try:
            current = await self.client.get(ENDPOINT_SLICES, name, NAMESPACE)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
            await self.client.create(wanted)
            log.info("dns: published %s:%d in EndpointSlice %s/%s", self.address, self.dns_port, NAMESPACE, name)
            return
        if any(current.get(k) != wanted[k] for k in ("addressType", "endpoints", "ports")):
            wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.client.update(wanted)

    async def _ensure_endpoints(self) -> None:
        for _ in range(5):  # other DNS instances share the object: retry on conflicts
            try:
                current = await self.client.get("endpoints", SERVICE_NAME, NAMESPACE)
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise
                current = None
            subsets = _with_address((current or {}).get("subsets") or [], self.address, self.dns_port,
                                    self.metrics_port, self.node_name)
            if current is not None and current.get("subsets") == subsets:
                return
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE,
                                 "labels": {**SERVICE_LABELS, "endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": subsets}
            try:
                if current is None:
                    await self.client.create(body)
                else:
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await self.client.update(body)
                return
            except APIStatusError as exc:
                if not is_conflict(exc) and not is_already_exists(exc):
                    raise

    async def withdraw(self) -> None:
        """Take this instance's address out (on a clean stop), so no traffic goes to a stopped server."""
        try:
            await self.client.delete(ENDPOINT_SLICES, slice_name(self.instance), NAMESPACE)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
        try:
            current = await self.client.get("endpoints", SERVICE_NAME, NAMESPACE)
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            raise
        subsets = _without_address(current.get("subsets") or [], self.address)
        if subsets != current.get("subsets"):
            current["subsets"] = subsets
            try:
                await self.client.update(current)
            except APIStatusError as exc:
                if not is_conflict(exc):
                    raise


def _with_address(subsets: list[dict], address: str, dns_port: int, metrics_port: int | None,
                  node_name: str) -> list[dict]:
    """The Endpoints subsets with this instance's address in them (one subset: every instance shares ports)."""
    ports = _slice_ports(dns_port, metrics_port)
    addresses = [a for subset in subsets for a in subset.get("addresses") or [] if a.get("ip") != address]
    mine: dict = {"ip": address}
    if node_name:
        mine["nodeName"] = node_name
    return [{"addresses": sorted([*addresses, mine], key=lambda a: a["ip"]), "ports": ports}]


def _without_address(subsets: list[dict], address: str) -> list[dict]:
    out = []
    for subset in subsets:
        addresses = [a for a in subset.get("addresses") or [] if a.get("ip") != address]
        if addresses:
            out.append({**subset, "addresses": addresses})
    return out
