"""Upstream validation of objects in their JSON form: each function returns FieldErrors, never raises.

`object_meta(obj, namespaced)` validates metadata; `<kind>(obj)` validates a kind's content and
`<kind>_update(obj, old)` adds the rules that only apply to updates (immutable fields), both
named by the kind's snake_case name (see `pyk8s.api.kinds`). Objects are expected to be
defaulted first, as upstream validates defaulted objects. Paths, messages and value kinds
follow upstream's field errors; maps are passed as dicts and lists as lists.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import zoneinfo
from collections.abc import Callable
from itertools import takewhile
from typing import Any

from . import admissionregistration, certificates
from .errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from .gofmt import quote
from .quantity import Quantity, QuantityError
from .quantity import parse as parse_quantity

FIELD_IMMUTABLE = "field is immutable"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
TOTAL_ANNOTATION_SIZE = 256 * 1024
MAX_DATA_SIZE = 1024 * 1024  # ConfigMap and Secret payloads
MAX_INT32 = 2**31 - 1

# --- apimachinery's string checks (pkg/util/validation): each returns its messages ---

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
PERCENT_FMT = "[0-9]+%"
WILDCARD_DNS1123_SUBDOMAIN_FMT = r"\*\." + DNS1123_SUBDOMAIN_FMT

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                      "an alphabetic character, and end with an alphanumeric character")
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                       "an alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                    "'.', and must start and end with an alphanumeric character")
_CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
_WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which "
                 "must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
                 "character")
_ENV_VAR_NAME_MSG = ("a valid environment variable name must consist only of printable ASCII characters other "
                     "than '='")
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _full(fmt: str) -> re.Pattern[str]:
    return re.compile(fmt, re.ASCII)


_DNS1123_LABEL = _full(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = _full(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = _full(DNS1035_LABEL_FMT)
_QUALIFIED_NAME = _full(QUALIFIED_NAME_FMT)
_LABEL_VALUE = _full(LABEL_VALUE_FMT)
_CONFIG_MAP_KEY = _full(CONFIG_MAP_KEY_FMT)
_PERCENT = _full(PERCENT_FMT)
_WILDCARD_DNS1123_SUBDOMAIN = _full(WILDCARD_DNS1123_SUBDOMAIN_FMT)
_PORT_NAME_CHARS = _full("[-a-z0-9]+")
_HTTP_HEADER_NAME = _full("[-A-Za-z0-9]+")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """upstream RegexError, including its quirky separators."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    quoted = " or ".join(f"'{example}', " for example in examples)
    return f"{msg} (e.g. {quoted}regex used for validation is '{fmt}')"


