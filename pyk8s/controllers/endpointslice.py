"""The EndpointSlice controller (upstream pkg/controller/endpointslice and the staging endpointslice reconciler).

For every Service with a selector it keeps discovery.k8s.io/v1 EndpointSlices labelled
`kubernetes.io/service-name: <service>` and `endpointslice.kubernetes.io/managed-by:
endpointslice-controller.k8s.io` (plus the Service's own labels, and `service.kubernetes.io/headless` for a
headless Service), named `<service>-<random>` and owned by the Service (so the garbage collector removes them
with it). There is one group of slices per address type the Service has (IPv4/IPv6) and per distinct set of
resolved ports (a named targetPort may resolve differently on different pods). Each endpoint carries the pod's
addresses of that type, the conditions ready (serving and not terminating, or always with
publishNotReadyAddresses), serving (the pod is Ready) and terminating, the nodeName, the node's
`topology.kubernetes.io/zone`, a targetRef to the pod and the hostname when the pod's subdomain names the
Service. Terminating pods stay in the slices (not ready) until they are gone.

Slices hold at most 100 endpoints and are packed as upstream's reconciler does, to keep churn minimal:
endpoints that did not change stay in their slice; slices that must be written anyway are filled up first
(fullest first); leftovers go into the unchanged slice closest to full that can take them all, else into new
slices; a slice to be deleted is reused (updated) instead of creating a new one. A Service without endpoints
keeps one empty placeholder slice. Every write carries `endpoints.kubernetes.io/last-change-trigger-time`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
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
    is_conflict,
    is_not_found,
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter
from .endpoints_util import (
    HEADLESS_LABEL,
    MANAGED_BY_LABEL,
    SERVICE_NAME_INDEX,
    SERVICE_NAME_LABEL,
    TRIGGER_TIME_ANNOTATION,
    ZONE_LABEL,
    EndpointSliceTracker,
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
    service_address_types,
    service_name_index,
    service_selector,
    service_selects,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
    should_set_hostname,
    stale_cache_retry,
    unwrap,
)

log = logging.getLogger("pyk8s.controllers.endpointslice")

CONTROLLER_NAME = "endpointslice-controller"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100  # upstream --max-endpoints-per-slice default
DEFAULT_WORKERS = 5  # upstream --concurrent-service-endpoint-syncs

PortMapKey = tuple[tuple, ...]
EndpointKey = tuple


# ---- desired endpoints (pure) -----------------------------------------------------------------


def _port_key(port: Mapping) -> tuple:
    return port.get("name") or "", port.get("port") or 0, port.get("protocol") or "TCP", port.get("appProtocol") or ""


def port_map_key(ports: Iterable[Mapping]) -> PortMapKey:
    return tuple(sorted(_port_key(p) for p in ports))


def endpoint_ports(service: Mapping, pod: Mapping) -> list[dict]:
    """The Service's ports resolved on this pod (a port the pod does not expose is left out). A headless Service
    may have no ports at all."""
    out = []
    for service_port in (service.get("spec") or {}).get("ports") or ():
        number = find_port(pod, service_port)
        if number is None:
            continue
        port: dict[str, Any] = {"name": service_port.get("name") or "", "port": number,
                                "protocol": service_port.get("protocol") or "TCP"}
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        out.append(port)
    return out


def pod_to_endpoint(pod: Mapping, node: Mapping | None, service: Mapping, address_type: str) -> dict:
    """Upstream podToEndpoint."""
    meta = meta_of(pod)
    spec = pod.get("spec") or {}
    serving = is_pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    # A terminating pod is never "ready" (for older consumers), unless the Service publishes everything.
    ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: dict[str, Any] = {
        "addresses": sorted(ip for ip in pod_ips(pod) if ip_family(ip) == address_type),
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = spec["hostname"]
    endpoint["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                             "uid": meta.get("uid")}
    if spec.get("nodeName"):
        endpoint["nodeName"] = spec["nodeName"]
    zone = (meta_of(node).get("labels") or {}).get(ZONE_LABEL) if node is not None else None
    if zone:
        endpoint["zone"] = zone
    return endpoint


def endpoint_key(endpoint: Mapping) -> EndpointKey:
    """An endpoint's identity across syncs (upstream hashEndpoint): its addresses, hostname and target pod."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or ())), endpoint.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def _normalized(endpoint: Mapping) -> dict:
    return {**endpoint, "addresses": sorted(endpoint.get("addresses") or ())}


