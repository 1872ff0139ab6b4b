"""serviceaccounts/token: TokenRequest (authentication.k8s.io/v1) issues a service-account JWT.

Upstream's pkg/registry/core/serviceaccount/storage/token.go: expiration defaults to an hour and
may not be under ten minutes, audiences default to the API audiences, and a token may be bound
to a Pod (running as that service account), a Secret or a Node, whose deletion revokes it.
Nothing is stored; the answer is the request with `status.token` and `expirationTimestamp`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from ..api import errors
from ..api.errors import APIError, FieldError
from ..api.kinds import REGISTRY, Kind
from .admission import CREATE, Attributes
from .authn.serviceaccount import (
    EXPIRATION_EXTENSION_SECONDS,
    WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS,
    TokenSigner,
    claims,
)
from .negotiation import decode_body
from .requestinfo import RequestInfo

if TYPE_CHECKING:
    from .handlers import ResourceHandler

API_VERSION = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION_SECONDS = 60 * 60
MIN_EXPIRATION_SECONDS = 10 * 60
MAX_EXPIRATION_SECONDS = 1 << 32


@dataclass(frozen=True)
class TokenIssuing:
    """What the apiserver issues tokens with (set on the aiohttp app under TOKEN_ISSUING)."""

    signer: TokenSigner
    api_audiences: tuple[str, ...]
    # Upstream's --service-account-extend-token-expiration (on by default).
    extend_expiration: bool = True


TOKEN_ISSUING = web.AppKey("token_issuing", TokenIssuing)


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_spec(body: dict, api_audiences: tuple[str, ...]) -> dict:
    """The request's spec with upstream's defaults applied; a 400 for fields of the wrong type."""
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise errors.bad_request("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot "
                                 "unmarshal into Go struct field TokenRequest.spec of type v1.TokenRequestSpec")
    expiration = spec.get("expirationSeconds")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION_SECONDS
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        raise errors.bad_request("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot "
                                 "unmarshal into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64")
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot "
                                 "unmarshal into Go struct field TokenRequestSpec.spec.audiences of type string")
    ref = spec.get("boundObjectRef")
    if ref is not None and not isinstance(ref, dict):
        raise errors.bad_request("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot "
                                 "unmarshal into Go struct field TokenRequestSpec.spec.boundObjectRef of type "
                                 "v1.BoundObjectReference")
    return {"audiences": list(audiences) or list(api_audiences), "expirationSeconds": expiration,
            "boundObjectRef": ref}


def validate_spec(spec: dict) -> None:
    """Upstream's ValidateTokenRequest; its 422 names no object, as upstream's does."""
    expiration = spec["expirationSeconds"]
    problems = []
    if expiration < MIN_EXPIRATION_SECONDS:
        problems.append(FieldError("Invalid", "spec.expirationSeconds", expiration,
                                   "may not specify a duration less than 10 minutes"))
    if expiration > MAX_EXPIRATION_SECONDS:
        problems.append(FieldError("Invalid", "spec.expirationSeconds", expiration,
                                   "may not specify a duration larger than 2^32 seconds"))
    if problems:
        raise errors.invalid_object("TokenRequest", "authentication.k8s.io", "", problems)


def _check_metadata(metadata: dict, name: str, namespace: str) -> None:
    """A name or namespace in the body must be the service account's."""
    for field, expected, what in (("name", name, "name"), ("namespace", namespace, "namespace")):
        value = metadata.get(field)
        if value and value != expected:
            raise errors.invalid_object("TokenRequest", "authentication.k8s.io", name, [FieldError(
                "Invalid", f"metadata.{field}", value, f"must match the service account {what} if specified")])


async def _get(handler: ResourceHandler, kind: str, namespace: str, name: str) -> dict:
    found = REGISTRY.by_kind("", "v1", kind)
    assert found is not None
    return (await handler.rest.get(found, namespace, name)).obj


