"""Webhook admission without a network: which webhooks a request reaches, the AdmissionReview sent,
matchConditions, denial statuses, patches and reinvocation (the HTTPS call itself is faked)."""

from __future__ import annotations

import base64
import json

import pytest

from pyk8s.api.admissionregistration import validate_validating
from pyk8s.api.errors import APIError
from pyk8s.apiserver.admission import CREATE, DELETE, UPDATE, Attributes
from pyk8s.apiserver.admission.webhook import (
    MutatingAdmissionWebhook,
    ValidatingAdmissionWebhook,
    Webhook,
    WebhookCallError,
    denied,
    match_conditions_pass,
    review_request,
    rule_matches,
    selectors_match,
)

from test_admission_chain import attrs, cluster, namespace, pod


def _rule(**overrides) -> dict:
    return {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*",
            **overrides}


@pytest.mark.parametrize(("rule", "subresource", "operation", "matches"), [
    (_rule(), "", CREATE, True),
    (_rule(), "", UPDATE, False),
    (_rule(operations=["*"]), "", DELETE, True),
    (_rule(), "status", CREATE, False),
    (_rule(resources=["pods/status"]), "status", CREATE, True),
    (_rule(resources=["pods/*"]), "binding", CREATE, True),
    (_rule(resources=["pods/*"]), "", CREATE, False),
    (_rule(resources=["*"]), "", CREATE, True),
    (_rule(resources=["*"]), "status", CREATE, False),
    (_rule(resources=["*/*"]), "status", CREATE, True),
    (_rule(resources=["*/status"]), "status", CREATE, True),
    (_rule(apiGroups=["apps"]), "", CREATE, False),
    (_rule(apiGroups=["*"], apiVersions=["*"]), "", CREATE, True),
    (_rule(scope="Cluster"), "", CREATE, False),
    (_rule(scope="Namespaced"), "", CREATE, True),
])
def test_rules(rule, subresource, operation, matches):
    request = attrs(pod(), operation, subresource=subresource)
    assert rule_matches(rule, request) is matches


