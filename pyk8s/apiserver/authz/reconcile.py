"""Keep the bootstrap RBAC policy in place at every apiserver start (upstream's ensureRBACPolicy).

Missing objects are created. Existing ones are reconciled in upstream's "union" mode: rules,
aggregation selectors and subjects the policy expects are added, and nothing a user added is
taken away; labels and annotations the policy sets are added without overwriting the user's.
An object annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` is left alone.
A binding whose roleRef differs is deleted and recreated (roleRef is immutable).
"""

from __future__ import annotations

import copy
import logging

from ...api.errors import APIError
from ...api.kinds import REGISTRY
from ..rest import REST, DeleteOptions, WriteOptions
from . import bootstrap_policy as policy
from .rules import covers

log = logging.getLogger("pyk8s.apiserver.authz.reconcile")

FIELD_MANAGER = "kube-apiserver"


def _protected(existing: dict) -> bool:
    return (existing["metadata"].get("annotations") or {}).get(policy.AUTOUPDATE_ANNOTATION) == "false"


def _merge_metadata(result: dict, expected: dict) -> None:
    meta = result["metadata"]
    for field in ("labels", "annotations"):
        merged = {**(expected["metadata"].get(field) or {}), **(meta.get(field) or {})}
        if merged:
            meta[field] = merged


def reconciled_role(existing: dict, expected: dict) -> dict:
    """The role with whatever the policy expects added (upstream computeReconciledRole, union mode)."""
    result = copy.deepcopy(existing)
    _merge_metadata(result, expected)
    _, missing = covers(existing.get("rules") or [], expected.get("rules") or [])
    if missing:
        result["rules"] = list(existing.get("rules") or []) + missing
    expected_aggregation = expected.get("aggregationRule")
    existing_aggregation = existing.get("aggregationRule")
    if expected_aggregation is None and existing_aggregation is not None:
        result.pop("aggregationRule")
    elif expected_aggregation is not None:
        selectors = list((existing_aggregation or {}).get("clusterRoleSelectors") or [])
        absent = [s for s in expected_aggregation.get("clusterRoleSelectors") or [] if s not in selectors]
        if absent:
            result["aggregationRule"] = {"clusterRoleSelectors": selectors + absent}
    return result


def reconciled_binding(existing: dict, expected: dict) -> dict:
    """The binding with the policy's subjects added and the ones it retired (RETIRED_SUBJECTS) removed."""
    result = copy.deepcopy(existing)
    _merge_metadata(result, expected)
    retired = policy.RETIRED_SUBJECTS.get(expected["metadata"]["name"], []) if expected["kind"] == \
        "ClusterRoleBinding" else []
    subjects = [s for s in existing.get("subjects") or [] if s not in retired]
    absent = [s for s in expected.get("subjects") or [] if s not in subjects]
    if absent or len(subjects) != len(existing.get("subjects") or []):
        result["subjects"] = subjects + absent
        if not result["subjects"]:
            del result["subjects"]
    return result


async def _reconcile(rest: REST, kind_name: str, expected: dict) -> None:
    kind = REGISTRY.by_kind(policy.RBAC_GROUP, "v1", kind_name)
    assert kind is not None
    meta = expected["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    cached = rest.cache.cache_for(kind).objects.get(kind.key(namespace, name))
    opts = WriteOptions(field_manager=FIELD_MANAGER)
    if cached is not None and kind_name.endswith("Binding") and cached.obj.get("roleRef") != expected["roleRef"]:
        if _protected(cached.obj):
            return
        log.info("recreating %s %s: its roleRef differs from the bootstrap policy", kind.plural, name)
        await rest.delete(kind, namespace, name, DeleteOptions())
        cached = None
    if cached is None:
        try:
            await rest.create(kind, namespace, copy.deepcopy(expected), opts)
        except APIError as exc:
            if exc.code != 409:
                raise
        return
    if _protected(cached.obj):
        return
    reconcile = reconciled_binding if kind_name.endswith("Binding") else reconciled_role
    if reconcile(cached.obj, expected) == cached.obj:
        return
    log.info("reconciling %s %s with the bootstrap policy", kind.plural, name)
    await rest.update(kind, namespace, name, lambda current: reconcile(current, expected), opts)


async def ensure_bootstrap_policy(rest: REST) -> None:
    for role in policy.all_cluster_roles():
        await _reconcile(rest, "ClusterRole", role)
    for binding in policy.all_cluster_role_bindings():
        await _reconcile(rest, "ClusterRoleBinding", binding)
    for role in policy.all_namespaced_roles():
        await _reconcile(rest, "Role", role)
    for binding in policy.all_namespaced_role_bindings():
        await _reconcile(rest, "RoleBinding", binding)
