"""Service-account JWTs: claims, signature, expiry, audience and bound-object checks."""

from __future__ import annotations

import asyncio
import base64

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyk8s.apiserver.authn import Unauthenticated
from pyk8s.apiserver.authn.serviceaccount import (
    ISSUER,
    ServiceAccountTokenAuthenticator,
    TokenSigner,
    claims,
    key_id,
    make_username,
    split_username,
)

NOW = 1_800_000_000
SA = {"metadata": {"name": "robot", "namespace": "apps", "uid": "sa-uid"}}
POD = {"metadata": {"name": "worker", "namespace": "apps", "uid": "pod-uid"}}
SECRET = {"metadata": {"name": "anchor", "namespace": "apps", "uid": "secret-uid"}}
NODE = {"metadata": {"name": "node-1", "uid": "node-uid"}}


class Objects:
    """An ObjectLookup over a dict the tests edit."""

    def __init__(self, *objs: dict):
        self.objects = {}
        for plural, obj in zip(("serviceaccounts", "pods", "secrets", "nodes"), objs, strict=False):
            self.put(plural, obj)

    def put(self, plural: str, obj: dict) -> None:
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace", ""), meta["name"])] = obj

    async def __call__(self, plural: str, namespace: str, name: str) -> dict | None:
        return self.objects.get((plural, namespace, name))


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(ec.generate_private_key(ec.SECP256R1()))


def authenticate(signer: TokenSigner, token: str, objects: Objects, audiences=(ISSUER,), now: float = NOW + 10):
    auth = ServiceAccountTokenAuthenticator(signer.public_key, ISSUER, (ISSUER,), objects, clock=lambda: now)
    return asyncio.run(auth.authenticate_token(token, audiences))


def token_for(signer: TokenSigner, **kw) -> str:
    kw.setdefault("audiences", [ISSUER])
    kw.setdefault("expiration_seconds", 3600)
    return signer.sign(claims(SA, issuer=ISSUER, now=NOW, jti="the-jti", **kw))


def test_claims_shape():
    out = claims(SA, issuer=ISSUER, audiences=["a", "b"], expiration_seconds=600, now=NOW, pod=POD, node=NODE,
                 warn_after_seconds=3607, jti="j")
    assert out == {"aud": ["a", "b"], "exp": NOW + 600, "iat": NOW, "iss": ISSUER, "jti": "j", "nbf": NOW,
                   "sub": "system:serviceaccount:apps:robot",
                   "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "robot", "uid": "sa-uid"},
                                     "pod": {"name": "worker", "uid": "pod-uid"},
                                     "node": {"name": "node-1", "uid": "node-uid"}, "warnafter": NOW + 3607}}
    assert "secret" not in claims(SA, issuer=ISSUER, audiences=[], expiration_seconds=1, now=NOW, pod=POD,
                                  secret=SECRET)["kubernetes.io"]


def test_usernames():
    assert make_username("ns", "sa") == "system:serviceaccount:ns:sa"
    assert split_username("system:serviceaccount:ns:sa") == ("ns", "sa")
    for bad in ("system:serviceaccount:ns", "system:serviceaccount::sa", "bob", "system:serviceaccount:a:b:c"):
        assert split_username(bad) is None


def test_signed_token_header_and_jwks(signer):
    token = token_for(signer)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": key_id(signer.public_key), "typ": "JWT"}
    key = jwt.PyJWKSet.from_dict(signer.jwks())[signer.key_id]
    assert jwt.decode(token, key.key, algorithms=["ES256"], audience=ISSUER,
                      options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})


def test_valid_token_user(signer):
    result = authenticate(signer, token_for(signer), Objects(SA))
    assert result.user.name == "system:serviceaccount:apps:robot"
    assert result.user.uid == "sa-uid"
    assert result.user.groups == ("system:serviceaccounts", "system:serviceaccounts:apps")
    assert result.user.extra == {"authentication.kubernetes.io/credential-id": ["JTI=the-jti"]}
    assert result.audiences == (ISSUER,)


def test_other_issuers_and_non_jwts_are_not_ours(signer):
    other = signer.sign({**claims(SA, issuer="https://elsewhere", audiences=[ISSUER], expiration_seconds=60,
                                  now=NOW)})
    assert authenticate(signer, other, Objects(SA)) is None
    assert authenticate(signer, "abcdef.0123456789abcdef", Objects(SA)) is None


def test_forged_signature(signer):
    forger = TokenSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(Unauthenticated, match="error in cryptographic primitive"):
        authenticate(signer, token_for(forger), Objects(SA))


@pytest.mark.parametrize(("now", "message"), [
    (NOW + 3600 + 61, "service account token has expired"),
    (NOW - 61, "service account token is not valid yet"),
])
def test_times(signer, now, message):
    with pytest.raises(Unauthenticated, match=message):
        authenticate(signer, token_for(signer), Objects(SA), now=now)
    # Within the minute of leeway it is still good.
    assert authenticate(signer, token_for(signer), Objects(SA), now=NOW + 3600 + 59) is not None


def test_audience(signer):
    token = token_for(signer, audiences=["vault", "other"])
    with pytest.raises(Unauthenticated) as info:
        authenticate(signer, token, Objects(SA))
    assert str(info.value) == f'token audiences ["vault" "other"] is invalid for the target audiences ["{ISSUER}"]'
    assert authenticate(signer, token, Objects(SA), audiences=("other", "x")).audiences == ("other",)


