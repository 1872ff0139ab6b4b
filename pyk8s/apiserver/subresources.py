"""Subresources with their own body kinds: scale (autoscaling/v1 Scale) and pods/binding."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ..api import errors, jsonpath
from ..api.errors import APIError, FieldError
from ..api.kinds import Kind
from ..api.meta import now_rfc3339
from ..api.selectors import label_selector_to_string
from .negotiation import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, decode_body, media_type, read_body
from .requestinfo import RequestInfo

if TYPE_CHECKING:
    from .handlers import ResourceHandler


def _custom_value(kind: Kind, obj: dict, path: str):
    steps = kind.custom.scale_steps.get(path)
    found = jsonpath.find(obj, steps) if steps is not None else []
    return found[0] if found else None


def _custom_scale_of(kind: Kind, obj: dict, scale_meta: dict) -> dict:
    """A custom resource's Scale, read at its CRD's specReplicasPath/statusReplicasPath/labelSelectorPath."""
    spec_replicas = _custom_value(kind, obj, "specReplicasPath")
    status_replicas = _custom_value(kind, obj, "statusReplicasPath")
    selector = _custom_value(kind, obj, "labelSelectorPath")
    status: dict = {"replicas": status_replicas if isinstance(status_replicas, int) else 0}
    if isinstance(selector, str) and selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": spec_replicas if isinstance(spec_replicas, int) else 0}, "status": status}


def _set_replicas(kind: Kind, obj: dict, replicas: int) -> None:
    if kind.custom is None:
        obj.setdefault("spec", {})["replicas"] = replicas
        return
    steps = kind.custom.scale_steps.get("specReplicasPath")
    if not steps:
        raise errors.invalid_object("Scale", "autoscaling", obj["metadata"].get("name", ""), [
            FieldError("Invalid", "spec.replicas", replicas, "the custom resource's specReplicasPath is not a "
                                                             "simple field path")])
    node = obj
    *parents, leaf = [step.name for step in steps]
    for name in parents:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[leaf] = replicas


def _scale_of(kind: Kind, obj: dict) -> dict:
    meta = obj["metadata"]
    if kind.custom is not None:
        return _custom_scale_of(kind, obj, {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                                  "creationTimestamp") if k in meta})
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    if kind.kind == "ReplicationController":
        selector_str = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
    else:
        selector_str = label_selector_to_string(selector or {})
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if k in meta}
    scale_status: dict = {"replicas": status.get("replicas", 0)}
    if selector_str:
        scale_status["selector"] = selector_str
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": spec.get("replicas", 0)}, "status": scale_status}


def _validate_scale(scale: dict, name: str) -> None:
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.bad_request("Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal "
                                 "into Go struct field ScaleSpec.spec.replicas of type int32")
    if replicas < 0:
        raise errors.invalid_object("Scale", "autoscaling", name, [
            FieldError("Invalid", "spec.replicas", replicas, "must be greater than or equal to 0")])


async def scale(handler: ResourceHandler, request: web.Request, info: RequestInfo, kind: Kind,
                verb: str) -> web.Response:
    from .handlers import _merge_patch, json_response

    storage = handler._storage(kind)
    if verb == "get":
        cached = await handler.rest.get(storage, info.namespace, info.name)
        return json_response(_scale_of(kind, cached.obj))
    if verb not in ("update", "patch"):
        raise errors.method_not_allowed()
    raw = await read_body(request)
    ctype = media_type(request.headers.get("Content-Type"))
    if verb == "update":
        body = decode_body(raw, ctype, "Scale", "autoscaling/v1")
    elif ctype in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
    else:
        raise errors.unsupported_media_type([JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH])
    opts = handler._write_options(request, kind)

    def apply(current: dict) -> dict:
        current_scale = _scale_of(kind, current)
        if verb == "update":
            new_scale = body
        elif ctype in (MERGE_PATCH, STRATEGIC_PATCH):
            # autoscaling/v1 Scale has no lists, so a strategic merge patch of it merges like a merge patch.
            new_scale = _merge_patch(current_scale, body)
        else:
            import jsonpatch

            try:
                new_scale = jsonpatch.JsonPatch(body).apply(current_scale)
            except jsonpatch.JsonPatchException as exc:
                raise APIError(422, "Invalid", str(exc)) from None
        _validate_scale(new_scale, info.name)
        requested_rv = (new_scale.get("metadata") or {}).get("resourceVersion", "")
        # A resourceVersion is a precondition only when the request sets one (a PUT's, or a patch that
        # changes it); otherwise a concurrent write is retried against the fresh object, as upstream.
        if verb == "patch" and requested_rv == current_scale["metadata"].get("resourceVersion"):
            requested_rv = ""
        _set_replicas(kind, current, new_scale.get("spec", {}).get("replicas", 0))
        if requested_rv:
            current["metadata"]["resourceVersion"] = requested_rv
        else:
            current["metadata"].pop("resourceVersion", None)
        return current

    updated, _ = await handler.rest.update(storage, info.namespace, info.name, apply, opts)
    return json_response(_scale_of(kind, updated))


async def binding(handler: ResourceHandler, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
    """pods/binding: set spec.nodeName once (409 if already bound) and the PodScheduled condition."""
    from .handlers import json_response

    raw, ctype = await handler._read_body(request, kind)
    body = decode_body(raw, ctype, "Binding")
    target = body.get("target") or {}
    node = target.get("name", "")
    if not node:
        raise errors.invalid_object("Binding", "", info.name, [FieldError("Required", "target.name")])
    opts = handler._write_options(request, kind)

    def bind(current: dict) -> dict:
        spec = current.setdefault("spec", {})
        if current["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", "", info.name, "pod is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict("pods/binding", "", info.name,
                                  f"pod {info.name} is already assigned to node \"{spec['nodeName']}\"")
        spec["nodeName"] = node
        annotations = (body.get("metadata") or {}).get("annotations")
        if annotations:
            current["metadata"].setdefault("annotations", {}).update(annotations)
        status = current.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conditions
        current["metadata"].pop("resourceVersion", None)  # no precondition: a concurrent status write is retried
        return current

    await handler.rest.update(handler._storage(kind), info.namespace, info.name, bind, opts, "binding")
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "code": 201}, status=201)
