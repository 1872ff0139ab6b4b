"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) decoded into JSON dicts.

kubectl's typed commands (`create deployment|configmap|secret|...`, `autoscale`, `auth can-i`,
`auth whoami`, `create token`) send protobuf: the magic `k8s\\0`, then a `runtime.Unknown` message
(1: typeMeta{1: apiVersion, 2: kind}, 2: raw = the object's message, 3: contentEncoding,
4: contentType). `decode_body` turns such a body into the dict the apiserver would have received
had the client sent JSON, i.e. what Go's `json.Marshal` writes for the struct upstream's
generated (gogo) `Unmarshal` fills, except that JSON `null`s (nil slices, maps and pointers
without omitempty, zero `Time`s) are left out, which the JSON decoder treats alike.

The wire decoder is hand-written and driven by protobuf_schema.json (generated from the upstream
`generated.proto` files and Go struct tags by tools/generate_protobuf_schema.py). What it follows
from upstream:

- zero-valued fields: gogo writes every non-pointer field, zero or not. A zero scalar is kept
  unless its Go JSON tag has omitempty; a non-pointer struct is always kept (Go never omits one);
  a pointer that was sent is kept even when it points at a zero value.
- special types: `Time` -> RFC 3339 in seconds (upstream drops the nanos), `MicroTime` -> RFC 3339
  with 6 fractional digits, `Duration` -> Go's duration text ("1h0m0s"), `Quantity` -> its
  canonical text, `IntOrString` -> int or string, `RawExtension` and `FieldsV1` -> the embedded
  JSON, named slices (`ExtraValue`) -> lists, bytes -> base64, maps -> dicts (keys sorted).
- unknown field numbers are skipped (as upstream: no strict field validation for protobuf).
- errors carry upstream's messages (gogo's "proto: ..." texts, "unexpected EOF", the serializer's
  prefix checks); `ProtobufError.status_message` words the 400 answer as kube-apiserver does.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pyk8s.api import quantity

MAGIC = b"k8s\x00"
SCHEMA_PATH = Path(__file__).with_name("protobuf_schema.json")
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_UNEXPECTED_EOF = "unexpected EOF"  # io.ErrUnexpectedEOF
_NEGATIVE_LENGTH = "proto: negative length found during unmarshaling"
_OVERFLOW = "proto: integer overflow"
_MASK64 = (1 << 64) - 1
_GO_ZERO_TIME = -62135596800  # time.Time{}.Unix(): year 1, a zero Time (JSON null)
# The scheme name kube-apiserver's "not registered" errors print.
_SCHEME = "pkg/api/legacyscheme/scheme.go:30"


class ProtobufError(ValueError):
    """A body upstream's protobuf decoder rejects; the message is upstream's error text.

    `api_version` and `kind` are the body's (after defaulting) once its envelope decoded; they
    decide how kube-apiserver words the 400 answer, see `status_message`.
    """

    def __init__(self, message: str, api_version: str = "", kind: str = ""):
        super().__init__(message)
        self.message = message
        self.api_version = api_version
        self.kind = kind

    def status_message(self, expected_kind: str, body: bytes) -> str:
        """The BadRequest message of a create/update whose body failed to decode.

        As upstream's handlers (transformDecodeError): with a known kind
        `<Kind> in version "<version>" cannot be handled as a <ExpectedKind>: <error>`, otherwise
        `the object provided is unrecognized (must be of type <ExpectedKind>): <error> (<summary>)`
        where the summary is the hex of the first 30 bytes (then " ...").
        """
        if self.kind:
            version = json.dumps(self.api_version.rpartition("/")[2])
            return f"{self.kind} in version {version} cannot be handled as a {expected_kind}: {self.message}"
        if not body:
            summary = "<empty>"
        elif body[:1] == b"{":
            summary = body[:30].decode("utf-8", "replace") + (" ..." if len(body) > 30 else "")
        else:
            summary = body[:30].hex() + (" ..." if len(body) > 30 else "")
        return f"the object provided is unrecognized (must be of type {expected_kind}): {self.message} ({summary})"


