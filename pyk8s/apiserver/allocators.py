"""Service ClusterIP and NodePort allocation (upstream's service REST allocators).

The allocated sets are rebuilt from the stored Services at start, so nothing is handed
out twice after a restart; the apiserver is the only writer, so in-memory sets suffice.
"""

from __future__ import annotations

import ipaddress
import random

from ..api import errors
from ..api.errors import FieldError
from ..api.kinds import Kind
from .rest import Hooks

DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_NODE_PORTS = (30000, 32767)


class ServiceAllocator(Hooks):
    def __init__(self, service_cidr: str = DEFAULT_SERVICE_CIDR, node_ports: tuple[int, int] = DEFAULT_NODE_PORTS):
        self.network = ipaddress.ip_network(service_cidr)
        self.node_ports = node_ports
        self.ips: set[str] = set()
        self.ports: set[tuple[str, int]] = set()  # (protocol, port)

    @property
    def kubernetes_service_ip(self) -> str:
        """The first address of the range belongs to the `kubernetes` Service, as upstream."""
        return str(self.network.network_address + 1)

    def load(self, services: list[dict]) -> None:
        for svc in services:
            self._claim(svc)

    def _claim(self, svc: dict) -> None:
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            if ip != "None":
                self.ips.add(ip)
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                self.ports.add((port.get("protocol", "TCP"), port["nodePort"]))

    def _release(self, svc: dict) -> None:
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            self.ips.discard(ip)
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                self.ports.discard((port.get("protocol", "TCP"), port["nodePort"]))

    def _allocate_ip(self) -> str:
        size = self.network.num_addresses
        start = random.randrange(2, size - 1)
        for offset in range(size - 3):
            candidate = str(self.network.network_address + 2 + (start + offset) % (size - 3))
            if candidate not in self.ips:
                return candidate
        raise errors.APIError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: "
                                                    "range is full")

    def _allocate_port(self, protocol: str) -> int:
        low, high = self.node_ports
        start = random.randint(low, high)
        for offset in range(high - low + 1):
            candidate = low + (start - low + offset) % (high - low + 1)
            if (protocol, candidate) not in self.ports:
                return candidate
        raise errors.APIError(500, "InternalError", "Internal error occurred: failed to allocate a nodePort: "
                                                    "range is full")

    def _assign(self, svc: dict, old: dict | None) -> list[FieldError]:
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        svc_type = spec.get("type", "ClusterIP")
        problems: list[FieldError] = []
        if svc_type == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return problems
        ip = spec.get("clusterIP") or old_spec.get("clusterIP") or ""
        if not ip:
            ip = self._allocate_ip()
        elif ip != "None" and ip != old_spec.get("clusterIP"):
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                problems.append(FieldError("Invalid", "spec.clusterIPs[0]", ip,
                                           "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
                return problems
            if address not in self.network:
                problems.append(FieldError("Invalid", "spec.clusterIPs[0]", ip,
                                           f"failed to allocate IP {ip}: the provided network does not match "
                                           f"the current range"))
                return problems
            if ip in self.ips:
                problems.append(FieldError("Invalid", "spec.clusterIPs[0]", ip,
                                           f"failed to allocate IP {ip}: provided IP is already allocated"))
                return problems
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        old_ports = {(p.get("protocol", "TCP"), p.get("port")): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        wants_node_ports = svc_type in ("NodePort", "LoadBalancer") and spec.get(
            "allocateLoadBalancerNodePorts", True) is not False
        for i, port in enumerate(spec.get("ports") or []):
            protocol = port.get("protocol", "TCP")
            if not wants_node_ports:
                if svc_type not in ("NodePort", "LoadBalancer"):
                    port.pop("nodePort", None)
                continue
            requested = port.get("nodePort") or old_ports.get((protocol, port.get("port")))
            if requested:
                low, high = self.node_ports
                if not low <= requested <= high:
                    problems.append(FieldError("Invalid", f"spec.ports[{i}].nodePort", requested,
                                               f"provided port is not in the valid range. The range of valid "
                                               f"ports is {low}-{high}"))
                    continue
                if (protocol, requested) in self.ports and requested not in old_ports.values():
                    problems.append(FieldError("Invalid", f"spec.ports[{i}].nodePort", requested,
                                               "provided port is already allocated"))
                    continue
                port["nodePort"] = requested
            else:
                port["nodePort"] = self._allocate_port(protocol)
        if svc_type in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        return problems

    async def before_create(self, kind: Kind, obj: dict, dry_run: bool) -> None:
        problems = self._assign(obj, None)
        if problems:
            raise errors.invalid_object("Service", "", obj["metadata"].get("name", ""), problems)
        if not dry_run:
            self._claim(obj)

    async def before_update(self, kind: Kind, obj: dict, old: dict, dry_run: bool) -> None:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (obj.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip and new_ip != old_ip and (old.get("spec") or {}).get("type") != "ExternalName":
            raise errors.invalid_object("Service", "", obj["metadata"].get("name", ""), [
                FieldError("Invalid", "spec.clusterIPs[0]", new_ip, "may not change once set")])
        problems = self._assign(obj, old)
        if problems:
            raise errors.invalid_object("Service", "", obj["metadata"].get("name", ""), problems)
        if not dry_run:
            self._release(old)
            self._claim(obj)

    async def after_delete(self, kind: Kind, obj: dict) -> None:
        self._release(obj)
