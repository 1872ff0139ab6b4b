"""DefaultTolerationSeconds (upstream plugin/pkg/admission/defaulttolerationseconds): pods
tolerate not-ready and unreachable nodes for 300 s before taint-based eviction, unless they
say otherwise."""

from __future__ import annotations

from .interfaces import CREATE, UPDATE, AdmissionPlugin, Attributes

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_SECONDS = 300


def _tolerates(tolerations: list[dict], key: str) -> bool:
    return any(t.get("key", "") in (key, "") and t.get("effect", "") in ("NoExecute", "") for t in tolerations)


def add_default_tolerations(pod: dict, seconds: int = DEFAULT_SECONDS) -> None:
    spec = pod.setdefault("spec", {})
    tolerations = list(spec.get("tolerations") or [])
    added = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
             for key in (NOT_READY, UNREACHABLE) if not _tolerates(tolerations, key)]
    if added:
        spec["tolerations"] = tolerations + added


class DefaultTolerationSeconds(AdmissionPlugin):
    name = "DefaultTolerationSeconds"
    mutating = True

    def handles(self, attrs: Attributes) -> bool:
        return attrs.is_pod() and not attrs.subresource and attrs.operation in (CREATE, UPDATE) and (
            attrs.obj is not None)

    async def admit(self, attrs: Attributes) -> None:
        assert attrs.obj is not None
        add_default_tolerations(attrs.obj)
