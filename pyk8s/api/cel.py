"""CEL for CustomResourceDefinition `x-kubernetes-validations` rules, on cel-expr-python (cel-cpp).

Rules see `self` (and `oldSelf` in transition rules) typed from the structural schema node they sit
on (objects are dyn-valued maps; selecting a field the schema does not declare is a compile error,
as upstream's typed declarations make it), with the extensions upstream's CRD environment enables
(strings, optional syntax, bindings, math, encoders) and the Kubernetes libraries added as custom
functions: lists (`isSorted`, `sum`, `min`, `max`), regex (`find`, `findAll`), sets, `url`,
`ip`/`cidr` and `quantity`.

cel-expr-python cannot declare opaque types, optional-typed variables or optional results from
Python functions, so:
- url, ip, cidr and quantity values are maps tagged with `@kind` (their `@value` is canonical, which
  keeps `==` semantic: `quantity("1") == quantity("1000m")`);
- `optionalOldSelf` rules are rewritten so `oldSelf` reads
  `(__oldSelfPresent ? optional.of(__oldSelf) : optional.none())`;
- the `format` library (which returns optionals) is not available;
- the strings extension owns `indexOf`/`lastIndexOf`, and a function cannot get overloads from two
  places, so the lists library's `indexOf`/`lastIndexOf` are not available;
- `string()` cannot get overloads either, so `string(ip(...))`/`string(cidr(...))` do not compile;
- nested date-time and duration values stay strings (cel-expr-python takes timestamps and durations
  only as whole variables); `timestamp(self.when)` and `duration(self.timeout)` work on both.

cel-cpp has no cost budget or cancellation, so every compiled rule carries a polynomial bound of its
evaluation steps in N, the largest list or map in `self`/`oldSelf` (or the longest string, for rules
that split, replace, join...): a comprehension multiplies its body by N to the power of what it
iterates over, and the size of intermediate values is tracked as a power of N (chained `replace`s
count, and building a string costs its size). Before a rule runs, the bound is evaluated on the
actual value; a rule whose bound exceeds upstream's per-call limit is not run, and a custom
resource's rules share upstream's total runtime budget. Nothing that can run away is ever started.
"""

from __future__ import annotations

import base64
import datetime
import functools
import ipaddress
import json
import logging
import re
import urllib.parse
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import re2
from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_encoders, ext_math, ext_optional, ext_strings

from pyk8s.api import quantity as quantities

log = logging.getLogger(__name__)

PER_CALL_LIMIT = 1_000_000  # upstream celconfig.PerCallLimit
RUNTIME_BUDGET = 10_000_000  # upstream celconfig.RuntimeCELCostBudget, per custom resource
MAX_MESSAGE_EXPRESSION_BYTES = 5 * 1024  # upstream celconfig.MaxEvaluatedMessageExpressionSizeBytes

_OPAQUE = cel.Type.Map(cel.Type.STRING, cel.Type.STRING)
_DYN_LIST = cel.Type.List(cel.Type.DYN)
_STRING_LIST = cel.Type.List(cel.Type.STRING)
_OLD_SELF_PRESENT = "__oldSelfPresent"
_OLD_SELF_VALUE = "__oldSelf"
_OPTIONAL_OLD_SELF = f"({_OLD_SELF_PRESENT} ? optional.of({_OLD_SELF_VALUE}) : optional.none())"


class SchemaNode(Protocol):
    """What CEL needs from a structural schema node (pyk8s.api.structural builds them)."""

    type: str
    format: str
    convert: bool  # this node or one below it `converts`
    properties: dict[str, SchemaNode] | None
    additional: SchemaNode | None
    items: SchemaNode | None
    int_or_string: bool
    preserve_unknown: bool
    embedded: bool


class CelError(ValueError):
    """A rule that cannot be evaluated; the message is the detail upstream reports."""


# --- types ---

def declared_type(node: SchemaNode | None, top: bool = True) -> cel.Type:
    """The CEL type of values a schema node holds (upstream's DeclType, with objects as dyn-valued maps).
    cel-expr-python takes timestamps and durations only as whole variables, so nested ones stay strings."""
    if node is None or node.int_or_string or (node.preserve_unknown and not node.type):
        return cel.Type.DYN
    if node.type == "object":
        if node.additional is not None and not node.properties:
            return cel.Type.Map(cel.Type.STRING, declared_type(node.additional, False))
        return cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    if node.type == "array":
        return cel.Type.List(declared_type(node.items, False))
    if node.type == "string":
        if node.format in ("date-time", "duration"):
            if not top:
                return cel.Type.STRING
            return cel.Type.TIMESTAMP if node.format == "date-time" else cel.Type.DURATION
        return cel.Type.BYTES if node.format == "byte" else cel.Type.STRING
    return {"integer": cel.Type.INT, "number": cel.Type.DOUBLE, "boolean": cel.Type.BOOL}.get(node.type, cel.Type.DYN)


