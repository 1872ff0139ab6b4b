"""Service-account tokens for projected volumes: upstream's token manager (pkg/kubelet/token/token_manager.go).

Tokens come from `POST serviceaccounts/<name>/token` (TokenRequest), bound to the pod, and are cached per
(service account, audience, lifetime, pod). A token is requested again once 80% of its lifetime has passed or
it is older than 24 hours, so a running pod always holds a valid one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...api.meta import parse_time
from ...client import APIClient

log = logging.getLogger(__name__)

MAX_TTL_SECONDS = 24 * 60 * 60
REFRESH_FRACTION = 0.8


@dataclass(frozen=True)
class TokenKey:
    namespace: str
    service_account: str
    audience: str
    expiration_seconds: int
    pod_uid: str


@dataclass
class Token:
    token: str
    issued_at: float
    expires_at: float
    lifetime: int

    def needs_refresh(self, now: float) -> bool:
        refresh_at = self.expires_at - (1 - REFRESH_FRACTION) * self.lifetime
        return now >= refresh_at or now >= self.issued_at + MAX_TTL_SECONDS


class TokenManager:
    def __init__(self, client: APIClient, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock
        self._tokens: dict[TokenKey, Token] = {}

    async def get(self, pod: dict, audience: str, expiration_seconds: int) -> str:
        meta = pod["metadata"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        key = TokenKey(meta["namespace"], account, audience, expiration_seconds, meta["uid"])
        cached = self._tokens.get(key)
        now = self.clock()
        if cached is not None and not cached.needs_refresh(now):
            return cached.token
        spec: dict = {"expirationSeconds": expiration_seconds,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}}
        if audience:  # none: the apiserver's own audiences
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            answer = await self.client.create_subresource("serviceaccounts", account, "token", body,
                                                          namespace=meta["namespace"])
        except Exception as exc:
            if cached is not None and now < cached.expires_at:
                # Keep serving the old token while it is still valid; the next refresh tries again.
                log.warning("refreshing token for %s/%s failed, keeping the current one: %s", meta["namespace"],
                            account, exc)
                return cached.token
            raise
        status = answer.get("status") or {}
        expires = parse_time(status["expirationTimestamp"]).timestamp() if status.get("expirationTimestamp") \
            else now + expiration_seconds
        self._tokens[key] = Token(status.get("token", ""), now, expires, expiration_seconds)
        log.debug("token for %s/%s (pod %s, audience %r) valid until %s", meta["namespace"], account, meta["name"],
                  audience, status.get("expirationTimestamp"))
        return status.get("token", "")

    def forget_pod(self, pod_uid: str) -> None:
        for key in [k for k in self._tokens if k.pod_uid == pod_uid]:
            del self._tokens[key]
