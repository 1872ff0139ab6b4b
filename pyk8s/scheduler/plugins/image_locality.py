"""ImageLocality: prefer nodes that already hold the pod's images, weighted by size and by how widely the
image is spread (so one node with a big image does not attract every pod)."""

from __future__ import annotations

from ..cache import NodeInfo
from .base import MAX_NODE_SCORE, CycleState, PodInfo

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(image: str) -> str:
    """An image without a tag or digest means :latest."""
    if image.rfind(":") <= image.rfind("/"):
        return image + ":latest"
    return image


def image_keys(image: str) -> tuple[str, ...]:
    """The spellings a node may report for one image (short Docker Hub names are reported in full)."""
    name = normalized_image_name(image)
    first = name.split("/", 1)[0]
    if "/" not in name:
        return name, f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return name, f"docker.io/{name}"
    return (name,)


class ImageLocality:
    name = "ImageLocality"
    weight = 1
    events = frozenset({"NodeAdd", "NodeUpdate"})

    def pre_score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo], nodes: list[NodeInfo]) -> bool:
        spec = pod.spec
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        images = [image_keys(c.get("image") or "") for c in containers]
        if not getattr(nodes, "any_images", True) or not any(n.images for n in nodes):
            return False
        spread: dict[tuple[str, ...], int] = {}
        for keys in set(images):
            spread[keys] = sum(1 for n in nodes if any(k in n.images for k in keys))
        state[self.name] = (images, spread, len(nodes), len(containers))
        return True

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        images, spread, total_nodes, num_containers = state[self.name]
        total = 0
        for keys in images:
            size = next((node.images[k] for k in keys if k in node.images), None)
            if size is not None:
                total += int(size * spread[keys] / total_nodes)
        max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
        total = min(max(total, MIN_THRESHOLD), max_threshold)
        return MAX_NODE_SCORE * (total - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        return None
