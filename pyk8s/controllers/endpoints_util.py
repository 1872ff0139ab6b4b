"""What the Endpoints, EndpointSlice and EndpointSlice-mirroring controllers share (upstream
pkg/controller/util/endpoint, staging endpointslice/util and pkg/api/v1/pod helpers):

- which Services select a pod, and which Services a pod update concerns;
- whether a pod belongs in endpoints at all, and which port a Service port resolves to on it;
- the `endpoints.kubernetes.io/last-change-trigger-time` bookkeeping (TriggerTimeTracker);
- the generations of the EndpointSlices a controller wrote itself (EndpointSliceTracker), so that it
  neither reacts to its own writes nor acts on an informer cache that has not caught up with them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..client import APIStatusError, DeletedFinalStateUnknown, Informer, RequeueAfter

log = logging.getLogger("pyk8s.controllers.endpoints_util")

# Well-known labels and annotations (upstream k8s.io/api/core/v1 and discovery/v1 constants).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
ZONE_LABEL = "topology.kubernetes.io/zone"

IPV4, IPV6 = "IPv4", "IPv6"

# Informer index of EndpointSlices by "<namespace>/<kubernetes.io/service-name label>".
SERVICE_NAME_INDEX = "service-name"


def service_name_index(slice_: Mapping) -> list[str]:
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace') or ''}/{name}"] if name else []


def unwrap(obj: dict | DeletedFinalStateUnknown) -> dict:
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


def meta_of(obj: Mapping) -> dict:
    return obj.get("metadata") or {}


def namespace_terminating(exc: APIStatusError) -> bool:
    """A create refused because the namespace is being deleted: it will keep failing, so it is not retried."""
    return exc.code == 403 and any(c.get("reason") == "NamespaceTerminating" for c in exc.details.get("causes") or ())


# ---- pods ---------------------------------------------------------------------------------


def is_pod_ready(pod: Mapping) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_ips(pod: Mapping) -> list[str]:
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or () if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def should_pod_be_in_endpoints(pod: Mapping, include_terminating: bool) -> bool:
    """Upstream ShouldPodBeInEndpoints: a pod with an IP that has not finished for good (a pod that will be
    restarted still counts); terminating pods only when the caller publishes them."""
    if not pod_ips(pod):
        return False
    if not include_terminating and meta_of(pod).get("deletionTimestamp"):
        return False
    phase = (pod.get("status") or {}).get("phase")
    restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if restart_policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if restart_policy == "OnFailure":
        return phase != "Succeeded"
    return True


def should_set_hostname(pod: Mapping, service: Mapping) -> bool:
    """A pod's hostname is published when its subdomain names the Service (in the same namespace)."""
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == meta_of(service).get("name") and \
        meta_of(pod).get("namespace") == meta_of(service).get("namespace")


def _restartable_init_container(container: Mapping) -> bool:
    return container.get("restartPolicy") == "Always"


def find_port(pod: Mapping, service_port: Mapping) -> int | None:
    """Upstream podutil.FindPort: a numeric targetPort is used as is; a named one is looked up among the
    pod's container ports (and sidecar init containers') with the Service port's protocol. None: no match."""
    target = service_port.get("targetPort")
    if target is None or target == "":
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or ()),
                  *(c for c in spec.get("initContainers") or () if _restartable_init_container(c))]
    for container in containers:
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def ip_family(ip: str) -> str | None:
    try:
        return IPV6 if ipaddress.ip_address(ip).version == 6 else IPV4
    except ValueError:
        return None


# ---- services -----------------------------------------------------------------------------


def service_selector(service: Mapping) -> dict | None:
    """The Service's selector, or None when it has none (an empty map reads back as none upstream: Go
    drops it on the way through the apiserver), which means: endpoints are managed by someone else."""
    selector = (service.get("spec") or {}).get("selector")
    return selector if isinstance(selector, dict) and selector else None


def service_selects(service: Mapping, labels: Mapping[str, str]) -> bool:
    selector = service_selector(service)
    return selector is not None and selector.items() <= labels.items()


def is_service_ip_set(service: Mapping) -> bool:
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    return bool(cluster_ip) and cluster_ip != "None"


def service_address_types(service: Mapping) -> list[str]:
    """The EndpointSlice address types a Service gets: its ipFamilies, else its clusterIP's family, else IPv4."""
    spec = service.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or () if f in (IPV4, IPV6)]
    if families:
        return list(dict.fromkeys(families))
    if is_service_ip_set(service):
        return [ip_family(spec["clusterIP"]) or IPV4]
    return [IPV4]


def pod_service_memberships(services: Informer, pod: Mapping) -> set[str]:
    """Keys of the Services (with a selector) in the pod's namespace whose selector matches the pod."""
    meta = meta_of(pod)
    namespace = meta.get("namespace") or ""
    labels = meta.get("labels") or {}
    return {f"{namespace}/{meta_of(svc).get('name')}" for svc in services.list(namespace)
            if service_selects(svc, labels)}


def _hostname_and_domain(pod: Mapping) -> tuple:
    spec = pod.get("spec") or {}
    return spec.get("hostname"), spec.get("subdomain")