def _byte_len(value: str) -> int:
    """Go measures strings in bytes."""
    return len(value.encode("utf-8", "surrogatepass"))


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def is_dns1123_label(value: str) -> list[str]:
    errs = [max_len_error(63)] if _byte_len(value) > 63 else []
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")  # a valid subdomain of the right length: dots are the problem
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = [max_len_error(253)] if _byte_len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs = [max_len_error(253)] if _byte_len(value) > 253 else []
    if not _WILDCARD_DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(regex_error(_WILDCARD_MSG, WILDCARD_DNS1123_SUBDOMAIN_FMT, "*.example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = [max_len_error(63)] if _byte_len(value) > 63 else []
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name",
                                                  "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    errs: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + msg for msg in is_dns1123_subdomain(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif _byte_len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME.fullmatch(name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name",
                                               "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = [max_len_error(63)] if _byte_len(value) > 63 else []
    if not _LABEL_VALUE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    errs = [max_len_error(253)] if _byte_len(value) > 253 else []
    if not _CONFIG_MAP_KEY.fullmatch(value):
        errs.append(regex_error(_CONFIG_MAP_KEY_MSG, CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_port_num(value: object) -> list[str]:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
    return [] if ok else [inclusive_range_error(1, 65535)]


def is_port_name(value: str) -> list[str]:
    errs = [max_len_error(15)] if _byte_len(value) > 15 else []
    if not _PORT_NAME_CHARS.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_percent(value: str) -> list[str]:
    return [] if _PERCENT.fullmatch(value) else [regex_error(_PERCENT_MSG, PERCENT_FMT, "1%", "93%")]


def is_path_segment_name(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


def is_env_var_name(value: str) -> list[str]:
    """The relaxed rule (RelaxedEnvironmentVariableValidation is on in v1.32)."""
    errs = ["environment variable name must be non-empty"] if not value else []
    if any(ord(ch) > 126 or ord(ch) < 32 or ch == "=" for ch in value):
        errs.append(_ENV_VAR_NAME_MSG)
    return errs


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False) if "/" in value else None
    except ValueError:
        return None


# --- name rules per kind (ValidateNameFunc): prefix=True validates a generateName ---

NameRule = Callable[[str], list[str]]


def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


_NAME_RULES: dict[str, NameRule] = {
    "Namespace": is_dns1123_label,
    "Service": is_dns1035_label,
    "StatefulSet": is_dns1123_label,
    "Role": is_path_segment_name,
    "ClusterRole": is_path_segment_name,
    "RoleBinding": is_path_segment_name,
    "ClusterRoleBinding": is_path_segment_name,
    "Event": is_path_segment_name,  # events only get the generic path-segment rule
}


def name_rule(kind: str) -> NameRule:
    return _NAME_RULES.get(kind, is_dns1123_subdomain)


# --- JSON access helpers: wrong shapes read as empty, never raise ---

def _dict(obj: object, key: str) -> dict:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _list(obj: object, key: str) -> list:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def _items(obj: object, key: str) -> list[tuple[int, dict]]:
    return [(i, item) for i, item in enumerate(_list(obj, key)) if isinstance(item, dict)]


def _str(obj: object, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _int(obj: object, key: str, default: int = 0) -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _opt_int(obj: object, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def _messages(path: str, value: Any, messages: list[str]) -> list[FieldError]:
    return [invalid(path, value, msg) for msg in messages]


def _too_long(path: str, limit: int) -> FieldError:
    return FieldError("TooLong", path, detail=f"may not be more than {limit} bytes")


def _not_found(path: str, value: Any) -> FieldError:
    return FieldError("NotFound", path, value)


def _nonnegative(value: object, path: str) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def semantic(value: Any) -> Any:
    """A value as upstream's semantic equality sees it: null fields and empty lists are the same as absent."""
    if isinstance(value, dict):
        return {k: semantic(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def _immutable(new: object, old: object, path: str) -> list[FieldError]:
    return [] if semantic(new) == semantic(old) else [invalid(path, new, FIELD_IMMUTABLE)]


# --- metadata ---

def labels(value: object, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, val in sorted(_str_map(value).items()):
        errs += _messages(path, key, is_qualified_name(key))
        errs += _messages(path, val, is_label_value(val))
    return errs


def annotations(value: object, path: str) -> list[FieldError]:
    values = _str_map(value)
    errs: list[FieldError] = []
    for key in sorted(values):
        # Case does not matter in annotation keys.
        errs += _messages(path, key, is_qualified_name(key.lower()))
    if sum(_byte_len(k) + _byte_len(v) for k, v in values.items()) > TOTAL_ANNOTATION_SIZE:
        errs.append(_too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def _owner_references(meta: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    controller = ""
    refs = _list(meta, "ownerReferences")
    for _, ref in _items(meta, "ownerReferences"):
        api_version, kind = _str(ref, "apiVersion"), _str(ref, "kind")
        parts = api_version.split("/")
        version = parts[-1] if len(parts) <= 2 else ""
        if not version:
            errs.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not _str(ref, key):
                errs.append(invalid(f"{path}.{key}", _str(ref, key), "must not be empty"))
        if (api_version, kind) == ("v1", "Event"):
            errs.append(invalid(path, ref, "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{_str(ref, 'name')}"
            if controller:
                errs.append(invalid(path, refs, "Only one reference can have Controller set to true. Found "
                                                f"\"true\" in references for {controller} and {current}"))
            else:
                controller = current
    return errs


# The apiextensions-apiserver's own finalizer is not domain-qualified ("/"-less) either; upstream's
# generic ObjectMeta validation (which CRDs get) accepts it.
_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion", "customresourcecleanup.apiextensions.k8s.io")


def _finalizers(values: list, path: str) -> list[FieldError]:
    names = [v for v in values if isinstance(v, str)]
    errs: list[FieldError] = []
    for name in names:
        errs += _messages(path, name, is_qualified_name(name))
    if "orphan" in names and "foregroundDeletion" in names:
        errs.append(invalid(path, names, "finalizer orphan and foregroundDeletion cannot be both set"))
    for name in names:
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            errs.append(invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def _namespace_field(meta: dict, namespaced: bool) -> list[FieldError]:
    namespace = _str(meta, "namespace")
    if not namespaced:
        return [forbidden("metadata.namespace", "not allowed on this type")] if namespace else []
    if not namespace:
        return [required("metadata.namespace")]
    return _messages("metadata.namespace", namespace, is_dns1123_label(namespace))


def object_meta(obj: dict, namespaced: bool, kind: str | None = None) -> list[FieldError]:
    """ObjectMeta rules; `kind` (default: obj["kind"]) picks the name rule."""
    meta = _dict(obj, "metadata")
    rule = name_rule(kind if kind is not None else _str(obj, "kind"))
    errs: list[FieldError] = []
    generate_name = _str(meta, "generateName")
    if generate_name:
        errs += _messages("metadata.generateName", generate_name, rule(_mask_trailing_dash(generate_name)))
    name = _str(meta, "name")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs += _messages("metadata.name", name, rule(name))
    errs += _namespace_field(meta, namespaced)
    errs += _nonnegative(meta.get("generation"), "metadata.generation")
    errs += labels(meta.get("labels"), "metadata.labels")
    errs += annotations(meta.get("annotations"), "metadata.annotations")
    errs += _owner_references(meta, "metadata.ownerReferences")
    errs += _finalizers(_list(meta, "finalizers"), "metadata.finalizers")
    return errs


# --- label selectors ---

def label_selector(selector: object, path: str) -> list[FieldError]:
    if not isinstance(selector, dict):
        return []
    errs = labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in _items(selector, "matchExpressions"):
        expr_path = f"{path}.matchExpressions[{i}]"
        operator, values = expr.get("operator"), _list(expr, "values")
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{expr_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{expr_path}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{expr_path}.operator", operator, "not a valid selector operator"))
        key = _str(expr, "key")
        errs += _messages(f"{expr_path}.key", key, is_qualified_name(key))
        for j, value in enumerate(values):
            text = value if isinstance(value, str) else str(value)
            errs += _messages(f"{expr_path}.values[{j}]", text, is_label_value(text))
    return errs


def _requirement_matches(expr: dict, labels_: dict[str, str]) -> bool:
    key, operator, values = _str(expr, "key"), expr.get("operator"), _list(expr, "values")
    if operator == "In":
        return key in labels_ and labels_[key] in values
    if operator == "NotIn":
        return key not in labels_ or labels_[key] not in values
    if operator == "Exists":
        return key in labels_
    return key not in labels_


def selector_matches(selector: object, labels_: object) -> bool:
    """metav1 LabelSelector semantics: a missing selector matches nothing, an empty one everything."""
    if not isinstance(selector, dict):
        return False
    have = _str_map(labels_)
    if any(have.get(k) != v for k, v in _str_map(selector.get("matchLabels")).items()):
        return False
    return all(_requirement_matches(expr, have) for _, expr in _items(selector, "matchExpressions"))


def _selector_is_empty(selector: object) -> bool:
    return isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions")


# --- quantities and resources ---

def _quantity(value: object) -> Quantity | None:
    """The parsed quantity, or None when it does not parse."""
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_INTEGER_RESOURCES = ("pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
                      "persistentvolumeclaims", "services.nodeports", "services.loadbalancers")


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _overcommit_allowed(name: str) -> bool:
    """Only native, non-hugepage resources may have requests below limits."""
    return _is_native(name) and not _is_hugepages(name)


def _is_extended(name: str) -> bool:
    """A resource such as example.com/gpu (its quota name must be a qualified name too)."""
    return not _is_native(name) and not name.startswith("requests.") and not is_qualified_name("requests." + name)


def _is_integer_resource(name: str) -> bool:
    return name in _INTEGER_RESOURCES or _is_extended(name)


def _quantity_value(name: str, raw: object, path: str) -> list[FieldError]:
    quantity = _quantity(raw)
    if quantity is None:
        return [invalid(path, raw, "quantities must match the regular expression "
                                   "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    if quantity.value < 0:
        return [invalid(path, str(quantity), "must be greater than or equal to 0")]
    if _is_integer_resource(name) and quantity.value.denominator != 1:
        return [invalid(path, str(quantity), "must be an integer")]
    return []


def _container_resource_name(name: str, path: str) -> list[FieldError]:
    errs = _messages(path, name, is_qualified_name(name))
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def resource_requirements(resources: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    limits, requests = _dict(resources, "limits"), _dict(resources, "requests")
    for name, raw in sorted(limits.items()):
        errs += _container_resource_name(name, f"{path}.limits[{name}]")
        errs += _quantity_value(name, raw, f"{path}.limits[{name}]")
    for name, raw in sorted(requests.items()):
        errs += _container_resource_name(name, f"{path}.requests[{name}]")
        errs += _quantity_value(name, raw, f"{path}.requests[{name}]")
        request, limit = _quantity(raw), _quantity(limits.get(name))
        if name not in limits:
            if not _overcommit_allowed(name):
                errs.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
        elif request is not None and limit is not None:
            if request.value != limit.value and not _overcommit_allowed(name):
                errs.append(invalid(f"{path}.requests", str(request),
                                    f"must be equal to {name} limit of {limit}"))
            elif request.value > limit.value:
                errs.append(invalid(f"{path}.requests", str(request),
                                    f"must be less than or equal to {name} limit of {limit}"))
    return errs


# --- pod spec ---

_VOLUME_SOURCES = ("emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs",
                   "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte",
                   "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
                   "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO", "csi",
                   "ephemeral")
_SOURCE_REQUIRED = {"hostPath": ("path",), "secret": ("secretName",), "configMap": ("name",),
                    "persistentVolumeClaim": ("claimName",), "nfs": ("server", "path"), "csi": ("driver",)}
_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


def _volume_source(vol: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    present = [key for key in _VOLUME_SOURCES if isinstance(vol.get(key), dict)]
    for extra in present[1:]:
        errs.append(forbidden(f"{path}.{extra}", "may not specify more than 1 volume type"))
    if not present:
        return [required(path, "must specify a volume type")]
    key = present[0]
    source = vol[key]
    for field in _SOURCE_REQUIRED.get(key, ()):
        if not _str(source, field):
            errs.append(required(f"{path}.{key}.{field}"))
    mode = _opt_int(source, "defaultMode")
    if mode is not None and not 0 <= mode <= 0o777:
        errs.append(invalid(f"{path}.{key}.defaultMode", mode, _FILE_MODE_MSG))
    return errs


def volumes(spec: dict, path: str) -> tuple[set[str], list[FieldError]]:
    """The names of the valid volumes, and the errors."""
    names: set[str] = set()
    errs: list[FieldError] = []
    for i, vol in _items(spec, "volumes"):
        vol_path = f"{path}[{i}]"
        name = _str(vol, "name")
        vol_errs = _volume_source(vol, vol_path)
        if not name:
            vol_errs.append(required(f"{vol_path}.name"))
        else:
            vol_errs += _messages(f"{vol_path}.name", name, is_dns1123_label(name))
        if name in names:
            vol_errs.append(duplicate(f"{vol_path}.name", name))
        if vol_errs:
            errs += vol_errs
        else:
            names.add(name)
    return names, errs


def port_num_or_name(value: object, path: str) -> list[FieldError]:
    if isinstance(value, str):
        return _messages(path, value, is_port_name(value))
    number = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return _messages(path, number, is_port_num(number))


def _container_ports(ctr: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in _items(ctr, "ports"):
        port_path = f"{path}[{i}]"
        name = _str(port, "name")
        if name:
            msgs = is_port_name(name)
            if msgs:
                errs += _messages(f"{port_path}.name", name, msgs)
            elif name in names:
                errs.append(duplicate(f"{port_path}.name", name))
            names.add(name)
        container_port = port.get("containerPort")
        if container_port in (None, 0):
            errs.append(required(f"{port_path}.containerPort"))
        else:
            errs += _messages(f"{port_path}.containerPort", container_port, is_port_num(container_port))
        host_port = port.get("hostPort")
        if host_port not in (None, 0):
            errs += _messages(f"{port_path}.hostPort", host_port, is_port_num(host_port))
        errs += _protocol(port, port_path)
    return errs


def _protocol(port: dict, path: str) -> list[FieldError]:
    protocol = port.get("protocol")
    if protocol in (None, ""):
        return [required(f"{path}.protocol")]
    if protocol not in ("SCTP", "TCP", "UDP"):
        return [not_supported(f"{path}.protocol", protocol, ["SCTP", "TCP", "UDP"])]
    return []


_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _env(ctr: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, env in _items(ctr, "env"):
        env_path = f"{path}[{i}]"
        name = _str(env, "name")
        if not name:
            errs.append(required(f"{env_path}.name"))
        errs += _messages(f"{env_path}.name", name, is_env_var_name(name))
        value_from = env.get("valueFrom")
        if isinstance(value_from, dict):
            errs += _env_value_from(value_from, _str(env, "value"), f"{env_path}.valueFrom")
    return errs


def _env_value_from(value_from: dict, value: str, path: str) -> list[FieldError]:
    sources = [key for key in _ENV_SOURCES if isinstance(value_from.get(key), dict)]
    if not sources:
        return [invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                                  "`secretKeyRef`")]
    if value:
        return [invalid(path, "", "may not be specified when `value` is not empty")]
    if len(sources) > 1:
        return [invalid(path, "", "may not have more than one field specified at a time")]
    return []


def _volume_mounts(ctr: dict, valid_volumes: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    mount_paths: set[str] = set()
    for i, mount in _items(ctr, "volumeMounts"):
        mount_path_field = f"{path}[{i}].mountPath"
        name, mount_path = _str(mount, "name"), _str(mount, "mountPath")
        if not name:
            errs.append(required(f"{path}[{i}].name"))
        if name not in valid_volumes:
            errs.append(_not_found(f"{path}[{i}].name", name))
        if not mount_path:
            errs.append(required(mount_path_field))
        if mount_path in mount_paths:
            errs.append(invalid(mount_path_field, mount_path, "must be unique"))
        mount_paths.add(mount_path)
    return errs


def _pull_policy(ctr: dict, path: str) -> list[FieldError]:
    policy = ctr.get("imagePullPolicy")
    if policy in (None, ""):
        return [required(f"{path}.imagePullPolicy")]
    if policy not in ("Always", "IfNotPresent", "Never"):
        return [not_supported(f"{path}.imagePullPolicy", policy, ["Always", "IfNotPresent", "Never"])]
    return []


def _termination_message_policy(ctr: dict, path: str) -> list[FieldError]:
    policy = ctr.get("terminationMessagePolicy")
    if policy in (None, ""):
        return [required(f"{path}.terminationMessagePolicy")]
    if policy not in ("File", "FallbackToLogsOnError"):
        return [not_supported(f"{path}.terminationMessagePolicy", policy, ["File", "FallbackToLogsOnError"])]
    return []


def _container_common(ctr: dict, valid_volumes: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _str(ctr, "name")
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs += _messages(f"{path}.name", name, is_dns1123_label(name))
    if not _str(ctr, "image"):
        errs.append(required(f"{path}.image"))
    errs += _termination_message_policy(ctr, path)
    errs += _container_ports(ctr, f"{path}.ports")
    errs += _env(ctr, f"{path}.env")
    errs += _volume_mounts(ctr, valid_volumes, f"{path}.volumeMounts")
    errs += _pull_policy(ctr, path)
    errs += resource_requirements(_dict(ctr, "resources"), f"{path}.resources")
    return errs


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")


def _handler(handler: dict, path: str, allowed: tuple[str, ...]) -> list[FieldError]:
    present = [key for key in allowed if isinstance(handler.get(key), dict)]
    if not present:
        return [required(path, "must specify a handler type")]
    errs = [forbidden(f"{path}.{key}", "may not specify more than 1 handler type") for key in present[1:]]
    key, action = present[0], handler[present[0]]
    action_path = f"{path}.{key}"
    if key == "exec" and not _list(action, "command"):
        errs.append(required(f"{action_path}.command"))
    elif key == "httpGet":
        if not _str(action, "path"):
            errs.append(required(f"{action_path}.path"))
        errs += port_num_or_name(action.get("port"), f"{action_path}.port")
        if action.get("scheme") not in ("HTTP", "HTTPS"):
            errs.append(not_supported(f"{action_path}.scheme", action.get("scheme"), ["HTTP", "HTTPS"]))
    elif key == "tcpSocket":
        errs += port_num_or_name(action.get("port"), f"{action_path}.port")
    elif key == "grpc":
        errs += _messages(f"{action_path}.port", action.get("port"), is_port_num(action.get("port")))
    return errs


def _probe(probe: object, path: str, kind: str) -> list[FieldError]:
    if not isinstance(probe, dict):
        return []
    errs = _handler(probe, path, _HANDLERS[:4])
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs += _nonnegative(probe.get(key), f"{path}.{key}")
    grace = _opt_int(probe, "terminationGracePeriodSeconds")
    if grace is not None and grace <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))
    if kind == "readiness" and grace is not None:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must not be set for readinessProbes"))
    if kind in ("liveness", "startup") and _int(probe, "successThreshold") != 1:
        errs.append(invalid(f"{path}.successThreshold", _int(probe, "successThreshold"), "must be 1"))
    return errs


def _probes(ctr: dict, path: str) -> list[FieldError]:
    return (_probe(ctr.get("livenessProbe"), f"{path}.livenessProbe", "liveness")
            + _probe(ctr.get("readinessProbe"), f"{path}.readinessProbe", "readiness")
            + _probe(ctr.get("startupProbe"), f"{path}.startupProbe", "startup"))


def _lifecycle(ctr: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for hook in ("postStart", "preStop"):
        handler = _dict(ctr.get("lifecycle"), hook)
        if handler:
            errs += _handler(handler, f"{path}.lifecycle.{hook}", ("exec", "httpGet", "tcpSocket", "sleep"))
    return errs


def _host_port_conflicts(containers: list[tuple[int, dict]], path: str, seen: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, ctr in containers:
        for j, port in _items(ctr, "ports"):
            host_port = _int(port, "hostPort")
            if not host_port:
                continue
            key = f"{_str(port, 'hostIP')}/{_str(port, 'protocol')}/{host_port}"
            if key in seen:
                errs.append(duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return errs


def _containers(spec: dict, valid_volumes: set[str], path: str) -> list[FieldError]:
    containers = _items(spec, "containers")
    if not containers:
        return [required(f"{path}.containers")]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, ctr in containers:
        ctr_path = f"{path}.containers[{i}]"
        errs += _container_common(ctr, valid_volumes, ctr_path)
        name = _str(ctr, "name")
        if name in names:
            errs.append(duplicate(f"{ctr_path}.name", name))
        names.add(name)
        errs += _probes(ctr, ctr_path)
        errs += _lifecycle(ctr, ctr_path)
        if ctr.get("restartPolicy") is not None:
            errs.append(forbidden(f"{ctr_path}.restartPolicy", "may not be set for non-init containers"))
    return errs + _host_port_conflicts(containers, f"{path}.containers", set())


_INIT_ONLY_WITH_ALWAYS = "may not be set for init containers without restartPolicy=Always"


def _init_containers(spec: dict, valid_volumes: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names = {_str(ctr, "name") for _, ctr in _items(spec, "containers")}
    for i, ctr in _items(spec, "initContainers"):
        ctr_path = f"{path}.initContainers[{i}]"
        errs += _container_common(ctr, valid_volumes, ctr_path)
        restart = ctr.get("restartPolicy")
        if restart is not None and restart != "Always":
            errs.append(not_supported(f"{ctr_path}.restartPolicy", restart, ["Always"]))
        name = _str(ctr, "name")
        if name in names:
            errs.append(duplicate(f"{ctr_path}.name", name))
        elif name:
            names.add(name)
        errs += _host_port_conflicts([(i, ctr)], f"{path}.initContainers", set())
        if restart == "Always":
            errs += _probes(ctr, ctr_path) + _lifecycle(ctr, ctr_path)
        else:
            errs += [forbidden(f"{ctr_path}.{key}", _INIT_ONLY_WITH_ALWAYS)
                     for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
                     if ctr.get(key) is not None]
    return errs


def _one_of(value: object, path: str, allowed: list[str]) -> list[FieldError]:
    """The common "Required when empty, NotSupported when unknown" enum check."""
    if value in (None, ""):
        return [required(path)]
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


def _taint_effect(effect: object, path: str) -> list[FieldError]:
    allowed = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
    return [] if effect in allowed else [not_supported(path, effect, allowed)]


def tolerations(spec: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in _items(spec, "tolerations"):
        tol_path = f"{path}[{i}]"
        key, operator, value = _str(tol, "key"), tol.get("operator") or "", _str(tol, "value")
        if key:
            errs += _messages(f"{tol_path}.key", key, is_qualified_name(key))
        if not key and operator != "Exists":
            errs.append(invalid(f"{tol_path}.operator", operator, "operator must be Exists when `key` is empty, "
                                                                  'which means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and tol.get("effect") != "NoExecute":
            errs.append(invalid(f"{tol_path}.effect", tol.get("effect") or "",
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            msgs = is_label_value(value)
            if msgs:
                errs.append(invalid(f"{tol_path}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                errs.append(invalid(f"{tol_path}.operator", tol, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{tol_path}.operator", operator, ["Equal", "Exists"]))
        if tol.get("effect"):
            errs += _taint_effect(tol.get("effect"), f"{tol_path}.effect")
    return errs


def _host_network_ports(spec: dict, path: str) -> list[FieldError]:
    if spec.get("hostNetwork") is not True:
        return []
    errs: list[FieldError] = []
    for i, ctr in _items(spec, "containers"):
        for j, port in _items(ctr, "ports"):
            if _int(port, "hostPort") != _int(port, "containerPort"):
                errs.append(invalid(f"{path}.containers[{i}].ports[{j}].hostPort", _int(port, "hostPort"),
                                    "must match `containerPort` when `hostNetwork` is true"))
    return errs


def _dns_config(spec: dict, path: str) -> list[FieldError]:
    if spec.get("dnsPolicy") != "None":
        return []
    if not isinstance(spec.get("dnsConfig"), dict):
        return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
    if not _list(spec["dnsConfig"], "nameservers"):
        return [required(f"{path}.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    return []


def _pod_names(spec: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, rule in (("serviceAccountName", is_dns1123_subdomain), ("nodeName", is_dns1123_subdomain)):
        value = _str(spec, key)
        if value:
            errs += _messages(f"{path}.{key}", value, rule(value))
    deadline = _opt_int(spec, "activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, inclusive_range_error(1, MAX_INT32)))
    for key in ("hostname", "subdomain"):
        value = _str(spec, key)
        if value:
            errs += _messages(f"{path}.{key}", value, is_dns1123_label(value))
    return errs


# Upstream's allowedEphemeralContainerFields, inverted: what an ephemeral container may not have (it must not be
# relied on for the pod's own service, so no ports, probes, lifecycle hooks or resources).
_EPHEMERAL_FORBIDDEN = ("lifecycle", "livenessProbe", "ports", "readinessProbe", "resizePolicy", "resources",
                        "restartPolicy", "startupProbe")
_EPHEMERAL_FORBIDDEN_DETAIL = "cannot be set for an Ephemeral Container"


def _ephemeral_containers(spec: dict, valid_volumes: set[str], path: str) -> list[FieldError]:
    """Upstream's validateEphemeralContainers."""
    errs: list[FieldError] = []
    targets = {_str(ctr, "name") for key in ("containers", "initContainers") for _, ctr in _items(spec, key)}
    names = set(targets)
    for i, ctr in _items(spec, "ephemeralContainers"):
        ctr_path = f"{path}.ephemeralContainers[{i}]"
        errs += _container_common(ctr, valid_volumes, ctr_path)
        name = _str(ctr, "name")
        if name in names:
            errs.append(duplicate(f"{ctr_path}.name", name))
        else:
            names.add(name)
        target = _str(ctr, "targetContainerName")
        if target and target not in targets:
            errs.append(FieldError("NotFound", f"{ctr_path}.targetContainerName", target))
        errs += [forbidden(f"{ctr_path}.{key}", _EPHEMERAL_FORBIDDEN_DETAIL)
                 for key in _EPHEMERAL_FORBIDDEN if ctr.get(key) not in (None, {}, [], "")]
        for j, mount in _items(ctr, "volumeMounts"):
            errs += [forbidden(f"{ctr_path}.volumeMounts[{j}].{key}", _EPHEMERAL_FORBIDDEN_DETAIL)
                     for key in ("subPath", "subPathExpr") if _str(mount, key)]
    return errs


def pod_spec(spec: dict, path: str, is_pod: bool = False) -> list[FieldError]:
    """ValidatePodSpec's most visible rules; `is_pod` adds the rules only Pods get (not templates)."""
    valid_volumes, errs = volumes(spec, f"{path}.volumes")
    errs += _containers(spec, valid_volumes, path)
    errs += _init_containers(spec, valid_volumes, path)
    errs += _ephemeral_containers(spec, valid_volumes, path)
    if is_pod:
        errs += _host_network_ports(spec, path)
    errs += _one_of(spec.get("restartPolicy"), f"{path}.restartPolicy", ["Always", "OnFailure", "Never"])
    errs += _one_of(spec.get("dnsPolicy"), f"{path}.dnsPolicy",
                    ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"])
    errs += labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    errs += _dns_config(spec, f"{path}.dnsConfig")
    errs += _pod_names(spec, path)
    errs += tolerations(spec, f"{path}.tolerations")
    preemption = spec.get("preemptionPolicy")
    if preemption is not None:
        errs += _one_of(preemption, f"{path}.preemptionPolicy", ["PreemptLowerPriority", "Never"])
    return errs


def pod_template_spec(template: object, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpec (labels are reported at `<path>.labels`, as upstream does)."""
    meta = _dict(template, "metadata")
    errs = labels(meta.get("labels"), f"{path}.labels")
    errs += annotations(meta.get("annotations"), f"{path}.annotations")
    spec = _dict(template, "spec")
    errs += pod_spec(spec, f"{path}.spec")
    if spec.get("ephemeralContainers"):
        errs.append(forbidden(f"{path}.spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))
    return errs


def _untrimmed_images(spec: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("containers", "initContainers"):
        for i, ctr in _items(spec, key):
            image = _str(ctr, "image")
            if image != image.strip():
                errs.append(invalid(f"{path}.{key}[{i}].image", image, "must not have leading or trailing whitespace"))
    return errs


def pod(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    return pod_spec(spec, "spec", is_pod=True) + _untrimmed_images(spec, "spec")


def pod_create(obj: dict) -> list[FieldError]:
    """Ephemeral containers are only ever added to a running pod, through pods/ephemeralcontainers."""
    if _dict(obj, "spec").get("ephemeralContainers"):
        return [forbidden("spec.ephemeralContainers", "cannot be set on create")]
    return []


MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


def ephemeral_containers_update(obj: dict, old: dict) -> list[FieldError]:
    """The update rules of pods/ephemeralcontainers (upstream's ValidatePodEphemeralContainersUpdate, part 2):
    ephemeral containers may be added, never removed or changed; static pods get none."""
    if MIRROR_POD_ANNOTATION in _dict(_dict(old, "metadata"), "annotations"):
        return [forbidden("", "static pods do not support ephemeral containers")]
    errs: list[FieldError] = []
    new_by_name = {_str(ctr, "name"): ctr for _, ctr in _items(_dict(obj, "spec"), "ephemeralContainers")}
    for _, ctr in _items(_dict(old, "spec"), "ephemeralContainers"):
        name = _str(ctr, "name")
        if name not in new_by_name:
            errs.append(forbidden("spec.ephemeralContainers", f"existing ephemeral containers \"{name}\" may not be "
                                                              "removed\n"))
        elif semantic(new_by_name[name]) != semantic(ctr):
            errs.append(forbidden(f"spec.ephemeralContainers[{name}]",
                                  f"existing ephemeral containers \"{name}\" may not be changed\n"
                                  + _spec_diff(ctr, new_by_name[name])))
    return errs


def pod_template(obj: dict) -> list[FieldError]:
    return pod_template_spec(obj.get("template"), "template")


# --- workloads: shared pieces ---

def _int_or_percent(value: object, path: str) -> list[FieldError]:
    """ValidatePositiveIntOrPercent."""
    if isinstance(value, str):
        return _messages(path, value, is_percent(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return _nonnegative(value, path)
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _percent_value(value: object) -> int | None:
    if isinstance(value, str) and not is_percent(value):
        return int(value[:-1])
    return None


def _int_or_percent_value(value: object) -> int:
    percent = _percent_value(value)
    if percent is not None:
        return percent
    if isinstance(value, str):
        return int(value) if re.fullmatch(r"[+-]?[0-9]+", value) else 0  # like strconv.Atoi, errors read as 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _not_more_than_100_percent(value: object, path: str) -> list[FieldError]:
    percent = _percent_value(value)
    return [invalid(path, value, "must not be greater than 100%")] if percent is not None and percent > 100 else []


def _selector_field(spec: dict, path: str, what: str) -> list[FieldError]:
    """A required LabelSelector that may not be empty."""
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return [required(f"{path}.selector")]
    errs = label_selector(selector, f"{path}.selector")
    if _selector_is_empty(selector):
        errs.append(invalid(f"{path}.selector", selector, f"empty selector is invalid for {what}"))
    return errs


def _selector_convertible(selector: object) -> bool:
    """Whether upstream's LabelSelectorAsSelector accepts it (a missing selector converts to "nothing")."""
    return not label_selector(selector, "")


def _template_labels_match(selector: object, template: object, path: str) -> list[FieldError]:
    template_labels = _dict(template, "metadata").get("labels")
    if _selector_is_empty(selector) or selector_matches(selector, template_labels):
        return []
    return [invalid(f"{path}.metadata.labels", template_labels, "`selector` does not match template `labels`")]


def _always_restart_template(template: object, path: str, what: str) -> list[FieldError]:
    spec = _dict(template, "spec")
    errs: list[FieldError] = []
    if spec.get("restartPolicy") != "Always":
        errs.append(not_supported(f"{path}.spec.restartPolicy", spec.get("restartPolicy", ""), ["Always"]))
    if spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {what} is not Supported"))
    return errs


def _replica_set_template(spec: dict, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpecForReplicaSet, or "invalid label selector" when the selector cannot be used."""
    selector = spec.get("selector")
    if not _selector_convertible(selector):
        return [invalid(f"{path}.selector", selector, "invalid label selector")]
    template = spec.get("template")
    template_path = f"{path}.template"
    return (_template_labels_match(selector, template, template_path) + pod_template_spec(template, template_path)
            + _always_restart_template(template, template_path, "ReplicaSet"))


# --- apps/v1 ---

def _rolling_update_deployment(rolling: dict, path: str) -> list[FieldError]:
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _int_or_percent(unavailable, f"{path}.maxUnavailable") + _int_or_percent(surge, f"{path}.maxSurge")
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0"))
    return errs + _not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")


def _deployment_strategy(strategy: dict, path: str) -> list[FieldError]:
    strategy_type = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if strategy_type == "Recreate":
        if rolling is not None:
            return [forbidden(f"{path}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if strategy_type == "RollingUpdate":
        if not isinstance(rolling, dict):
            return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
        return _rolling_update_deployment(rolling, f"{path}.rollingUpdate")
    return [not_supported(path, strategy, ["Recreate", "RollingUpdate"])]


def deployment(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = _nonnegative(spec.get("replicas"), "spec.replicas")
    errs += _selector_field(spec, "spec", "deployment")
    errs += _replica_set_template(spec, "spec")
    errs += _deployment_strategy(_dict(spec, "strategy"), "spec.strategy")
    errs += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += _nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    deadline = _opt_int(spec, "progressDeadlineSeconds")
    if deadline is not None:
        errs += _nonnegative(deadline, "spec.progressDeadlineSeconds")
        if deadline <= _int(spec, "minReadySeconds"):
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    return errs


def replica_set(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = _nonnegative(spec.get("replicas"), "spec.replicas")
    errs += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += _selector_field(spec, "spec", "deployment")  # sic: upstream names deployments here too
    return errs + _replica_set_template(spec, "spec")


def _rolling_update_daemon_set(rolling: dict, path: str) -> list[FieldError]:
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _int_or_percent(unavailable, f"{path}.maxUnavailable") + _int_or_percent(surge, f"{path}.maxSurge")
    errs += _not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")
    errs += _not_more_than_100_percent(surge, f"{path}.maxSurge")
    has_unavailable, has_surge = _int_or_percent_value(unavailable) != 0, _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errs.append(invalid(f"{path}.maxSurge", surge, "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(required(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def _daemon_set_strategy(strategy: dict, path: str) -> list[FieldError]:
    strategy_type = strategy.get("type")
    if strategy_type == "OnDelete":
        return []
    if strategy_type == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            return [required(f"{path}.rollingUpdate")]
        return _rolling_update_daemon_set(rolling, f"{path}.rollingUpdate")
    return [not_supported(path, strategy, ["RollingUpdate", "OnDelete"])]


def daemon_set(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    selector, template = spec.get("selector"), spec.get("template")
    errs = label_selector(selector, "spec.selector")
    # A missing selector matches nothing, so the template check reports it.
    if _selector_convertible(selector) and not selector_matches(selector, _dict(template, "metadata").get("labels")):
        errs.append(invalid("spec.template.metadata.labels", _dict(template, "metadata").get("labels"),
                            "`selector` does not match template `labels`"))
    if _selector_is_empty(selector):
        errs.append(invalid("spec.selector", selector, "empty selector is invalid for daemonset"))
    errs += pod_template_spec(template, "spec.template")
    errs += _always_restart_template(template, "spec.template", "DaemonSet")
    errs += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += _daemon_set_strategy(_dict(spec, "updateStrategy"), "spec.updateStrategy")
    return errs + _nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")


def _stateful_set_strategy(strategy: dict, path: str) -> list[FieldError]:
    strategy_type, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if strategy_type in (None, ""):
        return [required(path)]
    if strategy_type == "OnDelete":
        if rolling is not None:
            return [invalid(f"{path}.rollingUpdate", rolling, "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if strategy_type == "RollingUpdate":
        return _nonnegative(_dict(strategy, "rollingUpdate").get("partition"), f"{path}.rollingUpdate.partition")
    return [invalid(path, strategy, "must be 'RollingUpdate' or 'OnDelete'")]


def _stateful_set_template(spec: dict) -> list[FieldError]:
    """Upstream checks only the selector match, labels and annotations of StatefulSet templates."""
    selector, template = spec.get("selector"), spec.get("template")
    if not _selector_convertible(selector):
        return [invalid("spec.selector", selector, "")]
    meta = _dict(template, "metadata")
    return (_template_labels_match(selector, template, "spec.template")
            + labels(meta.get("labels"), "spec.template.labels")
            + annotations(meta.get("annotations"), "spec.template.annotations")
            + _always_restart_template(template, "spec.template", "StatefulSet"))


def stateful_set(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    policy = spec.get("podManagementPolicy")
    errs: list[FieldError] = []
    if policy in (None, ""):
        errs.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    errs += _stateful_set_strategy(_dict(spec, "updateStrategy"), "spec.updateStrategy")
    retention = _dict(spec, "persistentVolumeClaimRetentionPolicy")
    for key in ("whenDeleted", "whenScaled") if retention else ():
        if retention.get(key) not in ("Retain", "Delete"):
            errs.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention.get(key, ""),
                                      ["Retain", "Delete"]))
    errs += _nonnegative(spec.get("replicas"), "spec.replicas")
    errs += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += _nonnegative(_dict(spec, "ordinals").get("start"), "spec.ordinals.start")
    errs += _selector_field(spec, "spec", "statefulset")
    return errs + _stateful_set_template(spec)


def controller_revision(obj: dict) -> list[FieldError]:
    errs = [required("data", "data is mandatory")] if obj.get("data") is None else []
    return errs + _nonnegative(obj.get("revision"), "revision")


# --- core/v1 ReplicationController ---

def replication_controller(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = _str_map(spec.get("selector"))
    if not selector:
        errs.append(required("spec.selector"))
    errs += _nonnegative(spec.get("replicas"), "spec.replicas")
    template = spec.get("template")
    if not isinstance(template, dict):
        return errs + [required("spec.template")]
    template_labels = _dict(template, "metadata").get("labels")
    if selector and any(_str_map(template_labels).get(k) != v for k, v in selector.items()):
        errs.append(invalid("spec.template.metadata.labels", template_labels,
                            "`selector` does not match template `labels`"))
    errs += pod_template_spec(template, "spec.template")
    return errs + _always_restart_template(template, "spec.template", "ReplicationController")


# --- batch/v1 ---

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
_MAX_INDEXED_PARALLELISM = 100000


def _job_counts(spec: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
        errs += _nonnegative(spec.get(key), f"{path}.{key}")
    per_index = _opt_int(spec, "backoffLimitPerIndex")
    if per_index is not None:
        errs += _nonnegative(per_index, f"{path}.backoffLimitPerIndex")
        if spec.get("completionMode") != "Indexed":
            errs.append(invalid(f"{path}.backoffLimitPerIndex", per_index, "requires indexed completion mode"))
    return errs


def _completion_mode(spec: dict, path: str) -> list[FieldError]:
    mode = spec.get("completionMode")
    if mode is None:
        return []
    if mode not in ("NonIndexed", "Indexed"):
        return [not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"])]
    errs: list[FieldError] = []
    if mode == "Indexed":
        if spec.get("completions") is None:
            errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
        parallelism = _opt_int(spec, "parallelism")
        if parallelism is not None and parallelism > _MAX_INDEXED_PARALLELISM:
            errs.append(invalid(f"{path}.parallelism", parallelism, f"must be less than or equal to "
                                f"{_MAX_INDEXED_PARALLELISM} when completion mode is Indexed"))
    return errs


def _pod_replacement_policy(spec: dict, path: str) -> list[FieldError]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    if spec.get("podFailurePolicy") is not None:
        return [] if policy == "Failed" else [not_supported(path, policy, ["Failed"])]
    allowed = ["Failed", "TerminatingOrFailed"]
    return [] if policy in allowed else [not_supported(path, policy, allowed)]


def _job_restart_policy(spec: dict, path: str) -> list[FieldError]:
    policy = _dict(spec.get("template"), "spec").get("restartPolicy")
    # Defaulting fills in Always, so Always reads as "not chosen".
    if policy in (None, "", "Always"):
        return [required(path, 'valid values: "OnFailure", "Never"')]
    if policy not in ("OnFailure", "Never"):
        return [not_supported(path, policy, ["OnFailure", "Never"])]
    if spec.get("podFailurePolicy") is not None and policy != "Never":
        return [invalid(path, policy, 'only "Never" is supported when podFailurePolicy is specified')]
    return []


def job_spec_content(spec: dict, path: str) -> list[FieldError]:
    """validateJobSpec: everything but the selector (shared with CronJob job templates)."""
    errs = _job_counts(spec, path)
    errs += _completion_mode(spec, path)
    errs += _pod_replacement_policy(spec, f"{path}.podReplacementPolicy")
    errs += pod_template_spec(spec.get("template"), f"{path}.template")
    return errs + _job_restart_policy(spec, f"{path}.template.spec.restartPolicy")


def _generated_selector(obj: dict) -> list[FieldError]:
    """Unless manualSelector is set, the selector must be the one the server generated from the uid."""
    spec = _dict(obj, "spec")
    selector = spec.get("selector")
    if spec.get("manualSelector") is True or _dict(spec.get("template"), "metadata").get("labels") is None:
        return []
    if not isinstance(selector, dict):
        return []
    uid = _str(_dict(obj, "metadata"), "uid")
    errs = [required("metadata.uid")] if not uid else []
    if _selector_convertible(selector) and not selector_matches(selector, {CONTROLLER_UID_LABEL: uid}):
        errs.append(invalid("spec.selector", selector, "`selector` not auto-generated"))
    return errs


def job(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = _generated_selector(obj)
    errs += job_spec_content(spec, "spec")
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        errs.append(required("spec.selector"))
    else:
        errs += label_selector(selector, "spec.selector")
    template_labels = _dict(spec.get("template"), "metadata").get("labels")
    if _selector_convertible(selector) and not selector_matches(selector, template_labels):
        errs.append(invalid("spec.template.metadata.labels", template_labels,
                            "`selector` does not match template `labels`"))
    completions = _opt_int(spec, "completions")
    if spec.get("completionMode") == "Indexed" and completions is not None and completions > 0:
        name = _str(_dict(obj, "metadata"), "name")
        hostname = f"{name}-{completions - 1}"
        if is_dns1123_label(hostname):
            errs.append(invalid("metadata.name", name,
                                f"will not able to create pod with invalid DNS label: {hostname}"))
    return errs


_MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# minute, hour, day of month, month, day of week (robfig/cron's standard parser)
_CRON_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _WEEKDAYS))
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_DURATION_UNITS = ("ns", "us", "µs", "μs", "ms", "s", "m", "h")


def _atoi(text: str) -> tuple[int, str | None]:
    """strconv.Atoi as cron uses it: (value, error)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text, re.ASCII):
        return 0, f"failed to parse int from {text}: strconv.Atoi: parsing {quote(text)}: invalid syntax"
    value = int(text)
    if not -(2**63) <= value < 2**63:
        return 0, f"failed to parse int from {text}: strconv.Atoi: parsing {quote(text)}: value out of range"
    if value < 0:
        return 0, f"negative number ({value}) not allowed: {text}"
    return value, None


def _cron_value(text: str, names: dict[str, int]) -> tuple[int, str | None]:
    if text.lower() in names:
        return names[text.lower()], None
    return _atoi(text)


def _cron_range_bounds(expr: str, low: int, high: int, names: dict[str, int]) -> tuple[int, int, str | None]:
    parts = expr.split("/")[0].split("-")
    if parts[0] in ("*", "?"):
        return low, high, None
    start, err = _cron_value(parts[0], names)
    if err or len(parts) == 1:
        return start, start, err
    if len(parts) > 2:
        return 0, 0, f"too many hyphens: {expr}"
    end, err = _cron_value(parts[1], names)
    return start, end, err


def _cron_range_error(expr: str, low: int, high: int, names: dict[str, int]) -> str | None:
    start, end, err = _cron_range_bounds(expr, low, high, names)
    if err:
        return err
    steps = expr.split("/")
    step = 1
    if len(steps) > 2:
        return f"too many slashes: {expr}"
    if len(steps) == 2:
        step, err = _atoi(steps[1])
        if err:
            return err
        if "-" not in steps[0]:
            end = high  # "N/step" means "N-max/step"
    if start < low:
        return f"beginning of range ({start}) below minimum ({low}): {expr}"
    if end > high:
        return f"end of range ({end}) above maximum ({high}): {expr}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {expr}"
    if step == 0:
        return f"step of range should be a positive number: {expr}"
    return None


def _duration_error(text: str) -> str | None:
    """time.ParseDuration's complaint about a duration, if any."""
    invalid_duration = f"time: invalid duration {quote(text)}"
    rest = text[1:] if text[:1] in ("+", "-") else text
    if rest == "0":
        return None
    if not rest:
        return invalid_duration
    while rest:
        number = re.match(r"([0-9]*)(\.([0-9]*))?", rest)
        if number is None or not (number.group(1) or number.group(3)):
            return invalid_duration
        rest = rest[number.end():]
        unit = "".join(takewhile(lambda ch: ch not in "0123456789.", rest))
        if not unit:
            return f"time: missing unit in duration {quote(text)}"
        if unit not in _DURATION_UNITS:
            return f"time: unknown unit {quote(unit)} in duration {quote(text)}"
        rest = rest[len(unit):]
    return None


def _time_zone_error(name: str) -> str | None:
    if name in ("", "UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name}"
    return None


def cron_schedule_error(schedule: str) -> str | None:
    """robfig/cron ParseStandard's error for a schedule, or None when it parses."""
    if not schedule:
        return "empty spec string"
    if schedule.startswith(("TZ=", "CRON_TZ=")):
        space, equals = schedule.find(" "), schedule.find("=")
        location = schedule[equals + 1:space if space >= 0 else len(schedule)]
        zone_error = _time_zone_error(location)
        if zone_error:
            return f"provided bad location {location}: {zone_error}"
        schedule = schedule[space:].strip() if space >= 0 else ""
    if schedule.startswith("@"):
        if schedule in _CRON_DESCRIPTORS:
            return None
        if schedule.startswith("@every "):
            err = _duration_error(schedule[len("@every "):])
            return f"failed to parse duration {schedule}: {err}" if err else None
        return f"unrecognized descriptor: {schedule}"
    fields = schedule.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for text, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for expr in (part for part in text.split(",") if part):
            err = _cron_range_error(expr, low, high, names)
            if err:
                return err
    return None


_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}", re.ASCII)


def _time_zone(value: object, path: str) -> list[FieldError]:
    if value is None:
        return []
    name = value if isinstance(value, str) else ""
    if not name:
        return [invalid(path, name, "timeZone must be nil or non-empty string")]
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.fullmatch(part):
            return [invalid(path, name, f"unknown time zone {name}")]
    errs: list[FieldError] = []
    if name.lower() == "local":
        errs.append(invalid(path, name, "timeZone must be an explicit time zone as defined in "
                                        "https://www.iana.org/time-zones"))
    zone_error = _time_zone_error(name)
    if zone_error:
        errs.append(invalid(path, name, zone_error))
    return errs


def _schedule(spec: dict, path: str) -> list[FieldError]:
    schedule = _str(spec, "schedule")
    if not schedule:
        return [required(path)]
    errs: list[FieldError] = []
    parse_error = cron_schedule_error(schedule)
    if parse_error:
        errs.append(invalid(path, schedule, parse_error))
    if "TZ" in schedule:
        errs.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def _job_template(template: dict, path: str) -> list[FieldError]:
    spec = _dict(template, "spec")
    errs = job_spec_content(spec, f"{path}.spec")
    if spec.get("selector") is not None:
        errs.append(invalid(f"{path}.spec.selector", spec["selector"], "`selector` will be auto-generated"))
    if spec.get("manualSelector") is True:
        errs.append(not_supported(f"{path}.spec.manualSelector", True, ["nil", "false"]))
    return errs


def cron_job(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = _schedule(spec, "spec.schedule")
    errs += _nonnegative(spec.get("startingDeadlineSeconds"), "spec.startingDeadlineSeconds")
    errs += _one_of(spec.get("concurrencyPolicy"), "spec.concurrencyPolicy", ["Allow", "Forbid", "Replace"])
    errs += _job_template(_dict(spec, "jobTemplate"), "spec.jobTemplate")
    errs += _nonnegative(spec.get("successfulJobsHistoryLimit"), "spec.successfulJobsHistoryLimit")
    errs += _nonnegative(spec.get("failedJobsHistoryLimit"), "spec.failedJobsHistoryLimit")
    errs += _time_zone(spec.get("timeZone"), "spec.timeZone")
    name = _str(_dict(obj, "metadata"), "name")
    # Jobs are named <cronjob>-<11 characters>, and a job name is at most 63 characters.
    if len(name) > 52:
        errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    return errs


# --- core/v1 Service, Endpoints ---

def _cluster_ips(spec: dict) -> list[str]:
    ips = [ip for ip in _list(spec, "clusterIPs") if isinstance(ip, str)]
    return ips or ([_str(spec, "clusterIP")] if _str(spec, "clusterIP") else [])


def _service_port(port: dict, require_name: bool, names: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _str(port, "name")
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += _messages(f"{path}.name", name, is_dns1123_label(name))
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    errs += _messages(f"{path}.port", port.get("port", 0), is_port_num(port.get("port", 0)))
    errs += _protocol(port, path)
    errs += port_num_or_name(port.get("targetPort"), f"{path}.targetPort")
    app_protocol = port.get("appProtocol")
    if isinstance(app_protocol, str):
        errs += _messages(f"{path}.appProtocol", app_protocol, is_qualified_name(app_protocol))
    return errs


def _service_type_rules(spec: dict, headless: bool) -> list[FieldError]:
    service_type = spec.get("type")
    errs: list[FieldError] = []
    if service_type in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {service_type} services"))
    if service_type == "LoadBalancer":
        for i, port in _items(spec, "ports"):
            if port.get("port") == 10250:  # the kubelet's port must never be exposed externally
                errs.append(invalid(f"spec.ports[{i}]", 10250,
                                    "may not expose port 10250 externally since it is used by kubelet"))
    if service_type == "ExternalName":
        for key, present in (("clusterIPs", bool(_cluster_ips(spec))), ("ipFamilies", bool(spec.get("ipFamilies"))),
                             ("ipFamilyPolicy", spec.get("ipFamilyPolicy") is not None)):
            if present:
                errs.append(forbidden(f"spec.{key}", "may not be set for ExternalName services"))
        cname = _str(spec, "externalName").removesuffix(".")
        if cname:
            errs += _messages("spec.externalName", cname, is_dns1123_subdomain(cname))
        else:
            errs.append(required("spec.externalName"))
    return errs


def _cluster_ip_values(spec: dict) -> list[FieldError]:
    ips = _cluster_ips(spec)
    errs: list[FieldError] = []
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                errs.append(invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
            continue
        if _parse_ip(ip) is None:
            errs.append(invalid(f"spec.clusterIPs[{i}]", ip, _IP_MSG))
    return errs


def _duplicate_ports(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    node_ports: set[tuple[object, object]] = set()
    ports: set[tuple[object, object]] = set()
    for i, port in _items(spec, "ports"):
        node_port = port.get("nodePort")
        if node_port not in (None, 0):
            if (port.get("protocol"), node_port) in node_ports:
                errs.append(duplicate(f"spec.ports[{i}].nodePort", node_port))
            node_ports.add((port.get("protocol"), node_port))
    for i, port in _items(spec, "ports"):
        key = (port.get("protocol"), port.get("port"))
        if key in ports:
            errs.append(duplicate(f"spec.ports[{i}]", {"protocol": key[0], "port": key[1]}))
        ports.add(key)
    return errs


def _traffic_policies(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    service_type, external = spec.get("type"), spec.get("externalTrafficPolicy")
    externally_accessible = service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if not externally_accessible:
        if external not in (None, ""):
            errs.append(invalid("spec.externalTrafficPolicy", external,
                                "may only be set for externally-accessible services"))
    else:
        errs += _one_of(external, "spec.externalTrafficPolicy", ["Cluster", "Local"])
    internal = spec.get("internalTrafficPolicy")
    if internal is None and service_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        errs.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in ("Cluster", "Local"):
        errs.append(not_supported("spec.internalTrafficPolicy", internal, ["Cluster", "Local"]))
    return errs


def service(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    headless = _cluster_ips(spec)[:1] == ["None"]
    errs: list[FieldError] = []
    if not _items(spec, "ports") and not headless and spec.get("type") != "ExternalName":
        errs.append(required("spec.ports"))
    errs += _service_type_rules(spec, headless)
    names: set[str] = set()
    ports = _items(spec, "ports")
    for i, port in ports:
        errs += _service_port(port, len(ports) > 1, names, f"spec.ports[{i}]")
    errs += labels(spec.get("selector"), "spec.selector")
    errs += _one_of(spec.get("sessionAffinity"), "spec.sessionAffinity", ["ClientIP", "None"])
    errs += _cluster_ip_values(spec)
    errs += _one_of(spec.get("type"), "spec.type", ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
    if spec.get("type") == "ClusterIP":
        for i, port in ports:
            if port.get("nodePort") not in (None, 0):
                errs.append(forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
    errs += _duplicate_ports(spec)
    return errs + _traffic_policies(spec)


def _link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Go's net.IP.IsLinkLocalMulticast."""
    if ip.version == 4:
        return ip in ipaddress.ip_network("224.0.0.0/24")
    return ip.packed[0] == 0xFF and ip.packed[1] & 0x0F == 0x02


def _non_special_ip(value: str, path: str) -> list[FieldError]:
    ip = _parse_ip(value)
    if ip is None:
        return []
    if ip.is_unspecified:
        return [invalid(path, value, f"may not be unspecified ({value})")]
    if ip.is_loopback:
        return [invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)")]
    if ip.is_link_local:
        return [invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")]
    if _link_local_multicast(ip):
        return [invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")]
    return []


def _endpoint_address(address: dict, path: str) -> list[FieldError]:
    ip = _str(address, "ip")
    errs = [invalid(f"{path}.ip", ip, _IP_MSG)] if _parse_ip(ip) is None else []
    hostname = _str(address, "hostname")
    if hostname:
        errs += _messages(f"{path}.hostname", hostname, is_dns1123_label(hostname))
    node_name = address.get("nodeName")
    if isinstance(node_name, str):
        errs += _messages(f"{path}.nodeName", node_name, is_dns1123_subdomain(node_name))
    return errs + _non_special_ip(ip, f"{path}.ip")


def _endpoint_port(port: dict, require_name: bool, path: str) -> list[FieldError]:
    name = _str(port, "name")
    errs: list[FieldError] = []
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += _messages(f"{path}.name", name, is_dns1123_label(name))
    errs += _messages(f"{path}.port", port.get("port", 0), is_port_num(port.get("port", 0)))
    return errs + _protocol(port, path)


def endpoints(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subset in _items(obj, "subsets"):
        path = f"subsets[{i}]"
        if not _list(subset, "addresses") and not _list(subset, "notReadyAddresses"):
            errs.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, address in _items(subset, key):
                errs += _endpoint_address(address, f"{path}.{key}[{j}]")
        ports = _items(subset, "ports")
        for j, port in ports:
            errs += _endpoint_port(port, len(ports) > 1, f"{path}.ports[{j}]")
    return errs


# --- core/v1 ConfigMap, Secret ---

def _decoded_size(value: object) -> int:
    """Bytes of a base64 data value (undecodable values count as written)."""
    if not isinstance(value, str):
        return 0
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value)


def config_map(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    data, binary = _dict(obj, "data"), _dict(obj, "binaryData")
    for key in sorted(data):
        errs += _messages(f"data[{key}]", key, is_config_map_key(key))
        if key in binary:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    for key in sorted(binary):
        errs += _messages(f"binaryData[{key}]", key, is_config_map_key(key))
    size = sum(_byte_len(v) for v in data.values() if isinstance(v, str))
    size += sum(_decoded_size(v) for v in binary.values())
    if size > MAX_DATA_SIZE:
        errs.append(_too_long("", MAX_DATA_SIZE))
    return errs


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _secret_type_rules(obj: dict, data: dict) -> list[FieldError]:
    secret_type = obj.get("type")
    if secret_type == "kubernetes.io/service-account-token":
        if not _str(_dict(_dict(obj, "metadata"), "annotations"), "kubernetes.io/service-account.name"):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
        return []
    if secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
        return []
    if secret_type == "kubernetes.io/ssh-auth":
        return [] if _decoded_size(data.get("ssh-privatekey")) else [required("data[ssh-privatekey]")]
    errs = [required(f"data[{key}]") for key in _SECRET_REQUIRED_KEYS.get(str(secret_type), ()) if key not in data]
    if secret_type in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson") and not errs:
        key = _SECRET_REQUIRED_KEYS[secret_type][0]
        try:
            parsed = json.loads(base64.b64decode(str(data[key]), validate=True))
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
            return [invalid(f"data[{key}]", "<secret contents redacted>", str(exc))]
        if not isinstance(parsed, dict):
            return [invalid(f"data[{key}]", "<secret contents redacted>",
                            "json: cannot unmarshal into Go value of type map[string]interface {}")]
    return errs


def secret(obj: dict) -> list[FieldError]:
    data = _dict(obj, "data")
    errs: list[FieldError] = []
    for key in sorted(data):
        errs += _messages(f"data[{key}]", key, is_config_map_key(key))
    if sum(_decoded_size(v) for v in data.values()) > MAX_DATA_SIZE:
        errs.append(_too_long("data", MAX_DATA_SIZE))
    return errs + _secret_type_rules(obj, data)


# --- core/v1 Namespace, Node ---

def namespace(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    for name in _list(_dict(obj, "spec"), "finalizers"):
        text = name if isinstance(name, str) else str(name)
        errs += _messages("spec.finalizers", text, is_qualified_name(text))
        if "/" not in text and text not in _STANDARD_FINALIZERS:
            errs.append(invalid("spec.finalizers", text,
                                "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def taints(spec: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[object, str]] = set()
    for i, taint in _items(spec, "taints"):
        taint_path = f"{path}[{i}]"
        key, value, effect = _str(taint, "key"), _str(taint, "value"), taint.get("effect")
        errs += _messages(f"{taint_path}.key", key, is_qualified_name(key))
        msgs = is_label_value(value)
        if msgs:
            errs.append(invalid(f"{taint_path}.value", value, ";".join(msgs)))
        errs += [required(f"{taint_path}.effect")] if not effect else _taint_effect(effect, f"{taint_path}.effect")
        if (effect, key) in seen:
            errs.append(FieldError("Duplicate", taint_path, taint, "taints must be unique by key and effect pair"))
            continue
        seen.add((effect, key))
    return errs


def node(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = taints(spec, "spec.taints")
    cidrs = [c for c in _list(spec, "podCIDRs") if isinstance(c, str)]
    networks = [_parse_cidr(cidr) for cidr in cidrs]
    for i, (cidr, network) in enumerate(zip(cidrs, networks, strict=True)):
        if network is None:
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, _CIDR_MSG))
    families = {network.version for network in networks if network is not None}
    if len(cidrs) > 1 and (len(cidrs) > 2 or len(families) != 2):
        errs.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    return errs


# --- core/v1 PersistentVolume, PersistentVolumeClaim ---

_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _access_modes(spec: dict, path: str) -> list[FieldError]:
    modes = _list(spec, "accessModes")
    errs = [not_supported(path, mode, _ACCESS_MODES) for mode in modes if mode not in _ACCESS_MODES]
    if "ReadWriteOncePod" in modes and any(mode != "ReadWriteOncePod" for mode in modes):
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _volume_mode(spec: dict, path: str) -> list[FieldError]:
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        return [not_supported(path, mode, ["Block", "Filesystem"])]
    return []


def _positive_quantity(raw: object, path: str) -> list[FieldError]:
    quantity = _quantity(raw)
    if quantity is None:
        return _quantity_value("storage", raw, path)
    return [] if quantity.value > 0 else [invalid(path, str(quantity), "must be greater than zero")]


_PV_SOURCES = ("gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd", "quobyte",
               "cinder", "cephfs", "iscsi", "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume",
               "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "local", "storageos", "csi")
_PV_SOURCE_REQUIRED = {"hostPath": ("path",), "nfs": ("server", "path"), "local": ("path",),
                       "csi": ("driver", "volumeHandle")}


def _pv_source(spec: dict) -> list[FieldError]:
    present = [key for key in _PV_SOURCES if isinstance(spec.get(key), dict)]
    if not present:
        return [required("spec", "must specify a volume type")]
    errs = [forbidden(f"spec.{key}", "may not specify more than 1 volume type") for key in present[1:]]
    source = spec[present[0]]
    return errs + [required(f"spec.{present[0]}.{key}") for key in _PV_SOURCE_REQUIRED.get(present[0], ())
                   if not _str(source, key)]


def persistent_volume(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = [required("spec.accessModes")] if not _list(spec, "accessModes") else []
    errs += _access_modes(spec, "spec.accessModes")
    capacity = _dict(spec, "capacity")
    if not capacity:
        errs.append(required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        errs.append(not_supported("spec.capacity", capacity, ["storage"]))
    for name, raw in sorted(capacity.items()):
        errs += _positive_quantity(raw, f"spec.capacity[{name}]")
    class_name = _str(spec, "storageClassName")
    if class_name:
        errs += _messages("spec.storageClassName", class_name, is_dns1123_subdomain(class_name))
    errs += _volume_mode(spec, "spec.volumeMode")
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in (None, "", "Delete", "Recycle", "Retain"):
        errs.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, ["Delete", "Recycle", "Retain"]))
    return errs + _pv_source(spec)


def pvc_spec(spec: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not _list(spec, "accessModes"):
        errs.append(required(f"{path}.accessModes", "at least 1 access mode is required"))
    errs += label_selector(spec.get("selector"), f"{path}.selector")
    errs += _access_modes(spec, f"{path}.accessModes")
    requests = _dict(_dict(spec, "resources"), "requests")
    if "storage" not in requests:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        errs += _positive_quantity(requests["storage"], f"{path}.resources[storage]")
    class_name = _str(spec, "storageClassName")
    if class_name:
        errs += _messages(f"{path}.storageClassName", class_name, is_dns1123_subdomain(class_name))
    return errs + _volume_mode(spec, f"{path}.volumeMode")


def persistent_volume_claim(obj: dict) -> list[FieldError]:
    return pvc_spec(_dict(obj, "spec"), "spec")


# --- core/v1 ResourceQuota, LimitRange ---

_QUOTA_RESOURCES = ("pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
                    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers", "requests.cpu",
                    "requests.memory", "requests.storage", "requests.ephemeral-storage", "limits.cpu",
                    "limits.memory", "limits.ephemeral-storage", "cpu", "memory", "ephemeral-storage")
_QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                 "CrossNamespacePodAffinity")


def _quota_resource_name(name: str, path: str) -> list[FieldError]:
    errs = _messages(path, name, is_qualified_name(name))
    standard = name in _QUOTA_RESOURCES or name.startswith(("requests.hugepages-", "hugepages-"))
    if "/" not in name and not standard:
        errs.append(invalid(path, name, "must be a standard resource for quota"))
    return errs


def resource_quota(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs: list[FieldError] = []
    for name, raw in sorted(_dict(spec, "hard").items()):
        errs += _quota_resource_name(name, f"spec.hard[{name}]")
        errs += _quantity_value(name, raw, f"spec.hard[{name}]")
    scopes = _list(spec, "scopes")
    errs += [invalid("spec.scopes", scopes, "unsupported scope") for scope in scopes if scope not in _QUOTA_SCOPES]
    for pair in (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")):
        if all(scope in scopes for scope in pair):
            errs.append(invalid("spec.scopes", scopes, "conflicting scopes"))
    return errs


_LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")


def _limit_comparisons(item: dict, name: str, path: str) -> list[FieldError]:
    values = {key: _quantity(_dict(item, key).get(name))
              for key in ("min", "max", "default", "defaultRequest", "maxLimitRequestRatio")}
    low, high, default, request, ratio = (values[k] for k in values)
    errs: list[FieldError] = []
    checks = (
        (low, high, f"{path}.min[{name}]", low, "min value {a} is greater than max value {b}"),
        (low, request, f"{path}.defaultRequest[{name}]", request, "min value {a} is greater than default request "
                                                                   "value {b}"),
        (request, high, f"{path}.defaultRequest[{name}]", request, "default request value {a} is greater than max "
                                                                    "value {b}"),
        (request, default, f"{path}.defaultRequest[{name}]", request, "default request value {a} is greater than "
                                                                       "default limit value {b}"),
        (low, default, f"{path}.default[{name}]", low, "min value {a} is greater than default value {b}"),
        (default, high, f"{path}.default[{name}]", high, "default value {a} is greater than max value {b}"),
    )
    for a, b, field, shown, template in checks:
        if a is not None and b is not None and a.value > b.value:
            errs.append(invalid(field, str(shown), template.format(a=a, b=b)))
    if ratio is not None and ratio.value < 1:
        errs.append(invalid(f"{path}.maxLimitRequestRatio[{name}]", str(ratio), f"ratio {ratio} is less than 1"))
    if (not _overcommit_allowed(name) and default is not None and request is not None
            and default.value != request.value):
        errs.append(invalid(f"{path}.defaultRequest[{name}]", str(request), f"default value {default} must equal "
                            f"to defaultRequest value {request} in {name}"))
    return errs


def _limit_type(value: object, path: str) -> list[FieldError]:
    text = value if isinstance(value, str) else ""
    errs = _messages(path, text, is_qualified_name(text))
    if not errs and "/" not in text and text not in _LIMIT_TYPES:
        errs.append(invalid(path, text, "must be a standard limit type or fully qualified"))
    return errs


def _limit_resource(limit_type: object, name: str, raw: object, path: str) -> list[FieldError]:
    if limit_type in ("Pod", "Container"):
        errs = _container_resource_name(name, path)
    else:
        errs = _messages(path, name, is_qualified_name(name))
    if _quantity(raw) is None:
        errs += _quantity_value(name, raw, path)  # reports the parse failure
    return errs


def _limit_range_item(item: dict, path: str) -> list[FieldError]:
    limit_type = item.get("type")
    errs = _limit_type(limit_type, f"{path}.type")
    names: set[str] = set()
    for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        if limit_type == "Pod" and key in ("default", "defaultRequest"):
            if _dict(item, key):
                errs.append(forbidden(f"{path}.{key}", "may not be specified when `type` is 'Pod'"))
            continue
        for name, raw in sorted(_dict(item, key).items()):
            errs += _limit_resource(limit_type, name, raw, f"{path}.{key}[{name}]")
            names.add(name)
    if limit_type == "PersistentVolumeClaim" and "storage" not in _dict(item, "min") and "storage" not in _dict(
            item, "max"):
        errs.append(required(f"{path}.limits", "either minimum or maximum storage value is required, but neither "
                                                "was provided"))
    for name in sorted(names):
        errs += _limit_comparisons(item, name, path)
    return errs


def limit_range(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[object] = set()
    for i, item in _items(_dict(obj, "spec"), "limits"):
        path = f"spec.limits[{i}]"
        if item.get("type") in seen:
            errs.append(duplicate(f"{path}.type", item.get("type")))
        seen.add(item.get("type"))
        errs += _limit_range_item(item, path)
    return errs


# --- core/v1 Event ---

def event(obj: dict) -> list[FieldError]:
    namespace_ = _str(_dict(obj, "metadata"), "namespace")
    involved = _str(_dict(obj, "involvedObject"), "namespace")
    errs: list[FieldError] = []
    mismatch = invalid("involvedObject.namespace", involved, "does not match event.namespace")
    if not obj.get("eventTime"):
        if (not involved and namespace_ not in ("", "default")) or (involved and namespace_ != involved):
            errs.append(mismatch)
    else:
        errs += _new_style_event(obj, namespace_, involved, mismatch)
    return errs + _messages("namespace", namespace_, is_dns1123_subdomain(namespace_))


_EVENT_LIMITS = (("reportingInstance", 128), ("action", 128), ("reason", 128))


def _new_style_event(obj: dict, namespace_: str, involved: str, mismatch: FieldError) -> list[FieldError]:
    """Events with eventTime set (events.k8s.io style) must say who reported them and why."""
    errs = [mismatch] if not involved and namespace_ not in ("default", "kube-system") else []
    controller = _str(obj, "reportingComponent")
    if not controller:
        errs.append(required("reportingComponent"))
    errs += _messages("reportingComponent", controller, is_qualified_name(controller))
    for key, limit in _EVENT_LIMITS:
        value = _str(obj, key)
        if not value:
            errs.append(required(key))
        if len(value) > limit:
            errs.append(invalid(key, "", f"can have at most {limit} characters"))
    if len(_str(obj, "message")) > 1024:
        errs.append(invalid("message", "", "can have at most 1024 characters"))
    return errs


# --- autoscaling/v2 HorizontalPodAutoscaler ---

_METRIC_SOURCES = {"Object": "object", "Pods": "pods", "Resource": "resource", "External": "external",
                   "ContainerResource": "containerResource"}


def _metric_target(target: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    target_type = target.get("type")
    if not target_type:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if target_type not in ("Utilization", "Value", "AverageValue"):
        errs.append(invalid(f"{path}.type", target_type or "", "must be either Utilization, Value, or AverageValue"))
    for key in ("value", "averageValue"):
        if target.get(key) is not None:
            quantity = _quantity(target[key])
            if quantity is None or quantity.value <= 0:
                errs.append(invalid(f"{path}.{key}", target[key], "must be positive"))
    utilization = _opt_int(target, "averageUtilization")
    if utilization is not None and utilization < 1:
        errs.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return errs


def _resource_metric(source: dict, path: str, per_container: bool) -> list[FieldError]:
    errs = [] if _str(source, "name") else [required(f"{path}.name", "must specify a resource name")]
    if per_container and not _str(source, "container"):
        errs.append(required(f"{path}.container", "must specify a container"))
    target = _dict(source, "target")
    errs += _metric_target(target, f"{path}.target")
    has_utilization, has_value = target.get("averageUtilization") is not None, target.get("averageValue") is not None
    if not has_utilization and not has_value:
        errs.append(required(f"{path}.target.averageUtilization",
                             "must set either a target raw value or a target utilization"))
    elif has_utilization and has_value:
        errs.append(forbidden(f"{path}.target.averageValue",
                              "may not set both a target raw value and a target utilization"))
    return errs


def _metric(metric: dict, path: str) -> list[FieldError]:
    metric_type = metric.get("type")
    errs: list[FieldError] = []
    if not metric_type:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    if metric_type not in _METRIC_SOURCES:
        errs.append(not_supported(f"{path}.type", metric_type or "", list(_METRIC_SOURCES)))
        return errs
    key = _METRIC_SOURCES[metric_type]
    source = metric.get(key)
    if not isinstance(source, dict):
        errs.append(required(f"{path}.{key}", "must populate information for the given metric source"))
    elif metric_type in ("Resource", "ContainerResource"):
        errs += _resource_metric(source, f"{path}.{key}", metric_type == "ContainerResource")
    for other in _METRIC_SOURCES.values():
        if other != key and metric.get(other) is not None:
            errs.append(forbidden(f"{path}.{other}", "must populate the given metric source only"))
    return errs


def _scaling_rules(rules: object, path: str) -> list[FieldError]:
    if not isinstance(rules, dict):
        return []
    errs: list[FieldError] = []
    window = _opt_int(rules, "stabilizationWindowSeconds")
    if window is not None and window < 0:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be greater than or equal to zero"))
    if window is not None and window > 3600:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be less than or equal to 3600"))
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Max", "Min", "Disabled"):
        errs.append(not_supported(f"{path}.selectPolicy", select, ["Disabled", "Max", "Min"]))
    policies = _items(rules, "policies")
    if not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in policies:
        policy_path = f"{path}.policies[{i}]"
        if policy.get("type") not in ("Pods", "Percent"):
            errs.append(not_supported(f"{policy_path}.type", policy.get("type", ""), ["Percent", "Pods"]))
        if _int(policy, "value") <= 0:
            errs.append(invalid(f"{policy_path}.value", _int(policy, "value"), "must be greater than zero"))
        period = _int(policy, "periodSeconds")
        if period <= 0:
            errs.append(invalid(f"{policy_path}.periodSeconds", period, "must be greater than zero"))
        if period > 1800:
            errs.append(invalid(f"{policy_path}.periodSeconds", period, "must be less than or equal to 1800"))
    return errs


def horizontal_pod_autoscaler(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs: list[FieldError] = []
    min_replicas, max_replicas = _opt_int(spec, "minReplicas"), _int(spec, "maxReplicas")
    if min_replicas is not None and min_replicas < 1:
        errs.append(invalid("spec.minReplicas", min_replicas, "must be greater than or equal to 1"))
    if max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    if min_replicas is not None and max_replicas < min_replicas:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"))
    ref = _dict(spec, "scaleTargetRef")
    ref_errs: list[FieldError] = []
    for key in ("kind", "name"):
        value = _str(ref, key)
        if not value:
            ref_errs.append(required(f"spec.scaleTargetRef.{key}"))
        ref_errs += _messages(f"spec.scaleTargetRef.{key}", value, is_path_segment_name(value) if value else [])
    # Like upstream, metrics are only checked with a good target, and behavior only with good metrics.
    if ref_errs:
        return errs + ref_errs
    metric_errs = [err for i, metric in _items(spec, "metrics") for err in _metric(metric, f"spec.metrics[{i}]")]
    if metric_errs:
        return errs + metric_errs
    behavior = _dict(spec, "behavior")
    return (errs + _scaling_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp")
            + _scaling_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown"))


# --- policy/v1 PodDisruptionBudget ---

def pod_disruption_budget(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs: list[FieldError] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if spec.get(key) is not None:
            errs += _int_or_percent(spec[key], f"spec.{key}") + _not_more_than_100_percent(spec[key], f"spec.{key}")
    errs += label_selector(spec.get("selector"), "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        errs.append(not_supported("spec.unhealthyPodEvictionPolicy", policy, ["AlwaysAllow", "IfHealthyBudget"]))
    return errs


# --- networking.k8s.io/v1 ---

_PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")


def _ingress_backend(backend: dict, path: str) -> list[FieldError]:
    service_, resource = backend.get("service"), backend.get("resource")
    if isinstance(service_, dict) and isinstance(resource, dict):
        return [invalid(path, "", "cannot set both resource and service backends")]
    if isinstance(resource, dict):
        errs = [required(f"{path}.resource.{key}") for key in ("kind", "name") if not _str(resource, key)]
        return errs
    if not isinstance(service_, dict):
        return [invalid(path, "", "resource or service backend is required")]
    name = _str(service_, "name")
    errs = [required(f"{path}.service.name")] if not name else _messages(f"{path}.service.name", name,
                                                                         is_dns1035_label(name))
    port = _dict(service_, "port")
    port_name, number = _str(port, "name"), _int(port, "number")
    if port_name and number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs += _messages(f"{path}.service.port.name", port_name, is_port_name(port_name))
    elif number:
        errs += _messages(f"{path}.service.port.number", number, is_port_num(number))
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _ingress_path(http_path: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    value, path_type = _str(http_path, "path"), http_path.get("pathType")
    if path_type is None:
        errs.append(required(f"{path}.pathType", "pathType must be specified"))
    elif path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
        errs += [invalid(f"{path}.path", value, f"must not contain '{seq}'")
                 for seq in _INVALID_PATH_SEQUENCES if seq in value]
        errs += [invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
                 for suffix in ("/..", "/.") if value.endswith(suffix)]
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errs.append(not_supported(f"{path}.pathType", path_type, _PATH_TYPES))
    return errs + _ingress_backend(_dict(http_path, "backend"), f"{path}.backend")


def _ingress_host(host: str, path: str) -> list[FieldError]:
    if _parse_ip(host) is not None:
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    if host.startswith("*"):
        return _messages(path, host, is_wildcard_dns1123_subdomain(host))
    return _messages(path, host, is_dns1123_subdomain(host))


def ingress(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    rules = _items(spec, "rules")
    errs: list[FieldError] = []
    backend = spec.get("defaultBackend")
    if not rules and not isinstance(backend, dict):
        errs.append(invalid("spec", _list(spec, "rules"), "either `defaultBackend` or `rules` must be specified"))
    if isinstance(backend, dict):
        errs += _ingress_backend(backend, "spec.defaultBackend")
    for i, rule in rules:
        host = _str(rule, "host")
        if host:
            errs += _ingress_host(host, f"spec.rules[{i}].host")
        http = rule.get("http")
        if isinstance(http, dict):
            paths = _items(http, "paths")
            if not paths:
                errs.append(required(f"spec.rules[{i}].http.paths"))
            for j, http_path in paths:
                errs += _ingress_path(http_path, f"spec.rules[{i}].http.paths[{j}]")
    for i, tls in _items(spec, "tls"):
        for j, host in enumerate(_list(tls, "hosts")):
            if isinstance(host, str):
                errs += _ingress_host(host, f"spec.tls[{i}].hosts[{j}]")
    class_name = spec.get("ingressClassName")
    if isinstance(class_name, str):
        errs += _messages("spec.ingressClassName", class_name, is_dns1123_subdomain(class_name))
    return errs


_DOMAIN_PREFIXED_PATH = "must be a domain-prefixed path (such as \"acme.io/foo\")"


def ingress_class(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    controller = _str(spec, "controller")
    if not controller:
        return [required("spec.controller")]
    if len(controller) > 250:
        return [_too_long("spec.controller", 250)]
    domain, _, rest = controller.partition("/")
    if not rest:
        return [invalid("spec.controller", controller, _DOMAIN_PREFIXED_PATH)]
    return _messages("spec.controller", domain, is_dns1123_subdomain(domain))


def _network_policy_port(port: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
        errs.append(not_supported(f"{path}.protocol", protocol, ["TCP", "UDP", "SCTP"]))
    value, end_port = port.get("port"), _opt_int(port, "endPort")
    if isinstance(value, int) and not isinstance(value, bool):
        errs += _messages(f"{path}.port", value, is_port_num(value))
        if end_port is not None:
            if end_port < value:
                errs.append(invalid(f"{path}.endPort", value, "must be greater than or equal to `port`"))
            errs += _messages(f"{path}.endPort", end_port, is_port_num(end_port))
    elif isinstance(value, str):
        if end_port is not None:
            errs.append(invalid(f"{path}.endPort", end_port, "may not be specified when `port` is non-numeric"))
        errs += _messages(f"{path}.port", value, is_port_name(value))
    elif end_port is not None:
        errs.append(invalid(f"{path}.endPort", end_port, "may not be specified when `port` is not specified"))
    return errs


def _ip_block(block: dict, path: str) -> list[FieldError]:
    cidr = _str(block, "cidr")
    if not cidr:
        return [required(f"{path}.cidr")]
    network = _parse_cidr(cidr)
    if network is None:
        return [invalid(f"{path}.cidr", cidr, _CIDR_MSG)]
    errs: list[FieldError] = []
    for i, except_cidr in enumerate(_list(block, "except")):
        text = except_cidr if isinstance(except_cidr, str) else ""
        excluded = _parse_cidr(text)
        if excluded is None:
            errs.append(invalid(f"{path}.except[{i}]", text, _CIDR_MSG))
        elif excluded.version != network.version or not excluded.subnet_of(network) or excluded == network:
            errs.append(invalid(f"{path}.except[{i}]", str(excluded), "must be a strict subset of `cidr`"))
    return errs


def _network_policy_peer(peer: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for key in ("podSelector", "namespaceSelector"):
        if isinstance(peer.get(key), dict):
            count += 1
            errs += label_selector(peer[key], f"{path}.{key}")
    if isinstance(peer.get("ipBlock"), dict):
        count += 1
        errs += _ip_block(peer["ipBlock"], f"{path}.ipBlock")
    if count == 0:
        errs.append(required(path, "must specify a peer"))
    elif count > 1 and isinstance(peer.get("ipBlock"), dict):
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def network_policy(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs = label_selector(spec.get("podSelector"), "spec.podSelector")
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in _items(spec, direction):
            rule_path = f"spec.{direction}[{i}]"
            for j, port in _items(rule, "ports"):
                errs += _network_policy_port(port, f"{rule_path}.ports[{j}]")
            for j, peer in _items(rule, peers):
                errs += _network_policy_peer(peer, f"{rule_path}.{peers}[{j}]")
    policy_types = _list(spec, "policyTypes")
    if len(policy_types) > 2:
        return errs + [invalid("spec.policyTypes", policy_types, "may not specify more than two policyTypes")]
    for i, policy_type in enumerate(policy_types):
        if policy_type not in ("Ingress", "Egress"):
            errs.append(not_supported(f"spec.policyTypes[{i}]", policy_type, ["Ingress", "Egress"]))
    return errs


# --- storage.k8s.io/v1 StorageClass ---

def storage_class(obj: dict) -> list[FieldError]:
    provisioner = _str(obj, "provisioner")
    errs = [required("provisioner")] if not provisioner else _messages("provisioner", provisioner.lower(),
                                                                       is_qualified_name(provisioner.lower()))
    policy = obj.get("reclaimPolicy")
    if policy is not None and policy not in ("Delete", "Retain"):
        errs.append(not_supported("reclaimPolicy", policy, ["Delete", "Retain"]))
    mode = obj.get("volumeBindingMode")
    if mode is None:
        errs.append(required("volumeBindingMode"))
    elif mode not in ("Immediate", "WaitForFirstConsumer"):
        errs.append(not_supported("volumeBindingMode", mode, ["Immediate", "WaitForFirstConsumer"]))
    return errs


# --- rbac.authorization.k8s.io/v1 ---

RBAC_GROUP = "rbac.authorization.k8s.io"


def _policy_rule(rule: dict, namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not _list(rule, "verbs"):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = _list(rule, "nonResourceURLs")
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"))
        if _list(rule, "apiGroups") or _list(rule, "resources") or _list(rule, "resourceNames"):
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not _list(rule, "apiGroups"):
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not _list(rule, "resources"):
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


def role(obj: dict) -> list[FieldError]:
    return [err for i, rule in _items(obj, "rules") for err in _policy_rule(rule, True, f"rules[{i}]")]


def cluster_role(obj: dict) -> list[FieldError]:
    errs = [err for i, rule in _items(obj, "rules") for err in _policy_rule(rule, False, f"rules[{i}]")]
    aggregation = obj.get("aggregationRule")
    if isinstance(aggregation, dict):
        selectors = _list(aggregation, "clusterRoleSelectors")
        if not selectors:
            errs.append(required("aggregationRule.clusterRoleSelectors",
                                 "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        for i, selector in enumerate(selectors):
            errs += label_selector(selector, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errs


def _subject(subject: dict, namespaced: bool, path: str) -> list[FieldError]:
    name, kind, group = _str(subject, "name"), subject.get("kind"), _str(subject, "apiGroup")
    errs = [required(f"{path}.name")] if not name else []
    if kind == "ServiceAccount":
        if name:
            errs += _messages(f"{path}.name", name, is_dns1123_subdomain(name))
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not _str(subject, "namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind or "", ["ServiceAccount", "User", "Group"]))
    return errs


def _binding(obj: dict, role_kinds: list[str], namespaced: bool) -> list[FieldError]:
    role_ref = _dict(obj, "roleRef")
    errs: list[FieldError] = []
    if _str(role_ref, "apiGroup") != RBAC_GROUP:
        errs.append(not_supported("roleRef.apiGroup", _str(role_ref, "apiGroup"), [RBAC_GROUP]))
    if role_ref.get("kind") not in role_kinds:
        errs.append(not_supported("roleRef.kind", role_ref.get("kind", ""), role_kinds))
    name = _str(role_ref, "name")
    if not name:
        errs.append(required("roleRef.name"))
    else:
        errs += _messages("roleRef.name", name, is_path_segment_name(name))
    return errs + [err for i, subject in _items(obj, "subjects")
                   for err in _subject(subject, namespaced, f"subjects[{i}]")]


def role_binding(obj: dict) -> list[FieldError]:
    return _binding(obj, ["Role", "ClusterRole"], True)


def cluster_role_binding(obj: dict) -> list[FieldError]:
    return _binding(obj, ["ClusterRole"], False)


# --- discovery.k8s.io/v1 EndpointSlice ---

def _slice_address(address: str, address_type: object, path: str) -> list[FieldError]:
    ip = _parse_ip(address)
    if address_type in ("IPv4", "IPv6"):
        family = 4 if address_type == "IPv4" else 6
        if ip is None or ip.version != family:
            return [invalid(path, address, f"must be a valid IPv{family} address")]
        return _non_special_ip(address, path)
    if address_type == "FQDN":
        return _messages(path, address, is_dns1123_subdomain(address))
    return []


def _slice_endpoints(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    address_type = obj.get("addressType")
    for i, endpoint in _items(obj, "endpoints"):
        path = f"endpoints[{i}]"
        addresses = _list(endpoint, "addresses")
        if not addresses:
            errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(addresses) > 100:
            errs.append(FieldError("TooMany", f"{path}.addresses", len(addresses), "must have at most 100 items"))
        for j, address in enumerate(addresses):
            errs += _slice_address(address if isinstance(address, str) else "", address_type,
                                   f"{path}.addresses[{j}]")
        node_name, hostname = endpoint.get("nodeName"), endpoint.get("hostname")
        if isinstance(node_name, str):
            errs += _messages(f"{path}.nodeName", node_name, is_dns1123_subdomain(node_name))
        if isinstance(hostname, str):
            errs += _messages(f"{path}.hostname", hostname, is_dns1123_label(hostname))
    return errs


def endpoint_slice(obj: dict) -> list[FieldError]:
    address_type = obj.get("addressType")
    errs = _one_of(address_type, "addressType", ["FQDN", "IPv4", "IPv6"])
    errs += _slice_endpoints(obj)
    names: set[str] = set()
    for i, port in _items(obj, "ports"):
        path = f"ports[{i}]"
        name = _str(port, "name")
        if name:
            errs += _messages(f"{path}.name", name, is_dns1123_label(name))
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
        errs += _one_of(port.get("protocol"), f"{path}.protocol", ["SCTP", "TCP", "UDP"])
        if isinstance(port.get("appProtocol"), str):
            errs += _messages(f"{path}.appProtocol", port["appProtocol"], is_qualified_name(port["appProtocol"]))
    return errs


# --- coordination.k8s.io/v1 Lease, scheduling.k8s.io/v1 PriorityClass ---

def lease(obj: dict) -> list[FieldError]:
    spec = _dict(obj, "spec")
    errs: list[FieldError] = []
    duration, transitions = _opt_int(spec, "leaseDurationSeconds"), _opt_int(spec, "leaseTransitions")
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    if transitions is not None and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return errs


SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
HIGHEST_USER_PRIORITY = 1000000000


def _system_priority_class_error(name: str, value: object, global_default: object) -> str | None:
    if name not in SYSTEM_PRIORITY_CLASSES:
        return f"{name} is not a known system priority class"
    if value != SYSTEM_PRIORITY_CLASSES[name]:
        return f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
    if global_default is True:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def priority_class(obj: dict) -> list[FieldError]:
    name, value = _str(_dict(obj, "metadata"), "name"), _int(obj, "value")
    errs: list[FieldError] = []
    if name.startswith("system-"):
        err = _system_priority_class_error(name, value, obj.get("globalDefault"))
        if err:
            errs.append(forbidden("metadata.name", "priority class names with 'system-' prefix are reserved for "
                                                   f"system use only. error: {err}"))
    elif value > HIGHEST_USER_PRIORITY:
        errs.append(forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
    if obj.get("preemptionPolicy") is not None:
        errs += _one_of(obj["preemptionPolicy"], "preemptionPolicy", ["PreemptLowerPriority", "Never"])
    return errs


# --- update rules: only what differs from create validation (immutable fields) ---

def _spec_diff(old: dict, new: dict) -> str:
    """A short description of what changed (upstream prints a Go cmp.Diff here)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"-  {key}: {json.dumps(old.get(key), sort_keys=True)}")
            lines.append(f"+  {key}: {json.dumps(new.get(key), sort_keys=True)}")
    return "\n".join(lines)


def _selector_update(obj: dict, old: dict) -> list[FieldError]:
    return _immutable(_dict(obj, "spec").get("selector"), _dict(old, "spec").get("selector"), "spec.selector")


def deployment_update(obj: dict, old: dict) -> list[FieldError]:
    return _selector_update(obj, old)


def replica_set_update(obj: dict, old: dict) -> list[FieldError]:
    return _selector_update(obj, old)


def daemon_set_update(obj: dict, old: dict) -> list[FieldError]:
    return _selector_update(obj, old)


_STATEFUL_SET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                         "minReadySeconds")


def stateful_set_update(obj: dict, old: dict) -> list[FieldError]:
    spec, old_spec = _dict(obj, "spec"), _dict(old, "spec")
    fixed = {k: v for k, v in spec.items() if k not in _STATEFUL_SET_MUTABLE}
    old_fixed = {k: v for k, v in old_spec.items() if k not in _STATEFUL_SET_MUTABLE}
    if semantic(fixed) == semantic(old_fixed):
        return []
    return [forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                              "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                              "'minReadySeconds' are forbidden")]


_JOB_IMMUTABLE = ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy")
_SCHEDULING_DIRECTIVES = ("nodeSelector", "tolerations", "affinity", "schedulingGates")


def _job_template_update(spec: dict, old_spec: dict, old: dict) -> list[FieldError]:
    template, old_template = spec.get("template"), old_spec.get("template")
    never_started = old_spec.get("suspend") is True and not _dict(old, "status").get("startTime")
    if never_started and isinstance(template, dict) and isinstance(old_template, dict):
        # A suspended job that never ran may still be re-targeted: scheduling directives, labels, annotations.
        comparable = {**template, "spec": {k: v for k, v in _dict(template, "spec").items()
                                           if k not in _SCHEDULING_DIRECTIVES}, "metadata": {}}
        old_comparable = {**old_template, "spec": {k: v for k, v in _dict(old_template, "spec").items()
                                                   if k not in _SCHEDULING_DIRECTIVES}, "metadata": {}}
        if comparable == old_comparable:
            return []
    return _immutable(template, old_template, "spec.template")


def _job_completions_update(spec: dict, old_spec: dict) -> list[FieldError]:
    completions, old_completions = spec.get("completions"), old_spec.get("completions")
    if spec.get("completionMode") != "Indexed":
        return _immutable(completions, old_completions, "spec.completions")
    # Elastic indexed jobs: completions may change together with parallelism.
    if completions == old_completions or completions is None or completions == spec.get("parallelism"):
        return []
    return [invalid("spec.completions", completions, "can only be modified in tandem with spec.parallelism")]


def job_update(obj: dict, old: dict) -> list[FieldError]:
    spec, old_spec = _dict(obj, "spec"), _dict(old, "spec")
    errs = _job_completions_update(spec, old_spec)
    errs += _selector_update(obj, old)
    errs += _job_template_update(spec, old_spec, old)
    for key in _JOB_IMMUTABLE:
        errs += _immutable(spec.get(key), old_spec.get(key), f"spec.{key}")
    return errs


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                  "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                  "(allow it to be set to 1 if it was previously negative)")


def _container_updates(spec: dict, old_spec: dict, key: str) -> tuple[list[FieldError], bool]:
    containers, old_containers = _list(spec, key), _list(old_spec, key)
    if len(containers) != len(old_containers):
        return [forbidden(f"spec.{key}", "pod updates may not add or remove containers")], True
    errs: list[FieldError] = []
    for i, ctr in _items(spec, key):
        image = _str(ctr, "image")
        if not image:
            errs.append(required(f"spec.{key}[{i}].image"))
        if image != image.strip():
            errs.append(invalid(f"spec.{key}[{i}].image", image, "must not have leading or trailing whitespace"))
    return errs, False


def _active_deadline_update(spec: dict, old_spec: dict) -> list[FieldError]:
    new, previous = spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if isinstance(new, int):
        if not 0 <= new <= MAX_INT32:
            return [invalid("spec.activeDeadlineSeconds", new, inclusive_range_error(0, MAX_INT32))]
        if isinstance(previous, int) and previous < new:
            return [invalid("spec.activeDeadlineSeconds", new, "must be less than or equal to previous value")]
    elif previous is not None:
        return [invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value")]
    return []


def _only_added_tolerations(spec: dict, old_spec: dict) -> list[FieldError]:
    new = [{k: v for k, v in tol.items() if k != "tolerationSeconds"} for _, tol in _items(spec, "tolerations")]
    for _, tol in _items(old_spec, "tolerations"):
        if {k: v for k, v in tol.items() if k != "tolerationSeconds"} not in new:
            return [forbidden("spec.tolerations", "existing toleration can not be modified except its "
                                                  "tolerationSeconds")]
    return []


def _only_deleted_gates(spec: dict, old_spec: dict) -> list[FieldError]:
    old_names = {_str(gate, "name") for _, gate in _items(old_spec, "schedulingGates")}
    return [forbidden(f"spec.schedulingGates[{i}].name",
                      f"only deletion is allowed, but found new scheduling gate '{_str(gate, 'name')}'")
            for i, gate in _items(spec, "schedulingGates") if _str(gate, "name") not in old_names]


def _munged_pod_spec(spec: dict, old_spec: dict) -> dict:
    """The new spec with every field a pod update may change put back to its old value."""
    munged = dict(spec)
    for key in ("containers", "initContainers"):
        if key in spec:
            old_images = [_str(ctr, "image") for ctr in _list(old_spec, key)]
            munged[key] = [{**ctr, "image": image} if isinstance(ctr, dict) else ctr
                           for ctr, image in zip(_list(spec, key), old_images, strict=False)]
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    old_grace = _opt_int(old_spec, "terminationGracePeriodSeconds")
    if old_grace is not None and old_grace < 0 and spec.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def pod_update(obj: dict, old: dict) -> list[FieldError]:
    spec, old_spec = _dict(obj, "spec"), _dict(old, "spec")
    errs: list[FieldError] = []
    for key in ("containers", "initContainers"):
        container_errs, stop = _container_updates(spec, old_spec, key)
        errs += container_errs
        if stop:
            return errs
    errs += _active_deadline_update(spec, old_spec)
    errs += _only_added_tolerations(spec, old_spec)
    errs += _only_deleted_gates(spec, old_spec)
    munged = _munged_pod_spec(spec, old_spec)
    if semantic(munged) != semantic(old_spec):
        errs.append(forbidden("spec", f"pod updates may not change fields other than {_POD_UPDATABLE}\n"
                                      + _spec_diff(old_spec, munged)))
    return errs


def _cluster_ips_update(spec: dict, old_spec: dict) -> list[FieldError]:
    ips, old_ips = _cluster_ips(spec), _cluster_ips(old_spec)
    if "ExternalName" in (spec.get("type"), old_spec.get("type")) or (ips[:1] == old_ips[:1] == ["None"]):
        return []
    if len(ips) == len(old_ips):
        return [invalid(f"spec.clusterIPs[{i}]", ips, "may not change once set")
                for i, ip in enumerate(old_ips) if ip != ips[i]]
    errs: list[FieldError] = []
    if len(ips) < len(old_ips):
        if not ips:
            errs.append(invalid("spec.clusterIPs[0]", ips, "primary clusterIP can not be unset"))
        elif ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", ips, "may not change once set"))
        if len(ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.clusterIPs[0]", ips, "`ipFamilyPolicy` must be set to 'SingleStack' when "
                                                           "releasing the secondary clusterIP"))
    elif old_ips and ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", ips, "may not change once set"))
    return errs


def service_update(obj: dict, old: dict) -> list[FieldError]:
    return _cluster_ips_update(_dict(obj, "spec"), _dict(old, "spec"))


def _immutable_payload(obj: dict, old: dict, keys: tuple[str, ...]) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs = [forbidden("immutable", IMMUTABLE_WHEN_SET)] if obj.get("immutable") is not True else []
    return errs + [forbidden(key, IMMUTABLE_WHEN_SET) for key in keys if obj.get(key) != old.get(key)]


def config_map_update(obj: dict, old: dict) -> list[FieldError]:
    return _immutable_payload(obj, old, ("data", "binaryData"))


def secret_update(obj: dict, old: dict) -> list[FieldError]:
    return _immutable(obj.get("type"), old.get("type"), "type") + _immutable_payload(obj, old, ("data",))


def _storage_request(spec: dict) -> Quantity | None:
    return _quantity(_dict(_dict(spec, "resources"), "requests").get("storage"))


def persistent_volume_claim_update(obj: dict, old: dict) -> list[FieldError]:
    spec, old_spec = _dict(obj, "spec"), _dict(old, "spec")
    comparable, old_comparable = dict(spec), dict(old_spec)
    if not _str(old_spec, "volumeName"):
        old_comparable["volumeName"] = spec.get("volumeName")  # binding sets it once
    if old_spec.get("storageClassName") is None:
        old_comparable["storageClassName"] = spec.get("storageClassName")  # a default class may come later
    if _dict(obj, "status").get("phase") == "Bound" and "resources" in spec:
        # Bound claims may be expanded: compare everything but the storage request.
        resources = dict(_dict(spec, "resources"))
        resources["requests"] = {**_dict(resources, "requests"),
                                 "storage": _dict(_dict(old_spec, "resources"), "requests").get("storage")}
        comparable["resources"] = resources
    errs: list[FieldError] = []
    if semantic(comparable) != semantic(old_comparable):
        errs.append(forbidden("spec", "spec is immutable after creation except resources.requests for bound "
                                      "claims\n" + _spec_diff(old_comparable, comparable)))
    new_size, old_size = _storage_request(spec), _storage_request(old_spec)
    capacity = _quantity(_dict(_dict(old, "status"), "capacity").get("storage"))
    if new_size is not None and old_size is not None and new_size.value < old_size.value:
        # RecoverVolumeExpansionFailure (beta in v1.32) allows shrinking back towards the real size.
        if new_size.value <= (capacity.value if capacity is not None else 0):
            errs.append(forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
    return errs + _immutable(spec.get("volumeMode"), old_spec.get("volumeMode"), "volumeMode")


def persistent_volume_update(obj: dict, old: dict) -> list[FieldError]:
    spec, old_spec = _dict(obj, "spec"), _dict(old, "spec")
    source = {key: spec[key] for key in _PV_SOURCES if key in spec}
    old_source = {key: old_spec[key] for key in _PV_SOURCES if key in old_spec}
    errs: list[FieldError] = []
    if semantic(source) != semantic(old_source):
        errs.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after "
                                                             "creation\n" + _spec_diff(old_source, source)))
    return errs + _immutable(spec.get("volumeMode"), old_spec.get("volumeMode"), "volumeMode")


def node_update(obj: dict, old: dict) -> list[FieldError]:
    spec, old_spec = _dict(obj, "spec"), _dict(old, "spec")
    errs: list[FieldError] = []
    old_cidrs = _list(old_spec, "podCIDRs")
    if old_cidrs and old_cidrs != _list(spec, "podCIDRs"):
        errs.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
    old_provider = _str(old_spec, "providerID")
    if old_provider and old_provider != _str(spec, "providerID"):
        errs.append(forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid'))
    if spec.get("externalID") != old_spec.get("externalID"):
        errs.append(forbidden("spec.externalID", "may not be updated"))
    return errs


def _role_ref_update(obj: dict, old: dict) -> list[FieldError]:
    role_ref = obj.get("roleRef")
    return [] if role_ref == old.get("roleRef") else [invalid("roleRef", role_ref, "cannot change roleRef")]


def role_binding_update(obj: dict, old: dict) -> list[FieldError]:
    return _role_ref_update(obj, old)


def cluster_role_binding_update(obj: dict, old: dict) -> list[FieldError]:
    return _role_ref_update(obj, old)


def priority_class_update(obj: dict, old: dict) -> list[FieldError]:
    errs = [forbidden("value", "may not be changed in an update.")] if obj.get("value") != old.get("value") else []
    return errs + _immutable(obj.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy")


def storage_class_update(obj: dict, old: dict) -> list[FieldError]:
    errs = [forbidden(key, f"updates to {key} are forbidden.")
            for key in ("parameters", "provisioner", "reclaimPolicy") if obj.get(key) != old.get(key)]
    return errs + _immutable(obj.get("volumeBindingMode"), old.get("volumeBindingMode"), "volumeBindingMode")


def endpoint_slice_update(obj: dict, old: dict) -> list[FieldError]:
    return _immutable(obj.get("addressType"), old.get("addressType"), "addressType")


def controller_revision_update(obj: dict, old: dict) -> list[FieldError]:
    return _immutable(obj.get("data"), old.get("data"), "data")


def ingress_class_update(obj: dict, old: dict) -> list[FieldError]:
    return _immutable(_dict(obj, "spec").get("controller"), _dict(old, "spec").get("controller"), "spec.controller")


# --- admissionregistration.k8s.io/v1 (the rules live in pyk8s.api.admissionregistration) ---

def mutating_webhook_configuration(obj: dict) -> list[FieldError]:
    return admissionregistration.validate_mutating(obj)


def validating_webhook_configuration(obj: dict) -> list[FieldError]:
    return admissionregistration.validate_validating(obj)


def validating_admission_policy(obj: dict) -> list[FieldError]:
    return admissionregistration.validate_policy(obj)


def validating_admission_policy_binding(obj: dict) -> list[FieldError]:
    return admissionregistration.validate_binding(obj)


def certificate_signing_request(obj: dict) -> list[FieldError]:
    return certificates.certificate_signing_request(obj)


def certificate_signing_request_update(obj: dict, old: dict) -> list[FieldError]:
    return certificates.certificate_signing_request_update(obj, old)
