"""Structural schemas of CustomResourceDefinitions: schema checks, pruning, defaulting, validation.

Follows upstream apiextensions-apiserver (v1.32): `schema_errors` is what CRD validation reports about
an openAPIV3Schema (the OpenAPI checks of apis/apiextensions/validation, the structural invariants and
completeness of apiserver/schema, default checks, CEL compilation), and `CompiledSchema` applies a
usable schema to custom resources the way the CR handler does: pruning, null pruning and defaulting,
kube-openapi value validation (its messages and paths), list-type uniqueness, embedded resource
checks and x-kubernetes-validations rules (pyk8s.api.cel), with upstream's validation ratcheting on
updates (errors in values unchanged from the old object are not reported).
"""

from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from pyk8s.api import cel
from pyk8s.api.errors import FieldError
from pyk8s.api.validation import annotations, is_dns1035_label, is_dns1123_label, is_path_segment_name, labels

TYPES = ("array", "boolean", "integer", "number", "object", "string")
REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_META_FIELDS = ("apiVersion", "kind", "metadata")
_OMIT = FieldError("Required", "").value  # errors.py's "no value" marker
_MISSING = object()  # no correlated old value
_BLOCKING = ("NotSupported", "Required", "TooLong", "TooMany", "TypeInvalid")  # upstream hasBlockingErr


# --- Go-shaped error values ---

def go_float(value: float) -> str:
    """Go's %v of a float64 (strconv 'g' with the shortest digits, exponent from 1e+06 / 1e-05)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent  # digits before the decimal point
    prefix = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        e = point - 1
        return f"{prefix}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _go_number(value: Any) -> str:
    """%v of a JSON number as Go decodes it: int64, or float64 printed by go_float."""
    return go_float(value) if isinstance(value, float) else str(value)


def go_literal(value: Any) -> str:
    """Go's %#v of a JSON value held in an interface{} (what field errors print for maps and lists)."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, (int, float)):
        return _go_number(value)
    if isinstance(value, dict):
        items = ", ".join(f"{orjson.dumps(k).decode()}:{go_literal(v)}" for k, v in sorted(value.items()))
        return "map[string]interface {}{" + items + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_literal(v) for v in value) + "}"
    return repr(value)


@dataclass
class SchemaFieldError(FieldError):
    """A field error whose value prints as Go prints the decoded JSON value (%v for scalars, %#v else)."""

    def body(self) -> str:
        prefix = FieldError(self.type, "").body()  # "Invalid value", "Too many", ...
        parts = [prefix]
        if self.type not in ("Required", "Forbidden", "TooLong", "Internal") and self.value is not _OMIT:
            value = self.value
            if isinstance(value, _GoText):
                parts.append(str(value))
            elif value is None:
                parts.append('"null"')  # Go prints a nil value as the string "null"
            elif isinstance(value, bool):
                parts.append("true" if value else "false")
            elif isinstance(value, str):
                parts.append(orjson.dumps(value).decode())
            elif isinstance(value, (int, float)):
                parts.append(_go_number(value))
            else:
                parts.append(go_literal(value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)


def _err(kind: str, path: str, value: Any = _OMIT, detail: str = "") -> SchemaFieldError:
    return SchemaFieldError(kind, path, value, detail)


def _invalid(path: str, value: Any, detail: str) -> SchemaFieldError:
    return _err("Invalid", path, value, detail)


def _required(path: str, detail: str = "") -> SchemaFieldError:
    return _err("Required", path, detail=detail)


def _forbidden(path: str, detail: str) -> SchemaFieldError:
    return _err("Forbidden", path, detail=detail)


def _not_supported(path: str, value: Any, allowed: list[str]) -> SchemaFieldError:
    return _err("NotSupported", path, value, "supported values: " + ", ".join(f'"{a}"' for a in allowed))


class _GoText(str):
    """A value already written the way Go prints it (e.g. `[]string{"a", "b"}`)."""


def _go_strings(values: list) -> _GoText:
    return _GoText("[]string{" + ", ".join(orjson.dumps(str(v)).decode() for v in values) + "}")


class _RuleValue:
    """An x-kubernetes-validations entry printed the way upstream's %#v prints apiextensions.ValidationRule."""

    def __init__(self, rule: dict):
        self.rule = rule

    def __repr__(self) -> str:
        r = self.rule
        reason = (f'(*apiextensions.FieldValueErrorReason)("{r["reason"]}")' if r.get("reason")
                  else "(*apiextensions.FieldValueErrorReason)(nil)")
        optional = "(*bool)(true)" if r.get("optionalOldSelf") else (
            "(*bool)(false)" if r.get("optionalOldSelf") is False else "(*bool)(nil)")
        fields = [f"Rule:{orjson.dumps(r.get('rule') or '').decode()}",
                  f"Message:{orjson.dumps(r.get('message') or '').decode()}",
                  f"MessageExpression:{orjson.dumps(r.get('messageExpression') or '').decode()}",
                  f"Reason:{reason}", f"FieldPath:{orjson.dumps(r.get('fieldPath') or '').decode()}",
                  f"OptionalOldSelf:{optional}"]
        return "apiextensions.ValidationRule{" + ", ".join(fields) + "}"


# --- formats (kube-openapi's strfmt registry, as far as CRDs keep formats) ---

_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID3 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID4 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
_UUID5 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DURATION = re.compile(r"^(-?(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$|"
                       r"^\d+\s*(d|day|days|h|hr|hrs|hour|hours|m|min|mins|minute|minutes|s|sec|secs|second|"
                       r"seconds|ms|milli|millis|millisecond|milliseconds|us|micro|micros|microsecond|"
                       r"microseconds|ns|nano|nanos|nanosecond|nanoseconds)$")
_ALNUM = r"[^\W_]"  # go-openapi's [a-zA-Z0-9\p{S}\p{L}], near enough
_HOSTNAME = re.compile(rf"^({_ALNUM}(-?{_ALNUM}{{0,62}})?|({_ALNUM}(([^\W_]|-){{0,61}}{_ALNUM})?\.)+[^\W\d_]{{2,63}})$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{2}[:-]){7}([0-9A-Fa-f]{2})$|"
                  r"^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGBCOLOR = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")
_BSON = re.compile(r"^[0-9a-fA-F]{24}$")


def _is_date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return "/" in text


def _is_uri(text: str) -> bool:
    return bool(text) and (text.startswith("/") or bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text)))


_FORMATS = {
    "bsonobjectid": _BSON.match, "uri": _is_uri, "email": _EMAIL.match, "hostname": _HOSTNAME.match,
    "ipv4": lambda t: _is_ip(t, 4), "ipv6": lambda t: _is_ip(t, 6), "cidr": _is_cidr, "mac": _MAC.match,
    "uuid": _UUID.match, "uuid3": _UUID3.match, "uuid4": _UUID4.match, "uuid5": _UUID5.match,
    "hexcolor": _HEXCOLOR.match, "rgbcolor": _RGBCOLOR.match, "byte": _is_byte, "password": lambda t: True,
    "date": _is_date, "duration": _DURATION.match, "datetime": _is_date_time,
}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1),
               "uint64": (0, 2**64 - 1)}


# --- the compiled schema tree ---

