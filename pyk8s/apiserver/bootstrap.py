"""Objects every cluster has from the start: system namespaces, the bootstrap RBAC policy and the
`kubernetes` Service."""

from __future__ import annotations

import ipaddress
import logging

from ..api.errors import APIError
from ..api.kinds import REGISTRY
from .authz.reconcile import ensure_bootstrap_policy
from .rest import REST, WriteOptions

log = logging.getLogger("pyk8s.apiserver.bootstrap")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _ensure(rest: REST, group: str, version: str, kind_name: str, namespace: str, obj: dict) -> None:
    kind = REGISTRY.by_kind(group, version, kind_name)
    assert kind is not None
    name = obj["metadata"]["name"]
    existing = rest.cache.cache_for(kind).objects.get(kind.key(namespace, name))
    if existing is not None:
        return
    try:
        await rest.create(kind, namespace, obj, WriteOptions())
        log.info("created %s %s/%s", kind.plural, namespace, name)
    except APIError as exc:
        if exc.code != 409:
            raise


async def _reconcile(rest: REST, group: str, version: str, kind_name: str, namespace: str, obj: dict,
                     fields: tuple[str, ...]) -> None:
    """Create `obj`, or bring the listed top-level fields of the stored one back to it."""
    kind = REGISTRY.by_kind(group, version, kind_name)
    assert kind is not None
    name = obj["metadata"]["name"]
    existing = rest.cache.cache_for(kind).objects.get(kind.key(namespace, name))
    if existing is None:
        await _ensure(rest, group, version, kind_name, namespace, obj)
        return
    if all(existing.obj.get(f) == obj.get(f) for f in fields):
        return

    def bring_back(current: dict) -> dict:
        for f in fields:
            current[f] = obj[f]
        return current

    await rest.update(kind, namespace, name, bring_back, WriteOptions())


async def bootstrap(rest: REST, *, advertise_address: str, secure_port: int, service_ip: str) -> None:
    await rest.cache.wait_fresh()
    for ns in SYSTEM_NAMESPACES:
        await _ensure(rest, "", "v1", "Namespace", "", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": ns}})
    await ensure_bootstrap_policy(rest)
    labels = {"component": "apiserver", "provider": "kubernetes"}
    await _ensure(rest, "", "v1", "Service", "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": labels},
        "spec": {"type": "ClusterIP", "clusterIP": service_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]},
    })
    if ipaddress.ip_address(advertise_address).is_loopback:
        # Endpoints may not point at loopback (upstream validation): pods could not reach it anyway.
        log.warning("advertise address %s is loopback: the kubernetes Service gets no endpoints", advertise_address)
        return
    # The endpoints follow the apiserver's current address and port (upstream's endpoint reconciler).
    await _reconcile(rest, "", "v1", "Endpoints", "default", {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise_address}],
                     "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}],
    }, ("subsets",))
    await _reconcile(rest, "discovery.k8s.io", "v1", "EndpointSlice", "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [advertise_address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}],
    }, ("endpoints", "ports"))