def slice_labels(existing: Mapping | None, service: Mapping) -> tuple[dict[str, str], bool]:
    """Upstream setEndpointSliceLabels: the Service's labels (minus the reserved ones), the headless marker,
    the service-name and managed-by labels. Returns (labels, whether they differ from the existing slice's)."""
    reserved = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
    labels = {k: v for k, v in (meta_of(service).get("labels") or {}).items() if k not in reserved}
    if not is_service_ip_set(service):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = meta_of(service).get("name") or ""
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    current = (meta_of(existing).get("labels") or {}) if existing is not None else {}
    return labels, current != labels


def owner_reference(service: Mapping) -> dict:
    meta = meta_of(service)
    return {"apiVersion": "v1", "kind": "Service", "name": meta.get("name"), "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def owned_by(slice_: Mapping, service: Mapping) -> bool:
    uid = meta_of(service).get("uid")
    return any(ref.get("uid") == uid and ref.get("kind") == "Service" and ref.get("apiVersion") == "v1"
               for ref in meta_of(slice_).get("ownerReferences") or ())


def new_slice(service: Mapping, ports: list[dict], address_type: str) -> dict:
    meta = meta_of(service)
    labels, _ = slice_labels(None, service)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta.get('name')}-", "namespace": meta.get("namespace"),
                         "labels": labels, "ownerReferences": [owner_reference(service)]},
            "addressType": address_type, "ports": copy.deepcopy(ports), "endpoints": []}


def _is_placeholder_of(existing: Mapping, placeholder: Mapping) -> bool:
    """Upstream placeholderSliceCompare: same namespace, labels, owners, address type and (no) ports/endpoints."""
    em, pm = meta_of(existing), meta_of(placeholder)
    owners = [(r.get("uid"), r.get("kind"), r.get("name")) for r in em.get("ownerReferences") or ()]
    return (em.get("namespace") == pm.get("namespace") and (em.get("labels") or {}) == pm.get("labels")
            and owners == [(r["uid"], r["kind"], r["name"]) for r in pm["ownerReferences"]]
            and existing.get("addressType") == placeholder.get("addressType")
            and not existing.get("ports") and not existing.get("endpoints"))


@dataclass
class SlicePlan:
    """The writes one reconcile makes. Slices to create have no name (generateName)."""

    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # pods skipped; the sync is retried after the writes


