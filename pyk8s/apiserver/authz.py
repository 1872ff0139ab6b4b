"""Authorization. Until RBAC lands every authenticated user may do anything; anonymous
users reach only the public endpoints (upstream's system:public-info-viewer)."""

from __future__ import annotations

from ..api import errors
from ..api.errors import APIError
from .authn import UserInfo
from .requestinfo import RequestInfo

PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})


def authorize(user: UserInfo, info: RequestInfo) -> None:
    """Raise a 403 Status for a request `user` may not make."""
    if not user.anonymous:
        return
    path = "/" + info.path.strip("/")
    if not info.is_resource_request and (path in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/",
                                                                                  "/readyz/"))):
        return
    raise forbidden(user, info)


def forbidden(user: UserInfo, info: RequestInfo) -> APIError:
    if not info.is_resource_request:
        return APIError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {info.verb} path "{info.path}"')
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    where = f' in the namespace "{info.namespace}"' if info.namespace else ""
    scope = "" if info.namespace else " at the cluster scope"
    why = (f'User "{user.name}" cannot {info.verb} resource "{resource}" in API group "{info.group}"'
           f"{where or scope}")
    return errors.forbidden_error(info.resource, info.group, info.name, why)
