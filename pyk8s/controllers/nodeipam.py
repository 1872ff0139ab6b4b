"""The node IPAM controller, range allocator mode (upstream pkg/controller/nodeipam).

Every Node without spec.podCIDR gets the next free subnet (a /24 by default) of the cluster CIDR
as spec.podCIDR and spec.podCIDRs. The set of subnets in use is rebuilt from the nodes at start,
so none is handed out twice across restarts; a deleted node's subnet is free again.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    SharedInformerFactory,
    WorkQueue,
    is_not_found,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter

log = logging.getLogger("pyk8s.controllers.nodeipam")

NAME = "node-ipam-controller"
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_NODE_CIDR_MASK_SIZE = 24


class CIDRFull(Exception):  # noqa: N818 - upstream's ErrCIDRRangeNoCIDRsRemaining
    pass


class CIDRSet:
    """The subnets of one cluster CIDR, each used or free; allocation goes round from the last one."""

    def __init__(self, cluster_cidr: str, mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE):
        self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask_size < self.network.prefixlen:
            raise ValueError(f"node CIDR mask /{mask_size} is larger than the cluster CIDR {cluster_cidr}")
        self.mask_size = mask_size
        self.size = 1 << (mask_size - self.network.prefixlen)
        self._step = 1 << (self.network.max_prefixlen - mask_size)
        self.used: set[int] = set()
        self._next = 0

    def _subnet(self, index: int) -> str:
        base = self.network.network_address + index * self._step
        return f"{base}/{self.mask_size}"

    def _index(self, cidr: str) -> int | None:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.mask_size or not net.subnet_of(self.network):
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self._step

    def occupy(self, cidr: str) -> bool:
        index = self._index(cidr)
        if index is None:
            return False
        self.used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self.used.discard(index)

    def allocate(self) -> str:
        for offset in range(self.size):
            index = (self._next + offset) % self.size
            if index not in self.used:
                self.used.add(index)
                self._next = (index + 1) % self.size
                return self._subnet(index)
        raise CIDRFull(f"no free /{self.mask_size} left in {self.network}")


def _pod_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


class NodeIPAMController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *,
                 cluster_cidr: str = DEFAULT_CLUSTER_CIDR, node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE,
                 clock: Clock = REAL_CLOCK):
        self.client = client
        self.cidrs = CIDRSet(cluster_cidr, node_cidr_mask_size)
        self.informer = factory.informer("nodes")
        self.queue: WorkQueue[str] = WorkQueue("nodeipam", rate_limiter=default_controller_rate_limiter(clock),
                                               clock=clock)
        # One worker: allocations are serialized, so two nodes never race for one subnet.
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=1, queue=self.queue, clock=clock)
        self.informer.add_handler(on_add=self._on_node, on_update=lambda _old, new: self._on_node(new),
                                  on_delete=self._on_delete)

    @classmethod
    def from_context(cls, ctx: Any) -> NodeIPAMController:
        """Built by the manager; options: cluster_cidr, node_cidr_mask_size."""
        options = ctx.options or {}
        return cls(ctx.client, ctx.factory, cluster_cidr=str(options.get("cluster_cidr", DEFAULT_CLUSTER_CIDR)),
                   node_cidr_mask_size=int(options.get("node_cidr_mask_size", DEFAULT_NODE_CIDR_MASK_SIZE)),
                   clock=ctx.clock)

    def _on_node(self, node: dict) -> None:
        cidrs = _pod_cidrs(node)
        for cidr in cidrs:
            self.cidrs.occupy(cidr)
        if not cidrs:
            self.queue.add(node["metadata"]["name"])

    def _on_delete(self, node: dict | DeletedFinalStateUnknown) -> None:
        obj = node.obj if isinstance(node, DeletedFinalStateUnknown) else node
        for cidr in _pod_cidrs(obj):
            log.info("node ipam: node %s deleted; releasing %s", obj["metadata"]["name"], cidr)
            self.cidrs.release(cidr)

    async def run(self) -> None:
        await self.informer.wait_for_sync()
        for node in self.informer.list():  # every subnet in use before anything is handed out
            for cidr in _pod_cidrs(node):
                if not self.cidrs.occupy(cidr):
                    log.warning("node ipam: node %s has pod CIDR %s outside %s", node["metadata"]["name"], cidr,
                                self.cidrs.network)
        await self.controller.run()

    async def sync(self, name: str) -> None:
        node = self.informer.get(name)
        if node is None:
            return
        try:
            node = await self.client.get("nodes", name)  # the cache may lag behind a fallback assignment
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            raise
        existing = _pod_cidrs(node)
        if existing:
            for cidr in existing:
                self.cidrs.occupy(cidr)
            return
        cidr = self.cidrs.allocate()
        try:
            await self.client.patch("nodes", name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except BaseException:
            self.cidrs.release(cidr)
            raise
        log.info("node ipam: node %s gets pod CIDR %s", name, cidr)