class _Node:
    """One schema (structural or a nested value validation), with everything validation needs precomputed."""

    __slots__ = (
        "type", "format", "nullable", "properties", "additional", "any_key", "items",
        "preserve_unknown", "int_or_string", "embedded", "list_type", "map_keys", "map_type", "has_default",
        "default", "enum", "maximum", "exclusive_maximum", "minimum", "exclusive_minimum", "multiple_of",
        "max_length", "min_length", "pattern", "pattern_text", "max_items", "min_items", "max_properties",
        "min_properties", "required", "all_of", "any_of", "one_of", "not_", "rules", "convert",
        "checks_below", "rules_below", "transitions_below", "types", "raw",
    )

    def __init__(self, raw: dict):
        self.raw = raw
        self.type = raw.get("type") or ""
        self.format = raw.get("format") or ""
        # what kube-openapi checks the JSON type against (int-or-string converts to two types)
        self.types = ("integer", "string") if raw.get("x-kubernetes-int-or-string") is True else (
            (self.type,) if self.type else ())
        self.nullable = bool(raw.get("nullable"))
        properties = raw.get("properties")
        self.properties = {k: _Node(v) for k, v in properties.items() if isinstance(v, dict)} \
            if isinstance(properties, dict) and properties else None
        additional = raw.get("additionalProperties")
        # `additionalProperties: true` lets any key through with no schema (nested objects are pruned empty)
        self.any_key = additional is True or isinstance(additional, dict)
        self.additional = _Node(additional) if isinstance(additional, dict) else None
        self.items = _Node(raw["items"]) if isinstance(raw.get("items"), dict) else None
        self.preserve_unknown = raw.get("x-kubernetes-preserve-unknown-fields") is True
        self.int_or_string = raw.get("x-kubernetes-int-or-string") is True
        self.embedded = raw.get("x-kubernetes-embedded-resource") is True
        self.list_type = raw.get("x-kubernetes-list-type")
        self.map_keys = list(raw.get("x-kubernetes-list-map-keys") or [])
        self.map_type = raw.get("x-kubernetes-map-type")
        self.has_default = "default" in raw and raw["default"] is not None
        self.default = raw.get("default")
        self.enum = raw.get("enum") if isinstance(raw.get("enum"), list) and raw.get("enum") else None
        # keywords of the wrong JSON type are the CRD decoder's to reject; here they are ignored
        self.maximum = _number(raw, "maximum")
        self.exclusive_maximum = raw.get("exclusiveMaximum") is True
        self.minimum = _number(raw, "minimum")
        self.exclusive_minimum = raw.get("exclusiveMinimum") is True
        self.multiple_of = _number(raw, "multipleOf")
        self.max_length = _number(raw, "maxLength")
        self.min_length = _number(raw, "minLength")
        self.pattern_text = raw.get("pattern") if isinstance(raw.get("pattern"), str) else ""
        self.pattern = _compile_pattern(self.pattern_text)
        self.max_items = _number(raw, "maxItems")
        self.min_items = _number(raw, "minItems")
        self.max_properties = _number(raw, "maxProperties")
        self.min_properties = _number(raw, "minProperties")
        self.required = [k for k in raw.get("required") or [] if isinstance(k, str)] \
            if isinstance(raw.get("required"), list) else []
        self.all_of = [_Node(s) for s in raw.get("allOf") or [] if isinstance(s, dict)]
        self.any_of = [_Node(s) for s in raw.get("anyOf") or [] if isinstance(s, dict)]
        self.one_of = [_Node(s) for s in raw.get("oneOf") or [] if isinstance(s, dict)]
        self.not_ = _Node(raw["not"]) if isinstance(raw.get("not"), dict) else None
        self.rules: list[cel.CompiledRule] = []
        self.convert = True  # values here or below look different from CEL (cel.converts)
        self.checks_below = True  # embedded resources or set/map lists at or below this node
        self.rules_below = True  # x-kubernetes-validations at or below this node
        self.transitions_below = True  # rules using oldSelf at or below this node

    def children(self) -> list[_Node]:
        return [n for n in (self.items, self.additional, *(self.properties or {}).values()) if n is not None]

    def compile_rules(self, resource: bool = False) -> None:
        """Compile x-kubernetes-validations here and below (precondition: the schema is valid), and note
        which subtrees have rules, embedded resources or set/map lists so validation can skip the rest."""
        specs = [r for r in self.raw.get("x-kubernetes-validations") or [] if isinstance(r, dict)]
        self.rules = [cel.compile_rule(self, r, resource or self.embedded) for r in specs]
        for spec, compiled in zip(specs, self.rules, strict=True):
            if spec.get("fieldPath"):
                compiled.field_path = _field_path(spec["fieldPath"], self) or ""
        children = self.children()
        for child in children:
            child.compile_rules()
        self.convert = cel.converts(self) or any(c.convert for c in children)
        self.rules_below = bool(self.rules) or any(c.rules_below for c in children)
        self.transitions_below = any(r.uses_old_self for r in self.rules) or any(c.transitions_below for c in children)
        self.checks_below = self.embedded or self.list_type in ("set", "map") or any(c.checks_below for c in children)


def _number(raw: dict, key: str) -> int | float | None:
    value = raw.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _compile_pattern(pattern: str) -> Any:
    if not pattern:
        return None
    try:
        return cel.re2_compile(pattern)
    except cel.RegexError:
        return None


# --- schema_errors: what CRD validation reports about an openAPIV3Schema ---

def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


