"""managedFields bookkeeping and server-side apply, as kube-apiserver v1.32 does them.

Upstream splits this between k8s.io/apimachinery pkg/util/managedfields (the chain of managers
around every write) and sigs.k8s.io/structured-merge-diff v4 (field sets, typed compare, merge,
prune). This module reproduces their observable behaviour on JSON dicts:

Field sets (`FieldSet`): a frozenset of paths; a path is a tuple of path elements written as in
FieldsV1 (`f:name`, `k:{"name":"x"}` with the key fields sorted by name and their values in Go's
JSON, `v:<json>`, `i:<index>`). A set is flat: holding `.spec.template` says nothing about its
children. `parse_fields_v1` / `serialize_fields_v1` convert to and from FieldsV1; serialization
orders keys the way structured-merge-diff does (field names, then keys, values, indices) and marks
a path that is both a member and a parent with `".": {}`.

Which fields a value sets follows the schema compiled from the v1.32 definitions (`type_info`):
lists are atomic unless `x-kubernetes-list-type` says `set` (elements by value) or `map` (by
`x-kubernetes-list-map-keys`), or, without a list type, `x-kubernetes-patch-strategy: merge`
makes them associative (by `x-kubernetes-patch-merge-key`, a set without one), as upstream's
schema conversion does; maps and structs are granular unless `x-kubernetes-map-type: atomic`;
Quantity, IntOrString and times are scalars, RawExtension is atomic, values outside the schema
are "deduced" (maps granular, lists atomic). Key fields missing from a list element use their
`+default` (ContainerPort/ServicePort `protocol` = "TCP", LocalObjectReference `name` = "").

Writes other than apply (`record_update`, upstream's FieldManager.Update chain):
- the managers come from the request's managedFields if it sets a decodable non-empty list, else
  from the stored object (subresource writes always use the stored ones); `[]` or `[{}]` resets
  them to nothing;
- nothing is tracked on an update of an object without managers (tracking starts again with the
  next apply); a create always tracks;
- the fields the write added or changed (a typed compare of old and new, with the subresource's
  reset fields ignored) move to the entry (manager, "Update", apiVersion, subresource), are taken
  from every other entry, and removed fields leave every entry; entries left empty are dropped;
  the entry's time is set only when it gained fields;
- apiVersion, kind, metadata itself, metadata.name/namespace/uid/resourceVersion/generation/
  creationTimestamp/selfLink/clusterName/managedFields are never owned;
- beyond 10 Update entries the oldest (by time, then identity) are merged per apiVersion into
  "ancient-changes";
- entries are written sorted by operation ("Apply" first), time, manager, apiVersion, subresource.

The compare treats a field Go always serializes (non-pointer structs; slices, maps and pointers
without omitempty, per protobuf_schema.json) as present wherever its struct is, as upstream's compare of
two decoded objects sees it: creating a Deployment owns `f:spec` only through its children, while
a newly added `f:rollingUpdate` is owned itself (`".": {}`).

Server-side apply (`apply`, upstream's FieldManager.Apply chain):
- the configuration is merged into the live object (maps by key, associative lists by key or
  value in upstream's order, everything else replaced);
- the manager's Apply entry becomes exactly the configuration's fields (minus reset and ignored
  fields); fields its previous Apply entry held that the configuration dropped are removed from
  the object unless another entry holds them;
- a field the apply adds or changes that another entry holds is a conflict (`ApplyConflict`,
  409), unless `force`, which moves it; an object without managers first gets a
  "before-first-apply" Update entry for everything it holds;
- for the manager "kubectl", conflicts that the last-applied-configuration annotation explains are
  forced (the client-side to server-side apply upgrade), and an existing annotation is rewritten
  from the configuration;
- an apply that changes nothing leaves the object and the entry's time alone.

Also here: `keep_unchanged_timestamps` (upstream's IgnoreManagedFieldsTimestampsTransformer, for
writes that end up changing nothing but entry times), `reset_fields` (what each endpoint's
strategy resets), `type_info_from_schema` (custom resources).

Not reproduced: conversion of entries recorded at another apiVersion of the kind (their paths are
used as they are), upstream's schema-change reconciliation, the /scale handler's mapping of
entries, and typed validation errors other than those of associative lists (the decoder and
validation report those).

Parsed and serialized field sets are memoized by content (a few hundred sets of ~15 KiB each at
most), and an entry that did not change is written back from the FieldsV1 it was read from when
that was already in canonical form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson

from pyk8s.api.errors import APIError, bad_request
from pyk8s.api.gofmt import quote
from pyk8s.api.schemas import INT_OR_STRING, definition_for, definitions, ref_name, schema_type

FieldPath = tuple[str, ...]
FieldSet = frozenset[FieldPath]

APPLY = "Apply"
UPDATE = "Update"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
_ANCIENT_CHANGES = "ancient-changes"
_BEFORE_FIRST_APPLY = "before-first-apply"
_CSA_UPGRADER = "kubectl"  # the only manager whose applies upgrade from client-side apply
_ANNOTATIONS_LIMIT = 256 * 1024  # apimachinery's TotalAnnotationSizeLimitB

# stripmeta.go: fields no manager ever owns (removed from the writer's set, not recursively).
_STRIP = frozenset({
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *(("f:metadata", "f:" + name) for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
        "managedFields", "resourceVersion")),
})

_ABSENT: Any = object()  # a missing value, as opposed to a JSON null (None)
_EMPTY_MAP: dict = {}  # read-only stand-in for a missing or null map


class ApplyConflict(Exception):
    """A server-side apply that would change fields other managers own (HTTP 409 Conflict).

    `message` and `causes` are upstream's (conflict.go); `api_error()` builds the Status.
    """

    def __init__(self, conflicts: dict[tuple, list[FieldPath]]) -> None:
        self.conflicts = conflicts
        self.causes = [{"reason": "FieldManagerConflict", "message": "conflict with " + _print_manager(ident),
                        "field": path_string(path)}
                       for ident in _sorted_idents(conflicts) for path in conflicts[ident]]
        self.message = _conflict_message(conflicts)
        super().__init__(self.message)

    def api_error(self) -> APIError:
        return APIError(409, "Conflict", self.message, {"causes": self.causes})


class _TypedError(Exception):
    """A value the schema cannot type (upstream's typed.ValidationErrors)."""


# ---------------------------------------------------------------------------------------------
# Go's renderings: encoding/json for keys and annotations, %v and %q for error messages.


def _float_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of |value| and the position of the decimal point in them."""
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    return text, len(text) + int(exponent)


def _go_float(value: float, json_style: bool) -> str:
    """encoding/json's float64 (json_style) or fmt's %v: plain digits unless the exponent is
    below -6 (json) / -4 (%v) or from 21 (json) / 6 (%v) on."""
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    text, point = _float_digits(value)
    head = "-" if value < 0 else ""
    exp10 = point - 1
    exponential = (abs(value) < 1e-6 or abs(value) >= 1e21) if json_style else (exp10 < -4 or exp10 >= 6)
    if exponential:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        digits = f"{abs(exp10):02d}" if not json_style or exp10 >= 0 else str(abs(exp10))
        return f"{head}{mantissa}e{'+' if exp10 >= 0 else '-'}{digits}"
    if point <= 0:
        return f"{head}0.{'0' * -point}{text}"
    if point >= len(text):
        return head + text + "0" * (point - len(text))
    return f"{head}{text[:point]}.{text[point:]}"


_HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


# Printable ASCII that Go's encoder writes as is (it escapes ", \ and, for HTML safety, <, >, &).
_PLAIN_JSON = re.compile("[" + re.escape("".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\<>&')) + "]*")


@lru_cache(maxsize=16384)
def _json_str(s: str) -> str:
    """A JSON string as Go writes it (HTML-safe)."""
    if _PLAIN_JSON.fullmatch(s):
        return f'"{s}"'
    out = orjson.dumps(s).decode()
    for char, escape in _HTML_ESCAPES:
        out = out.replace(char, escape)
    return out


def _json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes a decoded value (map keys sorted)."""
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is float:
        return _go_float(value, True)
    if kind is dict:
        return "{" + ",".join(_json_str(k) + ":" + _json(value[k]) for k in sorted(value)) + "}"
    return "[" + ",".join(map(_json, value)) + "]"


def _go_v(value: Any) -> str:
    """value.ToString: how field paths print key and set values."""
    kind = type(value)
    if kind is str:
        return quote(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float:
        return _go_float(value, False)
    if kind is list:
        return "[" + ",".join(map(_go_v, value)) + "]"
    if kind is dict:
        return "".join(f"{k}={_go_v(v)}" for k, v in value.items())
    return str(value)




# ---------------------------------------------------------------------------------------------
# Path elements and FieldsV1.


_ATOI = re.compile(r"[+-]?[0-9]+")


@lru_cache(maxsize=8192)
def _canonical_pe(key: str) -> str | None:
    """A FieldsV1 key in canonical form; None for element types this version does not know
    (upstream drops those); ValueError for malformed keys (upstream's messages)."""
    if len(key) < 2:
        raise ValueError("key must be 2 characters long:")
    if key[1] != ":":
        raise ValueError(f"missing colon: {key}")
    kind, body = key[0], key[2:]
    if kind == "f":
        return key
    if kind == "i":
        if not _ATOI.fullmatch(body):
            raise ValueError(f"strconv.Atoi: parsing {quote(body)}: invalid syntax")
        return f"i:{int(body)}"
    if kind == "v":
        return "v:" + _json(orjson.loads(body))
    if kind == "k":
        fields = orjson.loads(body)
        if type(fields) is not dict:
            raise ValueError(f"invalid key element: {body}")
        return "k:{" + ",".join(_json_str(name) + ":" + _json(fields[name]) for name in sorted(fields)) + "}"
    return None


def parse_fields_v1(fields: dict | None) -> FieldSet:
    """The set a FieldsV1 value describes. Raises ValueError where upstream's decoder fails."""
    return _parse(fields)[0]


def _parse(fields: dict | None) -> tuple[FieldSet, bool]:
    """The set, and whether `fields` is exactly what serialize_fields_v1 writes for it."""
    out: set[FieldPath] = set()
    canonical = [True]
    if fields is not None:
        if _parse_node(fields, (), out, canonical) and fields:
            canonical[0] = False  # a "." at the top, or only unknown elements
    return frozenset(out), canonical[0]


def _parse_node(node: Any, prefix: FieldPath, out: set[FieldPath], canonical: list[bool]) -> bool:
    """Adds the paths below `node`; True when the node itself is a member: it says ".", or
    nothing below it is (a leaf). Clears canonical[0] on anything serialization would write
    differently (order, spelling of keys, nulls, redundant or dropped entries)."""
    if node is None:
        return True
    if type(node) is not dict:
        raise ValueError(f"expect {{ or n, but found {_json(node)[:1]}")
    member = False
    count = len(out)
    previous: tuple | None = None
    for key, child in node.items():
        if key == ".":
            member = True
            if previous is not None or child != {}:
                canonical[0] = False
            continue
        pe = key if key[:2] == "f:" else _canonical_pe(key)
        if pe is None or pe != key:
            canonical[0] = False
            if pe is None:
                continue
        if canonical[0]:
            order = _pe_order(pe)
            if previous is not None and order <= previous:
                canonical[0] = False
            previous = order
        path = (*prefix, pe)
        if type(child) is dict and not child:
            out.add(path)
        elif child is None:
            canonical[0] = False
            out.add(path)
        elif _parse_node(child, path, out, canonical):
            out.add(path)
    if member and len(out) == count:
        canonical[0] = False  # a lone "." is written as {}
    return member or len(out) == count


@lru_cache(maxsize=16384)
def _pe_order(pe: str) -> tuple:
    """PathElement.Compare as a sort key: field names, then keys, then values, then indices."""
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((name, _value_order(value)) for name, value in orjson.loads(body).items()))
    if kind == "v":
        return (2, _value_order(orjson.loads(body)))
    return (3, int(body))


def _value_order(value: Any) -> tuple:
    """value.Compare as a sort key: numbers, strings, booleans, lists, maps, null."""
    kind = type(value)
    if kind is bool:
        return (2, value)
    if kind is int or kind is float:
        return (0, value)
    if kind is str:
        return (1, value)
    if kind is list:
        return (3, tuple(map(_value_order, value)))
    if kind is dict:
        return (4, tuple((k, _value_order(v)) for k, v in sorted(value.items())))
    return (5,)


def serialize_fields_v1(fields: FieldSet) -> dict:
    """The FieldsV1 value of a set, keys in upstream's order."""
    return orjson.loads(_serialize(fields))


@lru_cache(maxsize=512)
def _serialize(fields: FieldSet) -> bytes:
    root: dict = {}
    for path in fields:
        node = root
        for pe in path:
            child = node.get(pe)
            if child is None:
                child = node[pe] = {}
            node = child
        node["."] = None
    return orjson.dumps(_emit(root))


def _emit(node: dict) -> dict:
    member = node.pop(".", _ABSENT) is not _ABSENT
    if not node:
        return node  # a leaf
    keys = sorted(node, key=_pe_order) if len(node) > 1 else list(node)
    out: dict = {".": {}} if member else {}
    for pe in keys:
        out[pe] = _emit(node[pe])
    return out


def _pe_string(pe: str) -> str:
    """PathElement.String(): `.name`, `[name="x",port=80]`, `[="x"]`, `[0]`."""
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return "." + body
    if kind == "k":
        return "[" + ",".join(f"{name}={_go_v(value)}" for name, value in orjson.loads(body).items()) + "]"
    if kind == "v":
        return f"[={_go_v(orjson.loads(body))}]"
    return f"[{body}]"


def path_string(path: FieldPath) -> str:
    """How upstream prints a path in errors, e.g. `.spec.template.spec.containers[name="a"].image`."""
    return "".join(map(_pe_string, path))


def _iteration_order(paths: list[FieldPath]) -> list[FieldPath]:
    """Set.Iterate's order: at each node its members first, then each child's subtree."""
    root: dict = {}
    for path in paths:
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
        node["."] = path
    out: list[FieldPath] = []

    def walk(node: dict) -> None:
        children = sorted((k for k in node if k != "."), key=_pe_order)
        out.extend(node[pe]["."] for pe in children if "." in node[pe])
        for pe in children:
            walk(node[pe])

    walk(root)
    return out


# ---------------------------------------------------------------------------------------------
# Schema metadata, compiled once per Go type.

_ATOMIC, _SET, _ASSOCIATIVE = 1, 2, 3  # list kinds; 0: the type has no list form
_MAP, _LIST, _LEAF = 0, 1, 2  # how a value is walked

# `+default` markers on list-map key fields (upstream's OpenAPI carries them; the definitions
# this module reads do not).
_KEY_DEFAULTS = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.LocalObjectReference": {"name": ""},
}
_SCALAR_DEFINITIONS = {INT_OR_STRING, "io.k8s.apimachinery.pkg.api.resource.Quantity"}
_ATOMIC_DEFINITIONS = {"io.k8s.apimachinery.pkg.runtime.RawExtension"}


