"""admissionregistration.k8s.io/v1 webhook configurations: defaults, validation, matchCondition CEL.

`defaults.py` and `validation.py` re-export the per-kind functions so the strategy finds them by
the kind's snake_case name, like every other kind.
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings

from .errors import FieldError, duplicate, invalid, not_supported, required

_MAP = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
# The variables a webhook matchCondition sees (upstream's admission CEL environment, without `authorizer`).
MATCH_CONDITION_VARIABLES = {"object": cel.Type.DYN, "oldObject": cel.Type.DYN, "request": _MAP,
                             "namespaceObject": cel.Type.DYN}


# A ValidatingAdmissionPolicy's expressions also see its params and its variables.
POLICY_VARIABLES = {**MATCH_CONDITION_VARIABLES, "params": cel.Type.DYN, "variables": _MAP}


@functools.cache
def _env(with_policy_variables: bool) -> cel.Env:
    variables = POLICY_VARIABLES if with_policy_variables else MATCH_CONDITION_VARIABLES
    return cel.NewEnv(variables=variables, extensions=[ext_strings.ExtStrings()])


@functools.lru_cache(maxsize=4096)
def compile_expression(expression: str, policy: bool = False) -> Any:
    """The compiled expression (webhook matchConditions, or policy expressions with `params` and
    `variables`); raises ValueError with the compiler's message."""
    try:
        return _env(policy).compile(expression)
    except RuntimeError as exc:
        raise ValueError(str(exc).removeprefix("INVALID_ARGUMENT: ")) from None


class EvaluationError(ValueError):
    """An expression compiled but could not be evaluated (missing key, wrong type, ...)."""


def evaluate(expression: str, data: dict, policy: bool = False) -> Any:
    """The plain value of an expression over `data`; compile and runtime errors raise ValueError."""
    try:
        result = compile_expression(expression, policy).eval(data=data)
    except RuntimeError as exc:
        raise EvaluationError(str(exc)) from None
    if result.type() == cel.Type.ERROR:  # cel-cpp returns runtime errors as values
        raise EvaluationError(str(result.plain_value()))
    return result.plain_value()


# ---- defaults ----------------------------------------------------------------------------------


