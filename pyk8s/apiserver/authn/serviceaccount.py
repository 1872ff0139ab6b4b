"""Service-account tokens: ES256 JWTs the apiserver signs (TokenRequest) and checks on every request.

The claims follow upstream's pkg/serviceaccount: registered claims (iss, sub, aud, exp, iat,
nbf, jti) plus the private `kubernetes.io` claim naming the namespace, the service account and
the object the token is bound to (pod, secret or node; a pod-bound token also names the pod's
node). A token is only good while its service account, and the object it is bound to, still
exist with the UIDs it names: deleting either revokes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...api.meta import parse_time
from . import ObjectLookup, TokenResult, Unauthenticated, UserInfo

log = logging.getLogger("pyk8s.apiserver.authn.serviceaccount")

ISSUER = "https://kubernetes.default.svc.cluster.local"
ALGORITHM = "ES256"
PRIVATE_CLAIM = "kubernetes.io"
# Clock skew tolerated on exp/nbf/iat and on deletion times (go-jose's DefaultLeeway).
LEEWAY = 60
# kubelet asks for this odd lifetime for projected tokens; the apiserver then issues a token valid for a
# year that only *warns* after the hour, so workloads that never re-read their token keep working.
WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS = 60 * 60 + 7
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60

USERNAME_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"

# What go-jose reports for a signature that does not verify (upstream passes it through).
BAD_SIGNATURE = "go-jose/go-jose: error in cryptographic primitive"
INVALIDATED = "service account token has been invalidated"


def make_username(namespace: str, name: str) -> str:
    return f"{USERNAME_PREFIX}{namespace}:{name}"


def split_username(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a `system:serviceaccount:<ns>:<name>` user name, else None."""
    if not username.startswith(USERNAME_PREFIX):
        return None
    namespace, sep, name = username[len(USERNAME_PREFIX):].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def group_names(namespace: str) -> tuple[str, ...]:
    return (ALL_SERVICE_ACCOUNTS_GROUP, f"{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Upstream's kid: the unpadded base64url SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64url(hashlib.sha256(der).digest())


def _ref(obj: dict) -> dict:
    """{name, uid} of an object; a pod's node that no longer exists is named without a UID."""
    meta = obj["metadata"]
    return {"name": meta["name"], "uid": meta["uid"]} if meta.get("uid") else {"name": meta["name"]}


def claims(service_account: dict, *, issuer: str, audiences: Sequence[str], expiration_seconds: int, now: int,
           pod: dict | None = None, secret: dict | None = None, node: dict | None = None,
           warn_after_seconds: int = 0, jti: str | None = None) -> dict:
    """The JWT claims for a token of `service_account`, bound to at most one of pod/secret/node (a pod
    binding may carry the pod's node as well)."""
    meta = service_account["metadata"]
    private: dict = {"namespace": meta["namespace"], "serviceaccount": _ref(service_account)}
    if pod is not None:
        private["pod"] = _ref(pod)
    elif secret is not None:
        private["secret"] = _ref(secret)
    if node is not None:
        private["node"] = _ref(node)
    if warn_after_seconds:
        private["warnafter"] = now + warn_after_seconds
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer,
            "jti": jti or str(uuid.uuid4()), PRIVATE_CLAIM: private, "nbf": now,
            "sub": make_username(meta["namespace"], meta["name"])}


class TokenSigner:
    """Signs tokens with the cluster's service-account key and publishes its public half."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, issuer: str = ISSUER):
        self._key = private_key
        self.issuer = issuer
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, token_claims: dict) -> str:
        return jwt.encode(token_claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def jwks(self) -> dict:
        numbers = self.public_key.public_numbers()
        return {"keys": [{"use": "sig", "kty": "EC", "kid": self.key_id, "crv": "P-256", "alg": ALGORITHM,
                          "x": _b64url(numbers.x.to_bytes(32, "big")),
                          "y": _b64url(numbers.y.to_bytes(32, "big"))}]}


def _go_quoted(values: Sequence[str]) -> str:
    """A string list as Go's %q prints it: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _deleted_before(obj: dict, cutoff: float) -> bool:
    stamp = obj["metadata"].get("deletionTimestamp")
    return bool(stamp) and parse_time(stamp).timestamp() < cutoff


