"""PolicyRule semantics (upstream rbac/v1 helpers and registry/rbac/validation).

Rules are plain dicts in their JSON shape: verbs, apiGroups, resources, resourceNames,
nonResourceURLs. `allows` decides whether a rule grants one request; `covers` decides
whether a set of rules holds every permission of another set (escalation checks and
bootstrap reconciliation); `compact_string` words a rule the way escalation errors do.
"""

from __future__ import annotations

from .attributes import Attributes

ALL = "*"


def verb_matches(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or ()
    return ALL in verbs or verb in verbs


def api_group_matches(rule: dict, group: str) -> bool:
    groups = rule.get("apiGroups") or ()
    return ALL in groups or group in groups


def resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    """`combined` is "resource" or "resource/subresource"; "*/sub" matches any resource's sub."""
    for resource in rule.get("resources") or ():
        if resource == ALL or resource == combined:
            return True
        if subresource and resource == "*/" + subresource:
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames")
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    """Exact paths, "*" for all, and "prefix*" for every path under a prefix."""
    for url in rule.get("nonResourceURLs") or ():
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def allows(rule: dict, attrs: Attributes) -> bool:
    if attrs.is_resource_request:
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        return (verb_matches(rule, attrs.verb) and api_group_matches(rule, attrs.api_group)
                and resource_matches(rule, combined, attrs.subresource)
                and resource_name_matches(rule, attrs.name))
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


# ---- covering (escalation checks, reconciliation) -------------------------------------


def breakdown(rule: dict) -> list[dict]:
    """One rule per (group, resource, verb[, name]) and per (URL, verb), as upstream's BreakdownRule."""
    out = []
    names = rule.get("resourceNames") or []
    verbs = rule.get("verbs") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                if names:
                    out.extend({"verbs": [verb], "apiGroups": [group], "resources": [resource], "resourceNames": [n]}
                               for n in names)
                else:
                    out.append({"verbs": [verb], "apiGroups": [group], "resources": [resource]})
    for url in rule.get("nonResourceURLs") or []:
        out.extend({"verbs": [verb], "nonResourceURLs": [url]} for verb in verbs)
    return out


def _has_all(owned: list[str], wanted: list[str]) -> bool:
    return set(wanted) <= set(owned)


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if ALL in owned or _has_all(owned, wanted):
        return True
    for resource in wanted:
        _, slash, sub = resource.partition("/")
        if not slash or "*/" + sub not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _rule_covers(owner: dict, sub: dict) -> bool:
    owner_verbs = owner.get("verbs") or []
    owner_groups = owner.get("apiGroups") or []
    owner_names = owner.get("resourceNames") or []
    sub_names = sub.get("resourceNames") or []
    if not (ALL in owner_verbs or _has_all(owner_verbs, sub.get("verbs") or [])):
        return False
    if not (ALL in owner_groups or _has_all(owner_groups, sub.get("apiGroups") or [])):
        return False
    if not _resources_cover(owner.get("resources") or [], sub.get("resources") or []):
        return False
    owner_urls = owner.get("nonResourceURLs") or []
    if not all(any(_url_covers(o, p) for o in owner_urls) for p in sub.get("nonResourceURLs") or []):
        return False
    if sub_names:
        return not owner_names or _has_all(owner_names, sub_names)
    return not owner_names


def covers(owner_rules: list[dict], servant_rules: list[dict]) -> tuple[bool, list[dict]]:
    """Whether `owner_rules` hold every permission of `servant_rules`, and the broken-down rules they miss."""
    missing = []
    for servant in servant_rules:
        for sub in breakdown(servant):
            if not any(_rule_covers(owner, sub) for owner in owner_rules):
                missing.append(sub)
    return not missing, missing


def go_quoted_list(values: list[str] | tuple[str, ...]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def compact_string(rule: dict) -> str:
    """Upstream's CompactString: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`."""
    parts = []
    for label, field in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                         ("NonResourceURLs", "nonResourceURLs"), ("ResourceNames", "resourceNames"),
                         ("Verbs", "verbs")):
        values = rule.get(field)
        if values:
            parts.append(f"{label}:{go_quoted_list(values)}")
    return "{" + ", ".join(parts) + "}"
