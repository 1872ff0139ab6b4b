"""PolicyRule matching, covering and wording (upstream rbac/v1 helpers and registry/rbac/validation)."""

from __future__ import annotations

import pytest

from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Attributes, forbidden
from pyk8s.apiserver.authz.rules import allows, breakdown, compact_string, covers

ALICE = UserInfo("alice", groups=("system:authenticated",))


def res(verb, resource, group="", namespace="ns", subresource="", name="") -> Attributes:
    return Attributes(ALICE, verb, namespace, group, resource, subresource, name)


def url(verb, path) -> Attributes:
    return Attributes(ALICE, verb, path=path, is_resource_request=False)


def rule(verbs, groups=("",), resources=(), names=(), urls=()) -> dict:
    out: dict = {"verbs": list(verbs)}
    if resources:
        out["apiGroups"] = list(groups)
        out["resources"] = list(resources)
    if names:
        out["resourceNames"] = list(names)
    if urls:
        out["nonResourceURLs"] = list(urls)
    return out


@pytest.mark.parametrize("policy,request_attrs,expected", [
    # verbs
    (rule(["get"], resources=["pods"]), res("get", "pods"), True),
    (rule(["get"], resources=["pods"]), res("list", "pods"), False),
    (rule(["*"], resources=["pods"]), res("deletecollection", "pods"), True),
    # API groups
    (rule(["get"], ["apps"], ["deployments"]), res("get", "deployments", "apps"), True),
    (rule(["get"], ["apps"], ["deployments"]), res("get", "deployments", "extensions"), False),
    (rule(["get"], ["*"], ["deployments"]), res("get", "deployments", "extensions"), True),
    (rule(["get"], [""], ["pods"]), res("get", "pods", "apps"), False),
    # resources and subresources
    (rule(["get"], resources=["*"]), res("get", "pods", subresource="log"), True),
    (rule(["get"], resources=["pods"]), res("get", "pods", subresource="log"), False),
    (rule(["get"], resources=["pods/log"]), res("get", "pods", subresource="log"), True),
    (rule(["get"], resources=["pods/log"]), res("get", "pods"), False),
    (rule(["update"], ["*"], ["*/scale"]), res("update", "deployments", "apps", subresource="scale"), True),
    (rule(["update"], ["*"], ["*/scale"]), res("update", "deployments", "apps"), False),
    (rule(["update"], ["*"], ["*/scale"]), res("update", "deployments", "apps", subresource="status"), False),
    (rule(["update"], ["*"], ["*/status"]), res("update", "deployments", "apps", subresource="statuses"), False),
    # resourceNames
    (rule(["get"], resources=["configmaps"], names=["a"]), res("get", "configmaps", name="a"), True),
    (rule(["get"], resources=["configmaps"], names=["a"]), res("get", "configmaps", name="b"), False),
    (rule(["list"], resources=["configmaps"], names=["a"]), res("list", "configmaps"), False),
    (rule(["get"], resources=["configmaps"]), res("get", "configmaps", name="b"), True),
    # a resource rule never grants a path, a URL rule never grants a resource
    (rule(["get"], resources=["*"]), url("get", "/healthz"), False),
    (rule(["get"], urls=["*"]), res("get", "pods"), False),
    # non-resource URLs
    (rule(["get"], urls=["/healthz"]), url("get", "/healthz"), True),
    (rule(["get"], urls=["/healthz"]), url("get", "/healthz/etcd"), False),
    (rule(["get"], urls=["/healthz*"]), url("get", "/healthz/etcd"), True),
    (rule(["get"], urls=["/apis/*"]), url("get", "/apis/apps/v1"), True),
    (rule(["get"], urls=["/apis/*"]), url("get", "/apis"), False),
    (rule(["get"], urls=["*"]), url("get", "/anything"), True),
    (rule(["get"], urls=["/version"]), url("post", "/version"), False),
])
def test_rule_allows(policy, request_attrs, expected):
    assert allows(policy, request_attrs) is expected


def test_breakdown_splits_into_single_permissions():
    rules = breakdown(rule(["get", "list"], ["", "apps"], ["pods"], names=["a"]))
    assert len(rules) == 4
    assert {"verbs": ["list"], "apiGroups": ["apps"], "resources": ["pods"], "resourceNames": ["a"]} in rules
    assert breakdown(rule(["get"], urls=["/a", "/b"])) == [
        {"verbs": ["get"], "nonResourceURLs": ["/a"]}, {"verbs": ["get"], "nonResourceURLs": ["/b"]}]


@pytest.mark.parametrize("owner,servant,held", [
    ([rule(["*"], ["*"], ["*"])], [rule(["get"], ["apps"], ["deployments"])], True),
    ([rule(["get"], [""], ["pods"])], [rule(["get", "list"], [""], ["pods"])], False),
    ([rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"])], [rule(["get", "list"], [""], ["pods"])],
     True),
    # */subresource covers that subresource of every resource, not the resource itself
    ([rule(["get"], ["*"], ["*/status"])], [rule(["get"], ["apps"], ["deployments/status"])], True),
    ([rule(["get"], ["*"], ["*/status"])], [rule(["get"], ["apps"], ["deployments"])], False),
    # a name-restricted rule never covers an unrestricted one
    ([rule(["get"], [""], ["secrets"], names=["a"])], [rule(["get"], [""], ["secrets"])], False),
    ([rule(["get"], [""], ["secrets"])], [rule(["get"], [""], ["secrets"], names=["a", "b"])], True),
    ([rule(["get"], urls=["/logs/*"])], [rule(["get"], urls=["/logs/x"])], True),
    ([rule(["get"], urls=["/logs"])], [rule(["get"], urls=["/logs/x"])], False),
])
def test_covers(owner, servant, held):
    assert covers(owner, servant)[0] is held


def test_covers_reports_the_missing_broken_down_rules():
    held, missing = covers([rule(["get"], [""], ["pods"])], [rule(["get", "delete"], [""], ["pods"])])
    assert not held
    assert missing == [{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]


def test_compact_string_is_upstreams_wording():
    assert compact_string(rule(["get"], [""], ["secrets"], names=["a"])) == (
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get"]}')
    assert compact_string(rule(["*"], urls=["*"])) == '{NonResourceURLs:["*"], Verbs:["*"]}'


def test_forbidden_messages_match_upstream():
    err = forbidden(res("list", "pods", namespace="d"))
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message == ('pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
                           'namespace "d"')
    assert err.details == {"kind": "pods"}
    err = forbidden(res("get", "deployments", "apps", namespace="", subresource="scale", name="web"),
                    'RBAC: clusterrole.rbac.authorization.k8s.io "foo" not found')
    assert err.message == ('deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" '
                           'in API group "apps" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io '
                           '"foo" not found')
    assert err.details == {"name": "web", "group": "apps", "kind": "deployments"}
    err = forbidden(url("get", "/metrics"))
    assert err.message == 'forbidden: User "alice" cannot get path "/metrics"'
