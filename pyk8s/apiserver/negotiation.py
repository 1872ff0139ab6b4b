"""Content negotiation: request body decoding and the response forms a client asked for."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import yaml
from aiohttp import web

from ..api import errors, protobuf

TRUE_VALUES = {"1", "t", "T", "TRUE", "true", "True"}
FALSE_VALUES = {"0", "f", "F", "FALSE", "false", "False"}

MAX_BODY_BYTES = 3 * 1024 * 1024

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def parse_bool(value: str | None, default: bool = False) -> bool:
    """Go's strconv.ParseBool; anything else counts as false, as upstream's query decoding does."""
    if value is None or value == "":
        return default
    return value in TRUE_VALUES


class _YAMLLoader(yaml.CSafeLoader):
    """YAML 1.1 as go-yaml reads it, except that timestamps stay strings (JSON has no dates)."""


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


# The body read_body returned, kept on the request for the audit log (the stream can be read only once).
REQUEST_BODY = web.RequestKey("request_body", bytes)


async def read_body(request) -> bytes:
    """The whole request body, refusing more than MAX_BODY_BYTES with 413 (a single read() of the
    stream returns only what has arrived so far)."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise errors.too_large()
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise errors.too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    request[REQUEST_BODY] = body
    return body


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode_body(raw: bytes, content_type: str, expected_kind: str, expected_api_version: str = "v1") -> dict:
    """Decode a JSON, YAML or protobuf object body; anything unreadable is a 400 like upstream's decoder."""
    kind_hint = f"the object provided is unrecognized (must be of type {expected_kind})"
    if content_type == PROTOBUF:
        try:
            api_version, kind, obj = protobuf.decode_body(raw, default=(expected_api_version, expected_kind))
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(exc.status_message(expected_kind, raw)) from None
        return {"apiVersion": api_version, "kind": kind, **obj}
    if content_type in (YAML, "application/x-yaml", "text/yaml", APPLY_PATCH):
        try:
            obj = yaml.load(raw, Loader=_YAMLLoader)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"{kind_hint}: couldn't get version/kind; yaml parse error: {exc}") from None
    else:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"{kind_hint}: couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(obj, dict):
        raise errors.bad_request(f"{kind_hint}: couldn't get version/kind; json parse error: "
                                 "json: cannot unmarshal non-object into Go value of type struct")
    return obj


@dataclass(frozen=True)
class Accept:
    """What representation the response should take."""

    table: str = ""  # "" or the Table apiVersion ("meta.k8s.io/v1" / "meta.k8s.io/v1beta1")
    partial_metadata: str = ""  # "" or the meta.k8s.io version for PartialObjectMetadata[List]
    yaml: bool = False


def parse_accept(header: str | None) -> Accept:
    """Pick the first acceptable representation in the client's order, like upstream."""
    if not header:
        return Accept()
    unsupported: list[str] = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        mtype = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        as_kind = params.get("as", "")
        if as_kind:
            if mtype != JSON or params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
                unsupported.append(part.strip())
                continue
            if as_kind == "Table":
                return Accept(table=f"meta.k8s.io/{params['v']}")
            if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return Accept(partial_metadata=f"meta.k8s.io/{params['v']}")
            unsupported.append(part.strip())
            continue
        if mtype in (JSON, "*/*", "application/*", PROTOBUF, ""):
            return Accept()
        if mtype in (YAML,):
            return Accept(yaml=True)
    if unsupported:
        raise errors.not_acceptable("only the following media types are accepted: application/json, "
                                    "application/yaml, application/vnd.kubernetes.protobuf")
    return Accept()