def verified_claims(token: str, public_key: ec.EllipticCurvePublicKey, issuer: str) -> dict | None:
    """The claims of a token from `issuer` signed by `public_key`; None for a token that is not a JWT from
    that issuer (another authenticator's), Unauthenticated for one whose signature does not verify.
    Times, audiences and bindings are left to the caller, which words their errors as upstream."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    if not isinstance(unverified, dict) or unverified.get("iss") != issuer:
        return None
    try:
        return jwt.decode(token, public_key, algorithms=[ALGORITHM],
                          options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                   "verify_aud": False, "verify_iss": False})
    except jwt.PyJWTError:
        raise Unauthenticated(BAD_SIGNATURE) from None


class ServiceAccountTokenAuthenticator:
    """Accepts tokens with our issuer whose signature, times, audience and bindings all check out."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, issuer: str, api_audiences: Sequence[str],
                 lookup: ObjectLookup, clock: Callable[[], float] = time.time):
        self._public_key = public_key
        self.issuer = issuer
        self.api_audiences = tuple(api_audiences)
        self._lookup = lookup
        self._clock = clock

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        token_claims = verified_claims(token, self._public_key, self.issuer)
        if token_claims is None:
            return None
        granted = self._check_audience(token_claims, audiences)
        now = self._clock()
        self._check_times(token_claims, now)
        return TokenResult(await self._user(token_claims, now), granted)

    def _check_audience(self, token_claims: dict, requested: Sequence[str]) -> tuple[str, ...]:
        aud = token_claims.get("aud")
        if isinstance(aud, str):
            token_audiences = [aud]
        elif isinstance(aud, list):
            token_audiences = [a for a in aud if isinstance(a, str)]
        else:
            token_audiences = []
        if not token_audiences:
            token_audiences = list(self.api_audiences)  # legacy tokens carry no audience
        wanted = list(requested) or list(self.api_audiences)
        granted = tuple(a for a in token_audiences if a in wanted)
        if not granted and self.api_audiences:
            raise Unauthenticated(f"token audiences {_go_quoted(token_audiences)} is invalid for the target "
                                  f"audiences {_go_quoted(wanted)}")
        return granted

    @staticmethod
    def _check_times(token_claims: dict, now: float) -> None:
        try:
            exp, nbf, iat = (token_claims.get(k) for k in ("exp", "nbf", "iat"))
            if exp is not None and now - LEEWAY > float(exp):
                raise Unauthenticated("service account token has expired")
            if nbf is not None and now + LEEWAY < float(nbf):
                raise Unauthenticated("service account token is not valid yet")
            if iat is not None and now + LEEWAY < float(iat):
                raise Unauthenticated("service account token claims could not be validated due to unexpected "
                                      "validation error")
        except (TypeError, ValueError):
            raise Unauthenticated("service account token claims could not be validated due to unexpected "
                                  "validation error") from None

    async def _user(self, token_claims: dict, now: float) -> UserInfo:
        private = token_claims.get(PRIVATE_CLAIM)
        namespace = private.get("namespace") if isinstance(private, dict) else None
        sa_ref = private.get("serviceaccount") if isinstance(private, dict) else None
        if not isinstance(namespace, str) or not namespace or not _valid_ref(sa_ref):
            raise Unauthenticated("service account token claims could not be validated due to unexpected "
                                  "private claim")
        cutoff = now - LEEWAY
        sa = await self._lookup("serviceaccounts", namespace, sa_ref["name"])
        if sa is None:
            raise Unauthenticated(f'serviceaccounts "{sa_ref["name"]}" not found')
        if _deleted_before(sa, cutoff):
            raise Unauthenticated(f"service account {namespace}/{sa_ref['name']} has been deleted")
        if sa["metadata"].get("uid") != sa_ref["uid"]:
            raise Unauthenticated(f"service account UID ({sa['metadata'].get('uid')}) does not match claim "
                                  f"({sa_ref['uid']})")
        extra: dict[str, list[str]] = {}
        secret_ref, pod_ref, node_ref = (private.get(k) for k in ("secret", "pod", "node"))
        if secret_ref is not None:
            await self._check_bound("secrets", namespace, secret_ref, "secret", "secret ref", cutoff)
        if pod_ref is not None:
            await self._check_bound("pods", namespace, pod_ref, "pod", "pod ref", cutoff)
            extra[POD_NAME_KEY], extra[POD_UID_KEY] = [pod_ref["name"]], [pod_ref["uid"]]
        if node_ref is not None:
            if pod_ref is None:  # a pod-bound token only carries its node for the node authorizer
                await self._check_bound("nodes", "", node_ref, "node", "node ref", cutoff)
            elif not isinstance(node_ref, dict):
                raise Unauthenticated(INVALIDATED)
            for key, value in ((NODE_NAME_KEY, node_ref.get("name")), (NODE_UID_KEY, node_ref.get("uid"))):
                if isinstance(value, str) and value:
                    extra[key] = [value]
        jti = token_claims.get("jti")
        if isinstance(jti, str) and jti:
            extra[CREDENTIAL_ID_KEY] = [f"JTI={jti}"]
        return UserInfo(make_username(namespace, sa_ref["name"]), sa_ref["uid"], group_names(namespace), extra)

    async def _check_bound(self, plural: str, namespace: str, ref: object, what: str, claim: str,
                           cutoff: float) -> None:
        if not _valid_ref(ref):
            raise Unauthenticated(INVALIDATED)
        obj = await self._lookup(plural, namespace, ref["name"])
        if obj is None or _deleted_before(obj, cutoff):
            raise Unauthenticated(INVALIDATED)
        if obj["metadata"].get("uid") != ref["uid"]:
            raise Unauthenticated(f"{what} UID ({obj['metadata'].get('uid')}) does not match service account "
                                  f"{claim} claim ({ref['uid']})")