async def _optional(handler: ResourceHandler, kind: str, namespace: str, name: str) -> dict | None:
    try:
        return await _get(handler, kind, namespace, name)
    except APIError as exc:
        if exc.code == 404:
            return None
        raise


async def _bound_objects(handler: ResourceHandler, ref: dict, namespace: str,
                         service_account: str) -> tuple[dict | None, dict | None, dict | None]:
    """(pod, secret, node) the token is bound to, checked like upstream."""
    api_version, kind, name = ref.get("apiVersion") or "", ref.get("kind") or "", ref.get("name") or ""
    group, _, version = api_version.rpartition("/")
    pod = secret = node = None
    if group == "" and kind == "Pod":
        pod = await _get(handler, "Pod", namespace, name)
        if (pod.get("spec") or {}).get("serviceAccountName", "default") != service_account:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{service_account}" to pod running with '
                                     "different serviceaccount name.")
        bound = pod
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:  # carried for the node authorizer; a missing node is named without a UID
            node = await _optional(handler, "Node", "", node_name) or {"metadata": {"name": node_name}}
    elif group == "" and kind == "Secret":
        secret = bound = await _get(handler, "Secret", namespace, name)
    elif group == "" and kind == "Node":
        node = bound = await _get(handler, "Node", "", name)
    else:
        raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    uid = bound["metadata"]["uid"]
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict(kind, "", name, f"the UID in the bound object reference ({ref['uid']}) does not match "
                                              "the UID in record. The object might have been deleted and then "
                                              "recreated")
    return pod, secret, node


async def create_token(handler: ResourceHandler, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
    from .handlers import json_response

    issuing = request.app[TOKEN_ISSUING]
    raw, ctype = await handler._read_body(request, kind)
    body = decode_body(raw, ctype, "TokenRequest", API_VERSION)
    if body.get("kind", "TokenRequest") != "TokenRequest":
        raise errors.bad_request(f"the object provided is unrecognized (must be of type TokenRequest): "
                                 f"{body.get('kind')}")
    metadata = body.get("metadata") or {}
    spec = decode_spec(body, issuing.api_audiences)
    _check_metadata(metadata, info.name, info.namespace)
    service_account = await _get(handler, "ServiceAccount", info.namespace, info.name)
    validate_spec(spec)
    if handler.rest.admission is not None:
        # A create of serviceaccounts/token, as upstream admits it (NodeRestriction: a node's tokens are bound
        # to its own pods).
        await handler.rest.admission.review(Attributes(kind, CREATE, info.namespace, info.name,
                                                       {**body, "spec": spec}, None, "token",
                                                       user=request.get("user")))
    pod = secret = node = None
    if spec["boundObjectRef"] is not None:
        pod, secret, node = await _bound_objects(handler, spec["boundObjectRef"], info.namespace, info.name)

    now = int(time.time())
    lifetime, warn_after = spec["expirationSeconds"], 0
    # kubelet's projected tokens: valid for a year, but flagged as stale after the hour they asked for.
    if (issuing.extend_expiration and pod is not None and lifetime == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
            and set(spec["audiences"]) <= set(issuing.api_audiences)):
        lifetime, warn_after = EXPIRATION_EXTENSION_SECONDS, spec["expirationSeconds"]
    token = issuing.signer.sign(claims(service_account, issuer=issuing.signer.issuer, audiences=spec["audiences"],
                                       expiration_seconds=lifetime, now=now, pod=pod, secret=secret, node=node,
                                       warn_after_seconds=warn_after))
    out = {"kind": "TokenRequest", "apiVersion": API_VERSION,
           "metadata": {**metadata, "name": info.name, "namespace": info.namespace,
                        "creationTimestamp": _rfc3339(now)},
           "spec": spec,
           "status": {"token": token, "expirationTimestamp": _rfc3339(now + spec["expirationSeconds"])}}
    return json_response(out, status=201)