_TIME_FORMATS = ("date-time", "duration")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _go_duration(text: str) -> datetime.timedelta | None:
    """Go's time.ParseDuration ("1h30m", "-1.5s"); None when the text is not one."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return datetime.timedelta(0)
    parts = _DURATION_PART.findall(body)
    if not body or "".join(number + unit for number, unit in parts) != body:
        return None
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    return datetime.timedelta(seconds=sign * seconds)


def converts(node: SchemaNode) -> bool:
    """Whether values of this very node look different from CEL than in JSON (see to_cel)."""
    return node.embedded or node.type == "number" or (node.type == "string" and node.format == "byte")


def to_cel(value: Any, node: SchemaNode | None, resource_root: bool = False, top: bool = True) -> Any:
    """The value a rule sees: numbers as doubles, bytes decoded, a date-time or duration `self` as a
    timestamp or duration, and the metadata of a resource (root or embedded) narrowed to name and
    generateName as upstream does."""
    if value is None or node is None:
        return value
    if not getattr(node, "convert", True) and not resource_root and not (top and node.format in _TIME_FORMATS):
        return value  # nothing below needs converting (structural precomputes `convert` per subtree)
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if (resource_root or node.embedded) and key == "metadata" and isinstance(child, dict):
                out[key] = {k: v for k, v in child.items() if k in ("name", "generateName")}
            elif node.properties and key in node.properties:
                out[key] = to_cel(child, node.properties[key], top=False)
            else:
                out[key] = to_cel(child, node.additional, top=False)
        return out
    if isinstance(value, list):
        return [to_cel(item, node.items, top=False) for item in value]
    if node.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if node.type == "string" and isinstance(value, str):
        if node.format == "date-time" and top:
            try:
                return datetime.datetime.fromisoformat(value)
            except ValueError:
                return value
        if node.format == "duration" and top:
            duration = _go_duration(value)
            return value if duration is None else duration
        if node.format == "byte":
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                return value
    return value


# --- the Kubernetes libraries ---

def _no_overload(name: str) -> CelError:
    return CelError(f"no such overload: {name}")


def _opaque(kind: str, value: str) -> dict[str, str]:
    return {"@kind": kind, "@value": value}


def _unwrap(value: Any, kind: str, function: str) -> str:
    if not isinstance(value, dict) or value.get("@kind") != kind:
        raise _no_overload(function)
    return value["@value"]


def _comparable_list(values: list, function: str) -> list:
    if values and not (all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                       or all(isinstance(v, str) for v in values) or all(isinstance(v, bool) for v in values)):
        raise _no_overload(function)
    return values


def _is_sorted(values: list) -> bool:
    values = _comparable_list(values, "isSorted")
    return all(a <= b for a, b in zip(values, values[1:], strict=False))


def _sum(values: list) -> Any:
    values = _comparable_list(values, "sum")
    if any(isinstance(v, str) for v in values):
        raise _no_overload("sum")
    return sum(values) if values else 0


def _extreme(pick: Any, name: str):
    def impl(values: list) -> Any:
        if not values:
            raise CelError(f"{name} called on empty list")
        return pick(_comparable_list(values, name))
    return impl


# RE2's error codes in Go regexp/syntax's words (Kubernetes compiles patterns with Go's regexp)
_GO_REGEX_ERRORS = {
    "missing ]": "missing closing ]", "missing )": "missing closing )", "unexpected )": "unexpected )",
    "invalid perl operator": "invalid or unsupported Perl syntax", "bad repetition operator":
    "invalid nested repetition operator", "no argument for repetition operator":
    "missing argument to repetition operator", "invalid repetition size": "invalid repeat count",
    "invalid escape sequence": "invalid escape sequence", "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range", "invalid UTF-8": "invalid UTF-8",
    "invalid named capture group": "invalid named capture",
}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class RegexError(ValueError):
    """A pattern RE2 (and so Go's regexp) rejects; the message is Go's `error parsing regexp: ...`."""


@functools.lru_cache(maxsize=1024)
def re2_compile(pattern: str) -> Any:
    """Compile with RE2: linear-time matching, so no pattern can make matching run away, and the
    syntax Kubernetes accepts (Go's regexp is RE2)."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        text = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        code, _, arg = text.partition(": ")
        if code == "trailing \\":
            raise RegexError("error parsing regexp: trailing backslash at end of expression: ``") from None
        raise RegexError(f"error parsing regexp: {_GO_REGEX_ERRORS.get(code, code)}: `{arg}`") from None


def _regex(pattern: str) -> Any:
    try:
        return re2_compile(pattern)
    except RegexError as exc:
        raise CelError(str(exc)) from None


def _find(text: str, pattern: str) -> str:
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


def _parse_url(text: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(text)
    if not (parts.scheme and (parts.netloc or parts.path.startswith("/"))) and not text.startswith("/"):
        raise CelError(f"URL parse error during conversion from string: parse {text!r}: invalid URI for request")
    return parts


def _url(text: str) -> dict[str, str]:
    _parse_url(text)
    return _opaque("url", text)


def _is_url(text: str) -> bool:
    try:
        _parse_url(text)
    except (CelError, ValueError):
        return False
    return True


def _url_part(extract: Any, name: str):
    def impl(value: Any) -> Any:
        return extract(_parse_url(_unwrap(value, "url", name)))
    return impl


def _url_hostname(parts: urllib.parse.SplitResult) -> str:
    """Go's URL.Hostname(): the host without port or IPv6 brackets, case kept."""
    host = parts.netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _url_port(parts: urllib.parse.SplitResult) -> str:
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):
        tail = netloc.split("]", 1)[1]
        return tail[1:] if tail.startswith(":") else ""
    return netloc.rsplit(":", 1)[1] if ":" in netloc else ""


def _url_query(parts: urllib.parse.SplitResult) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(parts.query, keep_blank_values=True)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise CelError(f"IP Address {text!r} parse error during conversion from string: "
                       f"ParseAddr({text!r}): unable to parse IP") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise CelError(f"IPv4-mapped IPv6 address {text!r} is not allowed")
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise CelError(f"IP address {text!r} with zone value is not allowed")
    return address


def _ip(text: str) -> dict[str, str]:
    return _opaque("ip", str(_parse_ip(text)))


def _is_ip(text: str) -> bool:
    try:
        _parse_ip(text)
    except CelError:
        return False
    return True


def _ip_is_canonical(text: str) -> bool:
    return str(_parse_ip(text)) == text


def _ip_value(value: Any, name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(_unwrap(value, "ip", name))


def _ip_check(check: Any, name: str):
    def impl(value: Any) -> Any:
        return check(_ip_value(value, name))
    return impl


def _parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if "/" not in text:
        raise CelError(f"network address parse error during conversion from string: "
                       f"netip.ParsePrefix({text!r}): no '/'")
    address, _, prefix = text.partition("/")
    _parse_ip(address)
    try:
        return ipaddress.ip_interface(f"{address}/{int(prefix)}" if prefix.isdigit() else text)
    except ValueError:
        raise CelError(f"network address parse error during conversion from string: "
                       f"netip.ParsePrefix({text!r}): bad bits after slash: {prefix!r}") from None


def _cidr(text: str) -> dict[str, str]:
    return _opaque("cidr", str(_parse_cidr(text)))


def _is_cidr(text: str) -> bool:
    try:
        _parse_cidr(text)
    except CelError:
        return False
    return True


def _cidr_value(value: Any, name: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(_unwrap(value, "cidr", name))


def _contains_ip(cidr_value: Any, other: Any) -> bool:
    network = _cidr_value(cidr_value, "containsIP").network
    address = _parse_ip(other) if isinstance(other, str) else _ip_value(other, "containsIP")
    return address.version == network.version and address in network


def _contains_cidr(cidr_value: Any, other: Any) -> bool:
    network = _cidr_value(cidr_value, "containsCIDR").network
    inner = (_parse_cidr(other) if isinstance(other, str) else _cidr_value(other, "containsCIDR")).network
    return inner.version == network.version and inner.subnet_of(network)


def _parse_quantity(text: str) -> Fraction:
    try:
        return quantities.parse(text).value
    except quantities.QuantityError as exc:
        raise CelError(str(exc)) from None


def _quantity(text: str) -> dict[str, str]:
    return _opaque("quantity", str(_parse_quantity(text)))


def _is_quantity(text: str) -> bool:
    try:
        _parse_quantity(text)
    except CelError:
        return False
    return True


def _q(value: Any, name: str) -> Fraction:
    return Fraction(_unwrap(value, "quantity", name))


def _q_operand(value: Any, name: str) -> Fraction:
    if isinstance(value, int) and not isinstance(value, bool):
        return Fraction(value)
    return _q(value, name)


def _q_as_integer(value: Any) -> int:
    amount = _q(value, "asInteger")
    if amount.denominator != 1 or not -(2**63) <= amount < 2**63:
        raise CelError("cannot convert value to integer")
    return int(amount)


def _q_arith(sign: int, name: str):
    def impl(left: Any, right: Any) -> dict[str, str]:
        return _opaque("quantity", str(_q(left, name) + sign * _q_operand(right, name)))
    return impl


def _q_compare(left: Any, right: Any) -> int:
    a, b = _q(left, "compareTo"), _q(right, "compareTo")
    return (a > b) - (a < b)


def _sets_contains(a: list, b: list) -> bool:
    return all(any(x == y for y in a) for x in b)


def _sets_intersects(a: list, b: list) -> bool:
    return any(any(x == y for y in a) for x in b)


def _fn(name: str, *overloads: tuple[str, cel.Type, list[cel.Type], bool, Any]) -> cel.FunctionDecl:
    return cel.FunctionDecl(name, [cel.Overload(oid, ret, params, is_member=member, impl=impl)
                                   for oid, ret, params, member, impl in overloads])


def _member(name: str, oid: str, ret: cel.Type, params: list[cel.Type], impl: Any) -> cel.FunctionDecl:
    return _fn(name, (oid, ret, params, True, impl))


def _global(name: str, oid: str, ret: cel.Type, params: list[cel.Type], impl: Any) -> cel.FunctionDecl:
    return _fn(name, (oid, ret, params, False, impl))


def _kubernetes_library() -> list[cel.FunctionDecl]:
    S, B, I, D, O = cel.Type.STRING, cel.Type.BOOL, cel.Type.INT, cel.Type.DYN, _OPAQUE  # noqa: N806, E741
    lists = [
        _member("isSorted", "list_is_sorted", B, [_DYN_LIST], _is_sorted),
        _member("sum", "list_sum", D, [_DYN_LIST], _sum),
        _member("min", "list_min", D, [_DYN_LIST], _extreme(min, "min")),
        _member("max", "list_max", D, [_DYN_LIST], _extreme(max, "max")),
        _global("sets.contains", "sets_contains", B, [_DYN_LIST, _DYN_LIST], _sets_contains),
        _global("sets.equivalent", "sets_equivalent", B, [_DYN_LIST, _DYN_LIST],
                lambda a, b: _sets_contains(a, b) and _sets_contains(b, a)),
        _global("sets.intersects", "sets_intersects", B, [_DYN_LIST, _DYN_LIST], _sets_intersects),
    ]
    regex = [
        _member("find", "string_find", S, [S, S], _find),
        _fn("findAll", ("string_find_all", _STRING_LIST, [S, S], True, _find_all),
            ("string_find_all_n", _STRING_LIST, [S, S, I], True, _find_all)),
    ]
    urls = [
        _global("url", "string_to_url", O, [S], _url),
        _global("isURL", "is_url_string", B, [S], _is_url),
        _member("getScheme", "url_get_scheme", S, [O], _url_part(lambda p: p.scheme, "getScheme")),
        _member("getHost", "url_get_host", S, [O], _url_part(lambda p: p.netloc.rsplit("@", 1)[-1], "getHost")),
        _member("getHostname", "url_get_hostname", S, [O], _url_part(_url_hostname, "getHostname")),
        _member("getPort", "url_get_port", S, [O], _url_part(_url_port, "getPort")),
        _member("getEscapedPath", "url_get_escaped_path", S, [O],
                _url_part(lambda p: urllib.parse.quote(urllib.parse.unquote(p.path), safe="/:@!$&'()*+,;=-._~"),
                          "getEscapedPath")),
        _member("getQuery", "url_get_query", cel.Type.Map(S, _STRING_LIST), [O], _url_part(_url_query, "getQuery")),
    ]
    ips = [
        # one declaration per name: ip(string) and cidr.ip() are overloads of the same function
        _fn("ip", ("string_to_ip", O, [S], False, _ip),
            ("cidr_ip", O, [O], True, lambda c: _opaque("ip", str(_cidr_value(c, "ip").ip)))),
        _global("isIP", "is_ip", B, [S], _is_ip),
        _global("ip.isCanonical", "ip_is_canonical", B, [S], _ip_is_canonical),
        _member("family", "ip_family", I, [O], _ip_check(lambda a: a.version, "family")),
        _member("isUnspecified", "ip_is_unspecified", B, [O], _ip_check(lambda a: a.is_unspecified, "isUnspecified")),
        _member("isLoopback", "ip_is_loopback", B, [O], _ip_check(lambda a: a.is_loopback, "isLoopback")),
        _member("isLinkLocalMulticast", "ip_is_link_local_multicast", B, [O],
                _ip_check(lambda a: a.is_multicast and a.is_link_local if a.version == 6
                          else a in ipaddress.ip_network("224.0.0.0/24"), "isLinkLocalMulticast")),
        _member("isLinkLocalUnicast", "ip_is_link_local_unicast", B, [O],
                _ip_check(lambda a: a.is_link_local and not a.is_multicast, "isLinkLocalUnicast")),
        _member("isGlobalUnicast", "ip_is_global_unicast", B, [O], _ip_check(
            lambda a: not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local
                           or (a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255"))),
            "isGlobalUnicast")),
        _global("cidr", "string_to_cidr", O, [S], _cidr),
        _global("isCIDR", "is_cidr", B, [S], _is_cidr),
        _fn("containsIP", ("cidr_contains_ip_string", B, [O, S], True, _contains_ip),
            ("cidr_contains_ip_ip", B, [O, O], True, _contains_ip)),
        _fn("containsCIDR", ("cidr_contains_cidr_string", B, [O, S], True, _contains_cidr),
            ("cidr_contains_cidr", B, [O, O], True, _contains_cidr)),
        _member("masked", "cidr_masked", O, [O], lambda c: _opaque("cidr", str(_cidr_value(c, "masked").network))),
        _member("prefixLength", "cidr_prefix_length", I, [O],
                lambda c: _cidr_value(c, "prefixLength").network.prefixlen),
    ]
    quantity = [
        _global("quantity", "string_to_quantity", O, [S], _quantity),
        _global("isQuantity", "is_quantity", B, [S], _is_quantity),
        _member("sign", "quantity_sign", I, [O], lambda q: (_q(q, "sign") > 0) - (_q(q, "sign") < 0)),
        _member("isInteger", "quantity_is_integer", B, [O], lambda q: _q(q, "isInteger").denominator == 1),
        _member("asInteger", "quantity_as_integer", I, [O], _q_as_integer),
        _member("asApproximateFloat", "quantity_as_float", cel.Type.DOUBLE, [O],
                lambda q: float(_q(q, "asApproximateFloat"))),
        _fn("add", ("quantity_add", O, [O, O], True, _q_arith(1, "add")),
            ("quantity_add_int", O, [O, I], True, _q_arith(1, "add"))),
        _fn("sub", ("quantity_sub", O, [O, O], True, _q_arith(-1, "sub")),
            ("quantity_sub_int", O, [O, I], True, _q_arith(-1, "sub"))),
        _member("isLessThan", "quantity_less_than", B, [O, O], lambda a, b: _q_compare(a, b) < 0),
        _member("isGreaterThan", "quantity_greater_than", B, [O, O], lambda a, b: _q_compare(a, b) > 0),
        _member("compareTo", "quantity_compare_to", I, [O, O], _q_compare),
    ]
    return lists + regex + urls + ips + quantity


_LIBRARY = _kubernetes_library()


_ENVIRONMENTS: dict[str, cel.Env] = {}


def environment(node: SchemaNode | None) -> cel.Env:
    """The environment for rules on a node; one per distinct `self` type (building one takes ~0.2 ms)."""
    self_type = declared_type(node)
    key = repr(self_type)
    env = _ENVIRONMENTS.get(key)
    if env is None:
        variables = {"self": self_type, "oldSelf": self_type, _OLD_SELF_VALUE: self_type,
                     _OLD_SELF_PRESENT: cel.Type.BOOL}
        env = cel.NewEnv(variables=variables, functions=_LIBRARY,
                         extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_bindings.ExtBindings(),
                                     ext_math.ExtMath(), ext_encoders.ExtEncoders()])
        _ENVIRONMENTS[key] = env
    return env


# --- source scanning (oldSelf references) ---

_TOKEN = re.compile(r"""(?P<string>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\""""
                    r"""|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))"""
                    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>\S)""")


def _old_self_spans(source: str) -> list[tuple[int, int]]:
    """Where the rule refers to the variable oldSelf (not a field or string that happens to be named so)."""
    spans, previous = [], ""
    for token in _TOKEN.finditer(source):
        if token.lastgroup == "ident" and token.group() == "oldSelf" and previous != ".":
            spans.append(token.span())
        previous = token.group()
    return spans


def uses_old_self(source: str) -> bool:
    return bool(_old_self_spans(source))


def _with_optional_old_self(source: str) -> str:
    out, last = [], 0
    for start, end in _old_self_spans(source):
        out += [source[last:start], _OPTIONAL_OLD_SELF]
        last = end
    return "".join(out) + source[last:]


# --- cost bound ---

def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """Top-level protobuf fields of a message: (number, bytes for length-delimited, else int)."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out.append((number, value))
    return out


Poly = list[float]  # coefficients of a polynomial in the largest size a rule sees


def _add(*polys: Poly) -> Poly:
    out = [0.0] * max(len(p) for p in polys)
    for p in polys:
        for i, c in enumerate(p):
            out[i] += c
    return out


def _times_size(poly: Poly) -> Poly:
    return [0.0, *poly]


# functions that turn strings into collections or longer strings: a rule calling one can iterate
# over (or build) something as large as its longest string, not just its largest collection
_STRING_EXPANDERS = frozenset({"split", "replace", "join", "findAll", "base64.decode", "base64.encode", "quote",
                               "format"})


def _times_size_power(poly: Poly, power: int) -> Poly:
    for _ in range(power):
        poly = _times_size(poly)
    return poly


def _expr_cost(data: bytes, degrees: dict[str, int], functions: set[str]) -> tuple[Poly, int]:
    """Upper bound of the evaluation steps of an expression (cel.expr.Expr) as a polynomial in N, the
    largest size the rule can iterate over, and the degree in N of the size of its value (so chained
    `replace`s or a `map` producing lists of lists are not mistaken for linear work). `degrees` gives
    the size degree of variables; the functions called are added to `functions`."""
    cost: Poly = [1.0]
    degree = 0
    for number, value in _fields(data):
        if number == 4:  # ident: self/oldSelf and loop variables
            degree = degrees.get(dict(_fields(value)).get(1, b"").decode(), 1)
        elif number == 5:  # select: a field is no bigger than the value it is in
            for n, v in _fields(value):
                if n == 1:
                    operand_cost, degree = _expr_cost(v, degrees, functions)
                    cost = _add(cost, operand_cost)
        elif number == 6:  # call: target (1), function (2), args (3)
            parts = _fields(value)
            function = next((v.decode() for n, v in parts if n == 2), "")
            functions.add(function)
            children = [_expr_cost(v, degrees, functions) for n, v in parts if n in (1, 3)]
            cost = _add(cost, *(c for c, _ in children))
            child_degrees = [d for _, d in children] or [0]
            if function == "replace" and len(children) >= 3:
                degree = children[0][1] + children[2][1]  # every gap may receive the replacement
            elif function == "join":
                degree = 2 * child_degrees[0]
            elif function in ("size", "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "@in", "matches"):
                degree = 0
            else:
                degree = max(child_degrees)
            if function in _STRING_EXPANDERS:  # building the result costs its size
                cost = _add(cost, _times_size_power([0.1], degree))
        elif number in (7, 8):  # list and map literals: a fixed number of elements
            for n, v in _fields(value):
                entries = [v] if number == 7 and n == 1 else (
                    [inner for m, inner in _fields(v) if m in (3, 4)] if number == 8 and n == 2 else [])
                for entry in entries:
                    entry_cost, entry_degree = _expr_cost(entry, degrees, functions)
                    cost = _add(cost, entry_cost)
                    degree = max(degree, entry_degree)
        elif number == 9:  # comprehension: iter_var (1), range (2), accu_var (3), init (4), condition (5),
            # step (6), result (7), iter_var2 (8); runs N^degree(range) times
            parts: dict[int, Any] = {n: v for n, v in _fields(value)}
            range_cost, range_degree = _expr_cost(parts[2], degrees, functions) if 2 in parts else ([0.0], 0)
            inner = dict(degrees)
            for var in (1, 8):
                if var in parts:
                    inner[parts[var].decode()] = range_degree
            init_cost, init_degree = _expr_cost(parts[4], degrees, functions) if 4 in parts else ([0.0], 0)
            # what a comprehension builds (map, filter) has at most one entry per iteration
            inner[parts.get(3, b"").decode()] = max(init_degree, range_degree)
            loop: Poly = [0.0]
            for n in (5, 6):
                if n in parts:
                    loop = _add(loop, _expr_cost(parts[n], inner, functions)[0])
            result_cost, _ = _expr_cost(parts[7], inner, functions) if 7 in parts else ([0.0], 0)
            cost = _add(cost, range_cost, init_cost, result_cost, _times_size_power(loop, max(range_degree, 1)))
            degree = max(init_degree, range_degree)
    return cost, degree


def _checked(program: Any) -> dict[int, Any]:
    wrapped = dict(_fields(program.serialize()))  # google.protobuf.Any{type_url, value=CheckedExpr}
    return dict(_fields(wrapped[2]))


def _program_cost(program: Any) -> tuple[Poly, bool]:
    """The step polynomial and whether strings can turn into what the rule iterates over or builds."""
    functions: set[str] = set()
    cost, _ = _expr_cost(_checked(program)[4], {}, functions)
    return cost, bool(functions & _STRING_EXPANDERS)


def largest_size(*values: Any, strings: bool = False) -> int:
    """The largest list or map length in the values (what bounds a rule's loops), and with `strings`
    also the longest string (for rules that split, replace or join)."""
    largest, stack = 1, list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            largest = max(largest, len(value))
            stack.extend(value.values())
            if strings:
                stack.extend(value)
        elif isinstance(value, list):
            largest = max(largest, len(value))
            stack.extend(value)
        elif strings and isinstance(value, (str, bytes)):
            largest = max(largest, len(value))
    return largest


def bound(poly: Poly, size: int) -> float:
    return sum(c * size**i for i, c in enumerate(poly))


# --- field checks (what upstream's typed declarations catch at compile time) ---

class _ResourceMeta:
    """What rules see of a resource's metadata: name and generateName (upstream WithTypeAndObjectMeta)."""

    type, format, convert = "object", "", False
    additional = items = None
    int_or_string = preserve_unknown = embedded = False

    def __init__(self) -> None:
        string = _Scalar("string")
        self.properties = {"name": string, "generateName": string}


class _Scalar:
    format, convert = "", False
    properties = additional = items = None
    int_or_string = preserve_unknown = embedded = False

    def __init__(self, type_: str):
        self.type = type_


_RESOURCE_FIELDS = {"apiVersion": _Scalar("string"), "kind": _Scalar("string"), "metadata": _ResourceMeta()}


class _FieldChecker:
    """Walks a checked expression and reports selections of fields the schema does not declare.

    `self` is a dyn-valued map here (cel-expr-python cannot declare object types), so without this a
    typo like `self.replicaz` would compile and only fail at runtime; upstream rejects the CRD."""

    def __init__(self, source: str, positions: dict[int, int], resource: bool):
        self.source = source
        self.positions = positions
        self.resource = resource
        self.errors: list[str] = []

    def fields(self, node: Any, resource: bool) -> dict[str, Any] | None:
        """Declared fields of an object node, or None when any field may exist (maps, unknown fields)."""
        if node is None or node.type != "object" or node.preserve_unknown or node.int_or_string:
            return None
        if node.additional is not None or getattr(node, "any_key", False):
            return None
        declared = dict(node.properties or {})
        if resource or node.embedded:
            declared.update(_RESOURCE_FIELDS)
        return declared

    def report(self, expr_id: int, message: str) -> None:
        offset = self.positions.get(expr_id, 0)
        line_start = self.source.rfind("\n", 0, offset) + 1
        line_no = self.source.count("\n", 0, offset) + 1
        line_end = self.source.find("\n", offset)
        text = self.source[line_start:line_end if line_end >= 0 else len(self.source)]
        column = offset - line_start
        self.errors.append(f"ERROR: <input>:{line_no}:{column + 1}: {message}\n | {text}\n | {'.' * column}^")

    def select(self, expr_id: int, operand: Any, name: str, resource: bool) -> Any:
        if operand is None:
            return None
        declared = self.fields(operand, resource)
        if declared is None:
            return operand.additional if operand.type == "object" else None
        if name not in declared:
            self.report(expr_id, f"undefined field '{name}'")
            return None
        return declared[name]

    def walk(self, data: bytes, scope: dict[str, Any]) -> Any:
        """The schema node an expression evaluates to (None when unknown), reporting bad selections."""
        parts = _fields(data)
        expr_id = next((v for n, v in parts if n == 2 and isinstance(v, int)), 0)
        for number, value in parts:
            if number == 4:  # ident
                name = dict(_fields(value)).get(1, b"").decode()
                return scope.get(name)
            if number == 5:  # select
                sel = dict(_fields(value))
                operand = self.walk(sel[1], scope) if 1 in sel else None
                resource = self.resource and operand is not None and operand is scope.get("self")
                return self.select(expr_id, operand, sel.get(2, b"").decode(), resource)
            if number == 6:  # call
                call = _fields(value)
                function = next((v.decode() for n, v in call if n == 2), "")
                for n, v in call:
                    if n == 1:  # the receiver: walked for the selections it makes
                        self.walk(v, scope)
                args_raw = [v for n, v in call if n == 3]
                args = [self.walk(v, scope) for v in args_raw]
                if function == "_?._" and len(args_raw) == 2:
                    name = _string_constant(args_raw[1])
                    if name is not None and args[0] is not None:
                        resource = self.resource and args[0] is scope.get("self")
                        self.select(expr_id, args[0], name, resource)
                    return None
                if function == "_[_]" and args and args[0] is not None:
                    node = args[0]
                    return node.items if node.type == "array" else (
                        node.additional if node.type == "object" else None)
                return None
            if number in (7, 8):  # list / map literal
                for n, v in _fields(value):
                    if number == 7 and n == 1:
                        self.walk(v, scope)
                    elif number == 8 and n == 2:
                        for m, inner in _fields(v):
                            if m in (3, 4):
                                self.walk(inner, scope)
                return None
            if number == 9:  # comprehension
                comp = _fields(value)
                fields = {n: v for n, v in comp}
                iter_var = fields.get(1, b"").decode()
                accu_var = fields.get(3, b"").decode()
                iter_var2 = fields.get(8, b"").decode()
                over = self.walk(fields[2], scope) if 2 in fields else None
                element = None
                if over is not None and over.type == "array":
                    element = over.items
                inner = dict(scope)
                inner[iter_var] = element
                if iter_var2:
                    inner[iter_var2] = element
                    inner[iter_var] = None
                inner[accu_var] = None
                if 4 in fields:
                    self.walk(fields[4], scope)
                for n in (5, 6, 7):
                    if n in fields:
                        self.walk(fields[n], inner if n != 7 else {**inner, iter_var: None})
                return None
        return None


def _string_constant(data: bytes) -> str | None:
    for number, value in _fields(data):
        if number == 3:  # const_expr
            constant = dict(_fields(value))
            if 6 in constant:
                return constant[6].decode()
    return None


def _positions(checked: dict[int, Any]) -> dict[int, int]:
    """expression id -> character offset (cel.expr.SourceInfo.positions)."""
    out = {}
    for number, value in _fields(checked.get(5, b"")):
        if number == 4:
            entry = dict(_fields(value))
            out[entry.get(1, 0)] = entry.get(2, 0)
    return out


def _field_errors(program: Any, source: str, node: Any, resource: bool, optional_old_self: bool) -> list[str]:
    checked = _checked(program)
    scope = {"self": node, "oldSelf": None if optional_old_self else node, _OLD_SELF_VALUE: node}
    checker = _FieldChecker(source, _positions(checked), resource)
    checker.walk(checked[4], scope)
    return checker.errors


# --- compiling and running rules ---

@dataclass
class CompiledRule:
    rule: str
    message: str = ""
    message_expression: str = ""
    reason: str | None = None
    field_path: str = ""  # normalized (upstream's NormalizedRuleFieldPath)
    optional_old_self: bool = False
    uses_old_self: bool = False
    program: Any = None
    message_program: Any = None
    cost: Poly = field(default_factory=lambda: [1.0])
    message_cost: Poly = field(default_factory=lambda: [1.0])
    string_sizes: bool = False  # the rule or its message can grow strings or iterate over split ones
    error: str = ""  # compile failure of the rule, upstream's detail
    message_error: str = ""  # compile failure of messageExpression

    @property
    def error_string(self) -> str:
        """upstream ruleErrorString: the message when there is one, else the rule."""
        return self.message.strip() or self.rule.strip()

    @property
    def sized(self) -> bool:
        return len(self.cost) > 1 or len(self.message_cost) > 1


def _compile_error(exc: Exception) -> str:
    text = str(exc)
    for prefix in ("INVALID_ARGUMENT: ", "UNKNOWN: "):
        text = text.removeprefix(prefix)
    return re.sub(r"\s*\[INVALID_ARGUMENT\]$", "", text).strip()


def compile_rule(node: SchemaNode | None, spec: dict, resource: bool = False) -> CompiledRule:
    """Compile one x-kubernetes-validations entry against the schema node it sits on (`resource`: the
    node is a resource root, whose rules also see apiVersion, kind and metadata.name/generateName)."""
    def text(key: str) -> str:
        return spec[key] if isinstance(spec.get(key), str) else ""

    source = text("rule")
    compiled = CompiledRule(
        rule=source, message=text("message"), message_expression=text("messageExpression"),
        reason=text("reason") or None, optional_old_self=spec.get("optionalOldSelf") is True,
        uses_old_self=uses_old_self(source))
    env = environment(node)
    text = _with_optional_old_self(source) if compiled.optional_old_self else source
    try:
        program = env.compile(text)
    except RuntimeError as exc:
        compiled.error = "compilation failed: " + _compile_error(exc)
    else:
        undefined = _field_errors(program, text, node, resource, compiled.optional_old_self)
        if undefined:
            compiled.error = "compilation failed: " + "\n".join(undefined)
        elif program.return_type() not in (cel.Type.BOOL, cel.Type.DYN):
            compiled.error = "cel expression must evaluate to a bool"
        else:
            compiled.program = program
            compiled.cost, expands = _program_cost(program)
            compiled.string_sizes |= expands
    if compiled.message_expression.strip():
        try:
            message_program = env.compile(compiled.message_expression)
        except RuntimeError as exc:
            compiled.message_error = "messageExpression compilation failed: " + _compile_error(exc)
        else:
            undefined = _field_errors(message_program, compiled.message_expression, node, resource, False)
            if undefined:
                compiled.message_error = "messageExpression compilation failed: " + "\n".join(undefined)
            elif message_program.return_type() not in (cel.Type.STRING, cel.Type.DYN):
                compiled.message_error = "messageExpression must evaluate to a string"
            else:
                compiled.message_program = message_program
                compiled.message_cost, expands = _program_cost(message_program)
                compiled.string_sizes |= expands
    return compiled


_RUNTIME_ERRORS = (
    (re.compile(r'^Key not found in map : "?(.*?)"?$'), r"no such key: \1"),
    (re.compile(r"^No such key: (.*)$"), r"no such key: \1"),
    (re.compile(r"^divide by zero$"), "division by zero"),
    (re.compile(r"^modulus by zero$"), "modulus by zero"),
    (re.compile(r"^Index error: index=(-?\d+) size=(\d+)$"), r"index out of bounds: \1"),
    (re.compile(r"^No matching overloads found.*$"), "no such overload"),
)


def runtime_error(raw: str) -> str:
    """cel-cpp's error text in cel-go's words where upstream users see them."""
    text = re.sub(r"^[A-Z_]+: ", "", raw.strip())
    for pattern, replacement in _RUNTIME_ERRORS:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


@dataclass
class Outcome:
    """What running one rule gave: passed, a failure detail, or an error that stops evaluation."""

    passed: bool = True
    detail: str = ""  # the message for a failed rule
    error: str = ""  # an evaluation error detail (rule errored rather than returned false)
    stop: bool = False  # no further rules may run (cost)
    cost: float = 0.0


class Activation:
    """Variables shared by every rule on one schema node for one value."""

    def __init__(self, env: cel.Env, self_value: Any, old_value: Any, has_old: bool):
        self.env = env
        self.data = {"self": self_value, "oldSelf": old_value, _OLD_SELF_VALUE: old_value,
                     _OLD_SELF_PRESENT: has_old}
        self._activation = None

    def get(self) -> Any:
        if self._activation is None:
            self._activation = self.env.Activation(self.data)
        return self._activation


def run(compiled: CompiledRule, activation: Activation, size: int, budget: float) -> Outcome:
    """Evaluate a rule (and its messageExpression on failure) within the per-call limit and the budget."""
    estimate = bound(compiled.cost, size)
    if estimate > PER_CALL_LIMIT:
        return Outcome(False, error=("'operation cancelled: actual cost limit exceeded': no further validation "
                                     f"rules will be run due to call cost exceeds limit for rule: "
                                     f"{compiled.error_string}"), stop=True)
    if estimate > budget:
        return Outcome(False, error="validation failed due to running out of cost budget, no further validation "
                                    "rules will be run", stop=True)
    result = compiled.program.eval(activation.get())
    kind = result.type()
    if kind == cel.Type.ERROR:
        detail = runtime_error(str(result.value()))
        if detail.startswith("no such overload"):
            return Outcome(False, error=f"'{detail}': call arguments did not match a supported operator, function "
                                        f"or macro signature for rule: {compiled.error_string}", cost=estimate)
        return Outcome(False, error=f"{detail} evaluating rule: {compiled.error_string}", cost=estimate)
    if kind == cel.Type.BOOL and result.value() is True:
        return Outcome(cost=estimate)
    # anything but true fails the rule (a dyn-typed rule can produce a non-bool, as upstream)
    return _failure(compiled, activation, size, budget - estimate, estimate)


def _failure(compiled: CompiledRule, activation: Activation, size: int, budget: float, spent: float) -> Outcome:
    default = compiled.message.strip() or f"failed rule: {compiled.error_string}"
    if compiled.message_program is None:
        return Outcome(False, detail=default, cost=spent)
    estimate = bound(compiled.message_cost, size)
    if estimate > PER_CALL_LIMIT:
        quoted = json.dumps(compiled.message_expression, ensure_ascii=False)  # Go's %q
        return Outcome(False, error=("no further validation rules will be run due to call cost exceeds limit for "
                                     f"messageExpression: {quoted}"), stop=True)
    if estimate > budget:
        return Outcome(False, error=("messageExpression evaluation failed due to running out of cost budget, no "
                                     "further validation rules will be run"), stop=True)
    result = compiled.message_program.eval(activation.get())
    message = result.value() if result.type() == cel.Type.STRING else None
    if isinstance(message, str):
        message = message.strip()
        if message and "\n" not in message and len(message.encode()) <= MAX_MESSAGE_EXPRESSION_BYTES:
            return Outcome(False, detail=message, cost=spent + estimate)
    log.debug("messageExpression %r gave no usable message: %r", compiled.message_expression, result.value())
    return Outcome(False, detail=default, cost=spent + estimate)
