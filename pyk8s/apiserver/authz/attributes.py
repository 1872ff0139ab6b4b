"""What an authorizer decides on (upstream authorizer.Attributes) and the 403 it answers with."""

from __future__ import annotations

from dataclasses import dataclass

from ...api import errors
from ...api.errors import APIError
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

    @classmethod
    def from_request(cls, user: UserInfo, info: RequestInfo) -> Attributes:
        if not info.is_resource_request:
            return cls(user, info.verb, path=info.path, is_resource_request=False)
        namespace = info.namespace
        if info.resource == "namespaces" and info.name and not namespace:
            # Upstream's RequestInfo puts /namespaces/NAME in namespace NAME: a RoleBinding there that
            # grants `get namespaces` lets its subjects read that one namespace.
            namespace = info.name
        return cls(user, info.verb, namespace, info.group, info.resource, info.subresource, info.name, info.path)


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
