"""The kinds registry: one declaration per served resource.

The apiserver (routing, strategies, discovery, openapi, tables) and the client read this
registry; nothing else hard-codes a kind. Per-kind behaviour lives in the strategy
modules and is found by the kind's snake_case name: `defaults.<name>(obj)`,
`validation.<name>(obj)`, `validation.<name>_update(obj, old)` and `printers.<name>`
(absent means "nothing special": generic metadata validation, the default table).
Custom resources are Kinds too: the apiserver adds and removes them as CustomResourceDefinitions
come and go (`Registry.add`/`remove`; their behaviour rides on `Kind.custom`, see pyk8s.api.crd).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str  # kind of the request/response body
    group: str | None = None  # None: the parent's group/version
    version: str | None = None
    verbs: tuple[str, ...] = SUBRESOURCE_VERBS


STATUS = Subresource("status", "")  # kind "" means "the parent's kind"
SCALE = Subresource("scale", "Scale", "autoscaling", "v1")
# Every verb a proxied request can have (upstream's connecters list them in this order).
PROXY_VERBS = ("create", "delete", "get", "patch", "update")
TOKEN = Subresource("token", "TokenRequest", "authentication.k8s.io", "v1", verbs=("create",))


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # metadata.generation is bumped on every change outside metadata and status.
    tracks_generation: bool = False
    # Extra field-selector fields beyond metadata.name/metadata.namespace.
    selectable_fields: tuple[str, ...] = ()
    # Fields that may never change after create (paths as in validation messages).
    immutable_fields: tuple[str, ...] = ()
    # DELETE answers with the deleted object instead of a Success Status (upstream ReturnDeletedObject).
    returns_deleted_object: bool = False
    # Answered by the apiserver on create and never stored (TokenReview and the other review kinds).
    create_only: bool = False
    # Another served form of the same stored objects (HPA v1 <-> v2, events.k8s.io <-> core).
    storage_of: tuple[str, str] | None = None  # (group, version) of the stored form
    to_storage: Callable[[dict], dict] | None = field(default=None, compare=False)
    from_storage: Callable[[dict], dict] | None = field(default=None, compare=False)
    # False for a custom resource version that is stored but not served (a CRD's served: false).
    served: bool = True
    # What a CustomResourceDefinition adds (schema, printer columns, scale paths); see pyk8s.api.crd.
    custom: Any = field(default=None, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def name(self) -> str:
        """snake_case kind name used to find the kind's strategy functions."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind).lower()

    @property
    def storage_group(self) -> str:
        return self.storage_of[0] if self.storage_of else self.group

    @property
    def storage_prefix(self) -> str:
        """Store key prefix of this resource (shared by every served form of it)."""
        return f"/registry/{self.storage_group or 'core'}/{self.plural}/"

    def key(self, namespace: str, name: str) -> str:
        return f"{self.storage_prefix}{namespace}/{name}" if self.namespaced else f"{self.storage_prefix}{name}"

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    @property
    def has_status(self) -> bool:
        return self.subresource("status") is not None


def _k(group: str, version: str, kind: str, plural: str, **kw) -> Kind:
    return Kind(group, version, kind, plural, kind.lower(), **kw)


