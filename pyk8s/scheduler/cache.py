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


class NodeInfo:
    """One node with the aggregate requests, host ports and pods placed on it."""

    def __init__(self, name: str, node: dict | None = None):
        self.name = name
        self.node: dict | None = None
        self.allocatable: Resources = {}
        self.pods: dict[str, dict] = {}
        self.requested: Resources = {}
        self.non_zero_cpu = 0
        self.non_zero_memory = 0
        self.used_ports: dict[tuple[str, str, int], int] = {}
        if node is not None:
            self.set_node(node)

    def set_node(self, node: dict) -> None:
        self.node = node
        self.allocatable = node_allocatable(node)

    @property
    def labels(self) -> dict[str, str]:
        return ((self.node or {}).get("metadata") or {}).get("labels") or {}

    @property
    def spec(self) -> dict:
        return (self.node or {}).get("spec") or {}

    def add_pod(self, pod: dict) -> None:
        uid = pod_uid(pod)
        if uid in self.pods:
            self.remove_pod(self.pods[uid])
        self.pods[uid] = pod
        self._account(pod, 1)

    def remove_pod(self, pod: Mapping) -> None:
        old = self.pods.pop(pod_uid(pod), None)
        if old is not None:
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


class SchedulerCache:
    """Node infos fed by the informers, plus pods assumed onto nodes before their binding lands.

    An assumed pod counts against its node at once, so the next decision cannot overcommit; the
    informer's bound copy confirms it, and a failed binding `forget`s it.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}  # uid -> node name of every counted pod
        self.assumed: set[str] = set()

    # ---- nodes -----------------------------------------------------------------------------

    def add_node(self, node: dict) -> None:
        name = node["metadata"]["name"]
        info = self.nodes.get(name)
        if info is None:
            self.nodes[name] = NodeInfo(name, node)
        else:
            info.set_node(node)

    update_node = add_node

    def remove_node(self, node: Mapping) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:  # keep the pods' accounting until they go (upstream keeps a node-less NodeInfo too)
            info.node = None
            info.allocatable = {}
        else:
            del self.nodes[name]

    def node_infos(self) -> list[NodeInfo]:
        """Nodes that exist (node-less entries only hold pods of deleted nodes)."""
        return [info for info in self.nodes.values() if info.node is not None]

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
        info.add_pod(pod)
        self._pod_node[pod_uid(pod)] = node

    def _remove_from(self, node: str, pod: Mapping) -> None:
        info = self.nodes.get(node)
        if info is None:
            return
        info.remove_pod(pod)
        if info.node is None and not info.pods:
            del self.nodes[node]