class _SchemaChecker:
    """apis/apiextensions/validation: ValidateCustomResourceDefinitionOpenAPISchema and friends."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def check(self, s: dict, path: str, root: bool, forbid_defaults: str | None, in_meta: bool) -> None:
        e = self.errors
        self._standard(s, path, forbid_defaults, in_meta)
        if s.get("uniqueItems") is True:
            e.append(_forbidden(f"{path}.uniqueItems",
                                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
        additional = s.get("additionalProperties")
        properties = s.get("properties") if isinstance(s.get("properties"), dict) else {}
        if additional is not None:
            if properties and (additional is False or isinstance(additional, dict)):
                e.append(_forbidden(f"{path}.additionalProperties",
                                    "additionalProperties and properties are mutual exclusive"))
            if isinstance(additional, dict):
                sub_forbid = ("inside additionalProperties applying to object metadata" if in_meta
                              else forbid_defaults)
                self.check(additional, f"{path}.additionalProperties", False, sub_forbid, in_meta)
        for name, prop in properties.items():
            if not isinstance(prop, dict):
                continue
            sub_forbid, sub_meta = forbid_defaults, in_meta
            if (root or s.get("x-kubernetes-embedded-resource") is True) and name in _META_FIELDS:
                sub_meta = True
                if root:
                    sub_forbid = f"in top-level {name}"
            self.check(prop, _key(f"{path}.properties", name), False, sub_forbid, sub_meta)
        if isinstance(s.get("not"), dict):
            self.check(s["not"], f"{path}.not", False, forbid_defaults, in_meta)
        for junctor in ("allOf", "oneOf", "anyOf"):
            for i, sub in enumerate(s.get(junctor) or []):
                if isinstance(sub, dict):
                    self.check(sub, f"{path}.{junctor}[{i}]", False, forbid_defaults, in_meta)
        items = s.get("items")
        if isinstance(items, dict):
            self.check(items, f"{path}.items", False, forbid_defaults, in_meta)
        elif isinstance(items, list):
            for i, sub in enumerate(items):
                if isinstance(sub, dict):
                    self.check(sub, f"{path}.items[{i}]", False, forbid_defaults, in_meta)
        self._extensions(s, path)
        self._list_map_keys(s, path)
        self._rules(s, path)

    def _standard(self, s: dict, path: str, forbid_defaults: str | None, in_meta: bool) -> None:
        e = self.errors
        t = s.get("type")
        if t and t not in TYPES and t != "null":
            e.append(_not_supported(f"{path}.type", t, list(TYPES)))
        if s.get("default") is not None and forbid_defaults is not None:
            e.append(_forbidden(f"{path}.default", f"must not be set {forbid_defaults}"))
        if s.get("id"):
            e.append(_forbidden(f"{path}.id", "id is not supported"))
        for name in ("additionalItems", "patternProperties", "definitions", "dependencies"):
            if s.get(name) is not None and (name == "additionalItems" or s.get(name)):
                e.append(_forbidden(f"{path}.{name}", f"{name} is not supported"))
        if s.get("$ref") is not None:
            e.append(_forbidden(f"{path}.$ref", "$ref is not supported"))
        if t == "null":
            e.append(_forbidden(f"{path}.type", "type cannot be set to null, use nullable as an alternative"))
        if isinstance(s.get("items"), list):
            e.append(_forbidden(f"{path}.items", "items must be a schema object and not an array"))
        if in_meta and s.get("x-kubernetes-embedded-resource") is True:
            e.append(_forbidden(f"{path}.x-kubernetes-embedded-resource", "must not be used inside of resource meta"))

    def _extensions(self, s: dict, path: str) -> None:
        e = self.errors
        t = s.get("type") or ""
        if s.get("x-kubernetes-preserve-unknown-fields") is False:
            e.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"))
        map_type = s.get("x-kubernetes-map-type")
        if map_type is not None and t != "object":
            e.append(_required(f"{path}.type", "must be object if x-kubernetes-map-type is specified") if not t
                     else _invalid(f"{path}.type", t, "must be object if x-kubernetes-map-type is specified"))
        if map_type is not None and map_type not in ("atomic", "granular"):
            e.append(_not_supported(f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"]))
        list_type = s.get("x-kubernetes-list-type")
        items = s.get("items") if isinstance(s.get("items"), dict) else None
        if list_type is not None and t != "array":
            e.append(_required(f"{path}.type", "must be array if x-kubernetes-list-type is specified") if not t
                     else _invalid(f"{path}.type", t, "must be array if x-kubernetes-list-type is specified"))
        elif list_type == "set" and items is not None:
            item_type = items.get("type")
            if item_type == "array" and items.get("x-kubernetes-list-type", "atomic") != "atomic":
                e.append(_invalid(f"{path}.items.x-kubernetes-list-type", items.get("x-kubernetes-list-type"),
                                  "must be atomic as item of a list with x-kubernetes-list-type=set"))
            if item_type == "object" and items.get("x-kubernetes-map-type") != "atomic":
                e.append(_invalid(f"{path}.items.x-kubernetes-map-type", list_type,
                                  "must be atomic as item of a list with x-kubernetes-list-type=set"))
        if list_type is not None and list_type not in ("atomic", "set", "map"):
            e.append(_not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]))
        keys = s.get("x-kubernetes-list-map-keys") or []
        if keys:
            if list_type is None:
                e.append(_required(f"{path}.x-kubernetes-list-type",
                                   "must be map if x-kubernetes-list-map-keys is non-empty"))
            elif list_type != "map":
                e.append(_invalid(f"{path}.x-kubernetes-list-type", list_type,
                                  "must be map if x-kubernetes-list-map-keys is non-empty"))
        if list_type == "map":
            if not keys:
                e.append(_required(f"{path}.x-kubernetes-list-map-keys",
                                   "must not be empty if x-kubernetes-list-type is map"))
            if s.get("items") is None:
                e.append(_required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map"))
            elif items is None:
                e.append(_invalid(f"{path}.items", s.get("items"),
                                  "must only have a single schema if x-kubernetes-list-type is map"))
            elif items.get("type") != "object":
                e.append(_invalid(f"{path}.items.type", items.get("type") or "",
                                  "must be object if parent array's x-kubernetes-list-type is map"))
            else:
                item_props = items.get("properties") or {}
                seen: set[str] = set()
                for k in keys:
                    if k in item_props:
                        if (item_props[k] or {}).get("type") in ("array", "object"):
                            e.append(_invalid(_key(f"{path}.items.properties", k) + ".type", "object",
                                              "must be a scalar type if parent array's x-kubernetes-list-type is map"))
                    else:
                        e.append(_invalid(f"{path}.x-kubernetes-list-map-keys", _go_strings(keys),
                                          "entries must all be names of item properties"))
                    if k in seen:
                        e.append(_invalid(f"{path}.x-kubernetes-list-map-keys", _go_strings(keys),
                                          "must not contain duplicate entries"))
                    seen.add(k)

    def _list_map_keys(self, s: dict, path: str) -> None:
        """validateMapListKeysMapSet: map keys must be required or defaulted, set/map items not nullable."""
        items = s.get("items")
        list_type = s.get("x-kubernetes-list-type")
        if not isinstance(items, dict) or list_type not in ("set", "map"):
            return
        if items.get("nullable") is True:
            self.errors.append(_forbidden(f"{path}.items.nullable", f"cannot be nullable when x-kubernetes-list-type "
                                                                    f"is {list_type}"))
        if list_type != "map":
            return
        required_keys = set(items.get("required") or [])
        for k in s.get("x-kubernetes-list-map-keys") or []:
            prop = (items.get("properties") or {}).get(k)
            if not isinstance(prop, dict):
                continue
            if k not in required_keys and prop.get("default") is None:
                self.errors.append(_required(_key(f"{path}.items.properties", k) + ".default",
                                             "this property is in x-kubernetes-list-map-keys, so it must have a "
                                             "default or be a required property"))
            if prop.get("nullable") is True:
                self.errors.append(_forbidden(_key(f"{path}.items.properties", k) + ".nullable",
                                              "this property is in x-kubernetes-list-map-keys, so it cannot be "
                                              "nullable"))

    def _rules(self, s: dict, path: str) -> None:
        e = self.errors
        for i, rule in enumerate(s.get("x-kubernetes-validations") or []):
            rp = f"{path}.x-kubernetes-validations[{i}]"
            if not isinstance(rule, dict):
                continue
            text = (rule.get("rule") or "").strip()
            message = rule.get("message") or ""
            if not text:
                e.append(_required(f"{rp}.rule", "rule is not specified"))
            elif message and not message.strip():
                e.append(_invalid(f"{rp}.message", message, "must be non-empty if specified"))
            elif re.search(r"[\n\r]", message.strip()):
                e.append(_invalid(f"{rp}.message", message, "must not contain line breaks"))
            elif re.search(r"[\n\r]", text) and not message.strip():
                e.append(_required(f"{rp}.message", "message must be specified if rule contains line breaks"))
            message_expression = rule.get("messageExpression") or ""
            if message_expression and not message_expression.strip():
                e.append(_required(f"{rp}.messageExpression", "messageExpression must be non-empty if specified"))
            reason = rule.get("reason")
            if reason is not None and reason not in REASONS:
                e.append(_not_supported(f"{rp}.reason", reason, list(REASONS)))
            field_path = rule.get("fieldPath") or ""
            if field_path and not field_path.strip():
                e.append(_invalid(f"{rp}.fieldPath", field_path, "must be non-empty if specified"))
            if re.search(r"[\n\r]", field_path):
                e.append(_invalid(f"{rp}.fieldPath", field_path, "must not contain line breaks"))
            if field_path and _field_path(field_path, _Node(s)) is None:
                e.append(_invalid(f"{rp}.fieldPath", field_path, "must be a valid path"))


_PATH_TOKEN = re.compile(r"'(?:\\.|[^'\\])*'|[.\[\]]|[^.\[\]']+")


def _field_path(path: str, node: _Node) -> str | None:
    """upstream ValidFieldPath: the normalized field path of a rule's fieldPath, None if it is not valid."""
    tokens = _PATH_TOKEN.findall(path)
    out = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == ".":
            if i + 1 >= len(tokens):
                return None
            name = tokens[i + 1]
            i += 2
        elif tok == "[":
            if i + 2 >= len(tokens) or tokens[i + 2] != "]":
                return None
            quoted = tokens[i + 1]
            if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'":
                return None
            name = re.sub(r"\\(.)", r"\1", quoted[1:-1])
            i += 3
        else:
            return None
        if node.properties is not None:
            if name not in node.properties:
                return None
            out = f"{out}.{name}" if out else name
            node = node.properties[name]
        elif node.additional is not None:
            out = f"{out}[{name}]"
            node = node.additional
        else:
            return None
    return out


def _structural_errors(s: dict, path: str) -> list[FieldError]:
    """apiserver/schema ValidateStructural: invariants and completeness, sorted like upstream."""
    errors: list[FieldError] = []
    _invariants(s, "root", path, errors)
    _completeness(s, s, path, path, errors)
    return sorted(errors, key=lambda e: e.message())


