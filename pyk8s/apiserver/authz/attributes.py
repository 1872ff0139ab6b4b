"""What an authorizer decides on (upstream authorizer.Attributes) and the 403 it answers with."""

from __future__ import annotations

from dataclasses import dataclass

from ...api import errors
from ...api.errors import APIError
from ...api.selectors import FieldSelector, SelectorError, parse_field_selector
from ..authn import UserInfo
from ..requestinfo import RequestInfo


@dataclass(frozen=True, slots=True)
class Attributes:
    user: UserInfo
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    is_resource_request: bool = True
    field_selector: str = ""  # a list or watch's raw fieldSelector (the node authorizer reads it)

    @classmethod
    def from_request(cls, user: UserInfo, info: RequestInfo) -> Attributes:
        if not info.is_resource_request:
            return cls(user, info.verb, path=info.path, is_resource_request=False)
        namespace = info.namespace
        if info.resource == "namespaces" and info.name and not namespace:
            # Upstream's RequestInfo puts /namespaces/NAME in namespace NAME: a RoleBinding there that
            # grants `get namespaces` lets its subjects read that one namespace.
            namespace = info.name
        name = info.name
        if not name and info.field_selector:
            # Upstream's RequestInfo: a list or watch pinned to one name by `metadata.name=` is authorized
            # for that name, so `resourceNames` rules (and a kubelet watching its own Node) apply.
            pinned = parsed_field_selector(info.field_selector).requires_exact_match("metadata.name")
            if pinned and not {"/", "%"} & set(pinned) and pinned not in (".", ".."):
                name = pinned
        return cls(user, info.verb, namespace, info.group, info.resource, info.subresource, name, info.path,
                   field_selector=info.field_selector)

    def field_requirements(self) -> FieldSelector:
        return parsed_field_selector(self.field_selector)


def parsed_field_selector(raw: str) -> FieldSelector:
    """The selector, or none when it does not parse (the request then fails with its own 400 later)."""
    try:
        return parse_field_selector(raw)
    except SelectorError:
        return FieldSelector()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


def forbidden_message(attrs: Attributes) -> str:
    """Upstream's forbiddenMessage (apiserver endpoints/handlers/responsewriters)."""
    user = attrs.user.name
    if not attrs.is_resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {where}'


def forbidden(attrs: Attributes, reason: str = "") -> APIError:
    """The 403 Status a denied request gets; a non-empty reason is appended after a colon, as upstream."""
    why = forbidden_message(attrs)
    if reason:
        why = f"{why}: {reason}"
    if not attrs.is_resource_request:
        error = APIError(403, "Forbidden", f"forbidden: {why}", {})
    else:
        error = errors.forbidden_error(attrs.resource, attrs.api_group, attrs.name, why)
    error.headers["X-Content-Type-Options"] = "nosniff"
    return error
