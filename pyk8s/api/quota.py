"""Resource quota accounting: what an object costs against a ResourceQuota (upstream pkg/quota/v1).

Pure functions over dicts, shared by the apiserver's ResourceQuota admission plugin (which
charges each create) and the resourcequota controller (which recounts everything and so
releases the usage of objects that went away). Usage values are `Quantity`s so messages print
them as upstream does (`requests.memory=1Gi`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from .quantity import DECIMAL_SI, Quantity, parse

Usage = dict[str, Quantity]

ONE = Quantity(Fraction(1), DECIMAL_SI, "1")
ZERO = Quantity(Fraction(0), DECIMAL_SI, "0")

# Object counts with a legacy name beside `count/<resource>` (upstream's generic evaluators).
LEGACY_COUNTS = {
    ("", "pods"): "pods", ("", "services"): "services", ("", "secrets"): "secrets",
    ("", "configmaps"): "configmaps", ("", "persistentvolumeclaims"): "persistentvolumeclaims",
    ("", "replicationcontrollers"): "replicationcontrollers", ("", "resourcequotas"): "resourcequotas",
}
# Resources whose every container must state a request or limit once a quota limits them.
CONTAINER_CONSTRAINED = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
_POD_COMPUTE = ("cpu", "memory", "ephemeral-storage")
_REQUEST_PREFIXED = ("hugepages-",)
SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
          "CrossNamespacePodAffinity")


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def add(a: Usage, b: Mapping[str, Quantity]) -> Usage:
    """Sums keep the first operand's format, unless it is zero (upstream Quantity.Add)."""
    out = dict(a)
    for name, value in b.items():
        if name not in out:
            out[name] = value
        else:
            fmt = out[name].format if out[name].value else value.format
            out[name] = Quantity(out[name].value + value.value, fmt)
    return out


def subtract_non_negative(a: Usage, b: Mapping[str, Quantity]) -> Usage:
    out = {}
    for name, value in a.items():
        rest = value.value - (b[name].value if name in b else 0)
        out[name] = Quantity(max(rest, Fraction(0)), value.format)
    return out


def parse_list(resources: Mapping[str, object] | None) -> Usage:
    """A ResourceList as Quantities; values that do not parse are left out (validation reports them)."""
    out: Usage = {}
    for name, text in (resources or {}).items():
        try:
            out[name] = parse(text)
        except ValueError:
            continue
    return out


def render_list(usage: Mapping[str, Quantity]) -> dict[str, str]:
    return {name: str(value) for name, value in sorted(usage.items())}


def pretty(usage: Mapping[str, Quantity]) -> str:
    """`a=1,b=2Gi` sorted by name, as upstream prints resource lists in quota errors."""
    return ",".join(f"{name}={value}" for name, value in sorted(usage.items()))


# ---- pods --------------------------------------------------------------------------------


def _container_list(container: dict, field: str) -> Usage:
    return parse_list((container.get("resources") or {}).get(field))


def _max_into(total: Usage, other: Usage) -> None:
    for name, value in other.items():
        if name not in total or value.value > total[name].value:
            total[name] = value


def _pod_total(spec: dict, field: str) -> Usage:
    """Pod-level requests or limits: app containers and sidecars add up; each classic init
    container runs alone with the sidecars started before it, so the pod needs the largest of
    those (upstream resourcehelper.PodRequests/PodLimits, without status resources)."""
    total: Usage = {}
    for container in spec.get("containers") or []:
        total = add(total, _container_list(container, field))
    sidecars: Usage = {}
    init_peak: Usage = {}
    for container in spec.get("initContainers") or []:
        own = _container_list(container, field)
        if container.get("restartPolicy") == "Always":
            sidecars = add(sidecars, own)
            total = add(total, own)
        else:
            _max_into(init_peak, add(own, sidecars))
    _max_into(total, init_peak)
    overhead = parse_list(spec.get("overhead"))
    if overhead:
        total = add(total, {k: v for k, v in overhead.items() if k in total or field == "requests"})
    return total


def pod_requests(spec: dict) -> Usage:
    return _pod_total(spec, "requests")


def pod_limits(spec: dict) -> Usage:
    return _pod_total(spec, "limits")


