"""PodSecurity (upstream k8s.io/pod-security-admission): the Pod Security Standards, chosen per
namespace by the labels `pod-security.kubernetes.io/<mode>[-version]`.

- enforce: a violating pod is refused (403, `violates PodSecurity "restricted:latest": ...`);
- warn: the request succeeds with a `Warning` header (`would violate PodSecurity ...`), also for
  workload resources (Deployment, Job, ...) whose pod template would violate it;
- audit: recorded in the apiserver log (this server has no audit backend yet).
A namespace whose enforce label changes gets warnings naming its existing pods that violate the
new level. Exemptions (usernames, namespaces, runtimeClasses) and the defaults for unlabelled
namespaces come from a PodSecurityConfiguration file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ...api import errors
from ...api.errors import FieldError
from .interfaces import CREATE, UPDATE, AdmissionPlugin, Attributes
from .pod_security_checks import LATEST, LEVELS, PRIVILEGED, RESTRICTED, evaluate, reasons
from .state import ClusterState

log = logging.getLogger("pyk8s.apiserver.admission.podsecurity")

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
# Workload resources whose pod template is checked (warn and audit only, as upstream).
TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}
_VERSION = re.compile(r"v1\.(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: tuple[int, int] | None  # None: latest

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.version is None else f'v{self.version[0]}.{self.version[1]}'}"

    @property
    def effective_version(self) -> tuple[int, int]:
        return LATEST if self.version is None or self.version > LATEST else self.version


def parse_version(text: str) -> tuple[int, int] | None:
    if text == "latest":
        return None
    match = _VERSION.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return (1, int(match.group(1)))


@dataclass
class PodSecurityConfig:
    """PodSecurityConfiguration (pod-security.admission.config.k8s.io/v1): defaults and exemptions."""

    defaults: dict[str, str] = field(default_factory=lambda: {
        "enforce": PRIVILEGED, "enforce-version": "latest", "audit": PRIVILEGED, "audit-version": "latest",
        "warn": PRIVILEGED, "warn-version": "latest"})
    exempt_usernames: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, data: dict) -> PodSecurityConfig:
        config = cls()
        if data.get("kind") == "AdmissionConfiguration":  # the file may wrap it, as upstream's does
            for plugin in data.get("plugins") or []:
                if plugin.get("name") == "PodSecurity":
                    data = plugin.get("configuration") or {}
                    break
        for key, value in (data.get("defaults") or {}).items():
            config.defaults[key] = str(value)
        exemptions = data.get("exemptions") or {}
        config.exempt_usernames = frozenset(exemptions.get("usernames") or [])
        config.exempt_namespaces = frozenset(exemptions.get("namespaces") or [])
        config.exempt_runtime_classes = frozenset(exemptions.get("runtimeClasses") or [])
        for mode in MODES:
            if config.defaults.get(mode) not in LEVELS:
                raise ValueError(f"PodSecurity defaults.{mode}: must be one of {', '.join(LEVELS)}")
            parse_version(config.defaults.get(f"{mode}-version", "latest"))
        return config

    @classmethod
    def load(cls, path: Path) -> PodSecurityConfig:
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})


def namespace_policy(labels: dict, defaults: dict[str, str]) -> tuple[dict[str, LevelVersion], list[FieldError]]:
    """The level:version of each mode from namespace labels (falling back to the defaults). An
    invalid label is reported, and an invalid enforce level enforces restricted, as upstream."""
    policy: dict[str, LevelVersion] = {}
    problems: list[FieldError] = []
    for mode in MODES:
        level_key, version_key = f"{LABEL_PREFIX}{mode}", f"{LABEL_PREFIX}{mode}-version"
        level = labels.get(level_key, defaults.get(mode, PRIVILEGED))
        version_text = labels.get(version_key, defaults.get(f"{mode}-version", "latest"))
        valid = True
        if level not in LEVELS:
            problems.append(errors.invalid(f"metadata.labels[{level_key}]", level,
                                           f"must be one of {', '.join(LEVELS)}"))
            level, valid = RESTRICTED, False
        try:
            version = parse_version(version_text)
        except ValueError:
            problems.append(errors.invalid(f"metadata.labels[{version_key}]", version_text,
                                           'must be "latest" or of the form "v1.x"'))
            version = None
        policy[mode] = LevelVersion(level if valid else RESTRICTED, version)
    return policy, problems


def _dig(obj: dict, path: tuple[str, ...]) -> dict | None:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj if isinstance(obj, dict) else None


def _significant_pod_update(pod: dict, old: dict) -> bool:
    """Only image changes and added ephemeral containers can loosen a running pod (upstream
    isSignificantPodUpdate); other updates are not re-checked."""
    spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        new_list, old_list = spec.get(field_name) or [], old_spec.get(field_name) or []
        if len(new_list) != len(old_list):
            return True
        if any(a.get("image") != b.get("image") for a, b in zip(new_list, old_list, strict=True)):
            return True
    return False


def _pods_string(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return f"{names[0]} (and {len(names) - 1} other {'pod' if len(names) == 2 else 'pods'})"


class PodSecurity(AdmissionPlugin):
    name = "PodSecurity"
    validating = True

    def __init__(self, state: ClusterState, config: PodSecurityConfig):
        self.state = state
        self.config = config
        self.namespaces = state.kind("", "v1", "Namespace")
        self.pods = state.kind("", "v1", "Pod")
        self._policies: dict[tuple, dict[str, LevelVersion]] = {}

    def handles(self, attrs: Attributes) -> bool:
        if attrs.operation not in (CREATE, UPDATE) or attrs.obj is None:
            return False
        if attrs.is_pod():
            return attrs.subresource in ("", "ephemeralcontainers")
        if attrs.subresource:
            return False
        return attrs.resource == ("", "namespaces") or attrs.resource in TEMPLATE_PATHS

    def _exempt(self, attrs: Attributes, spec: dict) -> bool:
        return (attrs.user_name in self.config.exempt_usernames
                or attrs.namespace in self.config.exempt_namespaces
                or (spec.get("runtimeClassName") or "") in self.config.exempt_runtime_classes)

    async def _policy(self, namespace: str) -> dict[str, LevelVersion]:
        ns = await self.state.get(self.namespaces, "", namespace)
        labels = (ns or {}).get("metadata", {}).get("labels") or {}
        key = tuple(sorted((k, v) for k, v in labels.items() if k.startswith(LABEL_PREFIX)))
        policy = self._policies.get(key)
        if policy is None:
            # Few distinct label sets exist; parsing them once keeps pod creates cheap.
            if len(self._policies) > 1024:
                self._policies.clear()
            policy = self._policies[key] = namespace_policy(dict(key), self.config.defaults)[0]
        return policy

    async def validate(self, attrs: Attributes) -> None:
        if attrs.resource == ("", "namespaces"):
            await self._validate_namespace(attrs)
        elif attrs.is_pod():
            await self._validate_pod(attrs)
        else:
            await self._validate_template(attrs)

    async def _validate_pod(self, attrs: Attributes) -> None:
        pod = attrs.obj
        assert pod is not None
        if attrs.operation == UPDATE and attrs.old is not None and not _significant_pod_update(pod, attrs.old):
            return
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if self._exempt(attrs, spec):
            return
        policy = await self._policy(attrs.namespace)
        enforce = policy["enforce"]
        findings = evaluate(enforce.level, enforce.effective_version, meta, spec)
        if findings:
            raise attrs.forbidden(f'violates PodSecurity "{enforce}": {reasons(findings)}')
        self._audit(attrs, policy["audit"], meta, spec)
        warn = policy["warn"]
        findings = evaluate(warn.level, warn.effective_version, meta, spec)
        if findings:
            attrs.warnings.append(f'would violate PodSecurity "{warn}": {reasons(findings)}')

    async def _validate_template(self, attrs: Attributes) -> None:
        template = _dig(attrs.obj or {}, TEMPLATE_PATHS[attrs.resource])
        if template is None:
            return
        if attrs.operation == UPDATE and attrs.old is not None:
            if _dig(attrs.old, TEMPLATE_PATHS[attrs.resource]) == template:
                return
        meta, spec = template.get("metadata") or {}, template.get("spec") or {}
        if self._exempt(attrs, spec):
            return
        policy = await self._policy(attrs.namespace)
        self._audit(attrs, policy["audit"], meta, spec)
        warn = policy["warn"]
        findings = evaluate(warn.level, warn.effective_version, meta, spec)
        if findings:
            attrs.warnings.append(f'would violate PodSecurity "{warn}": {reasons(findings)}')

    def _audit(self, attrs: Attributes, audit: LevelVersion, meta: dict, spec: dict) -> None:
        findings = evaluate(audit.level, audit.effective_version, meta, spec)
        if findings:
            log.info("podsecurity audit: %s %s/%s would violate PodSecurity \"%s\": %s", attrs.kind.plural,
                     attrs.namespace, attrs.name, audit, reasons(findings))

    async def _validate_namespace(self, attrs: Attributes) -> None:
        namespace = attrs.obj
        assert namespace is not None
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        policy, problems = namespace_policy(labels, self.config.defaults)
        if problems:
            raise errors.invalid_object("Namespace", "", attrs.name, problems)
        if attrs.operation != UPDATE or attrs.old is None or attrs.name in self.config.exempt_namespaces:
            return
        old_labels = (attrs.old.get("metadata") or {}).get("labels") or {}
        old_policy, _ = namespace_policy(old_labels, self.config.defaults)
        enforce = policy["enforce"]
        if enforce == old_policy["enforce"] or enforce.level == PRIVILEGED:
            return
        by_reasons: dict[str, list[str]] = {}
        for pod in self.state.list(self.pods, attrs.name):
            spec = pod.get("spec") or {}
            if (spec.get("runtimeClassName") or "") in self.config.exempt_runtime_classes:
                continue
            findings = evaluate(enforce.level, enforce.effective_version, pod.get("metadata") or {}, spec)
            if findings:
                by_reasons.setdefault(reasons(findings), []).append(pod["metadata"]["name"])
        if by_reasons:
            attrs.warnings.append(f'existing pods in namespace "{attrs.name}" violate the new PodSecurity enforce '
                                  f'level "{enforce}"')
            for why, names in by_reasons.items():
                attrs.warnings.append(f"{_pods_string(names)}: {why}")
