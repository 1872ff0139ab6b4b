"""Impersonation headers: what is asked of the authorizer, who the request then acts as, and the errors."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from pyk8s.api.errors import APIError
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authn.impersonation import impersonate, impersonated_user, wants_impersonation
from pyk8s.apiserver.authz import Decision

ALICE = UserInfo("alice", groups=("system:authenticated",))


class Request:
    def __init__(self, headers: list[tuple[str, str]]):
        self.headers = CIMultiDict(headers)
        self.path = "/api/v1/pods"


class Recorder:
    """Allows everything except the (resource, name) pairs in `deny`, and records what it was asked."""

    def __init__(self, deny: set[tuple[str, str]] = frozenset()):
        self.deny = deny
        self.asked = []

    def authorize(self, attrs):
        self.asked.append(attrs)
        denied = (attrs.resource, attrs.name) in self.deny
        return Decision(not denied, "")


def run(headers, authorizer):
    return asyncio.run(impersonate(Request(headers), ALICE, authorizer))


def test_user_groups_uid_and_extra():
    authorizer = Recorder()
    user = run([("Impersonate-User", "bob"), ("Impersonate-Group", "devs"), ("Impersonate-Group", "ops"),
                ("Impersonate-Uid", "1234"), ("Impersonate-Extra-Scopes", "view"),
                ("Impersonate-Extra-Acme.com%2Fproject", "p1")], authorizer)
    assert user == UserInfo("bob", "1234", ("devs", "ops", "system:authenticated"))
    assert user.extra == {"scopes": ["view"], "acme.com/project": ["p1"]}
    asked = [(a.verb, a.api_group, a.resource, a.subresource, a.name, a.user.name) for a in authorizer.asked]
    assert asked == [("impersonate", "", "users", "", "bob", "alice"),
                     ("impersonate", "", "groups", "", "devs", "alice"),
                     ("impersonate", "", "groups", "", "ops", "alice"),
                     ("impersonate", "authentication.k8s.io", "userextras", "scopes", "view", "alice"),
                     ("impersonate", "authentication.k8s.io", "userextras", "acme.com/project", "p1", "alice"),
                     ("impersonate", "authentication.k8s.io", "uids", "", "1234", "alice")]


def test_service_account_user_is_checked_as_a_service_account():
    authorizer = Recorder()
    user = run([("Impersonate-User", "system:serviceaccount:apps:robot")], authorizer)
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated")
    (attrs,) = authorizer.asked
    assert (attrs.namespace, attrs.resource, attrs.name) == ("apps", "serviceaccounts", "robot")


def test_denied_is_upstreams_403():
    with pytest.raises(APIError) as info:
        run([("Impersonate-User", "bob")], Recorder({("users", "bob")}))
    assert info.value.code == 403
    assert info.value.message == ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" in '
                                  'API group "" at the cluster scope')


def test_groups_without_a_user_is_a_bad_request():
    with pytest.raises(APIError) as info:
        run([("Impersonate-Group", "devs")], Recorder())
    assert info.value.code == 400
    assert "without impersonating a user" in info.value.message


def test_authenticated_group_rules():
    assert impersonated_user("bob", "", ["system:authenticated"], {}).groups == ("system:authenticated",)
    assert impersonated_user("bob", "", ["system:unauthenticated"], {}).groups == ("system:unauthenticated",)
    assert impersonated_user("system:anonymous", "", [], {}).groups == ("system:unauthenticated",)
    assert wants_impersonation(CIMultiDict([("impersonate-extra-x", "1")]))
    assert not wants_impersonation(CIMultiDict([("Authorization", "Bearer x")]))
