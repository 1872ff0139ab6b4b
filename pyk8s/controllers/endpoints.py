"""The Endpoints controller (upstream pkg/controller/endpoint).

For every Service with a selector, the core/v1 Endpoints object of the same name lists the pods the selector
matches: ready pods under `addresses`, the others under `notReadyAddresses` (all of them under `addresses`
when the Service sets publishNotReadyAddresses), each with its IP of the Service's IP family, nodeName,
a targetRef to the pod and, when the pod's subdomain names the Service, its hostname. Every Service port
is resolved per pod (a named targetPort is looked up in the pod's container ports), so pods that expose a
port differently land in different subsets; subsets are repacked as upstream's RepackSubsets does
(addresses grouped by the exact set of ports they serve). Terminating pods and pods that finished for good
are left out. More than 1000 addresses are truncated (ready ones kept first) and the Endpoints is annotated
`endpoints.kubernetes.io/over-capacity: truncated`.

Services without a selector (whose endpoints someone else writes, like the apiserver's own `kubernetes`
Service) and ExternalName Services are left alone. Deleting a Service deletes its Endpoints, and at start-up
Endpoints whose Service is gone are cleaned up the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..client import (
    WARNING,
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    EventRecorder,
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_already_exists,
    is_conflict,
    is_not_found,
    object_key,
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter
from .endpoints_util import (
    HEADLESS_LABEL,
    IPV6,
    LEADER_ANNOTATION,
    TRIGGER_TIME_ANNOTATION,
    TriggerTimeTracker,
    find_port,
    format_trigger_time,
    ip_family,
    is_pod_ready,
    is_service_ip_set,
    meta_of,
    namespace_terminating,
    pod_ips,
    pod_service_memberships,
    service_selector,
    service_selects,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
    should_set_hostname,
    unwrap,
)

log = logging.getLogger("pyk8s.controllers.endpoints")

CONTROLLER_NAME = "endpoints-controller"
DEFAULT_WORKERS = 5  # upstream --concurrent-endpoint-syncs
MAX_CAPACITY = 1000  # addresses an Endpoints object holds (upstream maxCapacity)
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"
CACHE_LAG_RETRY = 0.2  # seconds before a sync that lost a write race looks again


# ---- desired subsets (pure) -------------------------------------------------------------------


def _address_family(service: Mapping, pod: Mapping) -> str:
    """The IP family the Service's endpoints carry: its first ipFamily, else its clusterIP's, else (headless
    without families) the pod's primary IP's."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or ()
    if families:
        return families[0]
    if is_service_ip_set(service):
        return ip_family(spec["clusterIP"]) or "IPv4"
    ips = pod_ips(pod)
    return (ip_family(ips[0]) if ips else None) or "IPv4"


def pod_to_endpoint_address(service: Mapping, pod: Mapping) -> dict | None:
    """The pod's EndpointAddress for the Service, or None when it has no IP of the Service's family."""
    family = _address_family(service, pod)
    ip = next((ip for ip in pod_ips(pod) if (ip_family(ip) == IPV6) == (family == IPV6)), None)
    if ip is None:
        return None
    meta = meta_of(pod)
    address: dict[str, Any] = {"ip": ip}
    if should_set_hostname(pod, service):
        address["hostname"] = pod["spec"]["hostname"]
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        address["nodeName"] = node_name
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                            "uid": meta.get("uid")}
    return address