def _is_extended(name: str) -> bool:
    """Extended resources (vendor.example/gpu): outside kubernetes.io, not already prefixed."""
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def compute_usage(requests: Usage, limits: Usage) -> Usage:
    """Quota names charged for requests and limits (upstream podComputeUsageHelper)."""
    usage: Usage = {"pods": ONE}
    for name in _POD_COMPUTE:
        if name in requests:
            usage[name] = requests[name]
            usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith(_REQUEST_PREFIXED):
            usage[name] = value
            usage[f"requests.{name}"] = value
        elif _is_extended(name):
            usage[f"requests.{name}"] = value
    return usage


def pod_is_charged(pod: dict, now: datetime | None = None) -> bool:
    """Finished pods and pods past their deletion grace no longer use compute quota (QuotaV1Pod)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deletion, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if deletion and grace is not None:
        deleted_at = datetime.strptime(deletion, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if (now or datetime.now(UTC)) > deleted_at + timedelta(seconds=int(grace)):
            return False
    return True


def pod_usage(pod: dict, now: datetime | None = None) -> Usage:
    usage: Usage = {count_name("", "pods"): ONE}
    if not pod_is_charged(pod, now):
        return usage
    spec = pod.get("spec") or {}
    usage.update(compute_usage(pod_requests(spec), pod_limits(spec)))
    return usage


def pod_matches_resource(name: str) -> bool:
    return (name in ("pods", count_name("", "pods")) or name in _POD_COMPUTE
            or name.startswith(("requests.", "limits.", *_REQUEST_PREFIXED)))


def pod_constraints(required: Iterable[str], pod: dict) -> str | None:
    """`must specify limits.cpu for: a,b; requests.memory for: a` when a quota limits cpu or
    memory and a container states nothing for it (upstream podEvaluator.Constraints)."""
    wanted = set(required) & set(CONTAINER_CONSTRAINED)
    if not wanted:
        return None
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        provided = compute_usage(_container_list(container, "requests"), _container_list(container, "limits"))
        for name in wanted - set(provided):
            missing.setdefault(name, set()).add(container.get("name", ""))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing))


def qos_class(spec: dict) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requested = limited = False
    guaranteed = True
    for container in containers:
        requests = {k: v for k, v in _container_list(container, "requests").items() if k in ("cpu", "memory")}
        limits = {k: v for k, v in _container_list(container, "limits").items() if k in ("cpu", "memory")}
        requested |= any(v.value for v in requests.values())
        limited |= any(v.value for v in limits.values())
        if set(limits) != {"cpu", "memory"} or any(requests[k].value != limits[k].value for k in requests
                                                   if k in limits):
            guaranteed = False
    if not requested and not limited:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _scope_requirements(quota: dict) -> list[dict]:
    spec = quota.get("spec") or {}
    requirements = [{"scopeName": scope, "operator": "Exists"} for scope in spec.get("scopes") or []]
    requirements += list((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return requirements


def _pod_matches_scope(requirement: dict, pod: dict) -> bool:
    spec = pod.get("spec") or {}
    scope, operator = requirement.get("scopeName"), requirement.get("operator")
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] >= 0
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None or spec["activeDeadlineSeconds"] < 0
    if scope == "BestEffort":
        return qos_class(spec) == "BestEffort"
    if scope == "NotBestEffort":
        return qos_class(spec) != "BestEffort"
    if scope == "PriorityClass":
        name = spec.get("priorityClassName", "")
        values = requirement.get("values") or []
        if operator == "Exists":
            return bool(name)
        if operator == "DoesNotExist":
            return not name
        if operator == "In":
            return name in values
        if operator == "NotIn":
            return name not in values
        return False
    if scope == "CrossNamespacePodAffinity":
        return _uses_cross_namespace_affinity(spec)
    return False


def _uses_cross_namespace_affinity(spec: dict) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = affinity.get(kind) or {}
        for term in terms.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if term.get("namespaces") or term.get("namespaceSelector") is not None:
                return True
        for weighted in terms.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            term = weighted.get("podAffinityTerm") or {}
            if term.get("namespaces") or term.get("namespaceSelector") is not None:
                return True
    return False


def quota_matches(quota: dict, group: str, plural: str, obj: dict) -> bool:
    """Whether the quota's scopes select the object: only pods have scopes; a scoped quota
    matches no other kind (upstream's MatchesNoScopeFunc)."""
    requirements = _scope_requirements(quota)
    if not requirements:
        return True
    if (group, plural) != ("", "pods"):
        return False
    return all(_pod_matches_scope(r, obj) for r in requirements)


# ---- services and claims ---------------------------------------------------------------


def service_usage(service: dict) -> Usage:
    spec = service.get("spec") or {}
    usage: Usage = {count_name("", "services"): ONE, "services": ONE}
    kind = spec.get("type", "ClusterIP")
    ports = len(spec.get("ports") or [])
    if kind == "LoadBalancer":
        usage["services.loadbalancers"] = ONE
        if spec.get("allocateLoadBalancerNodePorts", True) is not False:
            usage["services.nodeports"] = Quantity(Fraction(ports), DECIMAL_SI)
        else:
            usage["services.nodeports"] = Quantity(Fraction(0), DECIMAL_SI)
    elif kind == "NodePort":
        usage["services.nodeports"] = Quantity(Fraction(ports), DECIMAL_SI)
    return usage


def claim_usage(claim: dict) -> Usage:
    spec = claim.get("spec") or {}
    usage: Usage = {count_name("", "persistentvolumeclaims"): ONE, "persistentvolumeclaims": ONE}
    storage_class = spec.get("storageClassName") or (claim.get("metadata", {}).get("annotations") or {}).get(
        "volume.beta.kubernetes.io/storage-class", "")
    if storage_class:
        usage[f"{storage_class}.storageclass.storage.k8s.io/persistentvolumeclaims"] = ONE
    requested = parse_list((spec.get("resources") or {}).get("requests")).get("storage")
    allocated = parse_list((claim.get("status") or {}).get("allocatedResources")).get("storage")
    if allocated is not None and (requested is None or allocated.value > requested.value):
        requested = allocated
    if requested is not None:
        usage["requests.storage"] = requested
        if storage_class:
            usage[f"{storage_class}.storageclass.storage.k8s.io/requests.storage"] = requested
    return usage


def claim_matches_resource(name: str) -> bool:
    return name in ("persistentvolumeclaims", "requests.storage", count_name("", "persistentvolumeclaims")) or (
        ".storageclass.storage.k8s.io/" in name)


def service_matches_resource(name: str) -> bool:
    return name in ("services", "services.loadbalancers", "services.nodeports", count_name("", "services"))


# ---- dispatch ----------------------------------------------------------------------------


def usage_of(group: str, plural: str, obj: dict, now: datetime | None = None) -> Usage:
    """Everything an object of this resource is charged."""
    if (group, plural) == ("", "pods"):
        return pod_usage(obj, now)
    if (group, plural) == ("", "services"):
        return service_usage(obj)
    if (group, plural) == ("", "persistentvolumeclaims"):
        return claim_usage(obj)
    usage: Usage = {count_name(group, plural): ONE}
    legacy = LEGACY_COUNTS.get((group, plural))
    if legacy:
        usage[legacy] = ONE
    return usage


def matching_resources(group: str, plural: str, names: Iterable[str]) -> list[str]:
    """The quota resource names, out of `names`, that this resource's usage can charge."""
    if (group, plural) == ("", "pods"):
        test = pod_matches_resource
    elif (group, plural) == ("", "services"):
        test = service_matches_resource
    elif (group, plural) == ("", "persistentvolumeclaims"):
        test = claim_matches_resource
    else:
        counted = {count_name(group, plural), LEGACY_COUNTS.get((group, plural), count_name(group, plural))}

        def test(name: str) -> bool:
            return name in counted
    return sorted(n for n in names if test(n))


def resource_of_count(name: str) -> tuple[str, str] | None:
    """(group, plural) that a quota resource name counts, e.g. count/deployments.apps -> (apps, deployments)."""
    if name.startswith("count/"):
        plural, _, group = name[len("count/"):].partition(".")
        return group, plural
    for (group, plural), legacy in LEGACY_COUNTS.items():
        if name == legacy:
            return group, plural
    if pod_matches_resource(name):
        return "", "pods"
    if service_matches_resource(name):
        return "", "services"
    if claim_matches_resource(name):
        return "", "persistentvolumeclaims"
    return None