KINDS: tuple[Kind, ...] = (
    # core/v1
    _k("", "v1", "Pod", "pods", short_names=("po",), returns_deleted_object=True, categories=("all",),
       subresources=(STATUS, Subresource("binding", "Binding", verbs=("create",)),
                     Subresource("ephemeralcontainers", "Pod", verbs=("get", "patch", "update")),
                     Subresource("eviction", "Eviction", "policy", "v1", verbs=("create",)),
                     Subresource("log", "Pod", verbs=("get",)),
                     Subresource("exec", "PodExecOptions", verbs=("create", "get")),
                     Subresource("attach", "PodAttachOptions", verbs=("create", "get")),
                     Subresource("portforward", "PodPortForwardOptions", verbs=("create", "get")),
                     Subresource("proxy", "PodProxyOptions", verbs=PROXY_VERBS)),
       selectable_fields=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                          "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
                          "status.nominatedNodeName")),
    _k("", "v1", "Service", "services", short_names=("svc",), returns_deleted_object=True, categories=("all",),
       subresources=(STATUS,), selectable_fields=("spec.clusterIP", "spec.type")),
    _k("", "v1", "Endpoints", "endpoints", short_names=("ep",)),
    _k("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    _k("", "v1", "Secret", "secrets", selectable_fields=("type",)),
    _k("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",),
       subresources=(STATUS, Subresource("finalize", "", verbs=("update",))), selectable_fields=("status.phase",)),
    _k("", "v1", "Node", "nodes", namespaced=False, short_names=("no",),
       subresources=(STATUS, Subresource("proxy", "NodeProxyOptions", verbs=PROXY_VERBS)),
       selectable_fields=("spec.unschedulable",)),
    _k("", "v1", "Event", "events", short_names=("ev",),
       selectable_fields=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                          "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                          "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
    _k("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",), returns_deleted_object=True,
       subresources=(TOKEN,)),
    _k("", "v1", "PersistentVolume", "persistentvolumes", namespaced=False, short_names=("pv",),
       returns_deleted_object=True, subresources=(STATUS,)),
    _k("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",),
       returns_deleted_object=True, subresources=(STATUS,)),
    _k("", "v1", "ResourceQuota", "resourcequotas", short_names=("quota",), returns_deleted_object=True,
       subresources=(STATUS,)),
    _k("", "v1", "LimitRange", "limitranges", short_names=("limits",)),
    _k("", "v1", "ReplicationController", "replicationcontrollers", short_names=("rc",), categories=("all",),
       subresources=(STATUS, SCALE), tracks_generation=True, selectable_fields=("status.replicas",)),
    _k("", "v1", "PodTemplate", "podtemplates", returns_deleted_object=True),
    # apps/v1
    _k("apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=("all",),
       subresources=(STATUS, SCALE), tracks_generation=True),
    _k("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=("all",),
       subresources=(STATUS, SCALE), tracks_generation=True),
    _k("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=("all",),
       subresources=(STATUS, SCALE), tracks_generation=True),
    _k("apps", "v1", "DaemonSet", "daemonsets", short_names=("ds",), categories=("all",),
       subresources=(STATUS,), tracks_generation=True),
    _k("apps", "v1", "ControllerRevision", "controllerrevisions"),
    # batch/v1
    _k("batch", "v1", "Job", "jobs", categories=("all",), subresources=(STATUS,), tracks_generation=True,
       selectable_fields=("status.successful",)),
    _k("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), categories=("all",), subresources=(STATUS,),
       tracks_generation=True),
    # networking.k8s.io/v1
    _k("networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",), subresources=(STATUS,),
       tracks_generation=True),
    _k("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False, tracks_generation=True),
    _k("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short_names=("netpol",),
       tracks_generation=True),
    # storage.k8s.io/v1
    _k("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short_names=("sc",),
       returns_deleted_object=True),
    # authentication.k8s.io/v1
    _k("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False, verbs=("create",),
       create_only=True),
    _k("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False,
       verbs=("create",), create_only=True),
    # authorization.k8s.io/v1
    _k("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", namespaced=False,
       verbs=("create",), create_only=True),
    _k("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", namespaced=False,
       verbs=("create",), create_only=True),
    _k("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", verbs=("create",),
       create_only=True),
    _k("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", namespaced=False,
       verbs=("create",), create_only=True),
    # rbac.authorization.k8s.io/v1
    _k("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    _k("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    # autoscaling v2 is the stored form; v1 is converted on the way in and out.
    _k("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
       categories=("all",), subresources=(STATUS,), tracks_generation=True),
    # policy/v1
    _k("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=("pdb",),
       subresources=(STATUS,), tracks_generation=True),
    # discovery.k8s.io/v1
    _k("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", tracks_generation=True),
    # coordination.k8s.io/v1
    _k("coordination.k8s.io", "v1", "Lease", "leases"),
    # certificates.k8s.io/v1
    _k("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", namespaced=False,
       short_names=("csr",), subresources=(STATUS, Subresource("approval", ""))),
    # scheduling.k8s.io/v1
    _k("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short_names=("pc",)),
    # apiextensions.k8s.io/v1
    _k("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False,
       short_names=("crd", "crds"), categories=("api-extensions",), subresources=(STATUS,), tracks_generation=True),
    # admissionregistration.k8s.io/v1
    _k("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
       namespaced=False, categories=("api-extensions",), tracks_generation=True),
    _k("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
       namespaced=False, categories=("api-extensions",), tracks_generation=True),
    _k("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies",
       namespaced=False, categories=("api-extensions",), subresources=(STATUS,), tracks_generation=True),
    _k("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
       namespaced=False, categories=("api-extensions",), tracks_generation=True),
)


def _with_conversions() -> tuple[Kind, ...]:
    """Kinds served in a second form from the same stored objects."""
    from . import conversion

    return (
        _k("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
           categories=("all",), subresources=(STATUS,), tracks_generation=True,
           storage_of=("autoscaling", "v2"), to_storage=conversion.hpa_v1_to_v2,
           from_storage=conversion.hpa_v2_to_v1),
        _k("events.k8s.io", "v1", "Event", "events", short_names=("ev",), storage_of=("", "v1"),
           selectable_fields=("regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
                              "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath",
                              "reason", "reportingController", "type"),
           to_storage=conversion.event_v1_to_core, from_storage=conversion.event_core_to_v1),
    )


class Registry:
    """Lookup tables over all served kinds.

    Custom resources come and go with their CustomResourceDefinitions (`add`/`remove`); readers
    look kinds up per request, so they see a change on their next request."""

    def __init__(self, kinds: tuple[Kind, ...]):
        self._index(kinds)

    def _index(self, all_kinds: tuple[Kind, ...]) -> None:
        self._all = all_kinds
        self.kinds = tuple(k for k in all_kinds if k.served)
        self._by_resource = {(k.group, k.version, k.plural): k for k in self.kinds}
        self._by_kind = {(k.group, k.version, k.kind): k for k in all_kinds}
        self._storage = {(k.group, k.plural): k for k in all_kinds if k.storage_of is None and not k.create_only}

    def add(self, kinds: list[Kind]) -> None:
        """Serve `kinds`, replacing the kinds of the same resources (group and plural)."""
        resources = {(k.group, k.plural) for k in kinds}
        self._index(tuple(k for k in self._all if (k.group, k.plural) not in resources) + tuple(kinds))

    def remove(self, group: str, plural: str) -> None:
        """Stop serving every version of a resource."""
        self._index(tuple(k for k in self._all if (k.group, k.plural) != (group, plural)))

    def lookup(self, group: str, version: str, plural: str) -> Kind | None:
        return self._by_resource.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Kind | None:
        return self._by_kind.get((group, version, kind))

    def storage_kind(self, kind: Kind) -> Kind:
        """The Kind whose form is stored for `kind` (itself unless it is a converted form)."""
        if kind.storage_of is None:
            return kind
        return self._by_kind[(kind.storage_of[0], kind.storage_of[1], kind.kind)]

    def stored_kinds(self) -> list[Kind]:
        return list(self._storage.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions in preference order (first preferred); "" is the core group."""
        out: dict[str, list[str]] = {}
        for k in self.kinds:
            versions = out.setdefault(k.group, [])
            if k.version not in versions:
                versions.append(k.version)
        for versions in out.values():
            versions.sort(key=_version_priority)
        return out

    def kinds_in(self, group: str, version: str) -> list[Kind]:
        return [k for k in self.kinds if k.group == group and k.version == version]


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA before beta before alpha, higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor)


REGISTRY = Registry(KINDS + _with_conversions())
