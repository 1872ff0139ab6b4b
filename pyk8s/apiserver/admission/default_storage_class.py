"""DefaultStorageClass (upstream plugin/pkg/admission/storage/storageclass/setdefault): a claim
that names no class gets the default StorageClass; with several defaults the newest wins."""

from __future__ import annotations

from .interfaces import CREATE, AdmissionPlugin, Attributes
from .state import ClusterState

IS_DEFAULT = "storageclass.kubernetes.io/is-default-class"
IS_DEFAULT_BETA = "storageclass.beta.kubernetes.io/is-default-class"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def newest_default(objects: list[dict], annotations: tuple[str, ...]) -> dict | None:
    """The newest object marked default by one of `annotations` ("true"); ties go to the
    name that sorts first (upstream's sort by creationTimestamp, then name)."""
    defaults = [o for o in objects
                if any((o["metadata"].get("annotations") or {}).get(a) == "true" for a in annotations)]
    if not defaults:
        return None
    defaults.sort(key=lambda o: o["metadata"]["name"])
    defaults.sort(key=lambda o: o["metadata"].get("creationTimestamp", ""), reverse=True)
    return defaults[0]


class DefaultStorageClass(AdmissionPlugin):
    name = "DefaultStorageClass"
    mutating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.classes = state.kind("storage.k8s.io", "v1", "StorageClass")

    def handles(self, attrs: Attributes) -> bool:
        return (attrs.resource == ("", "persistentvolumeclaims") and attrs.operation == CREATE
                and not attrs.subresource and attrs.obj is not None)

    async def admit(self, attrs: Attributes) -> None:
        claim = attrs.obj
        assert claim is not None
        spec = claim.setdefault("spec", {})
        if spec.get("storageClassName") is not None or (claim["metadata"].get("annotations") or {}).get(
                BETA_CLASS_ANNOTATION) is not None:
            return
        default = newest_default(self.state.list(self.classes), (IS_DEFAULT, IS_DEFAULT_BETA))
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]
