"""ValidatingAdmissionPolicy (upstream k8s.io/apiserver/pkg/admission/plugin/policy/validating):
CEL validations declared by a ValidatingAdmissionPolicy and applied through its
ValidatingAdmissionPolicyBindings, in process, without a webhook.

A binding applies its policy to the requests both match (policy matchConstraints, then the
binding's matchResources), with params from paramRef (by name, or every object a selector picks),
if the policy's matchConditions hold. Expressions see `object`, `oldObject`, `request`, `params`,
`namespaceObject` and `variables` (the policy's variables, in order). A failed validation is
acted on by the binding's validationActions: Deny refuses (`ValidatingAdmissionPolicy 'p' with
binding 'b' denied request: ...`, 422 unless the validation names another reason), Warn adds a
warning, Audit logs. An expression that cannot be evaluated counts as a failure under
failurePolicy Fail and is skipped under Ignore.
"""

from __future__ import annotations

import logging
import uuid

from ...api.admissionregistration import evaluate
from ...api.errors import APIError
from ...api.kinds import REGISTRY
from ...api.selectors import SelectorError, label_selector_from_object
from .interfaces import AdmissionPlugin, Attributes
from .state import ClusterState
from .webhook import namespace_object, review_request, rule_matches, selectors_match

log = logging.getLogger("pyk8s.apiserver.admission.policy")

_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}


class _EvaluationError(Exception):
    pass


def _evaluate(expression: str, data: dict) -> object:
    try:
        return evaluate(expression, data, policy=True)
    except ValueError as exc:
        raise _EvaluationError(f"expression '{expression}' resulted in error: {exc}") from None


def resources_match(constraints: dict | None, attrs: Attributes, namespace: dict | None) -> bool:
    """resourceRules (with resourceNames) minus excludeResourceRules, then the two selectors."""
    if constraints is None:
        return True

    def hits(rule: dict) -> bool:
        names = rule.get("resourceNames") or []
        return rule_matches(rule, attrs) and (not names or attrs.name in names)

    rules = constraints.get("resourceRules")
    if rules is not None and not any(hits(r) for r in rules):
        return False
    if any(hits(r) for r in constraints.get("excludeResourceRules") or []):
        return False
    return selectors_match(constraints, attrs, namespace)


class ValidatingAdmissionPolicy(AdmissionPlugin):
    name = "ValidatingAdmissionPolicy"
    validating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.policies = state.kind("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy")
        self.bindings = state.kind("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding")

    def handles(self, attrs: Attributes) -> bool:
        return self.state.has_any(self.bindings)

    async def validate(self, attrs: Attributes) -> None:
        namespace = namespace_object(self.state, attrs)
        request = review_request(attrs, str(uuid.uuid4()))
        for binding in sorted(self.state.list(self.bindings), key=lambda b: b["metadata"]["name"]):
            spec = binding.get("spec") or {}
            policy = self.state.peek(self.policies, "", spec.get("policyName", ""))
            if policy is None:
                continue
            policy_spec = policy.get("spec") or {}
            if not resources_match(policy_spec.get("matchConstraints"), attrs, namespace):
                continue
            if not resources_match(spec.get("matchResources"), attrs, namespace):
                continue
            for params in self._params(policy, binding, attrs):
                self._apply(policy, binding, params, request, namespace, attrs)

    def _params(self, policy: dict, binding: dict, attrs: Attributes) -> list[dict | None]:
        """The params objects the binding selects for this request (one evaluation each)."""
        binding_spec = binding.get("spec") or {}
        param_kind = (policy.get("spec") or {}).get("paramKind")
        if not param_kind:
            return [None]
        group, _, version = (param_kind.get("apiVersion") or "").rpartition("/")
        kind = REGISTRY.by_kind(group, version, param_kind.get("kind", ""))
        ref = binding_spec.get("paramRef") or {}
        found: list[dict] = []
        if kind is not None and ref:
            namespace = (ref.get("namespace") or attrs.namespace) if kind.namespaced else ""
            if ref.get("name"):
                obj = self.state.peek(REGISTRY.storage_kind(kind), namespace, ref["name"])
                found = [obj] if obj is not None else []
            else:
                try:
                    selector = label_selector_from_object(ref.get("selector") or {})
                except SelectorError:
                    selector = None
                candidates = self.state.list(REGISTRY.storage_kind(kind), namespace)
                found = [o for o in candidates if selector is not None
                         and selector.matches((o.get("metadata") or {}).get("labels") or {})]
        if found:
            return list(found)
        if ref.get("parameterNotFoundAction") == "Allow":
            return []
        raise APIError(403, "Forbidden", f"ValidatingAdmissionPolicy '{policy['metadata']['name']}' with binding "
                                         f"'{binding['metadata']['name']}' denied request: failed to configure "
                                         "binding: no params found for policy binding with `Deny` "
                                         "parameterNotFoundAction")

    def _apply(self, policy: dict, binding: dict, params: dict | None, request: dict, namespace: dict | None,
               attrs: Attributes) -> None:
        policy_name, binding_name = policy["metadata"]["name"], binding["metadata"]["name"]
        policy_spec, actions = policy.get("spec") or {}, (binding.get("spec") or {}).get("validationActions") or []
        data = {"object": request["object"], "oldObject": request["oldObject"], "params": params,
                "namespaceObject": namespace, "variables": {},
                "request": {k: v for k, v in request.items() if k not in ("object", "oldObject")}}
        failures: list[tuple[str, str]] = []  # (reason, message)
        try:
            for condition in policy_spec.get("matchConditions") or []:
                if _evaluate(condition.get("expression", ""), data) is not True:
                    return
            for variable in policy_spec.get("variables") or []:
                data["variables"] = {**data["variables"], variable.get("name", ""): _evaluate(
                    variable.get("expression", ""), data)}
            for validation in policy_spec.get("validations") or []:
                expression = validation.get("expression", "")
                if _evaluate(expression, data) is True:
                    continue
                message = validation.get("message") or f"failed expression: {expression.strip()}"
                if validation.get("messageExpression"):
                    try:
                        evaluated = _evaluate(validation["messageExpression"], data)
                        if isinstance(evaluated, str) and evaluated.strip():
                            message = evaluated
                    except _EvaluationError:
                        pass  # upstream falls back to message
                failures.append((validation.get("reason") or "Invalid", message))
        except _EvaluationError as exc:
            if policy_spec.get("failurePolicy", "Fail") == "Ignore":
                log.warning("validating admission policy %s: %s (failurePolicy Ignore)", policy_name, exc)
                return
            failures.append(("Invalid", str(exc)))
        for reason, message in failures:
            text = f"ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {message}"
            if "Warn" in actions:
                attrs.warnings.append(f"Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding "
                                      f"'{binding_name}': {message}")
            if "Audit" in actions:
                log.info("validating admission policy audit: %s %s/%s: %s", attrs.kind.plural, attrs.namespace,
                         attrs.name, text)
            if "Deny" in actions:
                details = {"name": request["name"], "group": attrs.kind.group, "kind": attrs.kind.plural,
                           "causes": [{"message": text}]}
                raise APIError(_CODES.get(reason, 422), reason, text,
                               {k: v for k, v in details.items() if v or k == "causes"})
