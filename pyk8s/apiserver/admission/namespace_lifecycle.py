"""NamespaceLifecycle (upstream plugin/pkg/admission/namespace/lifecycle): nothing new in a
namespace that is missing or being terminated, and the system namespaces can never be deleted."""

from __future__ import annotations

from ...api import errors
from .interfaces import CREATE, DELETE, AdmissionPlugin, Attributes
from .state import ClusterState

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
# Reviews answer questions about permissions; saying whether a namespace exists would leak it.
_ACCESS_REVIEWS = frozenset({("authorization.k8s.io", "localsubjectaccessreviews"),
                             ("authentication.k8s.io", "tokenreviews")})


class NamespaceLifecycle(AdmissionPlugin):
    name = "NamespaceLifecycle"
    # Upstream's plugin admits (mutating phase): a missing namespace is reported before any validation error.
    mutating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.namespaces = state.kind("", "v1", "Namespace")

    def handles(self, attrs: Attributes) -> bool:
        if attrs.operation == DELETE:
            return attrs.kind.kind == "Namespace" and attrs.kind.group == "" and not attrs.subresource
        return attrs.operation == CREATE and attrs.kind.namespaced and attrs.resource not in _ACCESS_REVIEWS

    async def admit(self, attrs: Attributes) -> None:
        if attrs.operation == DELETE:
            if attrs.name in IMMORTAL_NAMESPACES:
                raise errors.forbidden_error("namespaces", "", attrs.name, "this namespace may not be deleted")
            return
        namespace = await self.state.get(self.namespaces, "", attrs.namespace)
        if namespace is None:
            raise errors.not_found("namespaces", "", attrs.namespace)
        terminating = (namespace["metadata"].get("deletionTimestamp")
                       or (namespace.get("status") or {}).get("phase") == "Terminating")
        if terminating:
            err = attrs.forbidden(f"unable to create new content in namespace {attrs.namespace} because it is "
                                  "being terminated")
            assert err.details is not None
            err.details.setdefault("causes", []).append({
                "reason": "NamespaceTerminating", "message": f"namespace {attrs.namespace} is being terminated",
                "field": "metadata.namespace"})
            raise err