def pod_endpoints_changed(old: Mapping, new: Mapping) -> tuple[bool, bool]:
    """(pod changed in a way endpoints show, labels or hostname/subdomain changed) — upstream podEndpointsChanged.
    Name, namespace, uid and nodeName never change once a pod has an IP, so they need no look."""
    labels_changed = (meta_of(old).get("labels") or {}) != (meta_of(new).get("labels") or {}) or \
        _hostname_and_domain(old) != _hostname_and_domain(new)
    if meta_of(old).get("deletionTimestamp") != meta_of(new).get("deletionTimestamp"):
        return True, labels_changed
    if is_pod_ready(old) != is_pod_ready(new):
        return True, labels_changed
    if pod_ips(old) != pod_ips(new):
        return True, labels_changed
    # A finished pod leaves endpoints, and its phase may change without its readiness (it was not ready).
    if (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase"):
        return True, labels_changed
    return False, labels_changed


def services_to_update_on_pod_change(services: Informer, old: Mapping, new: Mapping) -> set[str]:
    """Upstream GetServicesToUpdateOnPodChange: none for a resync or an irrelevant change; the new pod's Services
    when it changed; when only labels changed, the Services it joined or left."""
    if meta_of(old).get("resourceVersion") == meta_of(new).get("resourceVersion"):
        return set()
    pod_changed, labels_changed = pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    current = pod_service_memberships(services, new)
    if not labels_changed:
        return current
    previous = pod_service_memberships(services, old)
    return current | previous if pod_changed else current ^ previous


# ---- trigger time -------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_trigger_time(moment: datetime) -> str:
    """RFC 3339 with nanosecond precision where there is any, as Go's time.RFC3339Nano (trailing zeros dropped)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _pod_trigger_time(pod: Mapping) -> datetime | None:
    """When the pod last changed in a way endpoints show: its Ready condition's last transition."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return parse_time(cond.get("lastTransitionTime"))
    return None


@dataclass
class _ServiceState:
    service_time: datetime | None
    pod_times: dict[str, datetime] = field(default_factory=dict)


class TriggerTimeTracker:
    """Upstream TriggerTimeTracker: for each sync, the earliest trigger (a pod's Ready transition or the Service's
    creation) that changed since the previous sync of the same Service. It tells latency measurements when the
    change that an Endpoints/EndpointSlice write carries began. A Service seen for the first time reports its
    creation time."""

    def __init__(self) -> None:
        self._states: dict[str, _ServiceState] = {}

    def compute(self, key: str, service: Mapping, pods: Iterable[Mapping]) -> datetime | None:
        state = self._states.get(key)
        known = state is not None
        state = state or _ServiceState(None)
        earliest: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            moment = _pod_trigger_time(pod)
            if moment is None:
                continue
            name = meta_of(pod).get("name") or ""
            pod_times[name] = moment
            previous = state.pod_times.get(name)
            if previous is None or moment > previous:
                earliest = moment if earliest is None else min(earliest, moment)
        service_time = parse_time(meta_of(service).get("creationTimestamp"))
        if service_time is not None and (state.service_time is None or service_time > state.service_time):
            earliest = service_time if earliest is None else min(earliest, service_time)
        self._states[key] = _ServiceState(service_time, pod_times)
        if not known:
            return service_time
        return earliest

    def delete(self, key: str) -> None:
        self._states.pop(key, None)


# ---- the slices a controller wrote --------------------------------------------------------


# A sync that finds the EndpointSlice cache behind its own writes looks again this much later. The cache
# normally catches up within milliseconds, and our own writes' events do not queue the Service again.
STALE_CACHE_RETRY = 0.1  # seconds


def stale_cache_retry(key: str) -> RequeueAfter:
    log.debug("EndpointSlice informer cache is out of date for %s; retrying", key)
    return RequeueAfter(STALE_CACHE_RETRY)


class EndpointSliceTracker:
    """Generations of the EndpointSlices this controller created or updated, by Service key and slice uid
    (upstream endpointslice tracker). A slice deleted by us is expected gone (generation -1)."""

    DELETED = -1

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    @staticmethod
    def _service_key(slice_: Mapping) -> str:
        meta = meta_of(slice_)
        return f"{meta.get('namespace') or ''}/{(meta.get('labels') or {}).get(SERVICE_NAME_LABEL, '')}"

    def should_sync(self, slice_: Mapping) -> bool:
        """Whether a slice event came from someone else (or is a state we did not write)."""
        generations = self._by_service.get(self._service_key(slice_), {})
        uid = meta_of(slice_).get("uid")
        if uid not in generations:
            return True
        return int(meta_of(slice_).get("generation") or 0) != generations[uid]

    def stale_slices(self, service_key: str, slices: Iterable[Mapping]) -> bool:
        """True while the cache lags our writes: it shows a slice older than we wrote it, a slice we deleted, or
        lacks one we wrote."""
        generations = self._by_service.get(service_key)
        if not generations:
            return False
        present: set[str] = set()
        for slice_ in slices:
            uid = meta_of(slice_).get("uid")
            present.add(uid)
            written = generations.get(uid)
            if written is not None and (written == self.DELETED or written > int(meta_of(slice_).get("generation")
                                                                                  or 0)):
                return True
        return any(g != self.DELETED and uid not in present for uid, g in generations.items())

    def update(self, slice_: Mapping) -> None:
        self._by_service.setdefault(self._service_key(slice_), {})[meta_of(slice_).get("uid")] = int(
            meta_of(slice_).get("generation") or 0)

    def expect_deletion(self, slice_: Mapping) -> None:
        self._by_service.setdefault(self._service_key(slice_), {})[meta_of(slice_).get("uid")] = self.DELETED

    def handle_deletion(self, slice_: Mapping) -> bool:
        """Forget a deleted slice; True when the deletion was ours (expected), False when someone else's."""
        generations = self._by_service.get(self._service_key(slice_), {})
        return generations.pop(meta_of(slice_).get("uid"), None) == self.DELETED

    def delete_service(self, service_key: str) -> None:
        self._by_service.pop(service_key, None)
