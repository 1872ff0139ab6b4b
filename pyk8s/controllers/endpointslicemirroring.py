"""The EndpointSlice mirroring controller (upstream pkg/controller/endpointslicemirroring).

A Service without a selector gets its endpoints from whoever writes its core/v1 Endpoints object (a user, an
operator). So that consumers reading only EndpointSlices (the service proxy, DNS) see them too, this controller
mirrors such Endpoints into EndpointSlices labelled `endpointslice.kubernetes.io/managed-by:
endpointslicemirroring-controller.k8s.io` and `kubernetes.io/service-name: <service>`, owned by the Endpoints
object, carrying the Endpoints' other labels and annotations (except the trigger-time and kubectl
last-applied ones). Each repacked subset becomes one slice per address type, with at most 1000 addresses
(the rest are skipped, with a warning event); addresses that are not IPs are skipped with an event too.

Nothing is mirrored for Services with a selector (the EndpointSlice controller serves those), ExternalName
Services, Endpoints labelled `endpointslice.kubernetes.io/skip-mirror: "true"` (the apiserver's own
`kubernetes` Endpoints) or carrying a leader-election record; mirrored slices left over in those cases are
deleted.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client import (
    WARNING,
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    EventRecorder,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
    split_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter
from .endpoints import repack_subsets
from .endpoints_util import (
    LAST_APPLIED_ANNOTATION,
    LEADER_ANNOTATION,
    MANAGED_BY_LABEL,
    SERVICE_NAME_INDEX,
    SERVICE_NAME_LABEL,
    SKIP_MIRROR_LABEL,
    TRIGGER_TIME_ANNOTATION,
    EndpointSliceTracker,
    ip_family,
    meta_of,
    namespace_terminating,
    service_name_index,
    service_selector,
    stale_cache_retry,
    unwrap,
)
from .endpointslice import endpoint_key, port_map_key

log = logging.getLogger("pyk8s.controllers.endpointslicemirroring")

CONTROLLER_NAME = "endpointslice-mirroring-controller"
MANAGED_BY = "endpointslicemirroring-controller.k8s.io"
MAX_ENDPOINTS_PER_SUBSET = 1000  # upstream --mirroring-max-endpoints-per-subset default
DEFAULT_WORKERS = 5  # upstream --mirroring-concurrent-service-endpoint-syncs
INVALID_IP_ADDRESS = "InvalidIPAddress"
TOO_MANY_ADDRESSES = "TooManyAddressesToMirror"

MirrorKey = tuple[str, tuple]  # (address type, port map key)


def should_mirror(endpoints: Mapping | None) -> bool:
    if endpoints is None:
        return False
    meta = meta_of(endpoints)
    return (meta.get("labels") or {}).get(SKIP_MIRROR_LABEL) != "true" and \
        LEADER_ANNOTATION not in (meta.get("annotations") or {})


def _slice_ports(ports: list[Mapping]) -> list[dict]:
    out = []
    for port in ports:
        entry: dict[str, Any] = {"name": port.get("name") or "", "port": port.get("port"),
                                 "protocol": port.get("protocol") or "TCP"}
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        out.append(entry)
    return out


def address_to_endpoint(address: Mapping, ready: bool) -> dict:
    endpoint: dict[str, Any] = {"addresses": [address["ip"]], "conditions": {"ready": ready}}
    if address.get("hostname"):
        endpoint["hostname"] = address["hostname"]
    if address.get("targetRef"):
        endpoint["targetRef"] = copy.deepcopy(address["targetRef"])
    if address.get("nodeName"):
        endpoint["nodeName"] = address["nodeName"]
    return endpoint


@dataclass
class DesiredMirror:
    endpoints_by_key: dict[MirrorKey, dict[tuple, dict]] = field(default_factory=dict)
    ports_by_key: dict[MirrorKey, list[dict]] = field(default_factory=dict)
    invalid: int = 0  # addresses that are not IPs
    skipped: int = 0  # addresses left out, the invalid ones included


def desired_mirror(endpoints: Mapping, max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> DesiredMirror:
    """The endpoints each (address type, ports) slice should hold, from the repacked subsets."""
    desired = DesiredMirror()
    for subset in repack_subsets(endpoints.get("subsets") or ()):
        ports = _slice_ports(subset.get("ports") or [])
        added = 0
        candidates = [(a, True) for a in subset.get("addresses") or ()] + \
                     [(a, False) for a in subset.get("notReadyAddresses") or ()]
        for address, ready in candidates:
            if added >= max_per_subset:
                break
            family = ip_family(address.get("ip") or "")
            if family is None:
                desired.invalid += 1
                continue
            key = (family, port_map_key(ports))
            desired.ports_by_key.setdefault(key, ports)
            endpoint = address_to_endpoint(address, ready)
            desired.endpoints_by_key.setdefault(key, {})[endpoint_key(endpoint)] = endpoint
            added += 1
        desired.skipped += len(candidates) - added
    return desired


def mirrored_labels(endpoints: Mapping) -> dict[str, str]:
    labels = dict(meta_of(endpoints).get("labels") or {})
    labels[SERVICE_NAME_LABEL] = meta_of(endpoints).get("name") or ""
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def mirrored_annotations(endpoints: Mapping) -> dict[str, str]:
    return {k: v for k, v in (meta_of(endpoints).get("annotations") or {}).items()
            if k not in (TRIGGER_TIME_ANNOTATION, LAST_APPLIED_ANNOTATION)}


def new_mirrored_slice(endpoints: Mapping, ports: list[dict], address_type: str, name: str | None) -> dict:
    meta = meta_of(endpoints)
    slice_meta: dict[str, Any] = {"namespace": meta.get("namespace"), "labels": mirrored_labels(endpoints),
                                  "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints",
                                                       "name": meta.get("name"), "uid": meta.get("uid"),
                                                       "controller": True, "blockOwnerDeletion": True}]}
    annotations = mirrored_annotations(endpoints)
    if annotations:
        slice_meta["annotations"] = annotations
    if name:
        slice_meta["name"] = name
    else:
        slice_meta["generateName"] = f"{meta.get('name')}-"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": slice_meta,
            "addressType": address_type, "ports": copy.deepcopy(ports), "endpoints": []}


def _slice_matches(existing: Mapping, endpoints: Mapping, desired: dict[tuple, dict]) -> bool:
    """Whether the first existing slice already mirrors exactly these endpoints, labels and annotations."""
    current = {endpoint_key(e): e for e in existing.get("endpoints") or ()}
    if current.keys() != desired.keys():
        return False
    if any({**current[k], "addresses": sorted(current[k]["addresses"])} != desired[k] for k in desired):
        return False
    labels = {k: v for k, v in (meta_of(existing).get("labels") or {}).items()
              if k not in (MANAGED_BY_LABEL, SERVICE_NAME_LABEL)}
    return labels == (meta_of(endpoints).get("labels") or {}) and \
        (meta_of(existing).get("annotations") or {}) == mirrored_annotations(endpoints)


@dataclass
class MirrorPlan:
    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)


def plan_mirror(endpoints: Mapping, existing: list[dict], desired: DesiredMirror,
                max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> MirrorPlan:
    """Upstream reconcile: one slice per (address type, ports), reusing the first existing one."""
    plan = MirrorPlan()
    existing_by_key: dict[MirrorKey, list[dict]] = {}
    for slice_ in sorted(existing, key=lambda s: meta_of(s).get("name") or ""):
        key = (slice_.get("addressType") or "", port_map_key(slice_.get("ports") or ()))
        existing_by_key.setdefault(key, []).append(slice_)
    for key, wanted in desired.endpoints_by_key.items():
        slices = existing_by_key.get(key, [])
        if not wanted:
            plan.delete += slices
            continue
        plan.delete += slices[1:]
        if slices and _slice_matches(slices[0], endpoints, wanted):
            continue
        slice_ = new_mirrored_slice(endpoints, desired.ports_by_key[key], key[0],
                                    meta_of(slices[0]).get("name") if slices else None)
        slice_["endpoints"] = list(wanted.values())[:max_per_subset]
        if slices:
            slice_["metadata"]["resourceVersion"] = meta_of(slices[0]).get("resourceVersion")
            plan.update.append(slice_)
        else:
            plan.create.append(slice_)
    for key, slices in existing_by_key.items():
        if key not in desired.endpoints_by_key:
            plan.delete += slices
    # A slice about to be deleted becomes one about to be created: one write instead of two.
    i = 0
    while i < len(plan.delete):
        doomed = plan.delete[i]
        fresh = next((s for s in reversed(plan.create) if s["addressType"] == doomed.get("addressType")), None)
        if fresh is None:
            i += 1
            continue
        plan.create.remove(fresh)
        fresh["metadata"].pop("generateName", None)
        fresh["metadata"]["name"] = meta_of(doomed)["name"]
        fresh["metadata"]["resourceVersion"] = meta_of(doomed).get("resourceVersion")
        plan.update.append(fresh)
        del plan.delete[i]
    return plan


class EndpointSliceMirroringController:
    name = CONTROLLER_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK,
                 max_endpoints_per_subset: int = MAX_ENDPOINTS_PER_SUBSET):
        self.client = client
        self.recorder = recorder
        self.max_endpoints_per_subset = max_endpoints_per_subset
        self.services = factory.informer("services")
        self.endpoints = factory.informer("endpoints")
        self.slices = factory.informer("endpointslices", indexers={SERVICE_NAME_INDEX: service_name_index})
        self.tracker = EndpointSliceTracker()
        self.queue: WorkQueue[str] = WorkQueue(self.name, rate_limiter=default_controller_rate_limiter(clock),
                                               clock=clock)
        self.controller: Controller[str] = Controller(
            self.name, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.services.wait_for_sync, self.endpoints.wait_for_sync, self.slices.wait_for_sync])
        self.services.add_handler(on_add=self._enqueue, on_update=lambda _o, new: self._enqueue(new),
                                  on_delete=self._enqueue)
        self.endpoints.add_handler(on_add=self._endpoints_changed,
                                   on_update=lambda old, new: self._endpoints_changed(new, old),
                                   on_delete=self._endpoints_changed)
        self.slices.add_handler(on_add=self._slice_changed, on_update=lambda _o, new: self._slice_changed(new),
                                on_delete=self._slice_deleted)

    @classmethod
    def from_context(cls, ctx: Any) -> EndpointSliceMirroringController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    async def run(self) -> None:
        await self.controller.run()

    # ---- event handlers ------------------------------------------------------------------

    def _enqueue(self, obj: dict | DeletedFinalStateUnknown) -> None:
        meta = meta_of(unwrap(obj))
        self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    def _endpoints_changed(self, endpoints: dict | DeletedFinalStateUnknown, previous: dict | None = None) -> None:
        obj = unwrap(endpoints)
        if should_mirror(obj) or should_mirror(previous):
            self._enqueue(obj)

    @staticmethod
    def _managed(slice_: Mapping) -> bool:
        return (meta_of(slice_).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY

    def _slice_changed(self, slice_: dict) -> None:
        if self._managed(slice_) and self.tracker.should_sync(slice_) and service_name_index(slice_):
            self.queue.add(service_name_index(slice_)[0])

    def _slice_deleted(self, slice_: dict | DeletedFinalStateUnknown) -> None:
        obj = unwrap(slice_)
        if self._managed(obj) and not self.tracker.handle_deletion(obj) and service_name_index(obj):
            self.queue.add(service_name_index(obj)[0])

    # ---- sync ----------------------------------------------------------------------------

    def _mirrored_slices(self, key: str) -> list[dict]:
        return [s for s in self.slices.by_index(SERVICE_NAME_INDEX, key) if self._managed(s)]

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            self.tracker.delete_service(key)  # the slices go with their Endpoints (owner reference)
            return
        endpoints = self.endpoints.get(key)
        if (service.get("spec") or {}).get("type") == "ExternalName" or service_selector(service) is not None \
                or not should_mirror(endpoints):
            self.tracker.delete_service(key)
            await self._delete_mirrored(key)
            return
        assert endpoints is not None
        slices = [s for s in self._mirrored_slices(key) if not meta_of(s).get("deletionTimestamp")]
        if self.tracker.stale_slices(key, slices):
            raise stale_cache_retry(key)
        desired = desired_mirror(endpoints, self.max_endpoints_per_subset)
        self._report_skipped(endpoints, desired)
        plan = plan_mirror(endpoints, slices, desired, self.max_endpoints_per_subset)
        if not meta_of(endpoints).get("deletionTimestamp"):
            for slice_ in plan.create:
                try:
                    self.tracker.update(await self.client.create(slice_))
                except APIStatusError as exc:
                    if namespace_terminating(exc):
                        return
                    raise RuntimeError(f"failed to create EndpointSlice for Endpoints {key}: {exc}") from exc
        for slice_ in plan.update:
            try:
                self.tracker.update(await self.client.update(slice_))
            except APIStatusError as exc:
                if is_conflict(exc):
                    raise stale_cache_retry(key) from None  # written since our cache saw it: look again
                raise
        for slice_ in plan.delete:
            await self._delete(slice_)
        if plan.create or plan.update or plan.delete:
            log.debug("%s: %s: %d created, %d updated, %d deleted", self.name, key, len(plan.create),
                      len(plan.update), len(plan.delete))

    def _report_skipped(self, endpoints: dict, desired: DesiredMirror) -> None:
        if self.recorder is None:
            return
        obj = {**endpoints, "apiVersion": "v1", "kind": "Endpoints"}
        if desired.invalid:
            self.recorder.event(obj, WARNING, INVALID_IP_ADDRESS,
                                f"Skipped {desired.invalid} invalid IP addresses when mirroring to EndpointSlices")
        if desired.skipped > desired.invalid:
            self.recorder.event(obj, WARNING, TOO_MANY_ADDRESSES,
                                f"A max of {self.max_endpoints_per_subset} addresses can be mirrored to "
                                f"EndpointSlices per Endpoints subset. {desired.skipped} addresses were skipped")

    async def _delete_mirrored(self, key: str) -> None:
        for slice_ in self._mirrored_slices(key):
            await self._delete(slice_)

    async def _delete(self, slice_: dict) -> None:
        try:
            await self.client.delete("endpointslices", meta_of(slice_)["name"], meta_of(slice_).get("namespace"))
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
        self.tracker.expect_deletion(slice_)
