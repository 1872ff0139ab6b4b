"""StorageObjectInUseProtection (upstream plugin/pkg/admission/storage/storageobjectinuseprotection):
new claims and volumes carry the protection finalizer, so the pvc/pv-protection controllers can
hold their deletion while a pod still uses them."""

from __future__ import annotations

from .interfaces import CREATE, AdmissionPlugin, Attributes

FINALIZERS = {("", "persistentvolumeclaims"): "kubernetes.io/pvc-protection",
              ("", "persistentvolumes"): "kubernetes.io/pv-protection"}


class StorageObjectInUseProtection(AdmissionPlugin):
    name = "StorageObjectInUseProtection"
    mutating = True

    def handles(self, attrs: Attributes) -> bool:
        return (attrs.resource in FINALIZERS and attrs.operation == CREATE and not attrs.subresource
                and attrs.obj is not None)

    async def admit(self, attrs: Attributes) -> None:
        assert attrs.obj is not None
        finalizer = FINALIZERS[attrs.resource]
        finalizers = attrs.obj["metadata"].setdefault("finalizers", [])
        if finalizer not in finalizers:
            finalizers.append(finalizer)
