"""Pod resource requests and node allocatable as plain integers (cpu in millicores, the rest in units)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from pyk8s.api.quantity import QuantityError, parse

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

# Scoring counts a pod without requests as if it asked for this much (upstream's non-zero defaults).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Resources = dict[str, int]


def to_int(name: str, value: object) -> int:
    """One quantity as an integer: millicores for cpu, whole units (rounded up) otherwise."""
    if isinstance(value, (str, int, float)):
        return _to_int_memo(name, value)
    return _to_int(name, value)


def _to_int(name: str, value: object) -> int:
    try:
        q = parse(value).value
    except QuantityError:
        return 0
    return math.ceil(q * 1000) if name == CPU else math.ceil(q)


# The same few quantity strings ("100m", "128Mi") recur across every pod: parse each once.
_to_int_memo = functools.lru_cache(maxsize=4096)(_to_int)


def to_resources(values: Mapping[str, object] | None) -> Resources:
    return {name: to_int(name, v) for name, v in (values or {}).items()}


def _add(into: Resources, other: Mapping[str, int]) -> None:
    for name, v in other.items():
        into[name] = into.get(name, 0) + v


def _max(into: Resources, other: Mapping[str, int]) -> None:
    for name, v in other.items():
        if v > into.get(name, 0):
            into[name] = v


def _container_requests(container: Mapping) -> Resources:
    resources = container.get("resources") or {}
    # A container with limits but no requests is defaulted to requests == limits by the apiserver;
    # fall back to limits here too, for objects that skipped defaulting.
    return to_resources(resources.get("requests") or resources.get("limits"))


def pod_requests(pod: Mapping) -> Resources:
    """max(sum(app containers) + sidecars, any init container + the sidecars started before it) + overhead."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for c in spec.get("containers") or []:
        _add(total, _container_requests(c))
    init_max: Resources = {}
    sidecars: Resources = {}
    for c in spec.get("initContainers") or []:
        req = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            _add(sidecars, req)
            _max(init_max, sidecars)
        else:
            step = dict(sidecars)
            _add(step, req)
            _max(init_max, step)
    _add(total, sidecars)
    _max(total, init_max)
    _add(total, to_resources(spec.get("overhead")))
    return total


def non_zero_requests(requests: Mapping[str, int]) -> tuple[int, int]:
    """(milli cpu, memory) for scoring: zero requests count as upstream's defaults."""
    return (requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST, requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST)


def node_allocatable(node: Mapping) -> Resources:
    status = node.get("status") or {}
    return to_resources(status.get("allocatable") or status.get("capacity"))


def host_ports(pod: Mapping) -> list[tuple[str, str, int]]:
    """(protocol, hostIP, hostPort) of every container port with a hostPort."""
    ports: list[tuple[str, str, int]] = []
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.append((p.get("protocol") or "TCP", p.get("hostIP") or "0.0.0.0", int(p["hostPort"])))
    return ports