class _Type:
    """One schema type: the forms a value of it may take (map, list, scalar) and how each is
    tracked."""

    __slots__ = ("elem", "emitted", "fields", "key_defaults", "key_names", "key_prefixes", "list_elem", "list_kind",
                 "map_atomic", "scalar")

    def __init__(self) -> None:
        self.fields: dict[str, _Type] | None = None  # None: no map form; {} for plain maps
        self.elem: _Type | None = None  # map values outside `fields` (set with `fields`)
        self.map_atomic = False
        self.list_kind = 0
        self.list_elem: _Type | None = None  # set with `list_kind`
        self.key_names: tuple[str, ...] = ()  # list-map keys, sorted by name
        self.key_prefixes: tuple[str, ...] = ()  # how each key starts in a `k:` element
        self.key_defaults: dict[str, Any] = {}
        self.scalar = False
        # Fields Go always writes, with the value an unset one decodes to ({} or null).
        self.emitted: dict[str, Any] = _EMPTY_MAP

    def copy(self) -> _Type:
        clone = _Type()
        for slot in _Type.__slots__:
            setattr(clone, slot, getattr(self, slot))
        return clone


def _deduced() -> _Type:
    """Upstream's __untyped_deduced_: maps are granular (of deduced values), lists atomic."""
    t = _Type()
    t.fields, t.elem, t.list_kind, t.list_elem, t.scalar = {}, t, _ATOMIC, t, True
    return t


