"""The scheduler's view of nodes and the pods placed on them, including assumed (not yet bound) pods."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .resources import PODS, Resources, host_ports, node_allocatable, non_zero_requests, pod_requests

log = logging.getLogger(__name__)


def pod_uid(pod: Mapping) -> str:
    return (pod.get("metadata") or {}).get("uid", "")


def pod_key(pod: Mapping) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def is_terminal(pod: Mapping) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def has_pod_affinity(pod: Mapping) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity"))


def has_required_anti_affinity(pod: Mapping) -> bool:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))


class NodeInfo:
    """One node with the aggregate requests, host ports, images and pods placed on it.

    The pods with (anti-)affinity terms are also kept apart, so InterPodAffinity looks only at them.
    """

    def __init__(self, name: str, node: dict | None = None):
        self.name = name
        self.node: dict | None = None
        self.labels: dict[str, str] = {}
        self.spec: dict = {}
        self.allocatable: Resources = {}
        self.images: dict[str, int] = {}  # every name a node reports for an image -> size in bytes
        self.pods: dict[str, dict] = {}
        self.pods_with_affinity: dict[str, dict] = {}
        self.pods_with_required_anti_affinity: dict[str, dict] = {}
        # What plugins derive from a placed pod once (its compiled affinity terms), dropped with the pod.
        self.derived: dict[str, object] = {}
        self.requested: Resources = {}
        self.non_zero_cpu = 0
        self.non_zero_memory = 0
        self.used_ports: dict[tuple[str, str, int], int] = {}
        if node is not None:
            self.set_node(node)

    def set_node(self, node: dict) -> None:
        self.node = node
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.allocatable = node_allocatable(node)
        self.images = {name: int(image.get("sizeBytes") or 0)
                       for image in status.get("images") or () for name in image.get("names") or ()}

    def clone(self) -> NodeInfo:
        """A copy whose pods and aggregates can change (a preemption dry run); pod dicts are shared."""
        other = NodeInfo.__new__(NodeInfo)
        other.__dict__.update(self.__dict__)
        other.pods = dict(self.pods)
        other.pods_with_affinity = dict(self.pods_with_affinity)
        other.pods_with_required_anti_affinity = dict(self.pods_with_required_anti_affinity)
        other.derived = dict(self.derived)
        other.requested = dict(self.requested)
        other.used_ports = dict(self.used_ports)
        return other

    def add_pod(self, pod: dict) -> None:
        uid = pod_uid(pod)
        if uid in self.pods:
            self.remove_pod(self.pods[uid])
        self.pods[uid] = pod
        if has_pod_affinity(pod):
            self.pods_with_affinity[uid] = pod
            if has_required_anti_affinity(pod):
                self.pods_with_required_anti_affinity[uid] = pod
        self._account(pod, 1)

    def remove_pod(self, pod: Mapping) -> None:
        uid = pod_uid(pod)
        old = self.pods.pop(uid, None)
        if old is not None:
            self.derived.pop(uid, None)
            self.pods_with_affinity.pop(uid, None)
            self.pods_with_required_anti_affinity.pop(uid, None)
            self._account(old, -1)

    def _account(self, pod: Mapping, sign: int) -> None:
        req = pod_requests(pod)
        for name, v in req.items():
            self.requested[name] = self.requested.get(name, 0) + sign * v
        self.requested[PODS] = self.requested.get(PODS, 0) + sign
        cpu, mem = non_zero_requests(req)
        self.non_zero_cpu += sign * cpu
        self.non_zero_memory += sign * mem
        for port in host_ports(pod):
            self.used_ports[port] = self.used_ports.get(port, 0) + sign
            if self.used_ports[port] <= 0:
                del self.used_ports[port]


class NodeList(list):
    """The cycle's nodes, plus the (few) nodes that run pods with affinity terms: InterPodAffinity then
    visits only those instead of every node."""

    with_affinity: list[NodeInfo]
    with_required_anti_affinity: list[NodeInfo]
    any_images: bool

    def __init__(self, nodes: list[NodeInfo], with_affinity: list[NodeInfo] | None = None,
                 with_required_anti_affinity: list[NodeInfo] | None = None):
        super().__init__(nodes)
        self.any_images = any(n.images for n in nodes)
        self.with_affinity = with_affinity if with_affinity is not None else [n for n in nodes
                                                                               if n.pods_with_affinity]
        self.with_required_anti_affinity = (with_required_anti_affinity if with_required_anti_affinity is not None
                                            else [n for n in nodes if n.pods_with_required_anti_affinity])


def affinity_nodes(nodes: list[NodeInfo]) -> tuple[list[NodeInfo], list[NodeInfo]]:
    """(nodes with pods that have affinity terms, nodes with pods that have required anti-affinity)."""
    if isinstance(nodes, NodeList):
        return nodes.with_affinity, nodes.with_required_anti_affinity
    return [n for n in nodes if n.pods_with_affinity], [n for n in nodes if n.pods_with_required_anti_affinity]


class SchedulerCache:
    """Node infos fed by the informers, plus pods assumed onto nodes before their binding lands.

    An assumed pod counts against its node at once, so the next decision cannot overcommit; the
    informer's bound copy confirms it, and a failed binding `forget`s it.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}  # uid -> node name of every counted pod
        self.assumed: set[str] = set()
        self._affinity_nodes: set[str] = set()  # nodes with pods that have pod (anti-)affinity terms
        self._existing: NodeList | None = None  # the nodes that exist, until a node comes or goes

    # ---- nodes -----------------------------------------------------------------------------

    def add_node(self, node: dict) -> None:
        name = node["metadata"]["name"]
        info = self.nodes.get(name)
        if info is None:
            self.nodes[name] = NodeInfo(name, node)
            self._existing = None
        else:
            if info.node is None or bool(info.images) != bool((node.get("status") or {}).get("images")):
                self._existing = None
            info.set_node(node)

    update_node = add_node

    def remove_node(self, node: Mapping) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        info = self.nodes.get(name)
        if info is None:
            return
        self._existing = None
        if info.pods:  # keep the pods' accounting until they go (upstream keeps a node-less NodeInfo too)
            info.node = None
            info.labels, info.spec, info.allocatable, info.images = {}, {}, {}, {}
        else:
            del self.nodes[name]

    def node_infos(self) -> NodeList:
        """Nodes that exist (node-less entries only hold pods of deleted nodes)."""
        with_affinity = [info for name in self._affinity_nodes if (info := self.nodes.get(name)) is not None
                         and info.node is not None and info.pods_with_affinity]
        if self._existing is None:
            self._existing = NodeList([info for info in self.nodes.values() if info.node is not None], [], [])
        nodes = NodeList.__new__(NodeList)
        list.__init__(nodes, self._existing)
        nodes.with_affinity = with_affinity
        nodes.with_required_anti_affinity = [info for info in with_affinity if info.pods_with_required_anti_affinity]
        nodes.any_images = self._existing.any_images
        return nodes

    # ---- pods ------------------------------------------------------------------------------

    def add_pod(self, pod: dict) -> None:
        """A bound, non-terminal pod from the informer (confirms an assumed one)."""
        uid = pod_uid(pod)
        node = (pod.get("spec") or {}).get("nodeName", "")
        previous = self._pod_node.get(uid)
        if previous is not None and previous != node:
            if uid in self.assumed:
                log.warning("pod %s assumed on %s was bound to %s", pod_key(pod), previous, node)
            self._remove_from(previous, pod)
        self.assumed.discard(uid)
        self._place(pod, node)

    update_pod = add_pod

    def remove_pod(self, pod: Mapping) -> None:
        uid = pod_uid(pod)
        node = self._pod_node.pop(uid, None)
        self.assumed.discard(uid)
        if node is not None:
            self._remove_from(node, pod)

    def assume(self, pod: dict, node: str) -> dict:
        """Count `pod` on `node` now; returns the assumed copy (with spec.nodeName set)."""
        assumed = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}
        self._place(assumed, node)
        self.assumed.add(pod_uid(pod))
        return assumed

    def forget(self, pod: Mapping) -> None:
        """Undo `assume` after a failed binding (a no-op once the informer confirmed the pod)."""
        if pod_uid(pod) in self.assumed:
            self.remove_pod(pod)

    def is_assumed(self, uid: str) -> bool:
        return uid in self.assumed

    def _place(self, pod: dict, node: str) -> None:
        info = self.nodes.get(node)
        if info is None:
            info = self.nodes[node] = NodeInfo(node)
            self._existing = None
        info.add_pod(pod)
        self._pod_node[pod_uid(pod)] = node
        if info.pods_with_affinity:
            self._affinity_nodes.add(node)

    def _remove_from(self, node: str, pod: Mapping) -> None:
        info = self.nodes.get(node)
        if info is None:
            return
        info.remove_pod(pod)
        if not info.pods_with_affinity:
            self._affinity_nodes.discard(node)
        if info.node is None and not info.pods:
            del self.nodes[node]
            self._existing = None
