"""RBAC escalation prevention (upstream pkg/registry/rbac: the policy-based role and binding storage).

A user may only write a Role or ClusterRole whose rules they already hold, unless they have the
`escalate` verb on it; and may only write a binding to a role whose rules they hold, unless they
have the `bind` verb on that role. Members of `system:masters` and the apiserver itself (writes
made outside any request, such as the bootstrap policy) are exempt. Only setting a ClusterRole's
aggregationRule needs full authority, since it can gather any permission.

The checks run as REST hooks just before a write is stored; the request's attributes reach them
through `current_request`, which the request pipeline sets once a request is authorized.
"""

from __future__ import annotations

import copy
from contextvars import ContextVar

from ...api import errors
from ...api.kinds import Kind
from ..rest import Hooks
from .attributes import Attributes
from .rbac import PRIVILEGED_GROUP, RBAC_GROUP, RBACAuthorizer, RoleNotFound
from .rules import compact_string, covers, go_quoted_list

current_request: ContextVar[Attributes | None] = ContextVar("pyk8s_authz_request", default=None)

FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]
ROLE_KINDS = ("Role", "ClusterRole")
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
# Metadata the garbage collector and the store change; writes touching only these are never checked.
_GC_AND_SERVER_META = ("ownerReferences", "finalizers", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
                       "managedFields", "resourceVersion")


def _without_gc_fields(obj: dict) -> dict:
    out = copy.copy(obj)
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_AND_SERVER_META}
    return out


def only_gc_fields_changed(new: dict, old: dict) -> bool:
    return _without_gc_fields(new) == _without_gc_fields(old)


def escalation_message(attrs: Attributes, missing: list[dict], problems: list[str]) -> str:
    """Upstream's escalation error: the user, their groups and the (sorted, unique) rules they lack."""
    user = attrs.user
    described = sorted({compact_string(rule) for rule in missing})
    message = (f'user "{user.name}" (groups={go_quoted_list(user.groups)}) is attempting to grant RBAC permissions '
               f"not currently held:\n" + "\n".join(described))
    if problems:
        message += f"; resolution errors: [{' '.join(problems)}]"
    return message


class EscalationCheck(Hooks):
    """REST hooks for the four RBAC kinds."""

    def __init__(self, authorizer: RBACAuthorizer):
        self.authorizer = authorizer

    async def before_create(self, kind: Kind, obj: dict, dry_run: bool) -> None:
        self._check(kind, obj, None)

    async def before_update(self, kind: Kind, obj: dict, old: dict, dry_run: bool) -> None:
        if not only_gc_fields_changed(obj, old):
            self._check(kind, obj, old)

    def _check(self, kind: Kind, obj: dict, old: dict | None) -> None:
        request = current_request.get()
        if request is None or PRIVILEGED_GROUP in request.user.groups:
            return
        if kind.kind in ROLE_KINDS:
            self._check_role(request, kind, obj, old)
        elif kind.kind in BINDING_KINDS:
            self._check_binding(request, kind, obj)

    def _require_held(self, request: Attributes, kind: Kind, name: str, namespace: str, rules: list[dict]) -> None:
        owned, problems = self.authorizer.rules_for(request.user, namespace)
        held, missing = covers(owned, rules)
        if not held:
            raise errors.forbidden_error(kind.plural, kind.group, name,
                                         escalation_message(request, missing, problems))

    def _check_role(self, request: Attributes, kind: Kind, obj: dict, old: dict | None) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if kind.namespaced else ""
        escalate = Attributes(request.user, "escalate", request.namespace, RBAC_GROUP, kind.plural, "", request.name)
        if self.authorizer.authorize(escalate).allowed:
            return
        self._require_held(request, kind, meta["name"], namespace, list(obj.get("rules") or []))
        aggregation = obj.get("aggregationRule")
        if aggregation and (old is None or aggregation != old.get("aggregationRule")):
            owned, _ = self.authorizer.rules_for(request.user, namespace)
            if not covers(owned, FULL_AUTHORITY)[0]:
                raise errors.forbidden_error(kind.plural, kind.group, meta["name"],
                                             "must have cluster-admin privileges to use the aggregationRule")

    def _check_binding(self, request: Attributes, kind: Kind, obj: dict) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if kind.namespaced else ""
        role_ref = obj.get("roleRef") or {}
        role_kind = role_ref.get("kind")
        if role_kind not in ("Role", "ClusterRole"):
            return  # validation has already refused it
        role_resource = "clusterroles" if role_kind == "ClusterRole" else "roles"
        bind = Attributes(request.user, "bind", namespace, role_ref.get("apiGroup", ""), role_resource, "",
                          role_ref.get("name", ""))
        if self.authorizer.authorize(bind).allowed:
            return
        try:
            rules = self.authorizer.role_reference_rules(role_ref, namespace)
        except RoleNotFound:
            raise errors.not_found(role_resource, RBAC_GROUP, role_ref.get("name", "")) from None
        self._require_held(request, kind, meta["name"], namespace, rules)


def escalation_hooks(authorizer: RBACAuthorizer) -> dict[str, Hooks]:
    check = EscalationCheck(authorizer)
    return {kind: check for kind in ROLE_KINDS + BINDING_KINDS}