def test_service_account_must_exist_with_same_uid(signer):
    token = token_for(signer)
    with pytest.raises(Unauthenticated, match='serviceaccounts "robot" not found'):
        authenticate(signer, token, Objects())
    recreated = {"metadata": {**SA["metadata"], "uid": "new-uid"}}
    with pytest.raises(Unauthenticated, match=r"service account UID \(new-uid\) does not match claim \(sa-uid\)"):
        authenticate(signer, token, Objects(recreated))
    deleting = {"metadata": {**SA["metadata"], "deletionTimestamp": "2020-01-01T00:00:00Z"}}
    with pytest.raises(Unauthenticated, match="service account apps/robot has been deleted"):
        authenticate(signer, token, Objects(deleting))


def test_pod_binding(signer):
    token = token_for(signer, pod=POD, node=NODE)
    objects = Objects(SA, POD)
    user = authenticate(signer, token, objects).user
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["worker"]
    assert user.extra["authentication.kubernetes.io/pod-uid"] == ["pod-uid"]
    # A pod-bound token only carries its node: the node itself is not looked up.
    assert user.extra["authentication.kubernetes.io/node-name"] == ["node-1"]
    del objects.objects[("pods", "apps", "worker")]
    with pytest.raises(Unauthenticated, match="service account token has been invalidated"):
        authenticate(signer, token, objects)
    objects.put("pods", {"metadata": {**POD["metadata"], "uid": "other"}})
    with pytest.raises(Unauthenticated, match=r"pod UID \(other\) does not match service account pod ref claim"):
        authenticate(signer, token, objects)


def test_secret_and_node_binding(signer):
    token = token_for(signer, secret=SECRET)
    assert authenticate(signer, token, _with(secret=SECRET)) is not None
    with pytest.raises(Unauthenticated, match="invalidated"):
        authenticate(signer, token, Objects(SA))
    node_token = token_for(signer, node=NODE)
    user = authenticate(signer, node_token, _with(node=NODE)).user
    assert user.extra["authentication.kubernetes.io/node-uid"] == ["node-uid"]
    with pytest.raises(Unauthenticated, match="invalidated"):
        authenticate(signer, node_token, Objects(SA))


def _with(secret: dict | None = None, node: dict | None = None) -> Objects:
    objects = Objects(SA)
    if secret is not None:
        objects.put("secrets", secret)
    if node is not None:
        objects.put("nodes", node)
    return objects


def test_pod_bound_token_names_a_missing_node_without_uid(signer):
    gone_node = {"metadata": {"name": "node-1"}}
    assert claims(SA, issuer=ISSUER, audiences=[], expiration_seconds=1, now=NOW, pod=POD,
                  node=gone_node)["kubernetes.io"]["node"] == {"name": "node-1"}
    user = authenticate(signer, token_for(signer, pod=POD, node=gone_node), Objects(SA, POD)).user
    assert user.extra["authentication.kubernetes.io/node-name"] == ["node-1"]
    assert "authentication.kubernetes.io/node-uid" not in user.extra


def legacy_setup(signer):
    from pyk8s.apiserver.authn.serviceaccount import LegacyServiceAccountTokenAuthenticator, legacy_claims
    from pyk8s.controllers.serviceaccount_tokens import populated

    secret = {"type": "kubernetes.io/service-account-token",
              "metadata": {"name": "robot-token", "namespace": "apps", "uid": "s-uid",
                           "annotations": {"kubernetes.io/service-account.name": "robot"}}}
    filled = populated(secret, SA, "PEM", signer)
    objects = Objects(SA)
    objects.put("secrets", filled)
    token = base64.b64decode(filled["data"]["token"]).decode()
    assert claims_of(token) == legacy_claims(SA, "robot-token")
    auth = LegacyServiceAccountTokenAuthenticator(signer.public_key, (ISSUER,), objects)
    return auth, objects, filled, token


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_legacy_secret_is_filled_once(signer):
    from pyk8s.controllers.serviceaccount_tokens import populated

    _, _, filled, token = legacy_setup(signer)
    assert filled["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == "sa-uid"
    assert base64.b64decode(filled["data"]["ca.crt"]) == b"PEM"
    assert base64.b64decode(filled["data"]["namespace"]) == b"apps"
    assert populated(filled, SA, "PEM", signer) is None  # complete: nothing to write
    refreshed = populated(filled, SA, "NEW PEM", signer)
    assert refreshed["data"]["token"] == filled["data"]["token"]  # the token in use is kept


def test_legacy_token_lives_and_dies_with_its_secret(signer):
    auth, objects, filled, token = legacy_setup(signer)
    result = asyncio.run(auth.authenticate_token(token, (ISSUER,)))
    assert result.user.name == "system:serviceaccount:apps:robot" and result.user.uid == "sa-uid"
    assert result.audiences == (ISSUER,)
    assert asyncio.run(auth.authenticate_token(token_for(signer), (ISSUER,))) is None  # a bound token: not ours
    with pytest.raises(Unauthenticated, match="is invalid for the target audiences"):
        asyncio.run(auth.authenticate_token(token, ("vault",)))
    objects.put("secrets", {**filled, "data": {**filled["data"], "token": base64.b64encode(b"other").decode()}})
    with pytest.raises(Unauthenticated, match="token does not match server's copy"):
        asyncio.run(auth.authenticate_token(token, (ISSUER,)))
    del objects.objects[("secrets", "apps", "robot-token")]
    with pytest.raises(Unauthenticated, match="token has been invalidated"):
        asyncio.run(auth.authenticate_token(token, (ISSUER,)))
