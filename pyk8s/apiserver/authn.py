"""Authentication: who is calling (x509 client certificates and static bearer tokens)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from ..server.pki import client_identity

ANONYMOUS = "system:anonymous"


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS


ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=("system:unauthenticated",))


class Unauthenticated(Exception):
    """Credentials were presented but are not valid (401)."""


class Authenticator:
    """x509 first, then bearer tokens; no credentials at all means the anonymous user."""

    def __init__(self, tokens: dict[str, tuple[str, str, list[str]]] | None = None):
        self.tokens = tokens or {}

    def authenticate(self, request: web.Request) -> UserInfo:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, credential = header.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthenticated()
            entry = self.tokens.get(credential.strip())
            if entry is None:
                raise Unauthenticated()
            user, uid, groups = entry
            return UserInfo(user, uid, tuple(groups) + ("system:authenticated",))
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        identity = client_identity(peercert)
        if identity is not None:
            user, groups = identity
            return UserInfo(user, groups=tuple(groups) + ("system:authenticated",))
        return ANONYMOUS_USER
