"""LimitRanger (upstream plugin/pkg/admission/limitranger): LimitRange defaults are written into
containers, then min/max/maxLimitRequestRatio are enforced for Container, Pod and
PersistentVolumeClaim limits. Messages are upstream's, word for word."""

from __future__ import annotations

from fractions import Fraction

from ...api.quantity import Quantity, parse
from ...api.quota import Usage, parse_list, pod_limits, pod_requests
from .interfaces import CREATE, UPDATE, AdmissionPlugin, Attributes
from .state import ClusterState

ANNOTATION = "kubernetes.io/limit-ranger"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate's text: one message alone, several in brackets, duplicates once."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _quantity(text: object) -> Quantity | None:
    try:
        return parse(text)
    except ValueError:
        return None


def min_constraint(limit_type: str, resource: str, enforced: Quantity, requests: Usage, limits: Usage) -> str | None:
    request, limit = requests.get(resource), limits.get(resource)
    if request is None:
        return f"minimum {resource} usage per {limit_type} is {enforced}.  No request is specified"
    if request.value < enforced.value:
        return f"minimum {resource} usage per {limit_type} is {enforced}, but request is {request}"
    if limit is not None and limit.value < enforced.value:
        return f"minimum {resource} usage per {limit_type} is {enforced}, but limit is {limit}"
    return None


def max_constraint(limit_type: str, resource: str, enforced: Quantity, requests: Usage, limits: Usage) -> str | None:
    request, limit = requests.get(resource), limits.get(resource)
    if limit is None:
        return f"maximum {resource} usage per {limit_type} is {enforced}.  No limit is specified"
    if limit.value > enforced.value:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but limit is {limit}"
    if request is not None and request.value > enforced.value:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but request is {request}"
    return None


def max_request_constraint(limit_type: str, resource: str, enforced: Quantity, requests: Usage) -> str | None:
    request = requests.get(resource)
    if request is None:
        return f"maximum {resource} usage per {limit_type} is {enforced}.  No request is specified"
    if request.value > enforced.value:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but request is {request}"
    return None


def ratio_constraint(limit_type: str, resource: str, enforced: Quantity, requests: Usage,
                     limits: Usage) -> str | None:
    request, limit = requests.get(resource), limits.get(resource)
    prefix = f"{resource} max limit to request ratio per {limit_type} is {enforced}"
    if request is None or request.value == 0:
        return f"{prefix}, but no request is specified or request is 0"
    if limit is None or limit.value == 0:
        return f"{prefix}, but no limit is specified or limit is 0"
    ratio = Fraction(limit.value) / Fraction(request.value)
    if ratio > enforced.value:
        return f"{prefix}, but provided ratio is {float(ratio):.6f}"
    return None


def _item_lists(item: dict, key: str) -> list[tuple[str, Quantity]]:
    out = []
    for resource in sorted(item.get(key) or {}):
        quantity = _quantity(item[key][resource])
        if quantity is not None:
            out.append((resource, quantity))
    return out


def _check_bounds(item: dict, limit_type: str, requests: Usage, limits: Usage) -> list[str]:
    problems = []
    for resource, enforced in _item_lists(item, "min"):
        problems.append(min_constraint(limit_type, resource, enforced, requests, limits))
    for resource, enforced in _item_lists(item, "max"):
        problems.append(max_constraint(limit_type, resource, enforced, requests, limits))
    for resource, enforced in _item_lists(item, "maxLimitRequestRatio"):
        problems.append(ratio_constraint(limit_type, resource, enforced, requests, limits))
    return [p for p in problems if p]


def validate_pod(limit_range: dict, pod: dict) -> list[str]:
    spec = pod.get("spec") or {}
    problems: list[str] = []
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if item.get("type") == "Container":
            for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
                resources = container.get("resources") or {}
                problems += _check_bounds(item, "Container", parse_list(resources.get("requests")),
                                          parse_list(resources.get("limits")))
        elif item.get("type") == "Pod":
            problems += _check_bounds(item, "Pod", pod_requests(spec), pod_limits(spec))
    return problems


def validate_claim(limit_range: dict, claim: dict) -> list[str]:
    requests = parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    problems: list[str | None] = []
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if item.get("type") != "PersistentVolumeClaim":
            continue
        for resource, enforced in _item_lists(item, "min"):
            # A claim's limits are not user input here: only its requests count.
            problems.append(min_constraint("PersistentVolumeClaim", resource, enforced, requests, {}))
        for resource, enforced in _item_lists(item, "max"):
            problems.append(max_request_constraint("PersistentVolumeClaim", resource, enforced, requests))
    return [p for p in problems if p]


def _merge_container(container: dict, defaults: dict, requests: dict, what: str, notes: list[str]) -> None:
    resources = container.setdefault("resources", {})
    set_limits = [r for r in sorted(defaults) if r not in (resources.get("limits") or {})]
    set_requests = [r for r in sorted(requests) if r not in (resources.get("requests") or {})]
    if set_limits:
        resources.setdefault("limits", {}).update({r: defaults[r] for r in set_limits})
    if set_requests:
        resources.setdefault("requests", {}).update({r: requests[r] for r in set_requests})
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {what} {container.get('name', '')}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {what} {container.get('name', '')}")


def apply_defaults(limit_range: dict, pod: dict) -> None:
    """Write the LimitRange's Container defaults into every container that lacks them."""
    defaults: dict = {}
    requests: dict = {}
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if item.get("type") == "Container":
            defaults.update(item.get("default") or {})
            requests.update(item.get("defaultRequest") or {})
    if not defaults and not requests:
        return
    spec = pod.setdefault("spec", {})
    notes: list[str] = []
    for container in spec.get("containers") or []:
        _merge_container(container, defaults, requests, "container", notes)
    for container in spec.get("initContainers") or []:
        _merge_container(container, defaults, requests, "init container", notes)
    if notes:
        pod["metadata"].setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


class LimitRanger(AdmissionPlugin):
    name = "LimitRanger"
    mutating = True
    validating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.limit_ranges = state.kind("", "v1", "LimitRange")

    def handles(self, attrs: Attributes) -> bool:
        if attrs.subresource or attrs.operation not in (CREATE, UPDATE) or attrs.kind.group != "":
            return False
        if attrs.kind.plural == "pods":
            # Containers cannot be added or resized on update, so only creates are checked.
            return attrs.operation == CREATE
        return attrs.kind.plural == "persistentvolumeclaims"

    async def admit(self, attrs: Attributes) -> None:
        if attrs.is_pod() and attrs.obj is not None:
            for limit_range in self.state.list(self.limit_ranges, attrs.namespace):
                apply_defaults(limit_range, attrs.obj)

    async def validate(self, attrs: Attributes) -> None:
        if attrs.obj is None:
            return
        problems: list[str] = []
        for limit_range in self.state.list(self.limit_ranges, attrs.namespace):
            problems += validate_pod(limit_range, attrs.obj) if attrs.is_pod() else validate_claim(
                limit_range, attrs.obj)
        if problems:
            raise attrs.forbidden(_aggregate(problems))