def _reconcile_port_mapping(service: Mapping, existing: list[dict], desired: dict[EndpointKey, dict],
                            ports: list[dict], address_type: str, max_per_slice: int) -> SlicePlan:
    """Upstream reconcileByPortMapping for one set of ports."""
    plan = SlicePlan()
    by_name: dict[str, dict] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    # 1. Keep the desired endpoints that are in place; drop the others; note what changed.
    for slice_ in existing:
        name = meta_of(slice_)["name"]
        by_name[name] = slice_
        kept = []
        changed = False
        for endpoint in slice_.get("endpoints") or ():
            wanted = desired.pop(endpoint_key(endpoint), None)
            if wanted is None:
                continue
            kept.append(wanted)
            changed |= _normalized(wanted) != _normalized(endpoint)
        labels, labels_changed = slice_labels(slice_, service)
        if changed or len(kept) != len(slice_.get("endpoints") or ()):
            if not kept:
                to_delete.append(name)
                continue
            updated = copy.deepcopy(slice_)
            updated["endpoints"] = kept
            updated["metadata"]["labels"] = labels
            by_name[name] = updated
            to_update.append(name)
        elif labels_changed:
            updated = copy.deepcopy(slice_)
            updated["metadata"]["labels"] = labels
            by_name[name] = updated
            to_update.append(name)
        else:
            unchanged.append(name)
    remaining = list(desired.values())  # in the order the pods came: deterministic
    # 2. Fill the slices that are written anyway, fullest first.
    if remaining and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n]["endpoints"])):
            slice_ = by_name[name]
            while remaining and len(slice_["endpoints"]) < max_per_slice:
                slice_["endpoints"].append(remaining.pop(0))
    # 3. Leftovers: into the unchanged slice closest to full that takes them all, else into new slices.
    while remaining:
        target: dict | None = None
        if len(remaining) < max_per_slice and unchanged:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(remaining), max_per_slice)
        if target is None:
            target = new_slice(service, ports, address_type)
        else:
            target = copy.deepcopy(target)
            by_name[meta_of(target)["name"]] = target
        while remaining and len(target["endpoints"]) < max_per_slice:
            target["endpoints"].append(remaining.pop(0))
        name = meta_of(target).get("name")
        if name:
            to_update.append(name)
            unchanged.remove(name)
        else:
            plan.create.append(target)
    plan.update = [by_name[n] for n in to_update]
    plan.delete = [by_name[n] for n in to_delete]
    return plan


def _slice_to_fill(slices: list[dict], count: int, max_per_slice: int) -> dict | None:
    """Upstream getSliceToFill: the slice closest to full that still has room for `count` endpoints."""
    best, best_room = None, max_per_slice
    for slice_ in slices:
        room = max_per_slice - (count + len(slice_.get("endpoints") or ()))
        if 0 <= room < best_room:
            best, best_room = slice_, room
            if room == 0:
                break
    return best


