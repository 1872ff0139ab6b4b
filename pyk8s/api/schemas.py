"""The Kubernetes v1.32 API schemas, and the checks upstream's JSON decoder makes with them.

The definitions come from the installed kubernetes-validate package (its strict v1.32 set, which
carries every `x-kubernetes-*` extension). They are loaded once, on first use.

Upstream decodes a request body into the versioned Go struct with sigs.k8s.io/json. That decoder
reports, besides JSON syntax errors:

- type errors (fatal, fieldValidation or not): the first wrongly typed value, as
  `json: cannot unmarshal <value> into Go struct field <Struct>.<json.path> of type <GoType>`
  where <value> is `string`, `bool`, `array`, `object`, `number` or `number <literal>` (integers
  that do not fit, fractions into integers), <Struct> is the Go type holding the innermost field
  (e.g. `DeploymentSpec`), <json.path> names struct fields only (no list indices, no map keys) and
  <GoType> is the Go type's name (`int32`, `v1.DeploymentSpec`, `[]v1.Container`,
  `map[string]string`). A wrongly typed top-level body reads `... into Go value of type v1.Pod`.
  See `type_error`. Not reproduced: named scalar and collection types print as their underlying
  type (upstream says `v1.PullPolicy` where this says `string`, `v1.ResourceList` for
  `map[string]resource.Quantity`: the schemas do not record Go type names), and the errors of
  malformed quantities, base64 data and timestamps inside well-typed strings.
- strict errors (only collected under fieldValidation=Strict/Warn, and only when there is no type
  error): `unknown field "<path>"` and `duplicate field "<path>"`, in document order, deduplicated,
  at most 100, where <path> joins keys with "." and appends list indices as "[i]" (map keys are
  part of the path: `duplicate field "metadata.labels.app"`). See `strict_errors`,
  `unknown_fields` and `duplicate_fields`.

Values of Go types with their own JSON decoding (IntOrString, Quantity, Time, MicroTime,
RawExtension, FieldsV1, apiextensions JSON) are opaque to the strict checks, as upstream.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from .gofmt import quote

KUBERNETES_VERSION = "v1.32.0"
_SCHEMA_SET = "v1.32.0-local-strict"
_MAX_STRICT_ERRORS = 100  # sigs.k8s.io/json stops collecting there

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


@cache
def definitions() -> dict[str, dict]:
    """Definition name -> JSON-Schema (as published by kubernetes-validate; do not modify)."""
    # Located through the import system, but not imported: the package's __init__ pulls in
    # jsonschema and yaml (~60 ms) and only its data is needed.
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "kubernetes-json-schema" / _SCHEMA_SET / "_definitions.json"
    return orjson.loads(path.read_bytes())["$defs"]


@cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def definition_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind, e.g. "io.k8s.api.apps.v1.Deployment"."""
    return _gvk_index().get((group, version, kind))


def ref_name(ref: str) -> str:
    """"#/$defs/io.k8s.api.core.v1.Pod" -> "io.k8s.api.core.v1.Pod"."""
    return ref.rpartition("/")[2]


def schema_type(schema: dict) -> str | None:
    """The JSON type of a schema, without the "null" the JSON-Schema set adds to optional fields."""
    t = schema.get("type")
    if isinstance(t, list):
        return next((x for x in t if x != "null"), None)
    return t


# ---------------------------------------------------------------------------------------------
# Compiled decoder model: one _Node per Go type, shared by every field of that type.

_STRUCT, _MAP, _ARRAY = 0, 1, 2  # containers (walked); everything below is a leaf
_STRING, _BYTES, _INT32, _INT64, _FLOAT, _BOOL = 3, 4, 5, 6, 7, 8
_OPAQUE, _INT_OR_STRING, _TIME = 9, 10, 11  # Go types with their own UnmarshalJSON

_INT_RANGES = {_INT32: (-(2**31), 2**31 - 1), _INT64: (-(2**63), 2**63 - 1)}


class _Node:
    __slots__ = ("elem", "fields", "go_type", "struct", "tag")

    def __init__(self, tag: int, go_type: str, elem: _Node | None = None, struct: str = "") -> None:
        self.tag = tag
        self.go_type = go_type  # Go's reflect.Type.String(), as type errors print it
        self.elem = elem  # element of a list, value of a map
        self.struct = struct  # Go type name of a struct (reflect.Type.Name())
        self.fields: dict[str, _Node] = {}


_OPAQUE_NODE = _Node(_OPAQUE, "interface {}")
_SCALARS = {
    ("string", None): _Node(_STRING, "string"),
    ("string", "byte"): _Node(_BYTES, "[]uint8"),
    ("integer", "int32"): _Node(_INT32, "int32"),
    ("integer", "int64"): _Node(_INT64, "int64"),
    ("number", "double"): _Node(_FLOAT, "float64"),
    ("boolean", None): _Node(_BOOL, "bool"),
}
# The Go value that the UnmarshalJSON of these types decodes into, as their errors name it:
# IntOrString decodes anything but a JSON string into its int32; Time and MicroTime want a string.
_INNER_TYPES = {_INT_OR_STRING: "int32", _TIME: "string"}

