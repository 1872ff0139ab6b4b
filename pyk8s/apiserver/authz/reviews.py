"""authorization.k8s.io/v1 reviews, answered on create and never stored (upstream pkg/registry/authorization).

SubjectAccessReview asks "may this user do that?", SelfSubjectAccessReview asks it for the caller
(`kubectl auth can-i`), LocalSubjectAccessReview is the namespaced form, and SelfSubjectRulesReview
lists what the caller may do in a namespace (`kubectl auth can-i --list`).
"""

from __future__ import annotations

from aiohttp import web

from ...api import errors, schemas
from ...api.errors import FieldError
from ..authn import UserInfo
from ..negotiation import decode_body, media_type, read_body
from ..requestinfo import RequestInfo
from .attributes import Attributes
from .chain import AuthorizerChain
from .rbac import aggregate_errors

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"


def _invalid(kind: str, errs: list[FieldError]) -> errors.APIError:
    return errors.invalid_object(kind, GROUP, "", errs)


def _non_resource_value(attributes: dict) -> str:
    """How upstream's field errors print the (internal, Stringer-less) struct: Go's %#v."""
    fields = ", ".join(f'{name}:"{attributes.get(key, "")}"' for name, key in (("Path", "path"), ("Verb", "verb")))
    return f"authorization.NonResourceAttributes{{{fields}}}"


def _invalid_non_resource(attributes: dict, detail: str) -> FieldError:
    return FieldError("Invalid", "spec.nonResourceAttributes", detail=f"{_non_resource_value(attributes)}: {detail}")


