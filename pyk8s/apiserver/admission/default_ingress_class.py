"""DefaultIngressClass (upstream plugin/pkg/admission/network/defaultingressclass): an Ingress
that names no class gets the default IngressClass; with several defaults the newest wins."""

from __future__ import annotations

from .default_storage_class import newest_default
from .interfaces import CREATE, AdmissionPlugin, Attributes
from .state import ClusterState

IS_DEFAULT = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


class DefaultIngressClass(AdmissionPlugin):
    name = "DefaultIngressClass"
    mutating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.classes = state.kind("networking.k8s.io", "v1", "IngressClass")

    def handles(self, attrs: Attributes) -> bool:
        return (attrs.resource == ("networking.k8s.io", "ingresses") and attrs.operation == CREATE
                and not attrs.subresource and attrs.obj is not None)

    async def admit(self, attrs: Attributes) -> None:
        ingress = attrs.obj
        assert ingress is not None
        spec = ingress.setdefault("spec", {})
        if spec.get("ingressClassName") is not None or LEGACY_CLASS_ANNOTATION in (
                ingress["metadata"].get("annotations") or {}):
            return
        default = newest_default(self.state.list(self.classes), (IS_DEFAULT,))
        if default is not None:
            spec["ingressClassName"] = default["metadata"]["name"]