_compiled: dict[str, _Node] = {}


def _compile_definition(name: str) -> _Node:
    node = _compiled.get(name)
    if node is not None:
        return node
    schema = definitions()[name]
    # Go names a type by its package's last path element: io.k8s.api.apps.v1.Deployment -> v1.Deployment
    _, package, type_name = name.rsplit(".", 2)
    go_type = f"{package}.{type_name}"
    if name == INT_OR_STRING:
        node = _Node(_INT_OR_STRING, go_type)
    elif "properties" in schema:
        node = _Node(_STRUCT, go_type, struct=type_name)
        _compiled[name] = node  # before the fields: definitions may be recursive
        node.fields = {key: _compile(prop) for key, prop in schema["properties"].items()}
        return node
    elif schema.get("format") == "date-time":
        node = _Node(_TIME, go_type)
    else:
        node = _compile(schema)
        if node.tag == _OPAQUE:
            node = _Node(_OPAQUE, go_type)  # Quantity, RawExtension, FieldsV1, JSON
    _compiled[name] = node
    return node


def _compile(schema: dict) -> _Node:
    ref = schema.get("$ref")
    if ref is not None:
        return _compile_definition(ref_name(ref))
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string"):
        return _OPAQUE_NODE
    t = schema_type(schema)
    if t == "array":
        elem = _compile(schema.get("items", {}))
        return _Node(_ARRAY, "[]" + elem.go_type, elem)
    if t == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            elem = _compile(values)
            return _Node(_MAP, "map[string]" + elem.go_type, elem)
        return _OPAQUE_NODE  # RawExtension, FieldsV1: raw JSON kept as is
    return _SCALARS.get((t, schema.get("format")), _OPAQUE_NODE)


@cache
def _root(group: str, version: str, kind: str) -> _Node | None:
    name = definition_for(group, version, kind)
    return _compile_definition(name) if name else None


# ---------------------------------------------------------------------------------------------
# Strict errors: unknown and duplicate fields.


class _Pairs(list):
    """A JSON object as its (key, value) pairs in document order, duplicates kept."""


def _parse_pairs(raw: bytes | str) -> Any:
    return json.loads(raw, object_pairs_hook=_Pairs)




class _StrictErrors:
    """Collects strict errors the way sigs.k8s.io/json does: deduplicated, capped, in order."""

    __slots__ = ("messages", "seen", "stack")

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.seen: set[str] = set()
        self.stack: list[str] = []  # path segments: "spec", ".template", "[0]"

    def add(self, what: str, key: str) -> None:
        if len(self.messages) >= _MAX_STRICT_ERRORS:
            return
        path = "".join(self.stack) + "." + key if self.stack else key
        message = f"{what} {quote(path)}"
        if message not in self.seen:
            self.seen.add(message)
            self.messages.append(message)

    def push_key(self, key: str) -> None:
        self.stack.append("." + key if self.stack else key)


def _walk_typed(node: _Node, value: Any, errors: _StrictErrors) -> None:
    """Strict checks of a value decoded into a Go type (dicts, or _Pairs to see duplicates)."""
    tag = node.tag
    if tag == _STRUCT:
        if type(value) is _Pairs:
            items: Any = value
            seen: set[str] | None = set()
        elif type(value) is dict:
            items, seen = value.items(), None
        else:
            return  # a type error; upstream then reports no strict errors inside
        fields = node.fields
        for key, item in items:
            sub = fields.get(key)
            if sub is None:
                errors.add("unknown field", key)
                continue
            if seen is not None:
                # Only known fields are checked: an unknown one is reported once as unknown.
                if key in seen:
                    errors.add("duplicate field", key)
                else:
                    seen.add(key)
            if sub.tag <= _ARRAY and item is not None:
                errors.push_key(key)
                _walk_typed(sub, item, errors)
                errors.stack.pop()
    elif tag == _MAP:
        if type(value) is _Pairs:
            items, seen = value, set()
        elif type(value) is dict:
            items, seen = value.items(), None
        else:
            return
        elem = node.elem
        walk = elem.tag <= _ARRAY  # type: ignore[union-attr]
        for key, item in items:
            if seen is not None:
                if key in seen:
                    errors.add("duplicate field", key)
                else:
                    seen.add(key)
            if walk and item is not None:
                errors.push_key(key)
                _walk_typed(elem, item, errors)  # type: ignore[arg-type]
                errors.stack.pop()
    elif tag == _ARRAY and type(value) is list:
        elem = node.elem
        if elem.tag <= _ARRAY:  # type: ignore[union-attr]
            for i, item in enumerate(value):
                if item is not None:
                    errors.stack.append(f"[{i}]")
                    _walk_typed(elem, item, errors)  # type: ignore[arg-type]
                    errors.stack.pop()


