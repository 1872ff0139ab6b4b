"""Static bearer tokens from a token file (upstream's --token-auth-file)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from . import TokenResult, UserInfo


class StaticTokenAuthenticator:
    """Audience-unaware: registered so that it only sees requests for the API audiences."""

    def __init__(self, tokens: dict[str, tuple[str, str, list[str]]]):
        self._tokens = dict(tokens)

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        entry = None
        # Compare every entry in constant time, so timing does not tell how much of a token matched.
        for known, value in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                entry = value
        if entry is None:
            return None
        user, uid, groups = entry
        return TokenResult(UserInfo(user, uid, tuple(groups)), tuple(audiences))