def endpoint_port(service_port: Mapping, number: int) -> dict:
    port: dict[str, Any] = {}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    port["port"] = number
    port["protocol"] = service_port.get("protocol") or "TCP"
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def desired_subsets(service: Mapping, pods: Iterable[Mapping]) -> list[dict]:
    """The repacked subsets of the Service's Endpoints for these (selected) pods."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    subsets: list[dict] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish_not_ready):
            continue
        address = pod_to_endpoint_address(service, pod)
        if address is None:
            log.debug("%s: pod %s has no IP of the service's family", CONTROLLER_NAME, object_key(pod))
            continue
        bucket = "addresses" if publish_not_ready or is_pod_ready(pod) else "notReadyAddresses"
        if not service_ports:
            if spec.get("clusterIP") == "None":  # a headless Service may publish addresses without ports
                subsets.append({bucket: [address]})
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is None:
                log.debug("%s: no port %s on pod %s", CONTROLLER_NAME, service_port.get("targetPort"),
                          object_key(pod))
                continue
            subsets.append({bucket: [address], "ports": [endpoint_port(service_port, number)]})
    return repack_subsets(subsets)


def _address_key(address: Mapping) -> tuple[str, str]:
    return address.get("ip") or "", (address.get("targetRef") or {}).get("uid") or ""


def _port_key(port: Mapping) -> tuple:
    return port.get("name") or "", port.get("port") or 0, port.get("protocol") or "TCP", port.get("appProtocol") or ""


def repack_subsets(subsets: Iterable[Mapping]) -> list[dict]:
    """Upstream RepackSubsets: the canonical N-to-M form. Each address is mapped to the ports it serves (an
    address ready on a port wins over the same address not ready there), then addresses that serve exactly
    the same ports with the same readiness share one subset. The result is sorted, so equal inputs give
    equal outputs whatever their order."""
    addresses: dict[tuple, dict] = {}
    ports: dict[tuple, dict] = {}
    readiness_by_port: dict[tuple | None, dict[tuple, bool]] = {}  # None: the "no ports" sentinel
    for subset in subsets:
        port_keys: list[tuple | None] = []
        for port in subset.get("ports") or ():
            ports.setdefault(_port_key(port), dict(port))
            port_keys.append(_port_key(port))
        for port_key in port_keys or [None]:
            readiness = readiness_by_port.setdefault(port_key, {})
            for address in subset.get("addresses") or ():
                key = _address_key(address)
                addresses.setdefault(key, dict(address))
                readiness[key] = True
            for address in subset.get("notReadyAddresses") or ():
                key = _address_key(address)
                addresses.setdefault(key, dict(address))
                readiness.setdefault(key, False)
    grouped: dict[frozenset, list[tuple]] = {}
    for port_key, readiness in readiness_by_port.items():
        if not readiness:
            continue
        group = grouped.setdefault(frozenset(readiness.items()), [])
        if port_key is not None:
            group.append(port_key)
    final = []
    for readiness_set, port_keys in grouped.items():
        subset: dict[str, Any] = {}
        ready = sorted(key for key, is_ready in readiness_set if is_ready)
        not_ready = sorted(key for key, is_ready in readiness_set if not is_ready)
        if ready:
            subset["addresses"] = [addresses[key] for key in ready]
        if not_ready:
            subset["notReadyAddresses"] = [addresses[key] for key in not_ready]
        if port_keys:
            subset["ports"] = [ports[key] for key in sorted(port_keys)]
        final.append(subset)
    final.sort(key=lambda s: ([_port_key(p) for p in s.get("ports") or ()],
                              [_address_key(a) for a in s.get("addresses") or s.get("notReadyAddresses") or ()]))
    return final


def truncate_subsets(subsets: list[dict], max_capacity: int = MAX_CAPACITY) -> tuple[list[dict], bool]:
    """Upstream truncateEndpoints: at most `max_capacity` addresses. Ready addresses are kept before not-ready
    ones; what is kept is spread over the subsets in proportion to their size. Returns (subsets, truncated)."""
    total_ready = sum(len(s.get("addresses") or ()) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if total_ready + total_not_ready <= max_capacity:
        return subsets, False
    truncate_ready = total_ready > max_capacity
    room = max_capacity if truncate_ready else max_capacity - total_ready
    total = total_ready if truncate_ready else total_not_ready
    left = room
    out = []
    for subset in subsets:
        subset = dict(subset)
        bucket = "addresses" if truncate_ready else "notReadyAddresses"
        in_subset = len(subset.get(bucket) or ())
        keep = min(math.ceil(in_subset / total * room) if total else 0, left)
        kept = (subset.get(bucket) or [])[:keep]
        if kept:
            subset[bucket] = kept
        else:
            subset.pop(bucket, None)
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        left -= len(kept)
        if subset.get("addresses") or subset.get("notReadyAddresses"):
            out.append(subset)
    return out, True


def desired_labels(service: Mapping) -> dict[str, str]:
    """The Service's labels, plus `service.kubernetes.io/headless` for a Service without a cluster IP."""
    labels = dict(meta_of(service).get("labels") or {})
    if is_service_ip_set(service):
        labels.pop(HEADLESS_LABEL, None)
    else:
        labels[HEADLESS_LABEL] = ""
    return labels


def _comparable(subsets: Iterable[Mapping]) -> list[dict]:
    """Subsets as compared for "nothing changed": targetRef resourceVersions (which older writers set and
    which change with every pod update) do not count, and defaults are filled in."""
    out = []
    for subset in subsets:
        copy: dict[str, Any] = {}
        for bucket in ("addresses", "notReadyAddresses"):
            entries = []
            for address in subset.get(bucket) or ():
                address = dict(address)
                if address.get("targetRef"):
                    address["targetRef"] = {k: v for k, v in address["targetRef"].items() if k != "resourceVersion"}
                entries.append(address)
            if entries:
                copy[bucket] = entries
        if subset.get("ports"):
            copy["ports"] = [{**p, "protocol": p.get("protocol") or "TCP"} for p in subset["ports"]]
        out.append(copy)
    return out


