"""Bootstrap tokens (upstream plugin/pkg/auth/authenticator/token/bootstrap): `<id>.<secret>` tokens
backed by kube-system Secrets named `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`,
which nodes use to join. Anything that does not check out is simply not this authenticator's token."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from . import ObjectLookup, TokenResult, UserInfo

log = logging.getLogger("pyk8s.apiserver.authn.bootstrap")

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
USER_PREFIX = "system:bootstrap:"
DEFAULT_GROUP = "system:bootstrappers"
TOKEN_PATTERN = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
EXTRA_GROUP_PATTERN = re.compile(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]")


def parse_token(token: str) -> tuple[str, str] | None:
    """(token id, token secret) of a well-formed bootstrap token, else None."""
    match = TOKEN_PATTERN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def secret_value(secret: dict, key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if not raw:
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def expired(secret: dict, now: float) -> bool:
    """An unparsable expiration counts as expired, as upstream."""
    value = secret_value(secret, "expiration")
    if not value:
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() < now
    except ValueError:
        return True


def groups(secret: dict) -> tuple[str, ...] | None:
    """system:bootstrappers plus the valid auth-extra-groups, sorted; None if any extra group is invalid."""
    out = {DEFAULT_GROUP}
    for group in filter(None, (g.strip() for g in secret_value(secret, "auth-extra-groups").split(","))):
        if not EXTRA_GROUP_PATTERN.fullmatch(group):
            return None
        out.add(group)
    return tuple(sorted(out))


class BootstrapTokenAuthenticator:
    """Audience-unaware: registered so that it only sees requests for the API audiences."""

    def __init__(self, lookup: ObjectLookup, clock: Callable[[], float] = time.time):
        self._lookup = lookup
        self._clock = clock

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, token_secret = parsed
        name = SECRET_PREFIX + token_id
        secret = await self._lookup("secrets", NAMESPACE, name)
        if secret is None or secret["metadata"].get("deletionTimestamp") or secret.get("type") != SECRET_TYPE:
            log.debug("bootstrap token %s: no usable secret %s/%s", token_id, NAMESPACE, name)
            return None
        if not hmac.compare_digest(secret_value(secret, "token-secret").encode(), token_secret.encode()):
            log.debug("bootstrap token %s: secret does not match", token_id)
            return None
        if secret_value(secret, "token-id") != token_id:
            log.debug("bootstrap token %s: token-id does not match the secret's", token_id)
            return None
        if expired(secret, self._clock()):
            log.debug("bootstrap token %s: expired", token_id)
            return None
        if secret_value(secret, "usage-bootstrap-authentication") != "true":
            log.debug("bootstrap token %s: not marked for authentication", token_id)
            return None
        user_groups = groups(secret)
        if user_groups is None:
            log.debug("bootstrap token %s: invalid auth-extra-groups", token_id)
            return None
        return TokenResult(UserInfo(USER_PREFIX + token_id, groups=user_groups), tuple(audiences))