_DEDUCED = _deduced()
_SCALAR = _Type()
_SCALAR.scalar = True
_UNTYPED_ATOMIC = _Type()
_UNTYPED_ATOMIC.fields, _UNTYPED_ATOMIC.map_atomic, _UNTYPED_ATOMIC.list_kind = {}, True, _ATOMIC
_UNTYPED_ATOMIC.scalar = True


@dataclass(frozen=True)
class TypeInfo:
    """What managed-fields tracking needs to know about a kind."""

    group: str
    version: str
    kind: str
    root: _Type
    status_subresource: bool  # whether writes to the main resource ignore `status`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


@cache
def type_info(api_version: str, kind: str) -> TypeInfo:
    """The tracking metadata of a built-in kind; kinds without a definition (custom resources
    without a schema) are tracked as deduced values."""
    group, version = _split_api_version(api_version)
    name = definition_for(group, version, kind)
    if name is None:
        return TypeInfo(group, version, kind, _DEDUCED, False)
    return TypeInfo(group, version, kind, _compile_definition(name),
                    "status" in (definitions()[name].get("properties") or {}))


def type_info_from_schema(api_version: str, kind: str, schema: dict | None, *,
                          status_subresource: bool) -> TypeInfo:
    """The tracking metadata of a custom resource from its version's openAPIV3Schema; metadata is
    always typed as ObjectMeta, as the apiextensions apiserver does."""
    group, version = _split_api_version(api_version)
    root = _compile_schema(schema or {}).copy()
    root.fields = dict(root.fields or {})
    root.fields["metadata"] = _compile_definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    root.fields.setdefault("apiVersion", _SCALAR)
    root.fields.setdefault("kind", _SCALAR)
    return TypeInfo(group, version, kind, root, status_subresource)


_compiled: dict[str, _Type] = {}


def _compile_definition(name: str) -> _Type:
    node = _compiled.get(name)
    if node is not None:
        return node
    if name in _SCALAR_DEFINITIONS:
        return _SCALAR
    if name in _ATOMIC_DEFINITIONS:
        return _UNTYPED_ATOMIC
    schema = definitions()[name]
    if schema.get("format") == "date-time":
        return _SCALAR
    node = _compiled[name] = _Type()  # before compiling the fields: definitions are recursive
    compiled = _compile_schema(schema, node)
    if compiled is not node:  # not a struct: share the compiled form
        _compiled[name] = compiled
        return compiled
    node.emitted = _go_emitted().get(name, _EMPTY_MAP)
    return node


def _compile_schema(schema: dict, into: _Type | None = None) -> _Type:
    ref = schema.get("$ref")
    if ref is not None:
        node = _compile_definition(ref_name(ref))
        map_type = schema.get("x-kubernetes-map-type")
        if map_type and node.fields is not None and node.map_atomic != (map_type == "atomic"):
            node = node.copy()
            node.map_atomic = map_type == "atomic"
        return node
    kind = schema_type(schema)
    if kind in ("string", "integer", "number", "boolean") or schema.get("x-kubernetes-int-or-string"):
        return _SCALAR
    node = into or _Type()
    if kind in (None, "object"):
        properties = schema.get("properties") or {}
        node.fields = {key: _compile_schema(prop) for key, prop in properties.items()}
        extra = schema.get("additionalProperties")
        node.elem = _compile_schema(extra) if isinstance(extra, dict) else _DEDUCED
        node.map_atomic = schema.get("x-kubernetes-map-type") == "atomic"
    if kind in (None, "array"):
        _compile_list(schema, node)
    node.scalar = kind is None
    return node


def _compile_list(schema: dict, node: _Type) -> None:
    items = schema.get("items")
    node.list_elem = _compile_schema(items) if isinstance(items, dict) else _UNTYPED_ATOMIC
    list_type = schema.get("x-kubernetes-list-type")
    keys: list[str] = []
    if list_type is not None:
        node.list_kind = {"set": _SET, "map": _ASSOCIATIVE}.get(list_type, _ATOMIC)
        keys = list(schema.get("x-kubernetes-list-map-keys") or ()) if list_type == "map" else []
    elif schema.get("x-kubernetes-patch-strategy") in ("merge", "merge,retainKeys"):
        merge_key = schema.get("x-kubernetes-patch-merge-key")
        node.list_kind = _ASSOCIATIVE if merge_key else _SET
        keys = [merge_key] if merge_key else []
    else:
        node.list_kind = _ATOMIC
    node.key_names = tuple(sorted(keys))
    node.key_prefixes = tuple(_json_str(name) + ":" for name in node.key_names)
    ref = (items or {}).get("$ref") if isinstance(items, dict) else None
    defaults = _KEY_DEFAULTS.get(ref_name(ref), {}) if ref else {}
    node.key_defaults = {k: v for k, v in defaults.items() if k in keys}


