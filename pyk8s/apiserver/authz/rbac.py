"""The RBAC authorizer (upstream plugin/pkg/auth/authorizer/rbac) over the apiserver's watch cache.

Roles, ClusterRoles and their bindings are read from the watch cache, never from the store.
An index (bindings by subject, rules by role) is rebuilt whenever any of those four resources
changed, and decisions are memoised per request shape until the next change: a repeated
request costs one dict lookup. Members of `system:masters` are allowed everything before RBAC
is consulted (upstream's privileged-group authorizer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ...api.kinds import REGISTRY
from ..authn import UserInfo
from ..watchcache import ResourceCache, WatchCache
from . import rules as rulematch
from .attributes import Attributes, Decision

log = logging.getLogger("pyk8s.apiserver.authz.rbac")

RBAC_GROUP = "rbac.authorization.k8s.io"
PRIVILEGED_GROUP = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
DECISION_CACHE_LIMIT = 50_000  # distinct request shapes remembered between RBAC changes


class RoleNotFound(LookupError):
    """A binding refers to a role that does not exist; the message is upstream's lister error."""


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def subject_applies(user: UserInfo, subject: dict, binding_namespace: str) -> bool:
    """Upstream's appliesToUser; a ServiceAccount subject without a namespace takes the binding's."""
    kind = subject.get("kind")
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_username(namespace, subject.get("name", ""))
    return False


