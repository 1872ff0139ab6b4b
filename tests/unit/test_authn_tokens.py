"""Bootstrap tokens, static tokens and the union authenticator (x509 first, then each token authenticator)."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from pyk8s.apiserver.authn import ANONYMOUS_USER, Authenticator, TokenResult, Unauthenticated, UserInfo
from pyk8s.apiserver.authn.bootstrap_tokens import BootstrapTokenAuthenticator, expired, groups, parse_token

API = ("https://kubernetes.default.svc.cluster.local",)
NOW = 1_800_000_000.0


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def bootstrap_secret(**data: str) -> dict:
    values = {"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true",
              **data}
    return {"type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system", "uid": "u"},
            "data": {k: b64(v) for k, v in values.items() if v is not None}}


def lookup_of(*secrets: dict):
    async def lookup(plural: str, namespace: str, name: str) -> dict | None:
        for secret in secrets:
            if plural == "secrets" and (namespace, name) == (secret["metadata"]["namespace"],
                                                              secret["metadata"]["name"]):
                return secret
        return None
    return lookup


def bootstrap(token: str, *secrets: dict):
    auth = BootstrapTokenAuthenticator(lookup_of(*secrets), clock=lambda: NOW)
    return asyncio.run(auth.authenticate_token(token, API))


@pytest.mark.parametrize(("token", "parsed"), [
    ("abcdef.0123456789abcdef", ("abcdef", "0123456789abcdef")),
    ("ABCDEF.0123456789abcdef", None),
    ("abcdef.0123456789abcde", None),
    ("abcdef0123456789abcdef", None),
    ("abcdef.0123456789abcdef ", None),
    ("eyJhbGciOi.eyJpc3Mi.sig", None),
])
def test_parse_token(token, parsed):
    assert parse_token(token) == parsed


def test_bootstrap_user_and_groups():
    result = bootstrap("abcdef.0123456789abcdef",
                       bootstrap_secret(**{"auth-extra-groups": "system:bootstrappers:worker,system:bootstrappers:a"}))
    assert result.user == UserInfo("system:bootstrap:abcdef", groups=(
        "system:bootstrappers", "system:bootstrappers:a", "system:bootstrappers:worker"))
    assert result.audiences == API


@pytest.mark.parametrize("secret", [
    bootstrap_secret(**{"token-secret": "0123456789abcdee"}),
    bootstrap_secret(**{"usage-bootstrap-authentication": "false"}),
    bootstrap_secret(**{"usage-bootstrap-authentication": None}),
    bootstrap_secret(**{"token-id": "abcdeg"}),
    bootstrap_secret(expiration="2020-01-01T00:00:00Z"),
    bootstrap_secret(expiration="not a time"),
    bootstrap_secret(**{"auth-extra-groups": "system:masters"}),
    {**bootstrap_secret(), "type": "Opaque"},
    {**bootstrap_secret(), "metadata": {**bootstrap_secret()["metadata"], "deletionTimestamp": "2020-01-01T00:00:00Z"}},
])
def test_bootstrap_rejections_are_not_ours(secret):
    assert bootstrap("abcdef.0123456789abcdef", secret) is None


def test_bootstrap_expiration():
    assert not expired(bootstrap_secret(expiration="2099-01-01T00:00:00Z"), NOW)
    assert expired(bootstrap_secret(expiration="2020-01-01T00:00:00Z"), NOW)
    assert groups(bootstrap_secret()) == ("system:bootstrappers",)
    assert bootstrap("abcdef.0123456789abcdef") is None  # no secret at all


class _TLSConnection:
    pass


class FakeRequest:
    def __init__(self, headers: dict | None = None, peercert: dict | None = None):
        self.headers = CIMultiDict(headers or {})
        connection = _TLSConnection()  # the per-connection object the authenticator caches the user on
        self.transport = SimpleNamespace(get_extra_info=lambda name: {"peercert": peercert,
                                                                      "ssl_object": connection}.get(name))


class Fixed:
    def __init__(self, token: str, user: UserInfo | None = None, error: str = ""):
        self.token, self.user, self.error = token, user, error

    async def authenticate_token(self, token, audiences):
        if token != self.token:
            return None
        if self.error:
            raise Unauthenticated(self.error)
        return TokenResult(self.user, tuple(audiences))


def test_union_order_and_groups():
    auth = Authenticator({"static-token": ("alice", "a-uid", ["devs"])}, api_audiences=API)
    auth.add_token_authenticator(Fixed("sa-token", UserInfo("system:serviceaccount:a:b", groups=("g",))))
    cert = {"subject": ((("organizationName", "ops"),), (("commonName", "carol"),))}

    def run(request):
        return asyncio.run(auth.authenticate(request))

    assert run(FakeRequest()) == ANONYMOUS_USER
    assert run(FakeRequest({"Authorization": "Bearer static-token"})) == UserInfo(
        "alice", "a-uid", ("devs", "system:authenticated"))
    assert run(FakeRequest({"Authorization": "Bearer sa-token"})).groups == ("g", "system:authenticated")
    # A verified client certificate wins over a bearer token, as upstream's union tries x509 first.
    assert run(FakeRequest({"Authorization": "Bearer nope"}, cert)) == UserInfo(
        "carol", groups=("ops", "system:authenticated"))
    with pytest.raises(Unauthenticated, match="^invalid bearer token$"):
        run(FakeRequest({"Authorization": "Bearer nope"}))
    # Other schemes and empty bearer tokens are no credentials at all, as upstream.
    for header in ("Basic Zm9vOmJhcg==", "Bearer ", "bearer"):
        assert run(FakeRequest({"Authorization": header})) == ANONYMOUS_USER


def test_union_errors_aggregate_like_upstream():
    auth = Authenticator(api_audiences=API)
    auth.add_token_authenticator(Fixed("t", error="first"))
    with pytest.raises(Unauthenticated, match="^first$"):
        asyncio.run(auth.authenticate_token("t"))
    auth.add_token_authenticator(Fixed("t", error="second"))
    with pytest.raises(Unauthenticated, match=r"^\[first, second\]$"):
        asyncio.run(auth.authenticate_token("t"))
    with pytest.raises(Unauthenticated, match="^$"):
        asyncio.run(auth.authenticate_token("unknown"))


def test_static_tokens_only_serve_api_audiences():
    auth = Authenticator({"static-token": ("alice", "", [])}, api_audiences=API)
    assert asyncio.run(auth.authenticate_token("static-token")).audiences == API
    with pytest.raises(Unauthenticated):
        asyncio.run(auth.authenticate_token("static-token", ["vault"]))
    # Nor are bootstrap tokens, registered the same way.
    bootstrap_auth = Authenticator(api_audiences=API)
    bootstrap_auth.add_token_authenticator(BootstrapTokenAuthenticator(lookup_of(bootstrap_secret())),
                                           audience_aware=False)
    assert asyncio.run(bootstrap_auth.authenticate_token("abcdef.0123456789abcdef", API)).audiences == API
    with pytest.raises(Unauthenticated):
        asyncio.run(bootstrap_auth.authenticate_token("abcdef.0123456789abcdef", ["vault"]))


def test_certificate_user_is_worked_out_once_per_connection():
    auth = Authenticator()
    parsed = []
    certificate_user = auth._certificate_user
    auth._certificate_user = lambda cert: parsed.append(cert) or certificate_user(cert)
    cert = {"subject": ((("organizationName", "ops"),), (("commonName", "carol"),))}
    request = FakeRequest(peercert=cert)  # keep-alive: several requests on one TLS connection
    users = [asyncio.run(auth.authenticate(request)) for _ in range(3)]
    assert users == [UserInfo("carol", groups=("ops", "system:authenticated"))] * 3
    assert len(parsed) == 1
    assert asyncio.run(auth.authenticate(FakeRequest(peercert=cert))).name == "carol"  # a new connection
    assert len(parsed) == 2