@cache
def _go_emitted() -> dict[str, dict[str, Any]]:
    """Definition name -> the fields Go always serializes and what an unset one reads as: a
    non-pointer struct ({}), a slice, map or pointer without omitempty (null)."""
    try:
        messages = orjson.loads(Path(__file__).with_name("protobuf_schema.json").read_bytes())["messages"]
    except (OSError, KeyError, orjson.JSONDecodeError):
        return {}

    def emitted(message: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in messages.get(message, {}).get("fields", ()):
            if f.get("inline"):  # an embedded struct's fields are its parent's
                out.update(emitted(f.get("message", "")))
            elif f.get("repeated") or f.get("pointer") or f.get("type") == "map":
                if not f.get("omitempty"):
                    out[f["name"]] = None
            elif f.get("type") == "message" and "properties" in definitions().get(_definition_name(f["message"]), {}):
                out[f["name"]] = _EMPTY_MAP
        return out

    return {_definition_name(message): fields for message in messages if (fields := emitted(message))}


def _definition_name(message: str) -> str:
    """Protobuf message name -> OpenAPI definition name (k8s.io.api... -> io.k8s.api...)."""
    return "io.k8s." + message.removeprefix("k8s.io.")


# ---------------------------------------------------------------------------------------------
# Walks over values: the field set of a value, the typed compare, merge and removal.


def _kind(value: Any, t: _Type) -> int:
    kind = type(value)
    if kind is dict:
        return _MAP if t.fields is not None else _LEAF
    if kind is list:
        return _LIST if t.list_kind else _LEAF
    if value is None:  # null takes the first form the type has: map, scalar, list
        if t.fields is not None:
            return _MAP
        if t.list_kind and not t.scalar:
            return _LIST
    return _LEAF


def _item_pe(t: _Type, item: Any) -> str:
    """The path element of an element of an associative list."""
    if t.key_names:
        if type(item) is not dict:
            raise _TypedError("associative list with keys may not have non-map elements")
        parts = []
        for name, prefix in zip(t.key_names, t.key_prefixes, strict=True):
            value = item.get(name, _ABSENT)
            if value is _ABSENT:
                value = t.key_defaults.get(name, _ABSENT)
                if value is _ABSENT:
                    raise _TypedError(f"associative list with keys has an element that omits key field "
                                      f"{quote(name)} (and doesn't have default value)")
            parts.append(prefix + (_json_str(value) if type(value) is str else _json(value)))
        return "k:{" + ",".join(parts) + "}"
    kind = type(item)
    if kind is dict:
        raise _TypedError("associative list without keys has an element that's a map type")
    if kind is list:
        raise _TypedError("not supported: associative list with lists as elements")
    if item is None:
        raise _TypedError("associative list without keys has an element that's an explicit null")
    return "v:" + _json(item)


def _to_set(value: Any, t: _Type, path: FieldPath, out: set[FieldPath], errors: list | None) -> None:
    """TypedValue.ToFieldSet. With `errors`, also validates associative lists as a patch must be
    (no duplicates), collecting (path, message) instead of raising."""
    kind = type(value)
    if kind is dict and t.fields is not None:
        if t.map_atomic:
            out.add(path)
            return
        fields, elem = t.fields, t.elem
        for key, child in value.items():
            child_path = (*path, "f:" + key)
            child_kind = type(child)
            if child_kind is dict or child_kind is list:
                field = fields.get(key)
                _to_set(child, field or elem, child_path, out, errors)
                # Struct fields are implied by their children; map entries and empty maps are not.
                if field is None or (child_kind is dict and not child):
                    out.add(child_path)
            else:  # scalars and nulls are leaves
                out.add(child_path)
        return
    if kind is list and t.list_kind:
        if t.list_kind == _ATOMIC:
            out.add(path)
        else:
            _items_to_set(value, t, path, out, errors)
        return
    if path:
        out.add(path)


def _items_to_set(items: list, t: _Type, path: FieldPath, out: set[FieldPath], errors: list | None) -> None:
    pes = []
    for i, item in enumerate(items):
        try:
            pes.append(_item_pe(t, item))
        except _TypedError as err:
            if errors is None:
                raise
            errors.append((path, f"element {i}: {err}"))
            return
    duplicates: set[str] = set()
    if len(set(pes)) != len(pes):
        seen: set[str] = set()
        for pe in pes:
            if pe in seen and errors is not None:
                errors.append((path, f"duplicate entries for key {_pe_string(pe)}"))
            (duplicates if pe in seen else seen).add(pe)
    elem = t.list_elem
    for pe, item in zip(pes, items, strict=True):
        item_path = (*path, pe)
        if pe not in duplicates:  # a duplicated element is owned as a whole
            _to_set(item, elem, item_path, out, errors)
        out.add(item_path)


def fields_of(obj: dict, meta: TypeInfo) -> FieldSet:
    """The fields an object sets, as a manager applying it would own them (ignored metadata and
    apiVersion/kind excluded). Raises ValueError for elements of associative lists the schema
    cannot identify."""
    out: set[FieldPath] = set()
    try:
        _to_set(obj, meta.root, (), out, None)
    except _TypedError as err:
        raise ValueError(str(err)) from None
    return frozenset(out) - _STRIP


class _Diff:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: set[FieldPath] = set()
        self.removed: set[FieldPath] = set()
        self.modified: set[FieldPath] = set()

    def changed(self) -> set[FieldPath]:
        return self.added | self.modified


def _compare(lhs: Any, rhs: Any, t: _Type, path: FieldPath, diff: _Diff) -> None:
    """TypedValue.Compare: leaves (and atomic values) that were added, removed or modified, and
    the map entries and list elements that appeared or disappeared."""
    if lhs is rhs:
        return
    if lhs is _ABSENT:
        kind = _kind(rhs, t)
    elif rhs is _ABSENT:
        kind = _kind(lhs, t)
    else:
        if lhs == rhs:
            return
        kind = _kind(lhs, t)
        if kind != _kind(rhs, t):
            kind = _LEAF
    if kind == _MAP and not t.map_atomic:
        ldict, rdict = type(lhs) is dict, type(rhs) is dict
        lmap = lhs if ldict else _EMPTY_MAP
        rmap = rhs if rdict else _EMPTY_MAP
        if lmap or rmap:  # both empty: compared as a leaf, keeping {} and null apart
            fields, elem = t.fields, t.elem
            # A struct side holds what Go would have written for its unset fields.
            lemitted = t.emitted if ldict else _EMPTY_MAP
            remitted = t.emitted if rdict else _EMPTY_MAP
            for key, lvalue in lmap.items():
                rvalue = rmap.get(key, _ABSENT)
                if rvalue is _ABSENT:
                    rvalue = remitted.get(key, _ABSENT)
                elif lvalue is rvalue or lvalue == rvalue:
                    continue
                _compare(lvalue, rvalue, fields.get(key) or elem, (*path, "f:" + key), diff)
            for key, rvalue in rmap.items():
                if key not in lmap:
                    _compare(lemitted.get(key, _ABSENT), rvalue, fields.get(key) or elem, (*path, "f:" + key), diff)
            if lemitted is not remitted:  # a struct appeared or went: so did its always-written fields
                for key, default in t.emitted.items():
                    if key not in lmap and key not in rmap:
                        _compare(default if ldict else _ABSENT, default if rdict else _ABSENT,
                                 fields.get(key) or elem, (*path, "f:" + key), diff)
            _mark_node(lhs, rhs, path, diff)
            return
    elif kind == _LIST and t.list_kind != _ATOMIC:
        litems = lhs if type(lhs) is list else ()
        ritems = rhs if type(rhs) is list else ()
        if litems or ritems:
            _compare_items(litems, ritems, t, path, diff)
            _mark_node(lhs, rhs, path, diff)
            return
    if lhs is _ABSENT:
        diff.added.add(path)
    elif rhs is _ABSENT:
        diff.removed.add(path)
    elif lhs != rhs:
        diff.modified.add(path)


def _mark_node(lhs: Any, rhs: Any, path: FieldPath, diff: _Diff) -> None:
    if path and lhs is _ABSENT:
        diff.added.add(path)
    elif path and rhs is _ABSENT:
        diff.removed.add(path)


def _compare_items(litems: Any, ritems: Any, t: _Type, path: FieldPath, diff: _Diff) -> None:
    left: dict[str, list] = {}
    order: list[str] = []
    for item in litems:
        pe = _item_pe(t, item)
        if pe in left:
            left[pe].append(item)
        else:
            left[pe] = [item]
            order.append(pe)
    right: dict[str, list] = {}
    for item in ritems:
        pe = _item_pe(t, item)
        if pe in right:
            right[pe].append(item)
        else:
            right[pe] = [item]
            if pe not in left:
                order.append(pe)
    elem = t.list_elem
    for pe in order:
        lvalues, rvalues = left.get(pe, ()), right.get(pe, ())
        item_path = (*path, pe)
        if len(lvalues) <= 1 and len(rvalues) <= 1:
            _compare(lvalues[0] if lvalues else _ABSENT, rvalues[0] if rvalues else _ABSENT, elem, item_path, diff)
        elif len(lvalues) >= 2 and len(rvalues) >= 2:  # duplicates on both sides compare as a whole
            if lvalues != rvalues:
                diff.modified.add(item_path)
        elif len(lvalues) >= 2:
            if rvalues:
                _compare(_ABSENT, rvalues[0], elem, item_path, diff)
            diff.removed.add(item_path)
        else:
            if lvalues:
                _compare(lvalues[0], _ABSENT, elem, item_path, diff)
            diff.added.add(item_path)


def _merge(lhs: Any, rhs: Any, t: _Type) -> Any:
    """TypedValue.Merge (live, config): the configuration's leaves win. Unchanged subtrees of
    the live object are shared, not copied."""
    if lhs is rhs or lhs == rhs:
        return lhs
    kind = _kind(rhs, t)
    if kind != _kind(lhs, t):
        return rhs
    if kind == _MAP and not t.map_atomic:
        lmap = lhs if type(lhs) is dict else None
        rmap = rhs if type(rhs) is dict else None
        if not lmap or rmap is None:  # an empty side: the other one; a null config keeps the live map
            return rhs if not lmap else lhs
        out = dict(lmap)
        fields, elem = t.fields, t.elem
        for key, rvalue in rmap.items():
            lvalue = lmap.get(key, _ABSENT)
            out[key] = rvalue if lvalue is _ABSENT else _merge(lvalue, rvalue, fields.get(key) or elem)
        return out
    if kind == _LIST and t.list_kind != _ATOMIC:
        litems = lhs if type(lhs) is list else None
        ritems = rhs if type(rhs) is list else None
        if not litems or ritems is None:
            return rhs if not litems else lhs
        return _merge_items(litems, ritems, t)
    return rhs


def _merge_items(litems: list, ritems: list, t: _Type) -> list:
    """Merges associative lists the way structured-merge-diff orders them: the configuration's
    order for its elements, live-only elements kept where they were relative to them."""
    rpes = [_item_pe(t, item) for item in ritems]
    rvalues = dict(zip(rpes, ritems, strict=True))
    lpes: list[str] = []
    lvalues: dict[str, Any] = {}
    for item in litems:
        pe = _item_pe(t, item)
        lpes.append(pe)
        lvalues[pe] = None if pe in lvalues else item  # a duplicated element merges as null
    shared = [pe for pe in rpes if pe in lvalues]
    shared_at = 0
    next_shared = shared[0] if shared else None
    merged: set[str] = set()
    out = []
    elem = t.list_elem
    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                merged.add(pe)
                out.append(_merge(lvalues[pe], rvalues[pe], elem))
                li += 1
                ri += 1
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
                continue
            if pe in rvalues and next_shared is not None and next_shared != pe:
                li += 1  # a shared element, but not the one due now
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in rvalues:
                out.append(litems[li])
                li += 1
                continue
            if pe in merged:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            merged.add(pe)
            out.append(_merge(lvalues[pe], rvalues[pe], elem) if pe in lvalues else rvalues[pe])
            ri += 1
            if next_shared is not None and next_shared == pe:
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
    return out


def _trie(fields: set[FieldPath]) -> dict:
    """pe -> [member, children] for the removal walk."""
    root: dict = {}
    for path in fields:
        node = root
        for pe in path[:-1]:
            entry = node.get(pe)
            if entry is None:
                entry = node[pe] = [False, {}]
            node = entry[1]
        entry = node.get(path[-1])
        if entry is None:
            node[path[-1]] = [True, {}]
        else:
            entry[0] = True
    return root


def _remove(value: Any, t: _Type, trie: dict) -> Any:
    """TypedValue.RemoveItems: drops members of the set (with their subtrees); a container whose
    contents all went becomes null (_ABSENT at the top of a descent)."""
    kind = type(value)
    if kind is dict and t.fields is not None:
        if not value or t.map_atomic:
            return _ABSENT
        out = {}
        fields, elem = t.fields, t.elem
        for key, child in value.items():
            entry = trie.get("f:" + key)
            if entry is not None:
                if entry[0]:
                    continue
                if entry[1]:
                    child = _remove(child, fields.get(key) or elem, entry[1])
                    child = None if child is _ABSENT else child
            out[key] = child
        return out or _ABSENT
    if kind is list and t.list_kind:
        if not value or t.list_kind == _ATOMIC:
            return _ABSENT
        items = []
        for item in value:
            entry = trie.get(_item_pe(t, item))
            if entry is not None:
                if entry[0]:
                    continue
                if entry[1]:
                    item = _remove(item, t.list_elem, entry[1])
                    item = None if item is _ABSENT else item
            items.append(item)
        return items or _ABSENT
    if value is None and (t.fields is not None or t.list_kind):
        return _ABSENT
    return value


def _value_set(value: Any, root: _Type) -> set[FieldPath]:
    out: set[FieldPath] = set()
    _to_set(value, root, (), out, None)
    return out


@lru_cache(maxsize=512)
def _parents(fields: FieldSet) -> frozenset[FieldPath]:
    """Every path with a member below it."""
    out: set[FieldPath] = set()
    for path in fields:
        for end in range(len(path) - 1, 0, -1):
            prefix = path[:end]
            if prefix in out:
                break
            out.add(prefix)
    return frozenset(out)


def _prune(merged: dict, root: _Type, owners: list[FieldSet], last: FieldSet) -> dict:
    """Updater.prune: drops what the manager's previous apply held that nobody holds now.

    Upstream removes the previous set from the merged object, with every struct field above a
    member made a member too (EnsureNamedFieldsAreMembers), adds back whatever a manager owns
    (with the same completion), then removes the previous set's paths that are still missing.
    As the previous set is an apply's (every list element and map entry above a member is a
    member), that removes exactly the topmost paths of the completed previous set that no
    manager owns (completed alike) and that the merged object's field set holds."""
    owned = frozenset().union(*owners)
    owned_parents = frozenset().union(*map(_parents, owners))
    candidates: set[FieldPath] = set()
    for path in last - owned:
        if path in owned_parents and _is_struct_field(root, path):
            continue  # a struct field with an owned field below it is owned
        candidates.add(path)
        for end in range(len(path) - 1, 0, -1):  # struct fields above it, as completion adds them
            above = path[:end]
            if above not in candidates and above not in owned and above not in owned_parents \
                    and _is_struct_field(root, above):
                candidates.add(above)
    doomed: set[FieldPath] = set()
    for path in sorted(candidates, key=len):
        if not any(path[:end] in doomed for end in range(1, len(path))) and _holds(merged, root, path):
            doomed.add(path)
    if not doomed:
        return merged
    result = _remove(merged, root, _trie(doomed))
    return {} if result is _ABSENT else result


def _type_at(root: _Type, path: FieldPath) -> _Type:
    t = root
    for pe in path:
        if pe[0] == "f":
            t = (t.fields.get(pe[2:]) if t.fields else None) or t.elem or _DEDUCED
        else:
            t = t.list_elem or _DEDUCED
    return t


def _is_struct_field(root: _Type, path: FieldPath) -> bool:
    parent = _type_at(root, path[:-1])
    return path[-1][0] == "f" and bool(parent.fields) and path[-1][2:] in parent.fields


def _holds(value: Any, t: _Type, path: FieldPath) -> bool:
    """Whether `path` is in the field set of `value`, with struct fields above members counted
    as members (what the prune's EnsureNamedFieldsAreMembers sees)."""
    for i, pe in enumerate(path):
        kind = type(value)
        if kind is dict and t.fields is not None and not t.map_atomic and pe[0] == "f":
            child = value.get(pe[2:], _ABSENT)
            field = t.fields.get(pe[2:])
            if child is _ABSENT:
                return False
            # A struct field holding an empty list is not in the field set.
            if field is not None and type(child) is list and not child and field.list_kind not in (0, _ATOMIC):
                return False
            value, t = child, field or t.elem
        elif kind is list and t.list_kind and t.list_kind != _ATOMIC:
            found = [item for item in value if _item_pe(t, item) == pe]
            # A duplicated element is in the field set without its contents.
            if not found or (len(found) > 1 and i < len(path) - 1):
                return False
            value, t = found[0], t.list_elem
        else:
            return False
    return True


def _drop_reset(fields: set[FieldPath], reset: FieldSet) -> set[FieldPath]:
    """Set.RecursiveDifference with the reset fields: they and everything below them go."""
    if not reset or not fields:
        return fields
    if all(len(r) == 1 for r in reset):
        heads = {r[0] for r in reset}
        return {p for p in fields if p[0] not in heads}
    lengths = {len(r) for r in reset}
    return {p for p in fields if not any(p[:n] in reset for n in lengths)}


# ---------------------------------------------------------------------------------------------
# Reset fields: what the strategies wipe, hence what no manager of that endpoint may own.

_STATUS_RESETS: dict[tuple[str, str], FieldSet] = {
    ("apps", "Deployment"): frozenset({("f:spec",), ("f:metadata", "f:labels")}),
    ("", "Pod"): frozenset({("f:spec",), ("f:metadata", "f:deletionTimestamp"), ("f:metadata", "f:ownerReferences")}),
    ("certificates.k8s.io", "CertificateSigningRequest"): frozenset({("f:spec",), ("f:status", "f:conditions")}),
}


def reset_fields(meta: TypeInfo, subresource: str) -> FieldSet:
    """GetResetFields of the endpoint's strategy: `status` for the main resource of a kind with a
    status subresource, `spec` (plus a few kind-specific fields) for `/status`."""
    if subresource == "status":
        return _STATUS_RESETS.get((meta.group, meta.kind), frozenset({("f:spec",)}))
    if not subresource and meta.status_subresource:
        return frozenset({("f:status",)})
    return frozenset()


# ---------------------------------------------------------------------------------------------
# Managers: identity, decoding and encoding of metadata.managedFields.

# (manager, operation, apiVersion for Update entries else "", subresource), as
# BuildManagerIdentifier distinguishes entries.
_Ident = tuple[str, str, str, str]


@dataclass
class _Entry:
    fields: FieldSet
    api_version: str
    applied: bool
    raw: bytes | None = None  # the FieldsV1 it was read from, when that is how `fields` serializes


class _Managed:
    __slots__ = ("entries", "times")

    def __init__(self, entries: dict[_Ident, _Entry] | None = None, times: dict[_Ident, str | None] | None = None):
        self.entries = entries if entries is not None else {}
        self.times = times if times is not None else {}

    def copy(self) -> _Managed:
        return _Managed(dict(self.entries), dict(self.times))


@lru_cache(maxsize=512)
def _parse_cached(raw: bytes) -> tuple[FieldSet, bool]:
    return _parse(orjson.loads(raw))


def _decode(entries: Any) -> _Managed:
    """DecodeManagedFields; ValueError with upstream's reason when an entry is invalid."""
    managed = _Managed()
    for i, entry in enumerate(entries or ()):
        if type(entry) is not dict:
            raise ValueError(f"managed fields entry {i} is not an object")
        operation = entry.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if not fields_type:
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {quote(fields_type)} in managed fields entry {i}")
        ident = (entry.get("manager") or "", operation, api_version if operation == UPDATE else "",
                 entry.get("subresource") or "")
        fields = entry.get("fieldsV1")
        raw = orjson.dumps(fields) if fields else b"{}"
        parsed, canonical = _parse_cached(raw)
        managed.entries[ident] = _Entry(parsed, api_version, operation == APPLY, raw if canonical else None)
        time = entry.get("time")
        managed.times[ident] = _normal_time(time) if time else None
    return managed


@lru_cache(maxsize=1024)
def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _normal_time(value: str) -> str:
    """metav1.Time as Go writes it back: UTC, whole seconds."""
    parsed = _parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else value


def _seconds(value: str | None) -> int:
    parsed = _parse_time(value) if value else None
    return int(parsed.timestamp()) if parsed else 0


def _ident_json(ident: _Ident) -> str:
    """The identifier's JSON (a ManagedFieldsEntry without fields and time): what upstream sorts
    entries by when it caps them and groups conflicts."""
    manager, operation, api_version, subresource = ident
    parts = [f'"manager":{_json_str(manager)}'] if manager else []
    parts.append(f'"operation":{_json_str(operation)}')
    if api_version:
        parts.append(f'"apiVersion":{_json_str(api_version)}')
    if subresource:
        parts.append(f'"subresource":{_json_str(subresource)}')
    return "{" + ",".join(parts) + "}"


def _sorted_idents(idents: Any) -> list[_Ident]:
    return sorted(idents, key=_ident_json)


def _print_manager(ident: _Ident) -> str:
    manager, operation, api_version, subresource = ident
    out = quote(manager)
    if subresource:
        out += f" with subresource {quote(subresource)}"
    if operation == UPDATE:
        out += f" using {api_version}"
    return out


def _conflict_message(conflicts: dict[_Ident, list[FieldPath]]) -> str:
    total = sum(map(len, conflicts.values()))
    if total == 1:
        ((ident, paths),) = conflicts.items()
        return f"Apply failed with 1 conflict: conflict with {_print_manager(ident)}: {path_string(paths[0])}"
    lines = []
    for ident in _sorted_idents(conflicts):
        lines.append(f"conflicts with {_print_manager(ident)}:")
        lines.extend(f"- {path_string(path)}" for path in conflicts[ident])
    return f"Apply failed with {total} conflicts: " + "\n".join(lines)


def _encode(managed: _Managed) -> list[dict]:
    """encodeManagedFields: one entry per manager, sorted as upstream sorts them."""
    out = []
    for ident, entry in managed.entries.items():
        manager, operation, _, subresource = ident
        encoded: dict[str, Any] = {"manager": manager} if manager else {}
        encoded["operation"] = APPLY if entry.applied else operation
        encoded["apiVersion"] = entry.api_version
        time = managed.times.get(ident)
        if time:
            encoded["time"] = time
        encoded["fieldsType"] = "FieldsV1"
        encoded["fieldsV1"] = orjson.loads(entry.raw if entry.raw is not None else _serialize(entry.fields))
        if subresource:
            encoded["subresource"] = subresource
        out.append(encoded)
    out.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e.get("manager", ""), e["apiVersion"],
                            e.get("subresource", "")))
    return out


