"""ValidatingAdmissionPolicy: matching, params, variables, messages and validation actions."""

from __future__ import annotations

import pytest

from pyk8s.api.admissionregistration import validate_binding, validate_policy
from pyk8s.api.errors import APIError
from pyk8s.apiserver.admission import DELETE, Attributes
from pyk8s.apiserver.admission.policy import ValidatingAdmissionPolicy

from test_admission_chain import attrs, cluster, namespace, pod

RULES = [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
          "scope": "*"}]


def _policy(name: str = "p", validations: list | None = None, **spec) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": RULES},
                     "validations": validations or [{"expression": "object.spec.containers.size() <= 1"}], **spec}}


def _binding(name: str = "b", policy: str = "p", actions: list | None = None, **spec) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": policy, "validationActions": actions or ["Deny"], **spec}}


TWO = pod("two", containers=[{"name": "a", "image": "i"}, {"name": "b", "image": "i"}])


async def _deny(plugin, request) -> APIError:
    with pytest.raises(APIError) as caught:
        await plugin.validate(request)
    return caught.value


async def test_deny_with_default_message():
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns"), _policy(), _binding()))
    await plugin.validate(attrs(pod()))
    err = await _deny(plugin, attrs(TWO))
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == ("ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: "
                           "object.spec.containers.size() <= 1")
    assert err.details["causes"] == [{"message": err.message}]


async def test_message_expression_reason_and_variables():
    policy = _policy(variables=[{"name": "count", "expression": "object.spec.containers.size()"}],
                     validations=[{"expression": "variables.count <= 1", "reason": "Forbidden",
                                   "messageExpression": "'too many containers: ' + string(variables.count)"}])
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns"), policy, _binding()))
    err = await _deny(plugin, attrs(TWO))
    assert (err.code, err.message) == (403, "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: "
                                             "too many containers: 2")


async def test_warn_and_audit_actions_do_not_refuse():
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns"), _policy(), _binding(actions=["Warn", "Audit"])))
    request = attrs(TWO)
    await plugin.validate(request)
    assert request.warnings == ["Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': failed "
                                "expression: object.spec.containers.size() <= 1"]


async def test_params_by_name_and_selector():
    limit = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "limit", "namespace": "ns",
                                                                    "labels": {"policy": "yes"}},
             "data": {"max": "1"}}
    policy = _policy(paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
                     validations=[{"expression": "object.spec.containers.size() <= int(params.data.max)"}])
    by_name = _binding(paramRef={"name": "limit", "parameterNotFoundAction": "Deny"})
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns"), policy, by_name, limit))
    await plugin.validate(attrs(pod()))
    await _deny(plugin, attrs(TWO))
    by_selector = _binding(paramRef={"selector": {"matchLabels": {"policy": "yes"}},
                                     "parameterNotFoundAction": "Deny"})
    await _deny(ValidatingAdmissionPolicy(cluster(namespace("ns"), policy, by_selector, limit)), attrs(TWO))
    missing = ValidatingAdmissionPolicy(cluster(namespace("ns"), policy, by_name))
    err = await _deny(missing, attrs(pod()))
    assert err.message.endswith("failed to configure binding: no params found for policy binding with `Deny` "
                                "parameterNotFoundAction")
    allowed = _binding(paramRef={"name": "limit", "parameterNotFoundAction": "Allow"})
    await ValidatingAdmissionPolicy(cluster(namespace("ns"), policy, allowed)).validate(attrs(TWO))


async def test_matching_conditions_and_failure_policy():
    guarded = _policy(matchConditions=[{"name": "big", "expression": "object.metadata.name.startsWith('big')"}])
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns"), guarded, _binding()))
    await plugin.validate(attrs(TWO))  # the condition does not hold: not evaluated
    big = pod("big", containers=TWO["spec"]["containers"])
    await _deny(plugin, attrs(big))
    scoped = _binding(matchResources={"namespaceSelector": {"matchLabels": {"env": "prod"}}})
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns", {"env": "dev"}), _policy(), scoped))
    await plugin.validate(attrs(TWO))
    broken = _policy(validations=[{"expression": "object.spec.missing == 1"}])
    err = await _deny(ValidatingAdmissionPolicy(cluster(namespace("ns"), broken, _binding())), attrs(pod()))
    assert "expression 'object.spec.missing == 1' resulted in error" in err.message
    ignored = _policy(validations=[{"expression": "object.spec.missing == 1"}], failurePolicy="Ignore")
    await ValidatingAdmissionPolicy(cluster(namespace("ns"), ignored, _binding())).validate(attrs(pod()))
    deleting = Attributes(attrs(pod()).kind, DELETE, "ns", "p", None, pod())
    plugin = ValidatingAdmissionPolicy(cluster(namespace("ns"), _policy(), _binding()))
    await plugin.validate(deleting)  # DELETE is not in the rules


def test_policy_and_binding_validation():
    bad_policy = _policy(validations=[{"expression": "object.("}])
    bad_policy["spec"]["matchConstraints"] = {}
    messages = [e.message() for e in validate_policy(bad_policy)]
    assert messages[0] == "spec.matchConstraints.resourceRules: Required value"
    assert messages[1].startswith('spec.validations[0].expression: Invalid value: "object.(": compilation failed')
    messages = [e.message() for e in validate_binding(_binding(actions=["Deny", "Warn", "Deny", "Block"]))]
    assert messages[:2] == ['spec.validationActions[2]: Duplicate value: "Deny"',
                            'spec.validationActions[3]: Unsupported value: "Block": supported values: "Audit", '
                            '"Deny", "Warn"']
    assert messages[2].startswith("spec.validationActions: Invalid value: ")
    assert "must not contain both Deny and Warn" in messages[2]
