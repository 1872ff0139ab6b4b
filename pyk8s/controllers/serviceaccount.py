"""The service-account controller (upstream pkg/controller/serviceaccount): every active namespace
has a ServiceAccount named `default`; it is created with the namespace and again if deleted."""

from __future__ import annotations

import logging
from typing import Any

from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    SharedInformerFactory,
    WorkQueue,
    is_already_exists,
    is_not_found,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter

log = logging.getLogger("pyk8s.controllers.serviceaccount")

NAME = "serviceaccount-controller"
DEFAULT_NAMES = ("default",)


def _terminating(namespace: dict) -> bool:
    return (namespace.get("status") or {}).get("phase") == "Terminating" or bool(
        namespace["metadata"].get("deletionTimestamp"))


class ServiceAccountsController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *,
                 service_accounts: tuple[str, ...] = DEFAULT_NAMES, clock: Clock = REAL_CLOCK):
        self.client = client
        self.service_accounts = service_accounts
        self.namespaces = factory.informer("namespaces")
        self.accounts = factory.informer("serviceaccounts")
        self.queue: WorkQueue[str] = WorkQueue(NAME, rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=1, queue=self.queue, clock=clock,
                                                      wait_for=(self.namespaces.wait_for_sync,
                                                                self.accounts.wait_for_sync))
        self.namespaces.add_handler(on_add=self._on_namespace, on_update=lambda _old, new: self._on_namespace(new))
        self.accounts.add_handler(on_delete=self._on_account_deleted)

    @classmethod
    def from_context(cls, ctx: Any) -> ServiceAccountsController:
        return cls(ctx.client, ctx.factory, clock=ctx.clock)

    def _on_namespace(self, namespace: dict) -> None:
        self.queue.add(namespace["metadata"]["name"])

    def _on_account_deleted(self, account: dict | DeletedFinalStateUnknown) -> None:
        obj = account.obj if isinstance(account, DeletedFinalStateUnknown) else account
        if obj["metadata"]["name"] in self.service_accounts:
            self.queue.add(obj["metadata"]["namespace"])

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get_by_name(namespace)
        if ns is None or _terminating(ns):
            return
        for name in self.service_accounts:
            if self.accounts.get_by_name(name, namespace) is not None:
                continue
            try:
                await self.client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": name, "namespace": namespace}})
            except APIStatusError as exc:
                # Already there (our cache lagged), or the namespace went away / began terminating meanwhile.
                if is_already_exists(exc) or is_not_found(exc) or exc.code == 403:
                    continue
                raise
            log.info("serviceaccount: created %s/%s", namespace, name)