def _store(obj: dict, managed: _Managed) -> None:
    metadata = obj.setdefault("metadata", {})
    if managed.entries:
        metadata["managedFields"] = _encode(managed)
    else:
        metadata.pop("managedFields", None)


def _is_reset(entries: Any) -> bool:
    """isResetManagedFields: `[]` or a single empty entry."""
    if entries is None:
        return False
    if isinstance(entries, list) and len(entries) == 0:
        return True
    return (isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict)
            and all(v in (None, "") for v in entries[0].values()))


def _without_managed_fields(obj: dict) -> dict:
    """A shallow copy without metadata.managedFields (they are bookkeeping, never compared)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return out


def _update_managers(managed: _Managed, old: dict, new: dict, root: _Type, ident: _Ident, api_version: str,
                     now: str, reset: FieldSet) -> None:
    """Updater.Update for one write, then stripmeta, managedfieldsupdater and capmanagers."""
    diff = _Diff()
    _compare(old, new, root, (), diff)
    changed = _drop_reset(diff.changed(), reset)
    removed = _drop_reset(diff.removed, reset)
    for other, entry in list(managed.entries.items()):
        left = entry.fields - changed - removed
        if not left:
            del managed.entries[other]
        elif len(left) != len(entry.fields):
            managed.entries[other] = _Entry(left, entry.api_version, entry.applied)
    owned = frozenset(changed) - _STRIP
    if owned:
        previous = managed.entries.get(ident)
        # The writer's older fields survive unless this write removed them (done above).
        fields = owned | previous.fields if previous else owned
        managed.entries[ident] = _Entry(fields, api_version, False)
        managed.times[ident] = now
    _cap_update_managers(managed)


def _cap_update_managers(managed: _Managed) -> None:
    """capmanagers.go: merges the oldest Update entries per apiVersion into "ancient-changes"."""
    updaters = [ident for ident, entry in managed.entries.items() if not entry.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda ident: (_seconds(managed.times.get(ident)), _ident_json(ident)))
    first_by_version: dict[str, _Ident] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        entry = managed.entries[ident]
        version = entry.api_version
        bucket = (_ANCIENT_CHANGES, UPDATE, version, "")
        first = first_by_version.get(version)
        if first is None:
            first_by_version[version] = ident
            continue
        if bucket not in managed.entries:
            managed.entries[bucket] = managed.entries.pop(first)
        managed.entries[bucket] = _Entry(entry.fields | managed.entries[bucket].fields, version, False)
        del managed.entries[ident]
        length -= 1
        managed.times[bucket] = managed.times.get(ident)


def _typed_failure(what: str, obj: dict, gvk: str, errors: list[tuple[FieldPath, str]]) -> APIError:
    """A typed-conversion failure, answered as upstream answers errors that are not Statuses."""
    messages = [f"{path_string(path)}: {message}" if path else message for path, message in errors]
    text = messages[0] if len(messages) == 1 else "errors:\n" + "\n".join("  " + m for m in messages)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    where = f"{metadata.get('namespace') or ''}/{metadata.get('name') or ''}; {gvk}"
    return APIError(500, "", f"failed to create typed {what} object ({where}): {text}")


def _gvk(meta: TypeInfo) -> str:
    """schema.GroupVersionKind.String()."""
    return f"{meta.group}/{meta.version}, Kind={meta.kind}"


# ---------------------------------------------------------------------------------------------
# The two entry points.


def record_update(old: dict | None, new: dict, *, manager: str, api_version: str, subresource: str, now: str,
                  meta: TypeInfo | None = None, reset: FieldSet | None = None) -> None:
    """Updates new["metadata"]["managedFields"] for a create (old None), update or non-apply
    patch by `manager`, as upstream's FieldManager.UpdateNoErrors does. `now` is the RFC 3339
    time of the write; `meta` defaults to the kind's built-in metadata and `reset` to the
    endpoint's reset fields (`reset_fields`).

    Upstream runs this on the request object as decoded, which includes defaulting: pass `new`
    after defaulting, so that the writer owns the defaults it caused (as `kubectl create` does)."""
    meta = meta or type_info(new.get("apiVersion") or api_version, new.get("kind") or "")
    reset = reset_fields(meta, subresource) if reset is None else reset
    metadata = new.setdefault("metadata", {})
    live_entries = (old.get("metadata") or {}).get("managedFields") if old else None
    requested = metadata.pop("managedFields", None)
    try:
        managed = _managers_for_write(live_entries, requested, bool(subresource))
        if not managed.entries and old is not None:
            return  # updates of untracked objects stay untracked until the next apply
        ident = (manager or "unknown", UPDATE, api_version, subresource)
        _update_managers(managed, _without_managed_fields(old) if old else {}, new, meta.root, ident, api_version,
                         now, reset)
    except _TypedError:
        return  # upstream logs and leaves the object without managedFields
    _store(new, managed)


def _managers_for_write(live_entries: Any, requested: Any, subresource: bool) -> _Managed:
    """decodeLiveOrNew: the request's managedFields win when they decode to something."""
    if not subresource:
        if _is_reset(requested):
            return _Managed()
        try:
            managed = _decode(requested)
            if managed.entries:
                return managed
        except ValueError:
            pass
    try:
        return _decode(live_entries)
    except ValueError:
        return _Managed()


