"""Impersonation (upstream endpoints/filters/impersonation.go): `Impersonate-User`, `-Group`, `-Uid`
and `-Extra-<key>` headers make the request act as someone else, provided the authorizer lets the
real user `impersonate` each of them (users, groups, serviceaccounts, uids, userextras)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from ...api import errors
from . import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo
from .serviceaccount import group_names, split_username

USER_HEADER = "Impersonate-User"
UID_HEADER = "Impersonate-Uid"
GROUP_HEADER = "Impersonate-Group"
EXTRA_PREFIX = "impersonate-extra-"
_HEADERS = frozenset(h.lower() for h in (USER_HEADER, UID_HEADER, GROUP_HEADER))
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class ImpersonationRequest:
    """One thing to be allowed to impersonate, as the authorizer sees it."""

    resource: str  # users, serviceaccounts, groups, uids, userextras
    name: str
    namespace: str = ""
    api_group: str = ""
    subresource: str = ""  # the extra's key for userextras

    def describe(self) -> str:
        """Roughly how upstream prints the ObjectReference it builds (for the 400 message)."""
        kind = {"users": "User", "serviceaccounts": "ServiceAccount", "groups": "Group", "uids": "UID",
                "userextras": "UserExtra"}[self.resource]
        fields = [kind, self.namespace, self.name]
        if self.subresource:
            fields.append(self.subresource)
        return "{" + " ".join(fields) + "}"


def requested(headers) -> tuple[str, str, list[str], dict[str, list[str]]]:
    """(user, uid, groups, extra) named by the request's impersonation headers."""
    extra: dict[str, list[str]] = {}
    for header, value in headers.items():
        lower = header.lower()
        if lower.startswith(EXTRA_PREFIX) and len(lower) > len(EXTRA_PREFIX):
            # Keys are case-insensitive and percent-encoded so that they fit in a header name.
            extra.setdefault(unquote(lower[len(EXTRA_PREFIX):]), []).append(value)
    return headers.get(USER_HEADER, ""), headers.get(UID_HEADER, ""), headers.getall(GROUP_HEADER, []), extra


def wants_impersonation(headers) -> bool:
    # On every request: look at each header's first letter before lower-casing anything.
    for name in headers.keys():
        if name[:1] in "iI":
            lower = name.lower()
            if lower in _HEADERS or lower.startswith(EXTRA_PREFIX):
                return True
    return False


def impersonation_requests(user: str, uid: str, groups: list[str],
                           extra: dict[str, list[str]]) -> list[ImpersonationRequest]:
    out = []
    if user:
        sa = split_username(user)
        out.append(ImpersonationRequest("serviceaccounts", sa[1], sa[0]) if sa else ImpersonationRequest("users", user))
    out.extend(ImpersonationRequest("groups", group) for group in groups)
    for key, values in extra.items():
        out.extend(ImpersonationRequest("userextras", value, api_group=AUTHENTICATION_GROUP, subresource=key)
                   for value in values)
    if uid:
        out.append(ImpersonationRequest("uids", uid, api_group=AUTHENTICATION_GROUP))
    return out


def impersonated_user(user: str, uid: str, groups: list[str], extra: dict[str, list[str]]) -> UserInfo:
    """Who the request acts as: a service account's groups follow from its name unless groups were named;
    a non-anonymous user is also in system:authenticated (unless system:unauthenticated was asked for)."""
    sa = split_username(user)
    user_groups = list(groups) if groups or sa is None else list(group_names(sa[0]))
    if user != ANONYMOUS:
        if ALL_AUTHENTICATED not in user_groups and ALL_UNAUTHENTICATED not in user_groups:
            user_groups.append(ALL_AUTHENTICATED)
    elif ALL_UNAUTHENTICATED not in user_groups:
        user_groups.append(ALL_UNAUTHENTICATED)
    return UserInfo(user, uid, tuple(user_groups), {k: list(v) for k, v in extra.items()})


async def impersonate(request: web.Request, user: UserInfo, authorizer) -> UserInfo:
    """The user the request acts as: `user` itself without impersonation headers, else the impersonated
    user once `authorizer` allowed every part of it (a 403 Status otherwise)."""
    from ..authz import Attributes, forbidden

    name, uid, groups, extra = requested(request.headers)
    wanted = impersonation_requests(name, uid, groups, extra)
    if not name and wanted:
        raise errors.bad_request(f"requested [{' '.join(r.describe() for r in wanted)}] without impersonating "
                                 "a user")
    for item in wanted:
        attrs = Attributes(user=user, verb="impersonate", namespace=item.namespace, api_group=item.api_group,
                           resource=item.resource, subresource=item.subresource, name=item.name,
                           path=request.path, is_resource_request=True)
        decision = authorizer.authorize(attrs)
        if inspect.isawaitable(decision):
            decision = await decision
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
    return impersonated_user(name, uid, groups, extra)