def plan_for_address_type(service: Mapping, pods: Iterable[Mapping], existing: list[dict], address_type: str,
                          node_of: Callable[[str], Mapping | None],
                          max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """Upstream reconcileByAddressType: the creates, updates and deletes that make this address type's slices
    hold exactly the pods' endpoints."""
    plan = SlicePlan()
    existing_by_ports: dict[PortMapKey, list[dict]] = {}
    for slice_ in existing:
        if owned_by(slice_, service):
            existing_by_ports.setdefault(port_map_key(slice_.get("ports") or ()), []).append(slice_)
        else:
            plan.delete.append(slice_)  # left by an older Service of the same name
    desired: dict[PortMapKey, dict[EndpointKey, dict]] = {}
    ports_of: dict[PortMapKey, list[dict]] = {}
    publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ports = endpoint_ports(service, pod)
        key = port_map_key(ports)
        desired.setdefault(key, {})
        ports_of.setdefault(key, ports)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = node_of(node_name) if node_name else None
        if node is None and not publish_not_ready:
            # Retried later; meanwhile the slices are written without the pod (the pod GC removes pods of
            # vanished nodes, and one such pod must not hold every other change back).
            plan.errors.append(f"skipping Pod {meta_of(pod).get('name')} for Service "
                               f"{meta_of(service).get('namespace')}/{meta_of(service).get('name')}: "
                               f"Node {node_name} Not Found")
            continue
        endpoint = pod_to_endpoint(pod, node, service, address_type)
        if endpoint["addresses"]:
            desired[key][endpoint_key(endpoint)] = endpoint
    for key, endpoints in desired.items():
        part = _reconcile_port_mapping(service, existing_by_ports.get(key, []), endpoints, ports_of[key],
                                       address_type, max_per_slice)
        plan.create += part.create
        plan.update += part.update
        plan.delete += part.delete
    for key, slices in existing_by_ports.items():
        if key not in desired:
            plan.delete += slices
    # A Service without endpoints keeps one empty placeholder slice (kept as it is when it exists already).
    if len(existing) == len(plan.delete) and not plan.create:
        placeholder = new_slice(service, [], address_type)
        if len(plan.delete) == 1 and _is_placeholder_of(plan.delete[0], placeholder):
            plan.delete = []
        else:
            plan.create.append(placeholder)
    return plan


def reuse_deleted_slices(plan: SlicePlan, service: Mapping) -> None:
    """Upstream finalize's first step: a slice about to be deleted is updated into a slice about to be created
    (same address type, owned by this Service), so a replacement costs one write and keeps the name."""
    i = 0
    while i < len(plan.delete) and plan.create:
        doomed = plan.delete[i]
        fresh = plan.create[-1]
        if doomed.get("addressType") == fresh.get("addressType") and owned_by(doomed, service):
            plan.create.pop()
            meta = fresh["metadata"]
            meta.pop("generateName", None)
            meta["name"] = meta_of(doomed)["name"]
            meta["resourceVersion"] = meta_of(doomed).get("resourceVersion")
            plan.update.append(fresh)
            del plan.delete[i]
        else:
            i += 1


def with_trigger_time(slice_: dict, trigger_time: datetime | None) -> dict:
    annotations = dict(meta_of(slice_).get("annotations") or {})
    if trigger_time is not None:
        annotations[TRIGGER_TIME_ANNOTATION] = format_trigger_time(trigger_time)
    else:
        annotations.pop(TRIGGER_TIME_ANNOTATION, None)
    slice_["metadata"]["annotations"] = annotations
    if not annotations:
        del slice_["metadata"]["annotations"]
    return slice_


# ---- the controller ---------------------------------------------------------------------------


class EndpointSliceController:
    name = CONTROLLER_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK,
                 max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE):
        self.client = client
        self.recorder = recorder
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.services = factory.informer("services")
        self.pods = factory.informer("pods")
        self.nodes = factory.informer("nodes")
        self.slices = factory.informer("endpointslices", indexers={SERVICE_NAME_INDEX: service_name_index})
        self.tracker = EndpointSliceTracker()
        self.trigger_times = TriggerTimeTracker()
        self.queue: WorkQueue[str] = WorkQueue(self.name, rate_limiter=default_controller_rate_limiter(clock),
                                               clock=clock)
        self.controller: Controller[str] = Controller(
            self.name, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.services.wait_for_sync, self.pods.wait_for_sync, self.nodes.wait_for_sync,
                      self.slices.wait_for_sync])
        self.services.add_handler(on_add=self._enqueue_service, on_update=lambda _o, new: self._enqueue_service(new),
                                  on_delete=self._enqueue_service)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.slices.add_handler(on_add=self._slice_added, on_update=self._slice_updated,
                                on_delete=self._slice_deleted)

    @classmethod
    def from_context(cls, ctx: Any) -> EndpointSliceController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers ------------------------------------------------------------------

    def _enqueue_service(self, service: dict | DeletedFinalStateUnknown) -> None:
        meta = meta_of(unwrap(service))
        self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    def _pod_added(self, pod: dict) -> None:
        for key in pod_service_memberships(self.services, pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict, new: dict) -> None:
        for key in services_to_update_on_pod_change(self.services, old, new):
            self.queue.add(key)

    def _pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        self._pod_added(unwrap(pod))

    @staticmethod
    def _managed(slice_: Mapping) -> bool:
        return (meta_of(slice_).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY

    def _enqueue_slice_service(self, slice_: Mapping) -> None:
        keys = service_name_index(slice_)
        if keys:
            self.queue.add(keys[0])

    def _slice_added(self, slice_: dict) -> None:
        if self._managed(slice_) and self.tracker.should_sync(slice_):
            self._enqueue_slice_service(slice_)

    def _slice_updated(self, old: dict, new: dict) -> None:
        if service_name_index(old) != service_name_index(new) or self._managed(old) != self._managed(new):
            # Someone relabelled a slice: both the Service it left and the one it joined need a look.
            self._enqueue_slice_service(old)
            self._enqueue_slice_service(new)
        elif self._managed(new) and self.tracker.should_sync(new):
            self._enqueue_slice_service(new)

    def _slice_deleted(self, slice_: dict | DeletedFinalStateUnknown) -> None:
        obj = unwrap(slice_)
        # A deletion we did not make (or do not remember making) is repaired by a sync.
        if self._managed(obj) and not self.tracker.handle_deletion(obj):
            self._enqueue_slice_service(obj)

    # ---- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            # The garbage collector deletes the slices through their owner reference.
            self.tracker.delete_service(key)
            self.trigger_times.delete(key)
            return
        if (service.get("spec") or {}).get("type") == "ExternalName" or service_selector(service) is None:
            return  # selector-less Services get their slices from elsewhere (the mirroring controller, users)
        pods = [p for p in self.pods.list(namespace) if service_selects(service, meta_of(p).get("labels") or {})]
        slices = [s for s in self.slices.by_index(SERVICE_NAME_INDEX, key)
                  if self._managed(s) and not meta_of(s).get("deletionTimestamp")]
        if self.tracker.stale_slices(key, slices):
            raise stale_cache_retry(key)
        trigger_time = self.trigger_times.compute(key, service, pods)
        try:
            await self.reconcile(service, pods, slices, trigger_time)
        except RequeueAfter:
            raise
        except Exception as exc:
            if self.recorder is not None:
                self.recorder.event({**service, "apiVersion": "v1", "kind": "Service"}, WARNING,
                                    "FailedToUpdateEndpointSlices",
                                    f"Error updating Endpoint Slices for Service {namespace}/{name}: {exc}")
            raise

    def plan(self, service: Mapping, pods: list[dict], slices: list[dict]) -> SlicePlan:
        address_types = service_address_types(service)
        plan = SlicePlan()
        for slice_ in slices:
            if slice_.get("addressType") not in address_types:
                plan.delete.append(slice_)  # the Service no longer has that IP family
        for address_type in address_types:
            part = plan_for_address_type(service, pods, [s for s in slices if s.get("addressType") == address_type],
                                         address_type, self.nodes.get, self.max_endpoints_per_slice)
            plan.create += part.create
            plan.update += part.update
            plan.delete += part.delete
            plan.errors += part.errors
        reuse_deleted_slices(plan, service)
        return plan

    async def reconcile(self, service: dict, pods: list[dict], slices: list[dict],
                        trigger_time: datetime | None) -> None:
        plan = self.plan(service, pods, slices)
        key = f"{meta_of(service).get('namespace')}/{meta_of(service).get('name')}"
        # No new slices for a Service on its way out: the garbage collector would race them.
        if not meta_of(service).get("deletionTimestamp"):
            for slice_ in plan.create:
                try:
                    created = await self.client.create(with_trigger_time(slice_, trigger_time))
                except APIStatusError as exc:
                    if namespace_terminating(exc):
                        return
                    raise RuntimeError(f"failed to create EndpointSlice for Service {key}: {exc}") from exc
                self.tracker.update(created)
        for slice_ in plan.update:
            try:
                updated = await self.client.update(with_trigger_time(slice_, trigger_time))
            except APIStatusError as exc:
                if is_conflict(exc):
                    raise stale_cache_retry(key) from None  # someone (or our previous sync) wrote it since
                raise RuntimeError(f"failed to update {meta_of(slice_).get('name')} EndpointSlice for Service "
                                   f"{key}: {exc}") from exc
            self.tracker.update(updated)
        for slice_ in plan.delete:
            try:
                await self.client.delete("endpointslices", meta_of(slice_)["name"], meta_of(slice_).get("namespace"))
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise RuntimeError(f"failed to delete {meta_of(slice_).get('name')} EndpointSlice for Service "
                                       f"{key}: {exc}") from exc
            self.tracker.expect_deletion(slice_)
        if plan.create or plan.update or plan.delete:
            log.debug("%s: %s: %d created, %d updated, %d deleted", self.name, key, len(plan.create),
                      len(plan.update), len(plan.delete))
        if plan.errors:
            raise RuntimeError("; ".join(plan.errors))