_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _invariants(s: dict, level: str, path: str, errors: list[FieldError]) -> None:
    t = s.get("type") or ""
    items = s.get("items") if isinstance(s.get("items"), dict) else None
    if t == "array" and items is None:
        errors.append(_required(f"{path}.items", "must be specified"))
    if items is not None:
        _invariants(items, "item", f"{path}.items", errors)
    for name, prop in (s.get("properties") or {}).items():
        if isinstance(prop, dict):
            _invariants(prop, "field", _key(f"{path}.properties", name), errors)
    additional = s.get("additionalProperties")
    if additional is not None and additional is not False:
        if level == "root":
            errors.append(_forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if isinstance(additional, dict):
            _invariants(additional, "field", f"{path}.additionalProperties", errors)
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = s.get("x-kubernetes-embedded-resource") is True
    if int_or_string and preserve:
        errors.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", True,
                               "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        errors.append(_invalid(f"{path}.x-kubernetes-embedded-resource", True,
                               "must be false if x-kubernetes-int-or-string is true"))
    skip_any_of = s.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = s.get("allOf") or []
    skip_first_all_of_any_of = bool(all_of) and isinstance(all_of[0], dict) and \
        all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    _value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errors)
    if embedded and t != "object":
        if not t:
            errors.append(_required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true"))
        else:
            errors.append(_invalid(f"{path}.type", t, "must be object if x-kubernetes-embedded-resource is true"))
    elif not t and not int_or_string and not preserve:
        detail = {"root": "must not be empty at the root", "item": "must not be empty for specified array items",
                  "field": "must not be empty for specified object fields"}[level]
        errors.append(_required(f"{path}.type", detail))
    if embedded and additional is not None and additional is not False:
        errors.append(_forbidden(f"{path}.additionalProperties",
                                 "must not be used if x-kubernetes-embedded-resource is set"))
    if level == "root" and t and t != "object":
        errors.append(_invalid(f"{path}.type", t, "must be object at the root"))
    check_meta = level == "root" or embedded
    props = s.get("properties") or {}
    for name in ("kind", "apiVersion"):
        if check_meta and isinstance(props.get(name), dict) and props[name].get("type") != "string":
            errors.append(_invalid(_key(f"{path}.properties", name) + ".type", props[name].get("type") or "",
                                   "must be string"))
    metadata = props.get("metadata")
    if isinstance(metadata, dict):
        meta_path = _key(f"{path}.properties", "metadata")
        if check_meta and metadata.get("type") != "object":
            errors.append(_invalid(f"{meta_path}.type", metadata.get("type") or "", "must be object"))
        if level == "root" and not _only_restricts_name(metadata):
            errors.append(_forbidden(meta_path, "must not specify anything other than name and generateName, but "
                                                "metadata is implicitly specified"))
    if embedded and not preserve and not props:
        errors.append(_required(f"{path}.properties", "must not be empty if x-kubernetes-embedded-resource is true "
                                                      "without x-kubernetes-preserve-unknown-fields"))


def _only_restricts_name(metadata: dict) -> bool:
    """Root metadata may only say it is an object and restrict name/generateName."""
    for key, value in metadata.items():
        if key in ("type", "default"):
            continue
        if key == "properties":
            if value and not set(value) <= {"name", "generateName"}:
                return False
        elif value not in (None, False, "", [], {}):
            return False
    return True


_FORBIDDEN_NESTED = (
    ("type", "must be empty to be structural", lambda v: bool(v)),
    ("default", "must be undefined to be structural", lambda v: v is not None),
    ("title", "must be empty to be structural", lambda v: bool(v)),
    ("description", "must be empty to be structural", lambda v: bool(v)),
    ("nullable", "must be false to be structural", lambda v: v is True),
    ("externalDocs", "must be undefined to be structural", lambda v: v is not None),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural", lambda v: v is True),
    ("x-kubernetes-embedded-resource", "must be false to be structural", lambda v: v is True),
    ("x-kubernetes-int-or-string", "must be false to be structural", lambda v: v is True),
    ("x-kubernetes-list-map-keys", "must be empty to be structural", lambda v: bool(v)),
    ("x-kubernetes-list-type", "must be undefined to be structural", lambda v: v is not None),
    ("x-kubernetes-map-type", "must be undefined to be structural", lambda v: v is not None),
    ("x-kubernetes-validations", "must be empty to be structural", lambda v: bool(v)),
)


def _value_validation(s: dict, skip_any_of: bool, skip_first_all_of_any_of: bool, path: str,
                      errors: list[FieldError]) -> None:
    if not skip_any_of:
        for i, sub in enumerate(s.get("anyOf") or []):
            if isinstance(sub, dict):
                _nested(sub, False, f"{path}.anyOf[{i}]", errors)
    for i, sub in enumerate(s.get("allOf") or []):
        if isinstance(sub, dict):
            _nested(sub, skip_first_all_of_any_of and i == 0, f"{path}.allOf[{i}]", errors)
    for i, sub in enumerate(s.get("oneOf") or []):
        if isinstance(sub, dict):
            _nested(sub, False, f"{path}.oneOf[{i}]", errors)
    if isinstance(s.get("not"), dict):
        _nested(s["not"], False, f"{path}.not", errors)
    pattern = s.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            cel.re2_compile(pattern)
        except cel.RegexError as exc:
            errors.append(_invalid(f"{path}.pattern", pattern, f"must be a valid regular expression, but isn't: {exc}"))


def _nested(v: dict, skip_any_of: bool, path: str, errors: list[FieldError]) -> None:
    _value_validation(v, skip_any_of, False, path, errors)
    if isinstance(v.get("items"), dict):
        _nested(v["items"], False, f"{path}.items", errors)
    for name, prop in (v.get("properties") or {}).items():
        if isinstance(prop, dict):
            _nested(prop, False, _key(f"{path}.properties", name), errors)
    for key, detail, present in _FORBIDDEN_NESTED:
        if key in v and present(v[key]):
            errors.append(_forbidden(f"{path}.{key}", detail))
        if key == "externalDocs":
            additional = v.get("additionalProperties")
            if additional is not None:
                errors.append(_forbidden(f"{path}.additionalProperties", "must be undefined to be structural"))
    if "metadata" in (v.get("properties") or {}):
        errors.append(_forbidden(_key(f"{path}.properties", "metadata"), "must not be specified in a nested context"))


def _completeness(v: dict, s: dict | None, s_path: str, v_path: str, errors: list[FieldError]) -> None:
    """Everything a value validation (allOf/anyOf/oneOf/not) talks about must exist in the structural schema."""
    for junctor in ("not", "allOf", "anyOf", "oneOf"):
        subs = [v[junctor]] if junctor == "not" and isinstance(v.get("not"), dict) else (
            v.get(junctor) or [] if junctor != "not" else [])
        for i, sub in enumerate(subs):
            if isinstance(sub, dict):
                sub_path = f"{v_path}.not" if junctor == "not" else f"{v_path}.{junctor}[{i}]"
                _nested_completeness(sub, s, s_path, sub_path, errors)


def _nested_completeness(v: dict, s: dict | None, s_path: str, v_path: str, errors: list[FieldError]) -> None:
    if s is None:
        errors.append(_required(s_path, f"because it is defined in {v_path}"))
        return
    _completeness(v, s, s_path, v_path, errors)
    if isinstance(v.get("items"), dict):
        s_items = s.get("items") if isinstance(s.get("items"), dict) else None
        _nested_completeness(v["items"], s_items, f"{s_path}.items", f"{v_path}.items", errors)
    s_props = s.get("properties") or {}
    for name, sub in (v.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        if name not in s_props:
            errors.append(_required(_key(f"{s_path}.properties", name),
                                    f"because it is defined in {_key(f'{v_path}.properties', name)}"))
        else:
            _nested_completeness(sub, s_props[name], _key(f"{s_path}.properties", name),
                                 _key(f"{v_path}.properties", name), errors)


def _default_errors(node: _Node, path: str, root: _Node, in_meta: bool) -> list[FieldError]:
    """structuraldefaulting.ValidateDefaults: defaults are pruned, valid, and pass the rules."""
    errors: list[FieldError] = []
    if node.embedded:
        in_meta = False
    if node.has_default and not in_meta:
        pruned = copy.deepcopy(node.default)
        _prune(pruned, node, node.embedded)
        if pruned != node.default:
            errors.append(_invalid(f"{path}.default", node.default, "must not have unknown fields"))
        else:
            validator = _Validator(f"{path}.default")
            validator.openapi(node, node.default, _MISSING, "")
            errors += validator.errors
    if node.items is not None:
        errors += _default_errors(node.items, f"{path}.items", root, in_meta)
    for name, prop in (node.properties or {}).items():
        sub_meta = in_meta or ((node is root or node.embedded) and name in _META_FIELDS)
        errors += _default_errors(prop, _key(f"{path}.properties", name), root, sub_meta)
    return errors


def _rule_compile_errors(node: _Node, path: str, uncorrelatable: str | None) -> list[FieldError]:
    """CEL compile failures, oldSelf where values cannot be correlated, optionalOldSelf without oldSelf."""
    errors: list[FieldError] = []
    specs = [r for r in node.raw.get("x-kubernetes-validations") or [] if isinstance(r, dict)]
    for i, (spec, compiled) in enumerate(zip(specs, node.rules, strict=True)):
        rp = f"{path}.x-kubernetes-validations[{i}]"
        if compiled.error:
            errors.append(_invalid(f"{rp}.rule", _RuleValue(spec), compiled.error))
        if compiled.message_error:
            errors.append(_invalid(f"{rp}.messageExpression", _RuleValue(spec), compiled.message_error))
        if compiled.uses_old_self:
            if uncorrelatable is not None:
                errors.append(_invalid(f"{rp}.rule", spec.get("rule"),
                                       f"oldSelf cannot be used on the uncorrelatable portion of the schema within "
                                       f"{uncorrelatable}"))
        elif spec.get("optionalOldSelf") is not None:
            errors.append(_invalid(f"{rp}.optionalOldSelf", spec.get("optionalOldSelf"),
                                   "may not be set if oldSelf is not used in rule"))
    if node.items is not None:
        item_uncorrelatable = uncorrelatable if uncorrelatable is not None or node.list_type == "map" else path
        errors += _rule_compile_errors(node.items, f"{path}.items", item_uncorrelatable)
    if node.additional is not None:
        errors += _rule_compile_errors(node.additional, f"{path}.additionalProperties", uncorrelatable)
    for name, prop in (node.properties or {}).items():
        errors += _rule_compile_errors(prop, _key(f"{path}.properties", name), uncorrelatable)
    return errors


_STRING_KEYS = ("id", "$schema", "$ref", "description", "type", "format", "title", "pattern",
                "x-kubernetes-list-type", "x-kubernetes-map-type")
_NUMBER_KEYS = ("maximum", "minimum", "multipleOf")
_INTEGER_KEYS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
_BOOL_KEYS = ("exclusiveMaximum", "exclusiveMinimum", "uniqueItems", "nullable", "x-kubernetes-preserve-unknown-fields",
              "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string")
_RULE_KEYS = {"rule": str, "message": str, "messageExpression": str, "reason": str, "fieldPath": str,
              "optionalOldSelf": bool}


def _json_type_errors(s: Any, path: str, errors: list[FieldError]) -> None:
    """Keywords whose JSON type cannot decode into upstream's JSONSchemaProps (upstream's decoder rejects
    the whole request; reporting them here keeps every later check on well-typed input)."""
    if not isinstance(s, dict):
        errors.append(_invalid(path, _go_type(s), "must be an object"))
        return

    def wrong(key: str, expected: str) -> None:
        errors.append(_invalid(f"{path}.{key}", _go_type(s[key]), f"must be of type {expected}"))

    for key in _STRING_KEYS:
        if key in s and s[key] is not None and not isinstance(s[key], str):
            wrong(key, "string")
    for key in _NUMBER_KEYS:
        if key in s and s[key] is not None and _number(s, key) is None:
            wrong(key, "number")
    for key in _INTEGER_KEYS:
        if key in s and s[key] is not None and (_number(s, key) is None or not float(s[key]).is_integer()):
            wrong(key, "integer")
    for key in _BOOL_KEYS:
        if key in s and s[key] is not None and not isinstance(s[key], bool):
            wrong(key, "boolean")
    for key in ("required", "x-kubernetes-list-map-keys"):
        value = s.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            wrong(key, "array of strings")
    for key in ("enum", "allOf", "anyOf", "oneOf"):
        if key in s and s[key] is not None and not isinstance(s[key], list):
            wrong(key, "array")
    for key in ("properties", "patternProperties", "definitions"):
        if key in s and s[key] is not None:
            if not isinstance(s[key], dict):
                wrong(key, "object")
            else:
                for name, sub in s[key].items():
                    _json_type_errors(sub, _key(f"{path}.{key}", name), errors)
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(junctor) if isinstance(s.get(junctor), list) else []):
            _json_type_errors(sub, f"{path}.{junctor}[{i}]", errors)
    for key in ("not", "additionalItems"):
        if isinstance(s.get(key), dict):
            _json_type_errors(s[key], f"{path}.{key}", errors)
    if "additionalProperties" in s and s["additionalProperties"] is not None:
        if isinstance(s["additionalProperties"], dict):
            _json_type_errors(s["additionalProperties"], f"{path}.additionalProperties", errors)
        elif not isinstance(s["additionalProperties"], bool):
            wrong("additionalProperties", "object or boolean")
    items = s.get("items")
    if isinstance(items, list):
        for i, sub in enumerate(items):
            _json_type_errors(sub, f"{path}.items[{i}]", errors)
    elif items is not None:
        _json_type_errors(items, f"{path}.items", errors)
    rules = s.get("x-kubernetes-validations")
    if rules is not None and not isinstance(rules, list):
        wrong("x-kubernetes-validations", "array")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        rule_path = f"{path}.x-kubernetes-validations[{i}]"
        if not isinstance(rule, dict):
            errors.append(_invalid(rule_path, _go_type(rule), "must be an object"))
            continue
        for key, kind in _RULE_KEYS.items():
            if rule.get(key) is not None and not isinstance(rule[key], kind):
                errors.append(_invalid(f"{rule_path}.{key}", _go_type(rule[key]),
                                       f"must be of type {'string' if kind is str else 'boolean'}"))


def schema_errors(schema: dict, path: str) -> list[FieldError]:
    """Every reason a CRD version's openAPIV3Schema is invalid or not structural, with upstream's wording and
    field paths under `path`; includes x-kubernetes-validations rules that fail to compile. [] means usable."""
    errors: list[FieldError] = []
    _json_type_errors(schema, path, errors)
    if errors:
        return errors
    if schema.get("nullable") is True:
        errors.append(_forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    checker = _SchemaChecker()
    checker.check(schema, path, True, None, False)
    errors += checker.errors
    structural = _structural_errors(schema, path)
    errors += structural
    if structural or checker.errors:
        return errors
    root = _Node(schema)
    root.embedded = True  # the resource root keeps apiVersion/kind/metadata like an embedded resource
    defaults = _default_errors(root, path, root, False)
    if defaults:
        return errors + defaults
    root.compile_rules(resource=True)
    errors += _rule_compile_errors(root, path, None)
    if not errors:
        errors += _default_rule_errors(root, path, root, False)
    return errors


def _default_rule_errors(node: _Node, path: str, root: _Node, in_meta: bool) -> list[FieldError]:
    """Defaults must also pass the x-kubernetes-validations rules at and below their node."""
    errors: list[FieldError] = []
    if node.embedded and node is not root:
        in_meta = False
    if node.has_default and not in_meta:
        validator = _Validator(f"{path}.default")
        validator.rules(node, node.default, _MISSING, "", resource_root=False)
        errors += validator.errors
    if node.items is not None:
        errors += _default_rule_errors(node.items, f"{path}.items", root, in_meta)
    for name, prop in (node.properties or {}).items():
        sub_meta = in_meta or ((node is root or node.embedded) and name in _META_FIELDS)
        errors += _default_rule_errors(prop, _key(f"{path}.properties", name), root, sub_meta)
    return errors


# --- pruning and defaulting ---

_OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields"})


def _coerce_embedded_meta(value: dict, path: str, unknown: list[str] | None) -> None:
    """objectmeta.Coerce: an embedded resource's metadata keeps only ObjectMeta's fields (the resource
    root's metadata is the apiserver's to handle)."""
    meta = value.get("metadata")
    if isinstance(meta, dict):
        meta_path = f"{path}.metadata" if path else "metadata"
        for key in [k for k in meta if k not in _OBJECT_META_FIELDS]:
            _record(unknown, meta_path, key)
            del meta[key]


def _prune(value: Any, node: _Node | None, resource: bool, path: str = "", unknown: list[str] | None = None) -> None:
    if isinstance(value, dict) and node is not None and node.embedded and not resource:
        _coerce_embedded_meta(value, path, unknown)
    if node is not None and node.preserve_unknown:
        _skip_prune(value, node, unknown, path, resource)
        return
    if isinstance(value, dict):
        if node is None:
            for key in list(value):
                _record(unknown, path, key)
            value.clear()
            return
        for key in list(value):
            child_path = f"{path}.{key}" if path else key
            if (resource or node.embedded) and key in _META_FIELDS:
                continue
            if node.properties is not None and key in node.properties:
                _prune(value[key], node.properties[key], False, child_path, unknown)
            elif node.any_key:
                _prune(value[key], node.additional, False, child_path, unknown)
            else:
                _record(unknown, path, key)
                del value[key]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _prune(item, node.items if node is not None else None, False, f"{path}[{i}]", unknown)


def _skip_prune(value: Any, node: _Node, unknown: list[str] | None, path: str, resource: bool = False) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            if (resource or node.embedded) and key in _META_FIELDS:
                continue
            child_path = f"{path}.{key}" if path else key
            if node.properties is not None and key in node.properties:
                _prune(child, node.properties[key], False, child_path, unknown)
            elif node.additional is not None:
                _prune(child, node.additional, False, child_path, unknown)
    elif isinstance(value, list) and node.items is not None:
        for i, item in enumerate(value):
            _skip_prune(item, node.items, unknown, f"{path}[{i}]")


def _record(unknown: list[str] | None, path: str, key: str) -> None:
    if unknown is not None:
        unknown.append(f"{path}.{key}" if path else key)


def _schema_for(node: _Node | None, key: str) -> _Node | None:
    if node is None:
        return None
    if node.properties is not None and key in node.properties:
        return node.properties[key]
    return node.additional


def _prune_nulls(value: Any, node: _Node | None) -> None:
    """PruneNonNullableNullsWithoutDefaults."""
    if isinstance(value, dict):
        for key in list(value):
            child = _schema_for(node, key)
            if value[key] is None and child is not None and not child.nullable and not child.has_default:
                del value[key]
            else:
                _prune_nulls(value[key], child)
    elif isinstance(value, list):
        items = node.items if node is not None else None
        for item in value:
            _prune_nulls(item, items)


def _apply_defaults(value: Any, node: _Node | None) -> None:
    if node is None:
        return
    if isinstance(value, dict):
        for key, prop in (node.properties or {}).items():
            if prop.has_default and (key not in value or (value[key] is None and not prop.nullable)):
                value[key] = copy.deepcopy(prop.default)
        for key in value:
            if node.properties is not None and key in node.properties:
                _apply_defaults(value[key], node.properties[key])
            elif node.additional is not None:
                if value[key] is None and not node.additional.nullable and node.additional.has_default:
                    value[key] = copy.deepcopy(node.additional.default)
                _apply_defaults(value[key], node.additional)
    elif isinstance(value, list) and node.items is not None:
        for i, item in enumerate(value):
            if item is None and not node.items.nullable and node.items.has_default:
                value[i] = copy.deepcopy(node.items.default)
            _apply_defaults(value[i], node.items)


# --- validation ---

def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _same_json(a: Any, b: Any) -> bool:
    """Deep equality that tells JSON types apart (Python has 1 == 1.0 == True; Go's DeepEqual does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same_json, a, b))
    return a == b


def _unchanged(value: Any, old: Any) -> bool:
    return value is old or (value == old and _same_json(value, old))  # `==` in C first: most values differ


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _enum_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class _Validator:
    """Validation of one value against a schema, in upstream's passes: kube-openapi's checks, embedded
    resources, list-type uniqueness, then (unless an earlier error blocks them) CEL rules."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix  # a path the whole value sits under ("" for a custom resource)
        self.errors: list[FieldError] = []
        self.budget = float(cel.RUNTIME_BUDGET)
        self.stopped = False

    @property
    def _unnamed(self) -> str:
        """Where kube-openapi's unnamed errors land: the validator's own path, "<nil>" for a resource."""
        return self.prefix or "<nil>"

    def _name(self, path: str) -> str:
        if not self.prefix:
            return path
        return f"{self.prefix}.{path}" if path and not path.startswith("[") else self.prefix + path

    def openapi(self, node: _Node, value: Any, old: Any, path: str) -> None:
        """kube-openapi validation of `value` at `path` (its spelling: `a.b[0].key`), ratcheting on `old`.
        Errors come in kube-openapi's order: type, junctors, string/format/number/list checks, enum,
        object counts, then the children, then required properties."""
        if old is not _MISSING and _unchanged(value, old):
            return  # ratcheting: an unchanged value keeps whatever errors it had
        self._openapi(node, value, path)
        if isinstance(value, dict):
            for key, child in value.items():
                sub = _schema_for(node, key)
                if sub is not None:
                    child_old = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                    self.openapi(sub, child, child_old, f"{path}.{key}" if path else key)
            for key in node.required:
                if key not in value:
                    self.errors.append(_required(self._name(f"{path}.{key}" if path else key)))
        elif isinstance(value, list) and node.items is not None:
            old_items = _correlate(node, old) if node.list_type == "map" else None
            for i, item in enumerate(value):
                self.openapi(node.items, item, _old_item(node, old_items, item), f"{path}[{i}]")

    def structure(self, node: _Node, value: Any, fpath: str, embedded: bool, lists: bool,
                  resource_root: bool = True) -> None:
        """Embedded resources' apiVersion/kind/metadata and x-kubernetes-list-type set/map uniqueness."""
        if not node.checks_below:
            return
        if isinstance(value, dict):
            if embedded and node.embedded and not resource_root:
                self._embedded(value, fpath)
            for key, child in value.items():
                sub = _schema_for(node, key)
                if sub is not None:
                    named = node.properties is not None and key in node.properties
                    self.structure(sub, child, (f"{fpath}.{key}" if fpath else key) if named else f"{fpath}[{key}]",
                                   embedded, lists, False)
        elif isinstance(value, list):
            if lists and node.list_type in ("set", "map"):
                self._list_uniqueness(node, value, fpath)
            if node.items is not None:
                for i, item in enumerate(value):
                    self.structure(node.items, item, f"{fpath}[{i}]", embedded, lists, False)

    def rules(self, node: _Node, value: Any, old: Any, fpath: str, resource_root: bool = True,
              unchanged: bool = False) -> None:
        """x-kubernetes-validations at every level (field.Path spelling: `a.b[0][key]`). Ratcheting: in a
        value unchanged from `old` only rules that use oldSelf run (upstream never ratchets those)."""
        if value is None or self.stopped or not (node.transitions_below if unchanged else node.rules_below):
            return
        unchanged = unchanged or (old is not _MISSING and _unchanged(value, old))
        if node.rules:
            self._rules(node, value, old, fpath, resource_root, unchanged)
        if isinstance(value, dict):
            for key, child in value.items():
                sub = _schema_for(node, key)
                if sub is not None:
                    named = node.properties is not None and key in node.properties
                    child_old = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                    self.rules(sub, child, child_old,
                               (f"{fpath}.{key}" if fpath else key) if named else f"{fpath}[{key}]", False, unchanged)
        elif isinstance(value, list) and node.items is not None:
            old_items = _correlate(node, old) if node.list_type == "map" else None
            for i, item in enumerate(value):
                self.rules(node.items, item, _old_item(node, old_items, item), f"{fpath}[{i}]", False, unchanged)

    # kube-openapi SchemaValidator: every validator that applies to the data's kind runs
    def _openapi(self, node: _Node, value: Any, path: str) -> None:
        name = self._name(path)
        fpath = name
        errors = self.errors
        types = node.types
        if value is None:
            if types and not node.nullable:
                errors.append(_err("TypeInvalid", fpath, "null",
                                   f'{name} in body must be of type {",".join(types)}: "null"'))
            self._enum(node, value, fpath)
            return
        actual = _type_of(value)
        if types and not (actual in types or (actual == "integer" and "number" in types) or (
                actual == "number" and "integer" in types and float(value).is_integer())):
            errors.append(_err("TypeInvalid", fpath, actual, f'{name} in body must be of type {",".join(types)}: '
                                                             f'"{actual}"'))
        self._junctors(node, value, path)
        if isinstance(value, str):
            self._string(node, value, name, fpath)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number(node, value, name, fpath)
        elif isinstance(value, list):
            if node.min_items is not None and len(value) < node.min_items:
                errors.append(_invalid(fpath, len(value),
                                       f"{name} in body should have at least {node.min_items} items"))
            if node.max_items is not None and len(value) > node.max_items:
                errors.append(_err("TooMany", fpath, len(value), f"must have at most {node.max_items} items"))
        self._enum(node, value, fpath)
        if isinstance(value, dict):
            count = len(value)
            if node.min_properties is not None and count < node.min_properties:
                errors.append(_invalid(fpath, count,
                                       f"{name} in body should have at least {node.min_properties} properties"))
            if node.max_properties is not None and count > node.max_properties:
                errors.append(_err("TooMany", fpath, count, f"must have at most {node.max_properties} items"))

    def _enum(self, node: _Node, value: Any, fpath: str) -> None:
        if node.enum is not None and not any(_json_equal(value, e) for e in node.enum):
            self.errors.append(_err("NotSupported", fpath, value,
                                    "supported values: " + ", ".join(f'"{_enum_text(e)}"' for e in node.enum)))

    def _junctors(self, node: _Node, value: Any, path: str) -> None:
        name = self._name(path)
        if node.any_of:
            results = [self._sub(sub, value, path) for sub in node.any_of]
            if not any(not r for r in results):
                self.errors.append(_invalid(self._unnamed, "", f'"{name}" must validate at least one schema (anyOf)'))
                self.errors.extend(min(results, key=len))
        if node.one_of:
            results = [self._sub(sub, value, path) for sub in node.one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.errors.append(_invalid(self._unnamed, "",
                                            f'"{name}" must validate one and only one schema (oneOf). {found}'))
                if valid == 0:
                    self.errors.extend(min(results, key=len))
        if node.all_of:
            results = [self._sub(sub, value, path) for sub in node.all_of]
            failed = [r for r in results if r]
            for r in failed:
                self.errors.extend(r)
            if failed:
                suffix = ". None validated" if len(failed) == len(results) else ""
                self.errors.append(_invalid(self._unnamed, "",
                                            f'"{name}" must validate all the schemas (allOf){suffix}'))
        if node.not_ is not None and not self._sub(node.not_, value, path):
            self.errors.append(_invalid(self._unnamed, "", f'"{name}" must not validate the schema (not)'))

    def _sub(self, node: _Node, value: Any, path: str) -> list[FieldError]:
        sub = _Validator(self.prefix)
        sub._nested(node, value, path)
        return sub.errors

    def _nested(self, node: _Node, value: Any, path: str) -> None:
        """A value validation under allOf/anyOf/oneOf/not: its own checks, then its properties and items."""
        self._openapi(node, value, path)
        if value is None:
            return
        if isinstance(value, dict):
            for key, prop in (node.properties or {}).items():
                if key in value:
                    self._nested(prop, value[key], f"{path}.{key}" if path else key)
            if node.additional is not None:
                for key, child in value.items():
                    if not node.properties or key not in node.properties:
                        self._nested(node.additional, child, f"{path}.{key}" if path else key)
        elif isinstance(value, list) and node.items is not None:
            for i, item in enumerate(value):
                self._nested(node.items, item, f"{path}[{i}]")

    def _string(self, node: _Node, value: str, name: str, fpath: str) -> None:
        length = len(value)  # kube-openapi counts runes
        if node.max_length is not None and length > node.max_length:
            self.errors.append(_err("TooLong", fpath, detail=f"may not be more than {node.max_length} bytes"))
        elif node.min_length is not None and length < node.min_length:
            self.errors.append(_invalid(fpath, value,
                                        f"{name} in body should be at least {node.min_length} chars long"))
        elif node.pattern is not None and not node.pattern.search(value):
            self.errors.append(_invalid(fpath, value, f"{name} in body should match '{node.pattern_text}'"))
        if node.format:
            check = _FORMATS.get(node.format.replace("-", ""))
            if check is not None and not check(value):
                quoted = orjson.dumps(value).decode()
                self.errors.append(_err("TypeInvalid", fpath, value,
                                        f"{name} in body must be of type {node.format}: {quoted}"))

    def _number(self, node: _Node, value: float, name: str, fpath: str) -> None:
        if "integer" in node.types and node.format in _INT_RANGES:
            low, high = _INT_RANGES[node.format]
            if not low <= value <= high:
                self.errors.append(_invalid(self._unnamed, "", f"Checked value must be of type integer with format "
                                                               f"{node.format} in {name}"))
        if node.multiple_of:
            quotient = value / node.multiple_of
            if not float(quotient).is_integer():
                factor = go_float(float(node.multiple_of))
                self.errors.append(_invalid(fpath, value, f"{name} in body should be a multiple of {factor}"))
        maximum, minimum = node.maximum, node.minimum
        if maximum is not None:
            if node.exclusive_maximum and value >= maximum:
                self.errors.append(_invalid(fpath, value, f"{name} in body should be less than {go_float(maximum)}"))
            elif value > maximum:
                self.errors.append(_invalid(fpath, value,
                                            f"{name} in body should be less than or equal to {go_float(maximum)}"))
        if minimum is not None:
            if node.exclusive_minimum and value <= minimum:
                self.errors.append(_invalid(fpath, value, f"{name} in body should be greater than {go_float(minimum)}"))
            elif value < minimum:
                self.errors.append(_invalid(fpath, value,
                                            f"{name} in body should be greater than or equal to {go_float(minimum)}"))

    def _embedded(self, value: dict, fpath: str) -> None:
        """objectmeta.Validate for an embedded resource: apiVersion, kind and metadata."""
        base = self._name(fpath)
        prefix = f"{base}." if base else ""
        errors = self.errors
        for key in ("apiVersion", "kind"):
            if key not in value:
                errors.append(_required(prefix + key))
        api_version = value.get("apiVersion")
        if "apiVersion" in value:
            if not isinstance(api_version, str):
                errors.append(_invalid(prefix + "apiVersion", api_version, "must be a string"))
            elif not api_version:
                errors.append(_invalid(prefix + "apiVersion", api_version, "must not be empty"))
            elif api_version.count("/") > 1:
                errors.append(_invalid(prefix + "apiVersion", api_version,
                                       f"unexpected GroupVersion string: {api_version}"))
        kind = value.get("kind")
        if "kind" in value:
            if not isinstance(kind, str):
                errors.append(_invalid(prefix + "kind", kind, "must be a string"))
            elif not kind:
                errors.append(_invalid(prefix + "kind", kind, "must not be empty"))
            elif messages := is_dns1035_label(kind.lower()):
                errors.append(_invalid(prefix + "kind", kind,
                                       "may have mixed case, but should otherwise match: " + ",".join(messages)))
        meta = value.get("metadata")
        if "metadata" in value:
            if not isinstance(meta, dict):
                errors.append(_invalid(prefix + "metadata", meta,
                                       f"invalid metadata: expected object, got {_go_type(meta)}"))
            else:
                self._embedded_meta(meta, prefix + "metadata")

    def _embedded_meta(self, meta: dict, path: str) -> None:
        name = meta.get("name")
        if isinstance(name, str) and name:
            self.errors += [_invalid(f"{path}.name", name, m) for m in is_path_segment_name(name)]
        generate_name = meta.get("generateName")
        if isinstance(generate_name, str) and generate_name:
            self.errors += [_invalid(f"{path}.generateName", generate_name, m)
                            for m in is_path_segment_name(generate_name)]
        namespace = meta.get("namespace")
        if isinstance(namespace, str) and namespace:
            self.errors += [_invalid(f"{path}.namespace", namespace, m) for m in is_dns1123_label(namespace)]
        self.errors += labels(meta.get("labels"), f"{path}.labels")
        self.errors += annotations(meta.get("annotations"), f"{path}.annotations")

    def _list_uniqueness(self, node: _Node, value: list, fpath: str) -> None:
        base = self._name(fpath)
        if node.list_type == "set":
            for i in _second_occurrences([_canonical(v) for v in value]):
                self.errors.append(_err("Duplicate", f"{base}[{i}]", value[i]))
            return
        for i, item in enumerate(value):
            if item is not None and not isinstance(item, dict):
                self.errors.append(_invalid(f"{base}[{i}]", item, "must be an object for an array of list-type map"))
                return
        keys = [{k: item[k] for k in node.map_keys if k in item} if isinstance(item, dict) else {} for item in value]
        for i in _second_occurrences([_canonical(k) for k in keys]):
            self.errors.append(_err("Duplicate", f"{base}[{i}]", keys[i]))

    # x-kubernetes-validations
    def _rules(self, node: _Node, value: Any, old: Any, fpath: str, resource_root: bool, unchanged: bool) -> None:
        has_old = old is not _MISSING and old is not None
        self_value = cel.to_cel(value, node, resource_root)
        old_value = cel.to_cel(old, node, resource_root) if has_old else None
        activation = cel.Activation(cel.environment(node), self_value, old_value, has_old)
        size = 1
        if any(r.sized for r in node.rules):  # what this node's rules can iterate over: self and oldSelf
            size = cel.largest_size(self_value, old_value, strings=any(r.string_sizes for r in node.rules))
        base = self._name(fpath)
        type_value = node.type
        for compiled in node.rules:
            if compiled.program is None:
                continue
            if compiled.uses_old_self and not has_old and not compiled.optional_old_self:
                continue  # transition rules run only on updates of an existing value
            if unchanged and not compiled.uses_old_self:
                continue
            outcome = cel.run(compiled, activation, size, self.budget)
            self.budget -= outcome.cost
            if outcome.error:
                self.errors.append(_invalid(base, type_value, outcome.error))
                if outcome.stop:
                    self.stopped = True
                    return
                continue
            if outcome.passed:
                continue
            target = base
            if compiled.field_path:
                target = f"{base}.{compiled.field_path}" if base else compiled.field_path
            self.errors.append(_rule_error(target, type_value, outcome.detail, compiled.reason))


def _rule_error(path: str, value: str, detail: str, reason: str | None) -> FieldError:
    if reason == "FieldValueForbidden":
        return _forbidden(path, detail)
    if reason == "FieldValueRequired":
        return _required(path, detail)
    if reason == "FieldValueDuplicate":
        return _err("Duplicate", path, value)
    return _invalid(path, value, detail)


def _go_type(value: Any) -> str:
    return {bool: "bool", int: "int64", float: "float64", str: "string", list: "[]interface {}",
            dict: "map[string]interface {}"}.get(type(value), "<nil>" if value is None else type(value).__name__)


def _canonical(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and value.is_integer():
        return ("num", value)
    return value


def _second_occurrences(keys: list[Any]) -> list[int]:
    """Indices where a value is seen for the second time (upstream reports each duplicate once)."""
    seen: dict[Any, int] = {}
    out = []
    for i, key in enumerate(keys):
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            out.append(i)
    return out


def _map_key(node: _Node, item: dict) -> Any:
    return _canonical([item.get(k) for k in node.map_keys])


def _old_item(node: _Node, old_items: dict[Any, Any] | None, item: Any) -> Any:
    """The old element a list-type map element correlates with (others never correlate)."""
    if old_items is None or not isinstance(item, dict):
        return _MISSING
    return old_items.get(_map_key(node, item), _MISSING)


def _correlate(node: _Node, old: Any) -> dict[Any, Any] | None:
    if not isinstance(old, list):
        return None
    return {_map_key(node, item): item for item in old if isinstance(item, dict)}


# --- the engine the apiserver uses ---

@dataclass
class ListType:
    """SSA-relevant shape of a field: x-kubernetes-list-type/map-keys and x-kubernetes-map-type."""

    list_type: str | None
    map_keys: list[str]
    map_type: str | None


class CompiledSchema:
    """A usable CRD version schema applied to custom resources (objects are the whole resource)."""

    def __init__(self, schema: dict):
        self.root = _Node(schema or {})
        self.root.compile_rules(resource=True)

    def prune(self, obj: dict) -> list[str]:
        """Drop fields the schema does not know, in place; returns their paths (for unknown-field warnings).
        apiVersion, kind and metadata at the root and in embedded resources are kept."""
        unknown: list[str] = []
        _prune(obj, self.root, True, "", unknown)
        return sorted(unknown)

    def default(self, obj: dict) -> None:
        """Apply `default`s in place, like upstream after decoding: non-nullable nulls without defaults go,
        missing (or null non-nullable) fields with defaults get a copy of it, nested ones included."""
        _prune_nulls(obj, self.root)
        _apply_defaults(obj, self.root)

    def validate(self, obj: dict, old: dict | None = None, *, prior_errors: list[FieldError] = ()) -> list[FieldError]:
        """Upstream's CR validation after ObjectMeta checks: kube-openapi validation, embedded resources,
        set/map list uniqueness, then the x-kubernetes-validations rules unless a type/required/enum/size
        error (here or in `prior_errors`, e.g. the caller's ObjectMeta errors) blocks them. With `old`,
        transition rules run, unchanged values are not re-validated (ratcheting) and list uniqueness is
        only enforced when `old` had none of those errors."""
        old_value = old if old is not None else _MISSING
        validator = _Validator()
        validator.openapi(self.root, obj, old_value, "")
        validator.structure(self.root, obj, "", embedded=True, lists=False)
        if old is None or not self._list_errors(old):
            validator.structure(self.root, obj, "", embedded=False, lists=True)
        errors = validator.errors
        if self.root.rules_below:
            if any(e.type in _BLOCKING for e in (*prior_errors, *errors)):
                errors.append(_invalid("<nil>", None, "some validation rules were not checked because the object "
                                                      "was invalid; correct the existing errors to complete "
                                                      "validation"))
            else:
                validator.rules(self.root, obj, old_value, "")
        return validator.errors

    def _list_errors(self, obj: dict) -> bool:
        validator = _Validator()
        validator.structure(self.root, obj, "", embedded=False, lists=True)
        return bool(validator.errors)

    def list_type(self, path: tuple[str, ...]) -> ListType | None:
        """x-kubernetes-list-type/map-keys and map-type of the field at `path` (list items are stepped
        through implicitly; map keys match additionalProperties); None when the schema does not say."""
        node: _Node | None = self.root
        for name in path:
            while node is not None and node.type == "array":
                node = node.items
            node = _schema_for(node, name)
            if node is None:
                return None
        if node.list_type is None and node.map_type is None and not node.map_keys:
            return None
        return ListType(node.list_type, list(node.map_keys), node.map_type)