# ---------------------------------------------------------------------------------------------
# The schema, compiled into linked objects once.


class _Field:
    __slots__ = ("go", "key", "message", "name", "number", "omitempty", "pointer", "repeated", "type", "value",
                 "inline", "wire")

    def __init__(self, spec: dict):
        self.number: int = spec["number"]
        self.name: str = spec["name"]
        self.go: str = spec["go"]
        self.type: str = spec["type"]
        self.wire: int = spec["wire"]
        self.message: Any = spec.get("message")  # names, replaced by _Message objects when linking
        self.key: Any = spec.get("key")
        self.value: Any = spec.get("value")
        self.repeated: bool = spec.get("repeated", False)
        self.pointer: bool = spec.get("pointer", False)
        self.omitempty: bool = spec.get("omitempty", False)
        self.inline: bool = spec.get("inline", False)


class _Message:
    __slots__ = ("by_number", "fields", "name", "short", "special")

    def __init__(self, name: str, spec: dict):
        self.name = name
        self.short = name.rpartition(".")[2]  # the Go type name, as gogo's errors print it
        self.special: str | None = spec.get("special")
        self.fields = [_Field(f) for f in spec["fields"]]
        self.by_number = {f.number: f for f in self.fields}


@cache
def _schema() -> tuple[dict[str, _Message], dict[str, dict[str, str]], dict[str, str]]:
    data = json.loads(SCHEMA_PATH.read_text())
    messages = {name: _Message(name, spec) for name, spec in data["messages"].items()}
    for message in messages.values():
        for f in message.fields:
            for attr in ("message", "key", "value"):
                ref = getattr(f, attr)
                if ref in messages:
                    setattr(f, attr, messages[ref])
    return messages, data["kinds"], data["any_version"]


def message_for(api_version: str, kind: str) -> str | None:
    """The protobuf message name of a kind, e.g. "k8s.io.api.apps.v1.Deployment"."""
    _, kinds, any_version = _schema()
    return kinds.get(api_version, {}).get(kind) or any_version.get(kind)


# ---------------------------------------------------------------------------------------------
# The wire format, as gogo's generated Unmarshal code reads it.


def _varint(data: bytes, i: int, end: int) -> tuple[int, int]:
    """An unsigned 64-bit varint at data[i:end] -> (value, next index)."""
    result = shift = 0
    while True:
        if shift >= 64:
            raise ProtobufError(_OVERFLOW)
        if i >= end:
            raise ProtobufError(_UNEXPECTED_EOF)
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, i
        shift += 7


def _length(data: bytes, i: int, end: int) -> tuple[int, int]:
    """A length prefix -> (start, stop) of the bytes it announces."""
    n, i = _varint(data, i, end)
    if n >= 1 << 63:  # a negative Go int
        raise ProtobufError(_NEGATIVE_LENGTH)
    if i + n > end:
        raise ProtobufError(_UNEXPECTED_EOF)
    return i, i + n


def _skip(data: bytes, i: int, end: int) -> int:
    """skipGenerated: the index after the unknown field (tag included) starting at i."""
    depth = 0
    while i < end:
        wire, i = _varint(data, i, end)
        wire_type = wire & 7
        if wire_type == 0:
            _, i = _varint(data, i, end)
        elif wire_type == 1:
            i += 8
        elif wire_type == 2:
            n, i = _varint(data, i, end)
            if n >= 1 << 63:
                raise ProtobufError(_NEGATIVE_LENGTH)
            i += n
        elif wire_type == 3:
            depth += 1
        elif wire_type == 4:
            if depth == 0:
                raise ProtobufError("proto: unexpected end of group")
            depth -= 1
        elif wire_type == 5:
            i += 4
        else:
            raise ProtobufError(f"proto: illegal wireType {wire_type}")
        if depth == 0:
            if i > end:
                raise ProtobufError(_UNEXPECTED_EOF)
            return i
    raise ProtobufError(_UNEXPECTED_EOF)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar_varint(type_: str, v: int) -> int | bool:
    if type_ == "int32":
        return _signed(v, 32)
    if type_ == "int64":
        return _signed(v, 64)
    if type_ == "bool":
        return v != 0
    if type_ == "uint32":
        return v & 0xFFFFFFFF
    if type_ in ("sint32", "sint64"):
        v &= 0xFFFFFFFF if type_ == "sint32" else _MASK64
        return (v >> 1) ^ -(v & 1)
    return v  # uint64