def apply(live: dict | None, config: dict, *, manager: str, force: bool, api_version: str, subresource: str,
          now: str, meta: TypeInfo | None = None, reset: FieldSet | None = None) -> dict:
    """Server-side apply of `config` (the decoded apply patch) by `manager` onto `live` (None:
    the object does not exist yet). Returns the new object with its managedFields; the caller
    defaults, validates and stores it. Raises ApplyConflict, or APIError for what upstream
    rejects (managedFields in the configuration, lists whose elements cannot be identified)."""
    meta = meta or type_info(config.get("apiVersion") or api_version, config.get("kind") or "")
    reset = reset_fields(meta, subresource) if reset is None else reset
    config_meta = config.get("metadata")
    if isinstance(config_meta, dict) and config_meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    root = meta.root
    raw = orjson.dumps(config)
    applied = _applied_fields(raw, root, reset)
    if isinstance(applied, list):
        raise _typed_failure("patch", config, _gvk(meta), applied)
    config_nulls = b"null" in raw

    base = _without_managed_fields(live) if live is not None else {}
    try:
        managed = _decode((live.get("metadata") or {}).get("managedFields")) if live is not None else _Managed()
    except ValueError as err:
        raise APIError(500, "", f"failed to decode managed fields: {err}") from None
    ident = (manager or "unknown", APPLY, "", subresource)
    try:
        if not managed.entries and live is not None:
            # Upstream's skipNonApplied: whatever the object holds becomes someone's before it
            # can conflict with the applier.
            _update_managers(managed, {}, base, root, (_BEFORE_FIRST_APPLY, UPDATE, api_version, subresource),
                             api_version, now, reset)
        try:
            result, after = _apply_once(base, config, applied, managed, ident, api_version, now, force, root, reset,
                                        config_nulls)
        except ApplyConflict as conflict:
            allowed = _explained_by_last_applied(base, root, meta) if manager == _CSA_UPGRADER else None
            if allowed is None:
                raise
            remaining = {m: [p for p in paths if p not in allowed] for m, paths in conflict.conflicts.items()}
            remaining = {m: paths for m, paths in remaining.items() if paths}
            if remaining:
                raise ApplyConflict(remaining) from None
            result, after = _apply_once(base, config, applied, managed, ident, api_version, now, True, root, reset,
                                        config_nulls)
    except _TypedError as err:
        raise _typed_failure("live", live or config, _gvk(meta), [((), str(err))]) from None

    result = orjson.loads(orjson.dumps(result))  # the caller owns (and defaults in place) the result
    if manager == _CSA_UPGRADER:
        _sync_last_applied(result, config)
    _store(result, after)
    return result


