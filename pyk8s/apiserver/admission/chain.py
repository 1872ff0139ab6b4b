"""The admission chain: every mutating plugin, then every validating plugin, in upstream's order.

Upstream's order is pkg/kubeapiserver/options/plugins.go `AllOrderedPlugins`; the plugins here
keep it (NamespaceLifecycle first, ResourceQuota last, so quota is charged only for requests
that everything else accepted). `AdmissionConfig` is the `--admission-control-config-file` and
`--disable-admission-plugins` of this apiserver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..authz.attributes import Decision
from .certificates import Authorize, CertificateApproval, CertificateSigning, CertificateSubjectRestriction
from .default_ingress_class import DefaultIngressClass
from .default_storage_class import DefaultStorageClass
from .default_toleration_seconds import DefaultTolerationSeconds
from .interfaces import AdmissionPlugin, Attributes
from .limit_ranger import LimitRanger
from .namespace_lifecycle import NamespaceLifecycle
from .node_restriction import NodeRestriction
from .pod_security import PodSecurity, PodSecurityConfig
from .policy import ValidatingAdmissionPolicy
from .priority import Priority
from .resource_quota import QuotaStatusWriter, ResourceQuota
from .service_account import ServiceAccount
from .state import ClusterState
from .storage_protection import StorageObjectInUseProtection
from .webhook import MutatingAdmissionWebhook, ValidatingAdmissionWebhook, WebhookClient

log = logging.getLogger("pyk8s.apiserver.admission")

ORDERED_PLUGINS: tuple[str, ...] = (
    "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "PodSecurity", "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass", "StorageObjectInUseProtection", "CertificateApproval", "CertificateSigning",
    "CertificateSubjectRestriction", "DefaultIngressClass", "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook", "ResourceQuota")
# Off unless enabled: nothing here removes the protection finalizers yet (upstream's pvc-protection
# and pv-protection controllers), so protected claims and volumes could never be deleted.
DEFAULT_OFF = frozenset({"StorageObjectInUseProtection"})


@dataclass
class AdmissionConfig:
    enable_plugins: tuple[str, ...] = ()  # --enable-admission-plugins: on top of the default set
    disable_plugins: tuple[str, ...] = ()  # --disable-admission-plugins
    # Refuse pods whose ServiceAccount does not exist (upstream always does). Off until a
    # serviceaccount controller creates `default` in every namespace, or every pod would be refused.
    service_account_must_exist: bool = False
    # A PodSecurityConfiguration (defaults and exemptions), YAML or JSON; none means the built-in defaults.
    pod_security_config_file: Path | None = None
    pod_security: PodSecurityConfig = field(default_factory=PodSecurityConfig)

    def __post_init__(self) -> None:
        unknown = (set(self.enable_plugins) | set(self.disable_plugins)) - set(ORDERED_PLUGINS)
        if unknown:
            raise ValueError(f"unknown admission plugins: {', '.join(sorted(unknown))}")
        if self.pod_security_config_file is not None:
            self.pod_security = PodSecurityConfig.load(self.pod_security_config_file)

    @property
    def enabled(self) -> list[str]:
        return [name for name in ORDERED_PLUGINS if name not in self.disable_plugins
                and (name not in DEFAULT_OFF or name in self.enable_plugins)]


def _deny_all(_attrs: object) -> Decision:
    return Decision(False, "no authorizer")


class AdmissionChain:
    def __init__(self, plugins: list[AdmissionPlugin], webhook_client: WebhookClient | None = None):
        self.plugins = plugins
        self.webhook_client = webhook_client
        self.mutating = [p for p in plugins if p.mutating]
        self.validating = [p for p in plugins if p.validating]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    async def admit(self, attrs: Attributes) -> None:
        for plugin in self.mutating:
            if plugin.handles(attrs):
                await plugin.admit(attrs)

    async def validate(self, attrs: Attributes) -> None:
        for plugin in self.validating:
            if plugin.handles(attrs):
                await plugin.validate(attrs)

    async def review(self, attrs: Attributes) -> None:
        """Both phases for a request that stores nothing itself (an eviction, a token request)."""
        await self.admit(attrs)
        await self.validate(attrs)

    async def close(self) -> None:
        if self.webhook_client is not None:
            await self.webhook_client.close()


def build_chain(config: AdmissionConfig, state: ClusterState, write_quota_status: QuotaStatusWriter,
                authorize: Authorize | None = None) -> AdmissionChain:
    """`authorize` is the apiserver's authorizer, for the plugins that check extra verbs (the certificate
    ones); without it they allow only the apiserver's own writes."""
    webhook_client = WebhookClient(state)
    authorize = authorize or _deny_all
    factories: dict[str, Callable[[], AdmissionPlugin]] = {
        "NamespaceLifecycle": lambda: NamespaceLifecycle(state),
        "LimitRanger": lambda: LimitRanger(state),
        "ServiceAccount": lambda: ServiceAccount(state, must_exist=config.service_account_must_exist),
        "NodeRestriction": lambda: NodeRestriction(state),
        "PodSecurity": lambda: PodSecurity(state, config.pod_security),
        "Priority": lambda: Priority(state),
        "DefaultTolerationSeconds": DefaultTolerationSeconds,
        "DefaultStorageClass": lambda: DefaultStorageClass(state),
        "StorageObjectInUseProtection": StorageObjectInUseProtection,
        "CertificateApproval": lambda: CertificateApproval(authorize),
        "CertificateSigning": lambda: CertificateSigning(authorize),
        "CertificateSubjectRestriction": CertificateSubjectRestriction,
        "DefaultIngressClass": lambda: DefaultIngressClass(state),
        "MutatingAdmissionWebhook": lambda: MutatingAdmissionWebhook(state, webhook_client),
        "ValidatingAdmissionPolicy": lambda: ValidatingAdmissionPolicy(state),
        "ValidatingAdmissionWebhook": lambda: ValidatingAdmissionWebhook(state, webhook_client),
        "ResourceQuota": lambda: ResourceQuota(state, write_quota_status),
    }
    plugins = [factories[name]() for name in config.enabled]
    log.info("admission plugins: %s", ", ".join(p.name for p in plugins) or "(none)")
    return AdmissionChain(plugins, webhook_client)