def describe_subject(subject: dict, binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def describe_binding(binding: dict, subject: dict) -> str:
    """How an allowing binding is named in a decision's reason (upstream's binding describers)."""
    meta, ref = binding["metadata"], binding.get("roleRef") or {}
    namespace = meta.get("namespace", "")
    if namespace:
        return (f'RoleBinding "{meta["name"]}/{namespace}" of {ref.get("kind")} "{ref.get("name")}" to '
                f"{describe_subject(subject, namespace)}")
    return (f'ClusterRoleBinding "{meta["name"]}" of {ref.get("kind")} "{ref.get("name")}" to '
            f"{describe_subject(subject, '')}")


def aggregate_errors(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as is, several as [a, b] (duplicates once)."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


@dataclass
class _SubjectIndex:
    """Bindings (in key order) reachable from a user name or a group name."""

    by_user: dict[str, list[int]] = field(default_factory=dict)
    by_group: dict[str, list[int]] = field(default_factory=dict)
    bindings: list[dict] = field(default_factory=list)

    def add(self, binding: dict, namespace: str) -> None:
        index = len(self.bindings)
        self.bindings.append(binding)
        for subject in binding.get("subjects") or ():
            kind, name = subject.get("kind"), subject.get("name", "")
            if kind == "User":
                self.by_user.setdefault(name, []).append(index)
            elif kind == "Group":
                self.by_group.setdefault(name, []).append(index)
            elif kind == "ServiceAccount":
                sa_namespace = subject.get("namespace") or namespace
                if sa_namespace:
                    self.by_user.setdefault(service_account_username(sa_namespace, name), []).append(index)

    def applicable(self, user: UserInfo, namespace: str) -> list[tuple[dict, dict]]:
        """(binding, first subject matching the user) for every binding that applies, in key order."""
        found = set(self.by_user.get(user.name, ()))
        for group in user.groups:
            found.update(self.by_group.get(group, ()))
        out = []
        for index in sorted(found):
            binding = self.bindings[index]
            for subject in binding.get("subjects") or ():
                if subject_applies(user, subject, namespace):
                    out.append((binding, subject))
                    break
        return out


@dataclass
class _Index:
    cluster_roles: dict[str, dict]
    roles: dict[tuple[str, str], dict]
    cluster_bindings: _SubjectIndex
    role_bindings: dict[str, _SubjectIndex]


class RBACAuthorizer:
    def __init__(self, cache: WatchCache):
        def resource(kind_name: str) -> ResourceCache:
            kind = REGISTRY.by_kind(RBAC_GROUP, "v1", kind_name)
            assert kind is not None
            return cache.cache_for(kind)

        self._role_cache = resource("Role")
        self._cluster_role_cache = resource("ClusterRole")
        self._binding_cache = resource("RoleBinding")
        self._cluster_binding_cache = resource("ClusterRoleBinding")
        self._caches = (self._role_cache, self._cluster_role_cache, self._binding_cache, self._cluster_binding_cache)
        self._version: tuple[int, ...] | None = None
        self._index: _Index | None = None
        self._decisions: dict[tuple, Decision] = {}
        self.rebuilds = 0

    # ---- index ------------------------------------------------------------------------

    def _cache_version(self) -> tuple[int, ...]:
        """Changes whenever an event reached one of the four RBAC caches (spelled out: every request asks)."""
        a, b, c, d = self._caches
        return (a.history[-1].rv if a.history else -len(a.objects), b.history[-1].rv if b.history else -len(b.objects),
                c.history[-1].rv if c.history else -len(c.objects), d.history[-1].rv if d.history else -len(d.objects))

    def _fresh_index(self) -> _Index:
        version = self._cache_version()
        if version != self._version or self._index is None:
            self._index = self._build_index()
            self._version = version
            self._decisions.clear()
            self.rebuilds += 1
        return self._index

    def _build_index(self) -> _Index:
        cluster_roles = {c.obj["metadata"]["name"]: c.obj for c in self._cluster_role_cache.objects.values()}
        roles = {(c.obj["metadata"].get("namespace", ""), c.obj["metadata"]["name"]): c.obj
                 for c in self._role_cache.objects.values()}
        cluster_bindings = _SubjectIndex()
        for key in sorted(self._cluster_binding_cache.objects):
            cluster_bindings.add(self._cluster_binding_cache.objects[key].obj, "")
        role_bindings: dict[str, _SubjectIndex] = {}
        for key in sorted(self._binding_cache.objects):
            binding = self._binding_cache.objects[key].obj
            namespace = binding["metadata"].get("namespace", "")
            role_bindings.setdefault(namespace, _SubjectIndex()).add(binding, namespace)
        return _Index(cluster_roles, roles, cluster_bindings, role_bindings)

    # ---- rules ------------------------------------------------------------------------

    def role_reference_rules(self, role_ref: dict, namespace: str) -> list[dict]:
        """The rules a roleRef grants in `namespace` (""=cluster scope); RoleNotFound if it dangles."""
        index = self._fresh_index()
        kind, name = role_ref.get("kind"), role_ref.get("name", "")
        if kind == "ClusterRole":
            role = index.cluster_roles.get(name)
            if role is None:
                raise RoleNotFound(f'clusterrole.{RBAC_GROUP} "{name}" not found')
            return list(role.get("rules") or [])
        if kind == "Role":
            role = index.roles.get((namespace, name))
            if role is None:
                raise RoleNotFound(f'role.{RBAC_GROUP} "{name}" not found')
            return list(role.get("rules") or [])
        raise RoleNotFound(f'unsupported role reference kind: "{kind}"')

    def _bindings_for(self, user: UserInfo, namespace: str) -> list[tuple[dict, dict, str]]:
        """(binding, subject, namespace of its rules) for every binding that applies to the user."""
        index = self._fresh_index()
        out = [(b, s, "") for b, s in index.cluster_bindings.applicable(user, "")]
        if namespace and namespace in index.role_bindings:
            out.extend((b, s, namespace) for b, s in index.role_bindings[namespace].applicable(user, namespace))
        return out

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        """Every rule granted to `user` in `namespace` (cluster-wide ones included) and resolution errors."""
        rules: list[dict] = []
        problems: list[str] = []
        for binding, _, rules_namespace in self._bindings_for(user, namespace):
            try:
                rules.extend(self.role_reference_rules(binding.get("roleRef") or {}, rules_namespace))
            except RoleNotFound as exc:
                problems.append(str(exc))
        return rules, problems

    # ---- decisions --------------------------------------------------------------------

    def authorize(self, attrs: Attributes) -> Decision:
        user = attrs.user
        if PRIVILEGED_GROUP in user.groups:
            return Decision(True, "")
        self._fresh_index()
        key = (user.name, user.groups, attrs.verb, attrs.namespace, attrs.api_group, attrs.resource,
               attrs.subresource, attrs.name, attrs.path, attrs.is_resource_request)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(attrs)
            if len(self._decisions) >= DECISION_CACHE_LIMIT:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _decide(self, attrs: Attributes) -> Decision:
        problems: list[str] = []
        for binding, subject, rules_namespace in self._bindings_for(attrs.user, attrs.namespace):
            try:
                rules = self.role_reference_rules(binding.get("roleRef") or {}, rules_namespace)
            except RoleNotFound as exc:
                problems.append(str(exc))
                continue
            for rule in rules:
                if rulematch.allows(rule, attrs):
                    return Decision(True, f"RBAC: allowed by {describe_binding(binding, subject)}")
        return Decision(False, f"RBAC: {aggregate_errors(problems)}" if problems else "")