_FIXED = {"fixed32": "<I", "sfixed32": "<i", "float": "<f", "fixed64": "<Q", "sfixed64": "<q", "double": "<d"}


def _read_scalar(type_: str, wire_type: int, data: bytes, i: int, end: int) -> tuple[Any, int]:
    """One non-message value of a field whose wire type was checked."""
    if wire_type == 0:
        v, i = _varint(data, i, end)
        return _scalar_varint(type_, v), i
    if wire_type == 2:
        start, stop = _length(data, i, end)
        raw = data[start:stop]
        return (raw.decode("utf-8", "replace") if type_ == "string" else raw), stop
    size = 8 if wire_type == 1 else 4
    if i + size > end:
        raise ProtobufError(_UNEXPECTED_EOF)
    return struct.unpack_from(_FIXED[type_], data, i)[0], i + size


class _Sent:
    """What arrived for one field: values in order, and the raw chunks of a singular message."""

    __slots__ = ("chunks", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.chunks: list[bytes] = []


def _parse(message: _Message, data: bytes) -> dict[int, _Sent]:
    """Field number -> what arrived, decoding nested messages on the way (errors in wire order)."""
    sent: dict[int, _Sent] = {}
    i, end = 0, len(data)
    while i < end:
        start = i
        wire, i = _varint(data, i, end)
        number = _signed(wire >> 3, 32)
        wire_type = wire & 7
        if wire_type == 4:
            raise ProtobufError(f"proto: {message.short}: wiretype end group for non-group")
        if number <= 0:
            raise ProtobufError(f"proto: {message.short}: illegal tag {number} (wire type {wire})")
        f = message.by_number.get(number)
        if f is None:
            i = _skip(data, start, end)
            continue
        packed = f.repeated and f.wire != 2 and wire_type == 2
        if wire_type != f.wire and not packed:
            raise ProtobufError(f"proto: wrong wireType = {wire_type} for field {f.go}")
        entry = sent.get(number)
        if entry is None:
            entry = sent[number] = _Sent()
        if f.type == "message":
            first, i = _length(data, i, end)
            chunk = data[first:i]
            entry.values.append(_decode(f.message, chunk))
            entry.chunks.append(chunk)
        elif f.type == "map":
            first, i = _length(data, i, end)
            entry.values.append(_map_entry(f, data, first, i))
        elif packed:
            first, i = _length(data, i, end)
            j = first
            while j < i:
                value, j = _read_scalar(f.type, f.wire, data, j, i)
                entry.values.append(value)
        else:
            value, i = _read_scalar(f.type, f.wire, data, i, end)
            entry.values.append(value)
    return sent


def _map_entry(f: _Field, data: bytes, i: int, end: int) -> tuple[str, Any]:
    """One map entry (key 1, value 2; gogo reads them without checking wire types)."""
    key: Any = ""
    if isinstance(f.value, _Message):
        value: Any = _zero_json(f.value)
    else:
        value = None if f.value == "bytes" else _ZERO.get(f.value, 0)
    while i < end:
        start = i
        wire, i = _varint(data, i, end)
        number = _signed(wire >> 3, 32)
        if number == 1:
            key, i = _read_scalar(f.key, 2, data, i, end)
        elif number == 2:
            if isinstance(f.value, _Message):
                first, i = _length(data, i, end)
                value = _decode(f.value, data[first:i])
            else:
                value, i = _read_scalar(f.value, _wire_of(f.value), data, i, end)
                if f.value == "bytes":
                    value = base64.b64encode(value).decode()
        else:
            i = _skip(data, start, end)
    return key, value


def _wire_of(type_: str) -> int:
    if type_ in ("string", "bytes"):
        return 2
    if type_ in ("fixed64", "sfixed64", "double"):
        return 1
    if type_ in ("fixed32", "sfixed32", "float"):
        return 5
    return 0


# ---------------------------------------------------------------------------------------------
# From decoded fields to the JSON form Go's encoder writes.

_ZERO = {"string": "", "bool": False}


def _json_scalar(f: _Field, value: Any) -> Any:
    return base64.b64encode(value).decode() if f.type == "bytes" else value


def _decode(message: _Message, data: bytes) -> Any:
    """A message's bytes -> its JSON value (None for Go's JSON null)."""
    sent = _parse(message, data)
    if message.special:
        return _special(message, sent, data)
    out: dict[str, Any] = {}
    for f in message.fields:
        entry = sent.get(f.number)
        if f.type == "map":
            if entry is not None:
                out[f.name] = dict(sorted(dict(entry.values).items()))  # last entry wins; Go sorts keys
            continue
        if f.repeated:
            if entry is not None and entry.values:
                out[f.name] = [_json_scalar(f, v) for v in entry.values] if f.type != "message" else entry.values
            continue
        if f.type == "message":
            if entry is None:
                if f.pointer:
                    continue
                value = _zero_json(f.message)
            elif len(entry.chunks) == 1 or f.message.special in ("time", "microtime", "quantity", "rawextension"):
                value = entry.values[-1]  # custom Unmarshal methods replace instead of merging
            else:
                value = _decode(f.message, b"".join(entry.chunks))  # repeated occurrences merge
            if value is None:
                continue
            if f.inline:
                out.update(value)
            else:
                out[f.name] = value
            continue
        if entry is None:
            if f.pointer or f.type == "bytes":
                continue  # nil: absent, or null
            value = _ZERO.get(f.type, 0)
        else:
            value = _json_scalar(f, entry.values[-1])
        if f.omitempty and not f.pointer and not value:
            continue  # "", 0, false and empty bytes
        out[f.name] = value
    return out


@cache
def _empty(message: _Message) -> Any:
    return _decode(message, b"")


def _zero_json(message: _Message) -> Any:
    """The JSON of a message's Go zero value (a fresh copy: callers may change it)."""
    return copy.deepcopy(_empty(message))


def _one(sent: dict[int, _Sent], number: int, default: Any) -> Any:
    entry = sent.get(number)
    return entry.values[-1] if entry is not None else default


def _special(message: _Message, sent: dict[int, _Sent], data: bytes) -> Any:
    kind = message.special
    if kind == "list":  # type ExtraValue []string: a nil slice is null
        entry = sent.get(1)
        return list(entry.values) if entry is not None else None
    if kind in ("time", "microtime"):
        if not data:
            return None  # a zero Time: JSON null
        seconds, nanos = _one(sent, 1, 0), _one(sent, 2, 0)
        if kind == "time":
            return _format_time(seconds, 0)
        truncated = abs(nanos) // 1000 * 1000 * (-1 if nanos < 0 else 1)  # Truncate(time.Microsecond)
        return _format_time(seconds, truncated, micro=True)
    if kind == "duration":
        return _go_duration(_one(sent, 1, 0))
    if kind == "quantity":
        if 1 not in sent:
            return "0"
        try:
            return quantity.normalize(_one(sent, 1, ""))
        except quantity.QuantityError as err:
            raise ProtobufError(str(err)) from None
    if kind == "intorstring":
        type_ = _one(sent, 1, 0)
        if type_ == 0:
            return _one(sent, 2, 0)
        if type_ == 1:
            return _one(sent, 3, "")
        raise ProtobufError("impossible IntOrString.Type")
    # rawextension and fieldsv1: raw JSON bytes; nil is null. Upstream would fail later, when it
    # writes the object as JSON, on content that is not JSON (CBOR is not supported here).
    raw = _one(sent, 1, None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ProtobufError(f"{message.short}: the raw content is not JSON: {err}") from None


def _format_time(seconds: int, nanos: int, micro: bool = False) -> str | None:
    seconds += nanos // 1_000_000_000
    nanos %= 1_000_000_000
    if seconds == _GO_ZERO_TIME and nanos == 0:
        return None
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        moment = None
    if moment is None or moment.year > 9999:
        raise ProtobufError(f"time out of range: {seconds} seconds since the epoch")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)

    def frac(value: int, digits: int) -> str:
        whole, rest = divmod(value, 10**digits)
        return f"{whole}.{rest:0{digits}d}".rstrip("0") if rest else str(whole)

    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{frac(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{frac(u, 6)}ms"
    seconds = u // 1_000_000_000
    text = frac(u % (60 * 1_000_000_000), 9) + "s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes >= 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


# ---------------------------------------------------------------------------------------------


def _parse_api_version(api_version: str) -> tuple[str, str] | None:
    """schema.ParseGroupVersion: (group, version), or None when it is malformed."""
    if not api_version:
        return "", ""
    if api_version.count("/") == 0:
        return "", api_version
    if api_version.count("/") == 1:
        group, version = api_version.split("/")
        return group, version
    return None


def decode_body(raw: bytes, default: tuple[str, str] | None = None) -> tuple[str, str, dict]:
    """A protobuf request body -> (apiVersion, kind, the object as JSON would carry it).

    `default` is the (apiVersion, kind) of the request's URL: upstream fills a body's missing kind
    and (group)version from it. Raises ProtobufError with upstream's message.
    """
    if not raw:
        raise ProtobufError("empty data")
    if len(raw) < len(MAGIC) or raw[: len(MAGIC)] != MAGIC:
        raise ProtobufError(f"provided data does not appear to be a protobuf message, expected prefix "
                            f"[{' '.join(str(b) for b in MAGIC)}]")
    if len(raw) == len(MAGIC):
        raise ProtobufError("empty body")
    messages, _, _ = _schema()
    envelope = _parse(messages[_UNKNOWN], raw[len(MAGIC):])
    type_meta = _one(envelope, 1, {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    group_version = _parse_api_version(api_version)
    if group_version is None:
        group, version = "", ""
    else:
        group, version = group_version
    if default is not None:
        default_group, default_version = _parse_api_version(default[0]) or ("", "")
        kind = kind or default[1]
        if not version and default_version:
            group, version = default_group, default_version
    api_version = f"{group}/{version}" if group else version
    go_type_meta = f'runtime.TypeMeta{{APIVersion:{json.dumps(type_meta.get("apiVersion", ""))}, ' \
                   f'Kind:{json.dumps(type_meta.get("kind", ""))}}}'
    if not kind:
        raise ProtobufError(f"Object 'Kind' is missing in '{go_type_meta}'", api_version, kind)
    if not version:
        raise ProtobufError(f"Object 'apiVersion' is missing in '{go_type_meta}'", api_version, kind)
    name = message_for(api_version, kind)
    if name is None:
        raise ProtobufError(f"no kind {json.dumps(kind)} is registered for version {json.dumps(api_version)} "
                            f"in scheme {json.dumps(_SCHEME)}", api_version, kind)
    try:
        obj = _decode(messages[name], _one(envelope, 2, b""))
    except ProtobufError as err:
        raise ProtobufError(err.message, api_version, kind) from None
    return api_version, kind, {"apiVersion": api_version, "kind": kind, **obj}