def _spec_errors(spec: dict, *, needs_subject: bool) -> list[FieldError]:
    """Upstream ValidateSubjectAccessReviewSpec / ValidateSelfSubjectAccessReviewSpec."""
    errs = []
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        errs.append(_invalid_non_resource(non_resource, "cannot be specified in combination with resourceAttributes"))
    if resource is None and non_resource is None:
        errs.append(errors.invalid("spec.resourceAttributes", None,
                                   "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
    if needs_subject and not spec.get("user") and not spec.get("groups"):
        errs.append(errors.invalid("spec.user", spec.get("user", ""),
                                   "at least one of user or group must be specified"))
    return errs


def _field_selector(resource: dict) -> str:
    """A review's `fieldSelector` as raw selector text: `rawSelector`, else the requirements that pin or exclude
    one value (the only ones a field selector can express)."""
    selector = resource.get("fieldSelector") or {}
    if selector.get("rawSelector"):
        return str(selector["rawSelector"])
    terms = []
    for requirement in selector.get("requirements") or ():
        operator, values = requirement.get("operator"), requirement.get("values") or []
        if operator in ("In", "NotIn") and len(values) == 1:
            terms.append(f"{requirement.get('key', '')}{'=' if operator == 'In' else '!='}{values[0]}")
    return ",".join(terms)


def _attributes(user: UserInfo, spec: dict) -> Attributes:
    resource = spec.get("resourceAttributes")
    if resource is not None:
        return Attributes(user, resource.get("verb", ""), resource.get("namespace", ""), resource.get("group", ""),
                          resource.get("resource", ""), resource.get("subresource", ""), resource.get("name", ""),
                          field_selector=_field_selector(resource))
    non_resource = spec.get("nonResourceAttributes") or {}
    return Attributes(user, non_resource.get("verb", ""), path=non_resource.get("path", ""),
                      is_resource_request=False)


def _spec_user(spec: dict) -> UserInfo:
    extra = {k: list(v or []) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(spec.get("user", ""), spec.get("uid", ""), tuple(spec.get("groups") or ()), extra)


async def _body(request: web.Request, kind: str) -> dict:
    body = decode_body(await read_body(request), media_type(request.headers.get("Content-Type")), kind, API_VERSION)
    if body.get("kind", kind) != kind:
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {kind}): "
                                 f"couldn't get version/kind; expected kind {kind}, got {body.get('kind')}")
    problem = schemas.type_error(GROUP, "v1", kind, body)
    if problem:
        raise errors.bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {problem}')
    return body


def _respond(kind: str, body: dict, status: dict) -> web.Response:
    from ..handlers import json_response

    return json_response({"kind": kind, "apiVersion": API_VERSION, "metadata": body.get("metadata") or {},
                          "spec": body.get("spec") or {}, "status": status}, 201)


class AccessReviews:
    """The create handlers of the authorization review kinds, keyed by (group, plural)."""

    def __init__(self, authorizer: AuthorizerChain):
        self.authorizer = authorizer

    def handlers(self) -> dict:
        return {(GROUP, "subjectaccessreviews"): self.subject_access_review,
                (GROUP, "selfsubjectaccessreviews"): self.self_subject_access_review,
                (GROUP, "localsubjectaccessreviews"): self.local_subject_access_review,
                (GROUP, "selfsubjectrulesreviews"): self.self_subject_rules_review}

    def _status(self, attrs: Attributes) -> dict:
        decision = self.authorizer.authorize(attrs)
        status: dict = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return status

    async def subject_access_review(self, request: web.Request, info: RequestInfo, user: UserInfo) -> web.Response:
        body = await _body(request, "SubjectAccessReview")
        spec = body.get("spec") or {}
        errs = _spec_errors(spec, needs_subject=True)
        if errs:
            raise _invalid("SubjectAccessReview", errs)
        return _respond("SubjectAccessReview", body, self._status(_attributes(_spec_user(spec), spec)))

    async def self_subject_access_review(self, request: web.Request, info: RequestInfo,
                                         user: UserInfo) -> web.Response:
        body = await _body(request, "SelfSubjectAccessReview")
        spec = body.get("spec") or {}
        errs = _spec_errors(spec, needs_subject=False)
        if errs:
            raise _invalid("SelfSubjectAccessReview", errs)
        return _respond("SelfSubjectAccessReview", body, self._status(_attributes(user, spec)))

    async def local_subject_access_review(self, request: web.Request, info: RequestInfo,
                                          user: UserInfo) -> web.Response:
        body = await _body(request, "LocalSubjectAccessReview")
        spec = body.get("spec") or {}
        namespace = (body.get("metadata") or {}).get("namespace", "")
        if not info.namespace:
            raise errors.bad_request(f"namespace is required on this type: {info.namespace}")
        errs = _spec_errors(spec, needs_subject=True)
        resource = spec.get("resourceAttributes")
        if resource is not None and resource.get("namespace", "") != namespace:
            errs.append(errors.invalid("spec.resourceAttributes.namespace", resource.get("namespace", ""),
                                       "must match metadata.namespace"))
        if spec.get("nonResourceAttributes") is not None:
            errs.append(_invalid_non_resource(spec["nonResourceAttributes"], "disallowed on this kind of request"))
        if errs:
            raise _invalid("LocalSubjectAccessReview", errs)
        if namespace != info.namespace:
            raise errors.bad_request(f"spec.resourceAttributes.namespace must match namespace: {info.namespace}")
        return _respond("LocalSubjectAccessReview", body, self._status(_attributes(_spec_user(spec), spec)))

    async def self_subject_rules_review(self, request: web.Request, info: RequestInfo,
                                        user: UserInfo) -> web.Response:
        body = await _body(request, "SelfSubjectRulesReview")
        namespace = (body.get("spec") or {}).get("namespace", "")
        rules, problems, incomplete = self.authorizer.rules_for(user, namespace)
        resource_rules, non_resource_rules = [], []
        for rule in rules:
            if rule.get("resources"):
                resource_rules.append({k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames")
                                       if rule.get(k) or k == "verbs"})
            if rule.get("nonResourceURLs"):
                non_resource_rules.append({"verbs": rule.get("verbs") or [],
                                           "nonResourceURLs": rule["nonResourceURLs"]})
        status: dict = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                        "incomplete": incomplete}
        if problems:
            status["evaluationError"] = aggregate_errors(problems)
        return _respond("SelfSubjectRulesReview", body, status)