def _dicts(value: object) -> list[dict]:
    """The dict items of a list field; any other shape is left for validation to report."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _webhook_defaults(webhook: dict, mutating: bool) -> None:
    webhook.setdefault("failurePolicy", "Fail")
    webhook.setdefault("matchPolicy", "Equivalent")
    webhook.setdefault("namespaceSelector", {})
    webhook.setdefault("objectSelector", {})
    webhook.setdefault("timeoutSeconds", 10)
    if mutating:
        webhook.setdefault("reinvocationPolicy", "Never")
    for rule in _dicts(webhook.get("rules")):
        rule.setdefault("scope", "*")
    config = webhook.get("clientConfig")
    service = config.get("service") if isinstance(config, dict) else None
    if isinstance(service, dict):
        service.setdefault("port", 443)


def _defaults(obj: dict, mutating: bool) -> None:
    for webhook in _dicts(obj.get("webhooks")):
        _webhook_defaults(webhook, mutating)


def default_mutating(obj: dict) -> None:
    _defaults(obj, True)


def default_validating(obj: dict) -> None:
    _defaults(obj, False)


# ---- validation --------------------------------------------------------------------------------


def _enum(webhook: dict, key: str, path: str, allowed: list[str]) -> list[FieldError]:
    value = webhook.get(key)
    if value is not None and value not in allowed:
        return [not_supported(f"{path}.{key}", value, allowed)]
    return []


def _d(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value: object) -> list:
    return value if isinstance(value, list) else []


def _client_config(config: dict, path: str) -> list[FieldError]:
    url, service = config.get("url"), config.get("service")
    if (url is None) == (service is None):
        return [required(path, "exactly one of url or service is required")]
    if url is not None:
        if not isinstance(url, str) or not url.startswith("https://"):
            return [invalid(f"{path}.url", url, "'https' is the only allowed URL scheme")]
        parts = urllib.parse.urlsplit(url)
        problems = [detail for bad, detail in ((not parts.hostname, "host must be specified"),
                                               (parts.username is not None, "user information is not permitted"),
                                               (bool(parts.fragment), "fragments are not permitted"),
                                               (bool(parts.query), "query parameters are not permitted"))
                    if bad]
        return [invalid(f"{path}.url", url, detail) for detail in problems]
    errs = []
    service = _d(service)
    for key in ("namespace", "name"):
        if not service.get(key):
            errs.append(required(f"{path}.service.{key}", f"service {key} is required"))
    port = service.get("port", 443)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        errs.append(invalid(f"{path}.service.port", port, "port is not valid: must be between 1 and 65535, "
                                                            "inclusive"))
    return errs


def _rules(rules: list, path: str) -> list[FieldError]:
    errs = []
    for i, rule in enumerate(_l(rules)):
        rule = _d(rule)
        rule_path = f"{path}[{i}]"
        for key in ("operations", "apiGroups", "apiVersions", "resources"):
            if not rule.get(key):
                errs.append(required(f"{rule_path}.{key}"))
        for op in _l(rule.get("operations")):
            if op not in ("*", "CREATE", "UPDATE", "DELETE", "CONNECT"):
                errs += [not_supported(f"{rule_path}.operations", op, ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"])]
        errs += _enum(rule, "scope", rule_path, ["*", "Cluster", "Namespaced"])
    return errs


def _match_conditions(conditions: list, path: str, policy: bool = False) -> list[FieldError]:
    errs, seen = [], set()
    for i, condition in enumerate(_l(conditions)):
        condition = _d(condition)
        name, expression = str(condition.get("name", "")), condition.get("expression", "")
        if not name:
            errs.append(required(f"{path}[{i}].name"))
        elif name in seen:
            errs.append(duplicate(f"{path}[{i}].name", name))
        seen.add(name)
        if not expression or not isinstance(expression, str):
            errs.append(required(f"{path}[{i}].expression"))
            continue
        try:
            compile_expression(expression, policy)
        except ValueError as exc:
            errs.append(invalid(f"{path}[{i}].expression", expression, f"compilation failed: {exc}"))
    return errs


def _webhooks(obj: dict, mutating: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, webhook in enumerate(_l(obj.get("webhooks"))):
        webhook = _d(webhook)
        path = f"webhooks[{i}]"
        name = str(webhook.get("name", ""))
        if not name:
            errs.append(required(f"{path}.name"))
        elif name.count(".") < 2:
            errs.append(invalid(f"{path}.name", name, "should be a domain with at least three segments separated "
                                                      "by dots"))
        elif name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
        versions = [v for v in _l(webhook.get("admissionReviewVersions")) if isinstance(v, str)]
        if not versions:
            errs.append(required(f"{path}.admissionReviewVersions", "must specify one of v1, v1beta1"))
        elif not {"v1", "v1beta1"} & set(versions):
            errs.append(invalid(f"{path}.admissionReviewVersions", versions, "must include at least one of v1, "
                                                                             "v1beta1"))
        if webhook.get("sideEffects") is None:
            errs.append(required(f"{path}.sideEffects", "must specify one of None, NoneOnDryRun"))
        else:
            errs += _enum(webhook, "sideEffects", path, ["None", "NoneOnDryRun"])
        errs += _enum(webhook, "failurePolicy", path, ["Fail", "Ignore"])
        errs += _enum(webhook, "matchPolicy", path, ["Equivalent", "Exact"])
        if mutating:
            errs += _enum(webhook, "reinvocationPolicy", path, ["IfNeeded", "Never"])
        timeout = webhook.get("timeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 30):
            errs.append(invalid(f"{path}.timeoutSeconds", timeout, "the timeout value must be between 1 and 30 "
                                                                   "seconds"))
        errs += _client_config(_d(webhook.get("clientConfig")), f"{path}.clientConfig")
        errs += _rules(webhook.get("rules"), f"{path}.rules")
        errs += _match_conditions(webhook.get("matchConditions"), f"{path}.matchConditions")
    return errs


def validate_mutating(obj: dict) -> list[FieldError]:
    return _webhooks(obj, True)


def validate_validating(obj: dict) -> list[FieldError]:
    return _webhooks(obj, False)


# ---- ValidatingAdmissionPolicy and its binding -------------------------------------------------

VALIDATION_ACTIONS = ["Audit", "Deny", "Warn"]


def default_policy(obj: dict) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("failurePolicy", "Fail")
    constraints = spec.get("matchConstraints")
    if isinstance(constraints, dict):
        constraints.setdefault("matchPolicy", "Equivalent")
        constraints.setdefault("namespaceSelector", {})
        constraints.setdefault("objectSelector", {})
        for key in ("resourceRules", "excludeResourceRules"):
            for rule in _dicts(constraints.get(key)):
                rule.setdefault("scope", "*")


def default_binding(obj: dict) -> None:
    spec = obj.get("spec")
    resources = spec.get("matchResources") if isinstance(spec, dict) else None
    if isinstance(resources, dict):
        resources.setdefault("matchPolicy", "Equivalent")
        resources.setdefault("namespaceSelector", {})
        resources.setdefault("objectSelector", {})


def _expression(value: object, path: str) -> list[FieldError]:
    if not value or not isinstance(value, str):
        return [required(path)]
    try:
        compile_expression(value, True)
    except ValueError as exc:
        return [invalid(path, value, f"compilation failed: {exc}")]
    return []


def validate_policy(obj: dict) -> list[FieldError]:
    spec = _d(obj.get("spec"))
    errs: list[FieldError] = []
    if not spec.get("validations") and not spec.get("auditAnnotations"):
        errs.append(required("spec.validations", "validations or auditAnnotations must contain at least one item"))
    errs += _enum(spec, "failurePolicy", "spec", ["Fail", "Ignore"])
    constraints = _d(spec.get("matchConstraints"))
    if not constraints.get("resourceRules"):
        errs.append(required("spec.matchConstraints.resourceRules"))
    else:
        errs += _rules(constraints["resourceRules"], "spec.matchConstraints.resourceRules")
    for i, validation in enumerate(_d(v) for v in _l(spec.get("validations"))):
        errs += _expression(validation.get("expression"), f"spec.validations[{i}].expression")
        if validation.get("messageExpression"):
            errs += _expression(validation["messageExpression"], f"spec.validations[{i}].messageExpression")
    for i, variable in enumerate(_d(v) for v in _l(spec.get("variables"))):
        errs += _expression(variable.get("expression"), f"spec.variables[{i}].expression")
    errs += _match_conditions(spec.get("matchConditions"), "spec.matchConditions", policy=True)
    param_kind = spec.get("paramKind")
    if param_kind is not None and (not _d(param_kind).get("apiVersion") or not _d(param_kind).get("kind")):
        errs.append(required("spec.paramKind", "apiVersion and kind are required"))
    return errs


def validate_binding(obj: dict) -> list[FieldError]:
    spec = _d(obj.get("spec"))
    errs: list[FieldError] = []
    if not spec.get("policyName"):
        errs.append(required("spec.policyName"))
    actions = [a for a in _l(spec.get("validationActions")) if isinstance(a, str)]
    if not actions:
        errs.append(required("spec.validationActions"))
    for i, action in enumerate(actions):
        if action not in VALIDATION_ACTIONS:
            errs.append(not_supported(f"spec.validationActions[{i}]", action, VALIDATION_ACTIONS))
        elif action in actions[:i]:
            errs.append(duplicate(f"spec.validationActions[{i}]", action))
    if "Deny" in actions and "Warn" in actions:
        errs.append(invalid("spec.validationActions", actions, "must not contain both Deny and Warn (repeating the "
                                                               "same validation failure information in the API "
                                                               "response and headers serves no purpose)"))
    param_ref = spec.get("paramRef")
    if isinstance(param_ref, dict):
        if bool(param_ref.get("name")) == (param_ref.get("selector") is not None):
            errs.append(invalid("spec.paramRef", param_ref, "one of name or selector must be set"))
        if param_ref.get("parameterNotFoundAction") not in ("Allow", "Deny"):
            errs.append(not_supported("spec.paramRef.parameterNotFoundAction",
                                      param_ref.get("parameterNotFoundAction", ""), ["Allow", "Deny"]))
    return errs
