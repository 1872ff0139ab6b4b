"""The generic per-kind strategy: what the server sets, keeps and checks on each write.

Kind-specific pieces are found in `pyk8s.api.defaults`, `pyk8s.api.validation` by the
kind's snake_case name (see `pyk8s.api.kinds`); everything here applies to every kind.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..api import crd, crd_validation, defaults, validation
from ..api.errors import FieldError, forbidden, invalid
from ..api.kinds import Kind
from ..api.meta import generate_name, metadata, new_uid, now_rfc3339

# Kinds whose status the client may set on create (kubelets register Nodes with status).
_STATUS_KEPT_ON_CREATE = {"Node"}
# A new object's status as upstream serialises its zero value: Go writes fields without omitempty.
_INITIAL_STATUS: dict[str, dict] = {
    "ReplicaSet": {"replicas": 0},
    "ReplicationController": {"replicas": 0},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                  "numberReady": 0},
    "PodDisruptionBudget": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "HorizontalPodAutoscaler": {"currentMetrics": None, "desiredReplicas": 0},
    "Service": {"loadBalancer": {}},
    "Ingress": {"loadBalancer": {}},
}
# Custom resources' names are DNS subdomains whatever their kind is called (no per-kind name rule).
_CUSTOM_NAME_RULE = "CustomResource"
# Metadata only the server manages; a client's values are replaced by the stored ones on update.
_SERVER_OWNED_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                      "selfLink")


# Kinds whose strategy functions live in their own modules rather than in defaults/validation.
_OWN_DEFAULTS: dict[str, Callable] = {"custom_resource_definition": crd.default}


def _hook(module, name: str) -> Callable | None:
    fn = getattr(module, name, None)
    if fn is None and module is validation:
        fn = getattr(crd_validation, name, None)
    return fn


def apply_defaults(kind: Kind, obj: dict) -> None:
    """The kind's defaults; a custom resource is pruned and defaulted by its version's schema."""
    if kind.custom is not None:
        if kind.custom.schema is not None:
            kind.custom.schema.prune(obj)
            kind.custom.schema.default(obj)
        return
    fn = _OWN_DEFAULTS.get(kind.name) or _hook(defaults, kind.name)
    if fn is not None:
        fn(obj)


def qos_class(spec: dict) -> str:
    """BestEffort, Guaranteed or Burstable from container requests and limits (upstream GetPodQOS)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_seen = limits_seen = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = {k: v for k, v in (resources.get("requests") or {}).items() if k in ("cpu", "memory")}
        limits = {k: v for k, v in (resources.get("limits") or {}).items() if k in ("cpu", "memory")}
        requests_seen |= bool(requests)
        limits_seen |= bool(limits)
        if set(limits) != {"cpu", "memory"} or any(requests.get(k, limits[k]) != limits[k] for k in limits):
            guaranteed = False
    if not requests_seen and not limits_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_for_create(kind: Kind, obj: dict, namespace: str) -> None:
    """Server-set metadata and the initial status, before defaulting and validation."""
    meta = metadata(obj)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
    if kind.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now_rfc3339()
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "resourceVersion"):
        meta.pop(field, None)
    if kind.tracks_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if kind.custom is not None:
        if kind.has_status:
            obj.pop("status", None)  # a custom resource's status is written through /status only
    elif kind.has_status and kind.kind not in _STATUS_KEPT_ON_CREATE:
        obj["status"] = copy.deepcopy(_INITIAL_STATUS.get(kind.kind, {}))
    if kind.kind == "Job":
        defaults.generate_job_selector(obj)
    if kind.kind == "Pod":
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif kind.kind in ("PersistentVolume", "PersistentVolumeClaim"):
        obj["status"] = {"phase": "Pending"}
    elif kind.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {})
        obj["spec"]["finalizers"] = ["kubernetes"]