# ---- the controller ---------------------------------------------------------------------------


class EndpointsController:
    name = CONTROLLER_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK, max_capacity: int = MAX_CAPACITY):
        self.client = client
        self.recorder = recorder
        self.max_capacity = max_capacity
        self.services = factory.informer("services")
        self.pods = factory.informer("pods")
        self.endpoints = factory.informer("endpoints")
        self.trigger_times = TriggerTimeTracker()
        self.queue: WorkQueue[str] = WorkQueue(self.name, rate_limiter=default_controller_rate_limiter(clock),
                                               clock=clock)
        self.controller: Controller[str] = Controller(
            self.name, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.services.wait_for_sync, self.pods.wait_for_sync, self.endpoints.wait_for_sync])
        self.services.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                                  on_delete=self._enqueue)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.endpoints.add_handler(on_delete=self._enqueue)

    @classmethod
    def from_context(cls, ctx: Any) -> EndpointsController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    async def run(self) -> None:
        for informer in (self.services, self.pods, self.endpoints):
            await informer.wait_for_sync()
        self._queue_leftover_endpoints()
        await self.controller.run()

    def _queue_leftover_endpoints(self) -> None:
        """Upstream checkLeftoverEndpoints: a Service deleted while no controller ran left its Endpoints behind;
        syncing every Endpoints' key deletes those whose Service is gone. Leader-election records are not ours."""
        for endpoints in self.endpoints.list():
            if LEADER_ANNOTATION not in (meta_of(endpoints).get("annotations") or {}):
                self.queue.add(object_key(endpoints))

    # ---- event handlers ------------------------------------------------------------------

    def _enqueue(self, obj: dict | DeletedFinalStateUnknown) -> None:
        self.queue.add(object_key(unwrap(obj)))

    def _pod_added(self, pod: dict) -> None:
        for key in pod_service_memberships(self.services, pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict, new: dict) -> None:
        for key in services_to_update_on_pod_change(self.services, old, new):
            self.queue.add(key)

    def _pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        self._pod_added(unwrap(pod))

    # ---- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            await self._delete_endpoints(namespace, name)
            self.trigger_times.delete(key)
            return
        if (service.get("spec") or {}).get("type") == "ExternalName" or service_selector(service) is None:
            return  # no endpoints from this controller; selector-less Services get theirs from their owner
        pods = [p for p in self.pods.list(namespace) if service_selects(service, meta_of(p).get("labels") or {})]
        trigger_time = self.trigger_times.compute(key, service, pods)
        subsets, truncated = truncate_subsets(desired_subsets(service, pods), self.max_capacity)
        labels = desired_labels(service)
        current = self.endpoints.get(key)
        if current is not None and _comparable(current.get("subsets") or ()) == _comparable(subsets) and \
                (meta_of(current).get("labels") or {}) == labels and \
                (OVER_CAPACITY_ANNOTATION in (meta_of(current).get("annotations") or {})) == truncated:
            return
        annotations = dict(meta_of(current).get("annotations") or {}) if current is not None else {}
        if trigger_time is not None:
            annotations[TRIGGER_TIME_ANNOTATION] = format_trigger_time(trigger_time)
        else:
            annotations.pop(TRIGGER_TIME_ANNOTATION, None)
        if truncated:
            annotations[OVER_CAPACITY_ANNOTATION] = TRUNCATED
        else:
            annotations.pop(OVER_CAPACITY_ANNOTATION, None)
        meta: dict[str, Any] = {**(meta_of(current) if current is not None else {"name": name,
                                                                                  "namespace": namespace}),
                                "labels": labels}
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        desired = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}
        if subsets:
            desired["subsets"] = subsets
        verb = "create" if current is None else "update"
        try:
            if current is None:
                await self.client.create(desired)
            else:
                await self.client.update(desired)
        except APIStatusError as exc:
            if current is None and namespace_terminating(exc):
                return  # creates keep failing until the namespace is gone; nothing to retry
            if is_conflict(exc) or is_already_exists(exc):
                # Our cache has not caught up with our previous write yet; the retry reads the fresh object.
                log.debug("%s: %s endpoints %s: %s; retrying", self.name, verb, key, exc)
                raise RequeueAfter(CACHE_LAG_RETRY) from None
            self._event(desired, "FailedToCreateEndpoint" if current is None else "FailedToUpdateEndpoint",
                        f"Failed to {verb} endpoint {namespace}/{name}: {exc}")
            raise
        log.debug("%s: %sd endpoints %s", self.name, verb, key)

    async def _delete_endpoints(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete("endpoints", name, namespace)
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
            return
        log.info("%s: deleted endpoints %s/%s, its service is gone", self.name, namespace, name)

    def _event(self, endpoints: dict, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(endpoints, WARNING, reason, message)