@lru_cache(maxsize=256)
def _applied_fields(raw: bytes, root: _Type, reset: FieldSet) -> FieldSet | list[tuple[FieldPath, str]]:
    """The field set of an apply configuration (by its JSON: repeated applies of one manifest
    are common), or its typed validation errors."""
    errors: list[tuple[FieldPath, str]] = []
    fields: set[FieldPath] = set()
    _to_set(orjson.loads(raw), root, (), fields, errors)
    return errors or frozenset(_drop_reset(fields, reset))


def _apply_once(base: dict, config: dict, applied: FieldSet, managed: _Managed, ident: _Ident, api_version: str,
                now: str, force: bool, root: _Type, reset: FieldSet, config_nulls: bool) -> tuple[dict, _Managed]:
    """Updater.Apply, then stripmeta and managedfieldsupdater. `config_nulls`: whether the
    configuration may hold nulls (they are dropped from the result)."""
    after = managed.copy()
    previous = after.entries.get(ident)
    after.entries[ident] = _Entry(applied, api_version, True)
    merged = unpruned = _merge(base, config, root)
    if previous is not None and previous.fields and not previous.fields <= applied:
        merged = _prune(merged, root, [entry.fields for entry in after.entries.values()], previous.fields)

    diff = _Diff()
    _compare(base, merged, root, (), diff)
    changed = _drop_reset(diff.changed(), reset)
    removed = _drop_reset(diff.removed, reset)
    conflicts = {}
    for other, entry in after.entries.items():
        if other != ident and changed:
            taken = entry.fields & changed
            if taken:
                conflicts[other] = _iteration_order(list(taken))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    for other, entry in list(after.entries.items()):
        if other == ident:
            continue
        left = entry.fields - changed - removed
        if not left:
            del after.entries[other]
        elif len(left) != len(entry.fields):
            after.entries[other] = _Entry(left, entry.api_version, entry.applied)

    mine = after.entries[ident].fields - _STRIP
    if not mine:
        del after.entries[ident]
    elif previous is not None and previous.raw is not None and previous.api_version == api_version \
            and mine == previous.fields:
        after.entries[ident] = previous  # unchanged: keep what it was read from
    else:
        after.entries[ident] = _Entry(mine, api_version, True)
    if merged == base:
        return base, after  # no change: the entry keeps its time
    after.times[ident] = now
    return _without_new_nulls(merged, base) if config_nulls or merged is not unpruned else merged, after