def test_selectors():
    hook = {"namespaceSelector": {"matchLabels": {"team": "a"}},
            "objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}}
    labelled = namespace("ns", {"team": "a"})
    assert selectors_match(hook, attrs(pod()), labelled)
    assert not selectors_match(hook, attrs(pod()), namespace("ns", {"team": "b"}))
    skipped = pod()
    skipped["metadata"]["labels"] = {"skip": "yes"}
    assert not selectors_match(hook, attrs(skipped), labelled)
    # A Namespace is matched by its own labels.
    assert selectors_match(hook, attrs(namespace("other", {"team": "a"})), None)


class _User:
    name, uid, groups, extra = "alice", "u1", ("devs",), {}


def test_review_request_shape():
    old = pod()
    new = pod()
    new["metadata"]["labels"] = {"a": "b"}
    request = review_request(Attributes(attrs(new).kind, UPDATE, "ns", "p", new, old, "", True, _User()), "uid-1")
    assert request["uid"] == "uid-1" and request["operation"] == "UPDATE" and request["dryRun"] is True
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["userInfo"] == {"username": "alice", "uid": "u1", "groups": ["devs"], "extra": {}}
    assert request["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    assert request["object"] is new and request["oldObject"] is old and request["namespace"] == "ns"


def test_match_conditions():
    request = review_request(attrs(pod("web-1")), "u")
    hook = Webhook("c", {"matchConditions": [
        {"name": "web", "expression": "object.metadata.name.startsWith('web')"},
        {"name": "create", "expression": "request.operation == 'CREATE'"}]})
    assert match_conditions_pass(hook, request, None)
    other = review_request(attrs(pod("db-1")), "u")
    assert not match_conditions_pass(hook, other, None)
    broken = Webhook("c", {"matchConditions": [{"name": "bad", "expression": "object.metadata.missing == 'x'"}]})
    with pytest.raises(WebhookCallError, match='matchCondition "bad" evaluation error'):
        match_conditions_pass(broken, request, None)


@pytest.mark.parametrize(("status", "code", "message"), [
    ({"code": 403, "message": "nope", "reason": "Forbidden"}, 403,
     'admission webhook "w.example.com" denied the request: nope'),
    ({"reason": "NotAllowed"}, 400, 'admission webhook "w.example.com" denied the request: NotAllowed'),
    ({}, 400, 'admission webhook "w.example.com" denied the request without explanation'),
    ({"code": 200, "message": "odd"}, 400, 'admission webhook "w.example.com" denied the request: odd'),
])
def test_denials(status, code, message):
    err = denied(Webhook("c", {"name": "w.example.com"}), {"allowed": False, "status": status})
    assert (err.code, err.message) == (code, message)


class _FakeClient:
    """Answers as a function of the webhook name; records the calls."""

    def __init__(self, answers):
        self.answers = answers
        self.calls: list[str] = []

    async def call(self, webhook: Webhook, review: dict) -> dict:
        self.calls.append(webhook.name)
        answer = self.answers[webhook.name]
        if isinstance(answer, Exception):
            raise answer
        return {"uid": review["request"]["uid"], **answer(review["request"])}


def _config(kind: str, name: str, *hooks: dict) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": [{"rules": [_rule()], "failurePolicy": "Fail", **h} for h in hooks]}


def _patch(*ops: dict) -> dict:
    encoded = base64.b64encode(json.dumps(list(ops)).encode()).decode()
    return {"allowed": True, "patchType": "JSONPatch", "patch": encoded}


async def test_mutating_patches_in_order_and_reinvokes():
    seen: list[dict] = []

    def labeller(request: dict) -> dict:
        seen.append(dict(request["object"]["metadata"].get("labels") or {}))
        return {"allowed": True}

    client = _FakeClient({
        "first.example.com": labeller,
        "second.example.com": lambda r: _patch({"op": "add", "path": "/metadata/labels", "value": {"x": "1"}}),
    })
    state = cluster(namespace("ns"),
                    _config("MutatingWebhookConfiguration", "a", {"name": "first.example.com",
                                                                  "reinvocationPolicy": "IfNeeded"}),
                    _config("MutatingWebhookConfiguration", "b", {"name": "second.example.com"}))
    plugin = MutatingAdmissionWebhook(state, client)  # type: ignore[arg-type]
    target = pod()
    request = attrs(target)
    assert plugin.handles(request)
    await plugin.admit(request)
    assert target["metadata"]["labels"] == {"x": "1"}  # patched in place
    assert client.calls == ["first.example.com", "second.example.com", "first.example.com"]
    assert seen == [{}, {"x": "1"}]


async def test_validating_failure_policies():
    client = _FakeClient({"down.example.com": WebhookCallError("failed to call webhook: boom"),
                          "ok.example.com": lambda r: {"allowed": True, "warnings": ["careful"]}})
    state = cluster(namespace("ns"),
                    _config("ValidatingWebhookConfiguration", "a", {"name": "down.example.com",
                                                                    "failurePolicy": "Ignore"},
                            {"name": "ok.example.com"}))
    plugin = ValidatingAdmissionWebhook(state, client)  # type: ignore[arg-type]
    request = attrs(pod())
    await plugin.validate(request)
    assert request.warnings == ["careful"]
    failing = cluster(namespace("ns"), _config("ValidatingWebhookConfiguration", "a", {"name": "down.example.com"}))
    with pytest.raises(APIError) as caught:
        await ValidatingAdmissionWebhook(failing, client).validate(attrs(pod()))  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.message) == (
        500, 'Internal error occurred: failed calling webhook "down.example.com": failed to call webhook: boom')


@pytest.mark.parametrize(("url", "problem"), [
    ("https://hooks.example.com:8443/validate", None),
    ("https:///validate", "host must be specified"),
    ("https://user@hooks.example.com/", "user information is not permitted"),
    ("https://hooks.example.com/v?x=1", "query parameters are not permitted"),
    ("https://hooks.example.com/v#top", "fragments are not permitted"),
])
def test_webhook_urls(url, problem):
    config = {"webhooks": [{"name": "a.b.c", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                            "clientConfig": {"url": url}}]}
    messages = [e.message() for e in validate_validating(config)]
    assert messages == ([] if problem is None else [f'webhooks[0].clientConfig.url: Invalid value: "{url}": {problem}'])


def test_configuration_validation_table():
    config = {"webhooks": [
        {"name": "a.b.c", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "clientConfig": {"service": {"namespace": "ns", "name": "svc", "port": 70000}},
         "rules": [{"operations": ["PATCH"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
         "matchConditions": [{"name": "m", "expression": "object.("}]},
        {"name": "a.b.c", "admissionReviewVersions": ["v2"], "clientConfig": {}}]}
    messages = [e.message() for e in validate_validating(config)]
    assert messages[0] == ("webhooks[0].clientConfig.service.port: Invalid value: 70000: port is not valid: must be "
                           "between 1 and 65535, inclusive")
    assert messages[1].startswith('webhooks[0].rules[0].operations: Unsupported value: "PATCH"')
    assert messages[2].startswith('webhooks[0].matchConditions[0].expression: Invalid value: "object.(": '
                                  "compilation failed: ERROR: <input>:1:8: Syntax error")
    assert messages[3:] == [
        'webhooks[1].name: Duplicate value: "a.b.c"',
        'webhooks[1].admissionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, '
        "v1beta1",
        "webhooks[1].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
    ]