def _spec_of(kind: Kind, obj: dict) -> dict:
    """Everything generation tracks: the object without metadata and status (a custom resource
    without a status subresource counts its status too, as upstream)."""
    ignored = ("metadata", "apiVersion", "kind") if kind.custom is not None and not kind.has_status else (
        "metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in obj.items() if k not in ignored}


def prepare_for_update(kind: Kind, obj: dict, old: dict) -> None:
    """Main-resource update: keep server-owned metadata and (with a status subresource) the old status."""
    meta, old_meta = metadata(obj), old["metadata"]
    for field in _SERVER_OWNED_META:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    if kind.has_status:
        if "status" in old:
            obj["status"] = old["status"]
        else:
            obj.pop("status", None)
    if kind.tracks_generation and _spec_of(kind, obj) != _spec_of(kind, old):
        meta["generation"] = old_meta.get("generation", 0) + 1
    if kind.kind == "Namespace":
        # spec.finalizers changes only through the finalize subresource.
        obj.setdefault("spec", {})["finalizers"] = (old.get("spec") or {}).get("finalizers", [])
    elif kind.kind == "Service":
        _keep_allocated_service_values(obj, old)


def _keep_allocated_service_values(obj: dict, old: dict) -> None:
    """An update that omits allocated values keeps them (upstream's patchAllocatedValues), so
    `kubectl replace` of a manifest without clusterIP or nodePorts works."""
    spec, old_spec = obj.setdefault("spec", {}), old.get("spec") or {}
    if spec.get("type", "ClusterIP") == "ExternalName" or old_spec.get("type", "ClusterIP") == "ExternalName":
        return
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if not spec.get(field) and old_spec.get(field):
            spec[field] = old_spec[field]
    if spec.get("type") in ("NodePort", "LoadBalancer") and old_spec.get("type") in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("protocol", "TCP"), p.get("port")): p.get("nodePort") for p in old_spec.get("ports") or []}
        for port in spec.get("ports") or []:
            previous = old_ports.get((port.get("protocol", "TCP"), port.get("port")))
            if not port.get("nodePort") and previous:
                port["nodePort"] = previous
    if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def prepare_for_status_update(kind: Kind, obj: dict, old: dict) -> dict:
    """Status-subresource update: only status (and annotations) come from the request; a custom
    resource takes only its status (absent means removed) and has it pruned and defaulted."""
    new = copy.deepcopy(old)
    if kind.custom is not None:
        if "status" in obj:
            new["status"] = obj["status"]
        else:
            new.pop("status", None)
        apply_defaults(kind, new)
        return new
    new["status"] = obj.get("status") or {}
    annotations = metadata(obj).get("annotations")
    if annotations is not None:
        new["metadata"]["annotations"] = annotations
    else:
        new["metadata"].pop("annotations", None)
    return new


def prepare_for_ephemeral_containers_update(kind: Kind, obj: dict, old: dict) -> dict:
    """pods/ephemeralcontainers: only spec.ephemeralContainers comes from the request (upstream's
    dropNonEphemeralContainerUpdates); the rest of the pod stays as stored."""
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = metadata(obj).get("resourceVersion", "")
    ephemeral = (obj.get("spec") or {}).get("ephemeralContainers")
    if ephemeral:
        new.setdefault("spec", {})["ephemeralContainers"] = ephemeral
    else:
        new.setdefault("spec", {}).pop("ephemeralContainers", None)
    apply_defaults(kind, new)
    return new


def validate_ephemeral_containers_update(kind: Kind, obj: dict, old: dict) -> list[FieldError]:
    """Upstream's ValidatePodEphemeralContainersUpdate: the pod must still be valid, and existing ephemeral
    containers may be neither removed nor changed."""
    errors = validation.object_meta(obj, kind.namespaced, kind.kind) + validation.pod(obj)
    return errors + validation.ephemeral_containers_update(obj, old)


def prepare_for_finalize(obj: dict, old: dict) -> dict:
    """namespaces/finalize: only spec.finalizers comes from the request."""
    new = copy.deepcopy(old)
    new.setdefault("spec", {})["finalizers"] = list((obj.get("spec") or {}).get("finalizers") or [])
    return new


def _custom_resource_errors(kind: Kind, obj: dict, old: dict | None) -> list[FieldError]:
    if kind.custom.schema is None:
        return []
    return kind.custom.schema.validate(obj, old)


def validate_create(kind: Kind, obj: dict) -> list[FieldError]:
    if kind.custom is not None:
        errors = validation.object_meta(obj, kind.namespaced, _CUSTOM_NAME_RULE)
        return errors + _custom_resource_errors(kind, obj, None)
    errors = validation.object_meta(obj, kind.namespaced, kind.kind)
    fn = _hook(validation, kind.name)
    if fn is not None:
        errors += fn(obj)
    fn = _hook(validation, f"{kind.name}_create")  # rules only a create has
    if fn is not None:
        errors += fn(obj)
    return errors


def validate_update(kind: Kind, obj: dict, old: dict) -> list[FieldError]:
    errors = validation.object_meta(obj, kind.namespaced, _CUSTOM_NAME_RULE if kind.custom is not None else kind.kind)
    meta, old_meta = obj["metadata"], old["metadata"]
    for field in ("name", "namespace"):
        if meta.get(field) != old_meta.get(field):
            errors.append(invalid(f"metadata.{field}", meta.get(field), "field is immutable"))
    if old_meta.get("deletionTimestamp"):
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            errors.append(forbidden("metadata.finalizers",
                                    f"no new finalizers can be added if the object is being deleted, "
                                    f"found new finalizers {sorted(added)!r}".replace("'", '"')))
    if kind.custom is not None:
        return errors + _custom_resource_errors(kind, obj, old)
    fn = _hook(validation, kind.name)
    if fn is not None:
        errors += fn(obj)
    fn = _hook(validation, f"{kind.name}_update")
    if fn is not None:
        errors += fn(obj, old)
    return errors


def pod_grace_period(pod: dict, requested: int | None) -> int:
    """Upstream CheckGracefulDelete for pods."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(requested, 0)
    grace = spec.get("terminationGracePeriodSeconds")
    return 30 if grace is None else max(int(grace), 0)


def deletion_timestamp(grace_seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=grace_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
