"""Parse a request path into the resource it addresses (upstream's RequestInfo)."""

from __future__ import annotations

from dataclasses import dataclass

_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "GET": "get",
                   "HEAD": "get"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str  # get/list/watch/create/update/patch/delete/deletecollection, or the lower-case method
    api_prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()  # path segments after the subresource (proxy paths)
    field_selector: str = ""  # a list or watch's raw `fieldSelector`, for authorization


def parse_request_info(method: str, path: str, query: dict[str, str], is_truthy) -> RequestInfo:
    """`is_truthy(value)` parses booleans like Go's strconv.ParseBool."""
    segments = [s for s in path.strip("/").split("/") if s]
    non_resource = RequestInfo(False, path, method.lower())
    if not segments or segments[0] not in ("api", "apis"):
        return non_resource
    prefix = segments[0]
    rest = segments[1:]
    if prefix == "api":
        group = ""
        if not rest:
            return non_resource
        version, rest = rest[0], rest[1:]
    else:
        if len(rest) < 2:
            return non_resource
        group, version, rest = rest[0], rest[1], rest[2:]
    if not rest:
        return non_resource

    verb = _VERB_BY_METHOD.get(method, method.lower())
    # The deprecated /watch/ prefix (`/api/v1/watch/namespaces/ns/pods`) is a watch of the rest.
    watch_prefix = rest[0] == "watch" and len(rest) > 1 and method == "GET"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    # /namespaces/{ns}/{resource}... addresses namespaced content; /namespaces/{ns} alone (or with a
    # namespace subresource such as /status or /finalize) addresses the namespace object itself.
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
        else:
            rest = ["namespaces", rest[1], *rest[2:]]
            namespace = ""
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    parts = tuple(rest[3:])

    if watch_prefix:
        verb = "watch"
    elif not name and verb == "get":
        verb = "watch" if is_truthy(query.get("watch", "")) else "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    elif name and verb == "get" and is_truthy(query.get("watch", "")):
        verb = "watch"
    field_selector = query.get("fieldSelector", "") if verb in ("list", "watch") else ""
    return RequestInfo(True, path, verb, prefix, group, version, namespace, resource, subresource, name, parts,
                       field_selector)
