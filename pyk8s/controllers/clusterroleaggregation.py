"""The ClusterRole aggregation controller (upstream pkg/controller/clusterroleaggregation).

A ClusterRole with an aggregationRule owns no rules of its own: its rules are the union of the
rules of every other ClusterRole matched by any of its clusterRoleSelectors, taken in name order
with duplicates dropped. Any ClusterRole change re-syncs every aggregated ClusterRole, and a
ClusterRole whose rules already equal the union is left untouched.
"""

from __future__ import annotations

import logging
from typing import Any

from ..api.selectors import SelectorError, label_selector_from_object
from ..client import APIClient, Controller, DeletedFinalStateUnknown, SharedInformerFactory, WorkQueue, is_not_found
from ..client.api import APIStatusError
from ..client.workqueue import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.controllers.clusterroleaggregation")

NAME = "clusterrole-aggregation-controller"
CLUSTER_ROLES = ("rbac.authorization.k8s.io", "v1", "clusterroles")


def aggregated_rules(role: dict, cluster_roles: list[dict]) -> list[dict]:
    """The union of the rules of the ClusterRoles `role`'s aggregationRule selects, in name order."""
    selected: dict[str, dict] = {}
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        matches = label_selector_from_object(selector)
        for other in cluster_roles:
            meta = other["metadata"]
            if meta["name"] != role["metadata"]["name"] and matches.matches(meta.get("labels")):
                selected[meta["name"]] = other
    rules: list[dict] = []
    for name in sorted(selected):
        for rule in selected[name].get("rules") or []:
            if rule not in rules:
                rules.append(rule)
    return rules


class ClusterRoleAggregationController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, *, workers: int = 5,
                 clock: Clock = REAL_CLOCK):
        self.client = client
        self.cluster_roles = factory.informer(CLUSTER_ROLES)
        self.queue: WorkQueue[str] = WorkQueue(NAME, clock=clock)
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=workers, queue=self.queue,
                                                      clock=clock, wait_for=(self.cluster_roles.wait_for_sync,))
        self.cluster_roles.add_handler(on_add=self._enqueue_aggregated,
                                       on_update=lambda _old, new: self._enqueue_aggregated(new),
                                       on_delete=self._enqueue_aggregated)

    @classmethod
    def from_context(cls, ctx: Any) -> ClusterRoleAggregationController:
        return cls(ctx.client, ctx.factory, clock=ctx.clock)

    def _enqueue_aggregated(self, _changed: dict | DeletedFinalStateUnknown) -> None:
        """Any ClusterRole change may alter any aggregation, so every aggregated role is looked at again."""
        for role in self.cluster_roles.list():
            if role.get("aggregationRule"):
                self.queue.add(role["metadata"]["name"])

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, name: str) -> None:
        role = self.cluster_roles.get_by_name(name)
        if role is None or not role.get("aggregationRule"):
            return
        try:
            rules = aggregated_rules(role, self.cluster_roles.list())
        except SelectorError as exc:
            log.warning("clusterrole aggregation: %s has an invalid selector: %s", name, exc)
            return
        if rules == (role.get("rules") or []):
            return
        updated = {**role, "rules": rules}
        log.info("clusterrole aggregation: updating the rules of %s (%d rules)", name, len(rules))
        try:
            await self.client.update(updated, resource=CLUSTER_ROLES)
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            raise  # a conflict: the controller requeues and reads the newer role from the informer