def _walk_untyped(value: Any, errors: _StrictErrors) -> None:
    """Duplicate keys anywhere, as decoding into map[string]interface{} reports them."""
    if type(value) is _Pairs:
        seen: set[str] = set()
        for key, item in value:
            if key in seen:
                errors.add("duplicate field", key)
            else:
                seen.add(key)
            if type(item) in (_Pairs, list):
                errors.push_key(key)
                _walk_untyped(item, errors)
                errors.stack.pop()
    elif type(value) is list:
        for i, item in enumerate(value):
            if type(item) in (_Pairs, list):
                errors.stack.append(f"[{i}]")
                _walk_untyped(item, errors)
                errors.stack.pop()


def unknown_fields(group: str, version: str, kind: str, obj: Any) -> list[str]:
    """`unknown field "spec.foo"` for each field of `obj` the kind's Go type does not have."""
    node = _root(group, version, kind)
    if node is None:
        return []
    errors = _StrictErrors()
    _walk_typed(node, obj, errors)
    return errors.messages


def duplicate_fields(raw: bytes | str) -> list[str]:
    """`duplicate field "metadata.name"` for each repeated object key in a JSON document.

    Schema-free, like decoding into map[string]interface{} (what upstream does with merge and
    strategic-merge patch bodies). `raw` must be valid JSON.
    """
    errors = _StrictErrors()
    _walk_untyped(_parse_pairs(raw), errors)
    return errors.messages


def strict_errors(group: str, version: str, kind: str, raw: bytes | str) -> list[str]:
    """Unknown and duplicate fields of a request body decoded as the kind, in upstream's order.

    This is what upstream's strict decoder reports for a create/update body (duplicates of
    unknown fields and duplicates inside opaque values are not reported, as upstream).
    `raw` must be valid JSON; check `type_error` first, as upstream reports strict errors only
    when decoding otherwise succeeded.
    """
    node = _root(group, version, kind)
    if node is None:
        return []
    errors = _StrictErrors()
    _walk_typed(node, _parse_pairs(raw), errors)
    return errors.messages


# ---------------------------------------------------------------------------------------------
# Type errors.


class _Fatal(Exception):
    """An error returned by a Go type's own UnmarshalJSON: it ends decoding at once."""


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "number"


def _bad_int(value: Any, tag: int) -> str | None:
    """The value description of a JSON number that does not fit a Go integer, else None."""
    if isinstance(value, int):
        low, high = _INT_RANGES[tag]
        return None if low <= value <= high else f"number {value}"
    return f"number {value!r}"


def _leaf_error(node: _Node, value: Any) -> str | None:
    """How a leaf value fails to decode into the node's Go type (the <value> part), or None."""
    tag = node.tag
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tag in (_STRING, _BYTES, _TIME):
        # Base64 content and time formats are not checked here.
        return None if isinstance(value, str) else _json_kind(value)
    if tag in (_INT32, _INT64):
        return _bad_int(value, tag) if is_number else _json_kind(value)
    if tag == _FLOAT:
        return None if is_number else _json_kind(value)
    if tag == _BOOL:
        return None if isinstance(value, bool) else _json_kind(value)
    if tag == _INT_OR_STRING:
        if isinstance(value, str):
            return None
        return _bad_int(value, _INT32) if is_number else _json_kind(value)
    return None  # opaque


def _type_message(kind: str, node: _Node, struct: str, path: list[str]) -> str:
    go_type = _INNER_TYPES.get(node.tag, node.go_type)
    if not path:
        return f"json: cannot unmarshal {kind} into Go value of type {go_type}"
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{'.'.join(path)} of type {go_type}"


def _walk_types(node: _Node, value: Any, struct: str, path: list[str], first: list[str]) -> None:
    if value is None:
        return  # null leaves any Go value at its zero value
    tag = node.tag
    if tag > _ARRAY:
        kind = _leaf_error(node, value)
        if kind is not None:
            message = _type_message(kind, node, struct, path)
            if tag in (_INT_OR_STRING, _TIME):
                raise _Fatal(message)
            if not first:
                first.append(message)
        return
    expected = dict if tag != _ARRAY else list
    if not isinstance(value, expected):
        if not first:
            first.append(_type_message(_json_kind(value), node, struct, path))
        return
    if tag == _STRUCT:
        fields = node.fields
        for key, item in value.items():
            sub = fields.get(key)
            if sub is not None:
                path.append(key)
                _walk_types(sub, item, node.struct, path, first)
                path.pop()
    elif tag == _MAP:
        for item in value.values():
            _walk_types(node.elem, item, struct, path, first)  # type: ignore[arg-type]
    else:
        for item in value:
            _walk_types(node.elem, item, struct, path, first)  # type: ignore[arg-type]


def type_error(group: str, version: str, kind: str, obj: Any) -> str | None:
    """The decode error upstream's JSON decoder gives for `obj` as this kind, or None.

    Upstream answers it as 400 BadRequest: `<Kind> in version "<v>" cannot be handled as a
    <Kind>: <this message>`. The first wrongly typed value wins, except that errors from Go types
    with their own decoding (IntOrString, Time) stop decoding where they occur.
    """
    node = _root(group, version, kind)
    if node is None:
        return None
    first: list[str] = []
    try:
        _walk_types(node, obj, "", [], first)
    except _Fatal as fatal:
        return str(fatal)
    return first[0] if first else None
