"""Authentication: who is calling.

Like kube-apiserver's union of request authenticators: a verified x509 client certificate
first, then the bearer token offered to each token authenticator in turn (static token file,
service-account JWTs, bootstrap tokens); no credentials at all is the anonymous user, and
credentials nobody accepts are a 401. Every authenticated user gets `system:authenticated`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

log = logging.getLogger("pyk8s.apiserver.authn")

ANONYMOUS = "system:anonymous"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False)

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS


ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(ALL_UNAUTHENTICATED,))


class Unauthenticated(Exception):
    """Credentials were presented but are not valid (401). The message never contains the credential."""


# (plural, namespace, name) -> the live object or None; how token authenticators check that what a
# token is bound to still exists.
ObjectLookup = Callable[[str, str, str], Awaitable[dict | None]]


@dataclass(frozen=True)
class TokenResult:
    user: UserInfo
    audiences: tuple[str, ...]  # the requested audiences this token is good for


class TokenAuthenticator(Protocol):
    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        """None when the token is not one of ours; Unauthenticated when it is ours but invalid."""


def implicit_audiences(requested: Sequence[str], api_audiences: Sequence[str]) -> tuple[str, ...] | None:
    """What upstream grants an audience-unaware token (static, bootstrap): the requested audiences
    that are API audiences (all of them when the server names none); None when there is no overlap."""
    if not api_audiences:
        return tuple(requested)
    granted = tuple(a for a in requested if a in api_audiences)
    return granted or None


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """Upstream's AuthenticatedGroupAdder: every authenticated user is in system:authenticated."""
    if user.anonymous or ALL_AUTHENTICATED in user.groups or ALL_UNAUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, ALL_AUTHENTICATED), user.extra)


_UNKNOWN = object()


class Authenticator:
    """x509 first, then bearer tokens; no credentials at all means the anonymous user."""

    def __init__(self, tokens: dict[str, tuple[str, str, list[str]]] | None = None, *,
                 api_audiences: Sequence[str] = ()):
        # Imported here: those modules build on the types above, so they cannot be imported before them.
        from .tokens import StaticTokenAuthenticator
        from .x509 import certificate_user

        self._certificate_user = certificate_user
        self._certificate_users: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # Audiences a token must be meant for when the caller names none (upstream's --api-audiences).
        self.api_audiences: tuple[str, ...] = tuple(api_audiences)
        # (authenticator, audience_aware): tokens that carry no audience are only good for the API audiences.
        self.token_authenticators: list[tuple[TokenAuthenticator, bool]] = []
        if tokens:
            self.add_token_authenticator(StaticTokenAuthenticator(tokens), audience_aware=False)

    def _connection_user(self, transport) -> UserInfo | None:
        """The client certificate's user, worked out once per TLS connection: a connection's
        certificate cannot change (TLS 1.3 has no renegotiation), and keep-alive clients send many requests."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        cached = self._certificate_users.get(ssl_object, _UNKNOWN)
        if cached is _UNKNOWN:
            user = self._certificate_user(transport.get_extra_info("peercert"))
            cached = with_authenticated_group(user) if user is not None else None
            self._certificate_users[ssl_object] = cached
        return cached

    def add_token_authenticator(self, authenticator: TokenAuthenticator, *, audience_aware: bool = True) -> None:
        self.token_authenticators.append((authenticator, audience_aware))

    async def authenticate(self, request: web.Request) -> UserInfo:
        transport = request.transport
        user = self._connection_user(transport) if transport is not None else None
        if user is not None:
            return user
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        token = credential.strip()
        # Like upstream's bearer authenticator, other schemes and empty tokens are no credential at all.
        if scheme.lower() != "bearer" or not token:
            return ANONYMOUS_USER
        try:
            return (await self.authenticate_token(token)).user
        except Unauthenticated as exc:
            raise Unauthenticated(str(exc) or "invalid bearer token") from None

    async def authenticate_token(self, token: str, audiences: Sequence[str] = ()) -> TokenResult:
        """The user a bearer token stands for (for requests and TokenReview); Unauthenticated otherwise.

        `audiences` are the ones the token must be good for; empty means the API audiences.
        """
        wanted = tuple(audiences) or self.api_audiences
        failures: list[str] = []
        for authenticator, audience_aware in self.token_authenticators:
            offered: tuple[str, ...] | None = wanted
            if not audience_aware and (offered := implicit_audiences(wanted, self.api_audiences)) is None:
                continue
            try:
                result = await authenticator.authenticate_token(token, offered)
            except Unauthenticated as exc:
                failures.append(str(exc))
                continue
            if result is not None:
                return TokenResult(with_authenticated_group(result.user), result.audiences)
        # Upstream's error aggregate prints one error bare and several as a bracketed list.
        raise Unauthenticated(failures[0] if len(failures) == 1 else
                              f"[{', '.join(failures)}]" if failures else "")
