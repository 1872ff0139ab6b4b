"""The downward API: pod fields and container resources as text, shared by downwardAPI/projected volumes and
by container env (fieldRef, resourceFieldRef).

Upstream: pkg/fieldpath/fieldpath.go (ExtractFieldPathAsString, FormatMap) and
pkg/api/v1/resource/helpers.go (ExtractContainerResourceValue, MergeContainerResourceLimits).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from fractions import Fraction

from ...api import quantity
from ...api.gofmt import quote

# Resources that default to the node's allocatable amount when a container sets no limit.
DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")
HUGEPAGES_PREFIX = "hugepages-"


class DownwardAPIError(ValueError):
    """A field or resource the downward API cannot produce; the message is upstream's."""


def format_map(values: Mapping[str, str] | None) -> str:
    """Labels/annotations as a file: `key="value"` lines (Go %q quoting), sorted by key, no final newline."""
    return "\n".join(f"{key}={quote(values[key])}" for key in sorted(values or {}))


def split_subscripted(field_path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> ("metadata.labels", "app"); None when the path has no subscript."""
    if not field_path.endswith("']"):
        return None
    path, sep, subscript = field_path[:-2].partition("['")
    if not sep or not path:
        return None
    return path, subscript


def extract_field_path(pod: Mapping, field_path: str) -> str:
    """The metadata fields both volumes and env support (upstream's ExtractFieldPathAsString)."""
    meta = pod.get("metadata") or {}
    subscripted = split_subscripted(field_path)
    if subscripted is not None:
        path, key = subscripted
        if path == "metadata.annotations":
            return (meta.get("annotations") or {}).get(key, "")
        if path == "metadata.labels":
            return (meta.get("labels") or {}).get(key, "")
        raise DownwardAPIError(f'fieldPath "{field_path}" does not support subscript')
    if field_path == "metadata.annotations":
        return format_map(meta.get("annotations"))
    if field_path == "metadata.labels":
        return format_map(meta.get("labels"))
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return meta.get(field_path.split(".", 1)[1]) or ""
    raise DownwardAPIError(f"unsupported fieldPath: {field_path}")


def _value(amount: object) -> Fraction:
    return quantity.parse(amount).value if amount not in (None, "") else Fraction(0)


def _divisor(selector: Mapping) -> Fraction:
    divisor = _value(selector.get("divisor"))
    return divisor if divisor else Fraction(1)


def _cpu_text(amount: Fraction, divisor: Fraction) -> str:
    # Upstream divides milli-values (each rounded up), then rounds up: 250m with divisor 1 gives "1".
    return str(math.ceil(math.ceil(amount * 1000) / math.ceil(divisor * 1000)))


def _bytes_text(amount: Fraction, divisor: Fraction) -> str:
    return str(math.ceil(math.ceil(amount) / math.ceil(divisor)))


def extract_container_resource(selector: Mapping, container: Mapping) -> str:
    """limits.cpu, requests.memory, limits.ephemeral-storage, requests.hugepages-2Mi, ... with the divisor."""
    resource = selector.get("resource") or ""
    divisor = _divisor(selector)
    resources = container.get("resources") or {}
    which, _, name = resource.partition(".")
    if which in ("limits", "requests") and (name in DEFAULTED_LIMITS or name.startswith(HUGEPAGES_PREFIX)):
        amount = _value((resources.get(which) or {}).get(name))
        if name == "cpu":
            return _cpu_text(amount, divisor)
        return _bytes_text(amount, divisor)
    raise DownwardAPIError(f"unsupported container resource : {resource}")


def merge_limits(container: Mapping, allocatable: Mapping[str, str]) -> dict:
    """A copy of the container whose missing cpu/memory/ephemeral-storage (and hugepages) limits are the
    node's allocatable amounts: what a container without a limit can at most use."""
    merged = copy.deepcopy(dict(container))
    limits = merged.setdefault("resources", {}).setdefault("limits", {})
    for name, amount in allocatable.items():
        if (name in DEFAULTED_LIMITS or name.startswith(HUGEPAGES_PREFIX)) and name not in limits:
            limits[name] = amount
    return merged


def find_container(pod: Mapping, name: str) -> Mapping:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == name:
            return container
    raise DownwardAPIError(f"container {name} not found")


def container_resource_value(selector: Mapping, pod: Mapping, container: Mapping | None,
                             allocatable: Mapping[str, str]) -> str:
    """resourceFieldRef: of the named container (volumes, or env naming one) or of `container` (env)."""
    name = selector.get("containerName") or ""
    target = find_container(pod, name) if name else container
    if target is None:
        raise DownwardAPIError("resourceFieldRef in a volume must name a container")
    return extract_container_resource(selector, merge_limits(target, allocatable))