def _without_new_nulls(value: dict, live: Any) -> dict:
    """Drops map entries that became null (explicit nulls in the configuration, containers the
    prune emptied): upstream's decode into Go types leaves such fields unset."""
    out = None
    for key, child in value.items():
        before = live.get(key, _ABSENT) if type(live) is dict else _ABSENT
        if child is None and before is not None:
            out = out if out is not None else dict(value)
            del out[key]
        elif type(child) is dict and child is not before:
            cleaned = _without_new_nulls(child, before)
            if cleaned is not child:
                out = out if out is not None else dict(value)
                out[key] = cleaned
        elif type(child) is list and child is not before:
            kept = {id(item) for item in before} if type(before) is list else set()
            items = [_without_new_nulls(item, _ABSENT) if type(item) is dict and id(item) not in kept else item
                     for item in child]
            if any(a is not b for a, b in zip(items, child, strict=True)):
                out = out if out is not None else dict(value)
                out[key] = items
    return out if out is not None else value


def _explained_by_last_applied(live: dict, root: _Type, meta: TypeInfo) -> set[FieldPath] | None:
    """lastappliedmanager.go: the fields the last-applied-configuration annotation set and the
    live object still has unchanged; None when there is no usable annotation."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED) if isinstance(annotations, dict) else None
    if not text:
        return None
    try:
        last = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != meta.api_version:
        return None
    try:
        fields = _value_set(last, root)
        diff = _Diff()
        _compare(last, live, root, (), diff)
    except _TypedError:
        return None
    return fields - diff.added - diff.modified - diff.removed


def _sync_last_applied(result: dict, config: dict) -> None:
    """lastappliedupdater.go: an object that carries the annotation gets the applied
    configuration (without the annotation) in it, as Go's encoder writes it."""
    metadata = result.get("metadata") or {}
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict) or not annotations.get(LAST_APPLIED):
        return
    document = orjson.loads(orjson.dumps(config))
    document_meta = document.get("metadata")
    if isinstance(document_meta, dict):
        if isinstance(document_meta.get("annotations"), dict):
            document_meta["annotations"].pop(LAST_APPLIED, None)
        elif "annotations" in document_meta and document_meta["annotations"] is None:
            del document_meta["annotations"]
    annotations[LAST_APPLIED] = _json(document) + "\n"
    if sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items()) > _ANNOTATIONS_LIMIT:
        del annotations[LAST_APPLIED]


def keep_unchanged_timestamps(old: dict, new: dict) -> None:
    """IgnoreManagedFieldsTimestampsTransformer: when a write changes nothing but managedFields
    timestamps, restore the old timestamps so the write is a no-op (no resourceVersion bump)."""
    old_entries = (old.get("metadata") or {}).get("managedFields") or []
    new_entries = (new.get("metadata") or {}).get("managedFields") or []
    if not new_entries or len(old_entries) != len(new_entries):
        return
    if all(a.get("time") == b.get("time") for a, b in zip(old_entries, new_entries, strict=True)):
        return
    untimed = [{k: v for k, v in e.items() if k != "time"} for e in old_entries]
    if untimed != [{k: v for k, v in e.items() if k != "time"} for e in new_entries]:
        return
    if _without_managed_fields(old) != _without_managed_fields(new):
        return
    for old_entry, new_entry in zip(old_entries, new_entries, strict=True):
        if "time" in old_entry:
            new_entry["time"] = old_entry["time"]
        else:
            new_entry.pop("time", None)