def _valid_ref(ref: object) -> bool:
    return (isinstance(ref, dict) and isinstance(ref.get("name"), str) and bool(ref["name"])
            and isinstance(ref.get("uid"), str))


# Secret-based tokens of the pre-TokenRequest era: no expiry or audience, revoked by deleting their Secret.
LEGACY_ISSUER = "kubernetes/serviceaccount"
LEGACY_NAMESPACE_CLAIM = "kubernetes.io/serviceaccount/namespace"
LEGACY_SECRET_CLAIM = "kubernetes.io/serviceaccount/secret.name"
LEGACY_NAME_CLAIM = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_UID_CLAIM = "kubernetes.io/serviceaccount/service-account.uid"
LEGACY_INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"


def legacy_claims(service_account: dict, secret_name: str) -> dict:
    meta = service_account["metadata"]
    return {"iss": LEGACY_ISSUER, LEGACY_NAMESPACE_CLAIM: meta["namespace"], LEGACY_SECRET_CLAIM: secret_name,
            LEGACY_NAME_CLAIM: meta["name"], LEGACY_UID_CLAIM: meta["uid"],
            "sub": make_username(meta["namespace"], meta["name"])}


class LegacyServiceAccountTokenAuthenticator:
    """Tokens the serviceaccount-token controller wrote into `kubernetes.io/service-account-token` Secrets:
    good for the API audiences only, and only while the Secret still holds exactly this token and the
    service account still exists with the UID the token names."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, api_audiences: Sequence[str], lookup: ObjectLookup):
        self._public_key = public_key
        self.api_audiences = tuple(api_audiences)
        self._lookup = lookup

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        token_claims = verified_claims(token, self._public_key, LEGACY_ISSUER)
        if token_claims is None:
            return None
        granted = tuple(a for a in audiences if a in self.api_audiences) if self.api_audiences else tuple(audiences)
        if not granted:
            raise Unauthenticated(f"token audiences {_go_quoted(self.api_audiences)} is invalid for the target "
                                  f"audiences {_go_quoted(audiences)}")
        namespace, secret_name, name, uid = (token_claims.get(k) for k in (
            LEGACY_NAMESPACE_CLAIM, LEGACY_SECRET_CLAIM, LEGACY_NAME_CLAIM, LEGACY_UID_CLAIM))
        for value, what in ((namespace, "namespace"), (secret_name, "secretName"), (name, "serviceAccountName")):
            if not isinstance(value, str) or not value:
                raise Unauthenticated(f"{what} claim is missing")
        secret = await self._lookup("secrets", namespace, secret_name)
        if secret is None or secret["metadata"].get("deletionTimestamp"):
            raise Unauthenticated("token has been invalidated")
        stored = (secret.get("data") or {}).get("token", "")
        try:
            stored_token = base64.b64decode(stored, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            stored_token = ""
        if not hmac.compare_digest(stored_token.encode(), token.encode()):
            raise Unauthenticated("token does not match server's copy")
        if LEGACY_INVALID_SINCE_LABEL in (secret["metadata"].get("labels") or {}):
            raise Unauthenticated(
                f"the token in secret {namespace}/{secret_name} for service account {namespace}/{name} has been "
                f"marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or "
                f"remove the '{LEGACY_INVALID_SINCE_LABEL}' label from the secret to re-enable it")
        sa = await self._lookup("serviceaccounts", namespace, name)
        if sa is None:
            raise Unauthenticated(f'serviceaccounts "{name}" not found')
        if sa["metadata"].get("deletionTimestamp"):
            raise Unauthenticated(f"service account {namespace}/{name} has been deleted")
        if uid and sa["metadata"].get("uid") != uid:
            raise Unauthenticated(f"service account UID ({sa['metadata'].get('uid')}) does not match claim ({uid})")
        return TokenResult(UserInfo(make_username(namespace, name), sa["metadata"]["uid"], group_names(namespace)),
                           granted)
