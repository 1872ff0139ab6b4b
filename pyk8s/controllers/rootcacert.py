"""The root-CA publisher (upstream pkg/controller/certificates/rootcacertpublisher): every active
namespace holds a ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster CA bundle, so pods can
verify the apiserver; it is recreated if deleted and put back if edited."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    SharedInformerFactory,
    WorkQueue,
    is_already_exists,
    is_conflict,
    is_not_found,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter

log = logging.getLogger("pyk8s.controllers.rootcacert")

NAME = "root-ca-certificate-publisher-controller"
CONFIGMAP = "kube-root-ca.crt"
DATA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def _terminating(namespace: dict) -> bool:
    return (namespace.get("status") or {}).get("phase") == "Terminating" or bool(
        namespace["metadata"].get("deletionTimestamp"))


def root_ca_from_context(ctx: Any) -> str:
    """The cluster CA bundle: the `root_ca_file` option, else the CA the manager's own client trusts
    (upstream's controller-manager falls back to its kubeconfig's CA the same way)."""
    path = (ctx.options or {}).get("root_ca_file")
    if path:
        return Path(str(path)).read_text()
    if ctx.client.config.ca_data:
        return ctx.client.config.ca_data.decode()
    if ctx.client.config.ca_file:
        return Path(ctx.client.config.ca_file).read_text()
    raise ValueError("no root CA: set root_ca_file or use a kubeconfig with a certificate authority")


def desired_configmap(namespace: str, root_ca: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": namespace,
                         "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
            "data": {DATA_KEY: root_ca}}


def needs_update(configmap: dict, root_ca: str) -> bool:
    annotations = configmap["metadata"].get("annotations") or {}
    return configmap.get("data") != {DATA_KEY: root_ca} or annotations.get(DESCRIPTION_ANNOTATION) != DESCRIPTION


class RootCACertPublisher:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, root_ca: str, *,
                 clock: Clock = REAL_CLOCK):
        self.client = client
        self.root_ca = root_ca
        self.namespaces = factory.informer("namespaces")
        self.configmaps = factory.informer("configmaps", field_selector={"metadata.name": CONFIGMAP})
        self.queue: WorkQueue[str] = WorkQueue(NAME, rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=1, queue=self.queue, clock=clock,
                                                      wait_for=(self.namespaces.wait_for_sync,
                                                                self.configmaps.wait_for_sync))
        self.namespaces.add_handler(on_add=self._on_namespace, on_update=lambda _old, new: self._on_namespace(new))
        self.configmaps.add_handler(on_update=lambda _old, new: self._on_configmap(new),
                                    on_delete=self._on_configmap)

    @classmethod
    def from_context(cls, ctx: Any) -> RootCACertPublisher:
        """Built by the manager; option: root_ca_file."""
        return cls(ctx.client, ctx.factory, root_ca_from_context(ctx), clock=ctx.clock)

    def _on_namespace(self, namespace: dict) -> None:
        self.queue.add(namespace["metadata"]["name"])

    def _on_configmap(self, configmap: dict | DeletedFinalStateUnknown) -> None:
        obj = configmap.obj if isinstance(configmap, DeletedFinalStateUnknown) else configmap
        self.queue.add(obj["metadata"]["namespace"])

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get_by_name(namespace)
        if ns is None or _terminating(ns):
            return
        current = self.configmaps.get_by_name(CONFIGMAP, namespace)
        try:
            if current is None:
                await self.client.create(desired_configmap(namespace, self.root_ca))
                log.info("root-ca publisher: created %s/%s", namespace, CONFIGMAP)
            elif needs_update(current, self.root_ca):
                updated = dict(current)
                updated["data"] = {DATA_KEY: self.root_ca}
                updated["metadata"] = {**current["metadata"], "annotations": {
                    **(current["metadata"].get("annotations") or {}), DESCRIPTION_ANNOTATION: DESCRIPTION}}
                await self.client.update(updated)
                log.info("root-ca publisher: updated %s/%s", namespace, CONFIGMAP)
        except APIStatusError as exc:
            if is_already_exists(exc) or is_conflict(exc):
                # Our cache lagged a write; the informer event that follows brings us back here.
                self.queue.add_rate_limited(namespace)
                return
            if is_not_found(exc) or exc.code == 403:  # the namespace went away or began terminating
                return
            raise
