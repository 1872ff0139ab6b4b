"""What the scheduler reads besides nodes and pods: namespace labels (namespaceSelector), the selectors of
a pod's Services and controller (default topology spread) and PodDisruptionBudgets (preemption).
A pod's priority is spec.priority, which Priority admission sets from its PriorityClass."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pyk8s.api.selectors import LabelSelector, Requirement, SelectorError, label_selector_from_object
from pyk8s.client import SharedInformerFactory

log = logging.getLogger(__name__)

_CONTROLLERS = {("v1", "ReplicationController"): "replicationcontrollers",
                ("apps/v1", "ReplicaSet"): "replicasets", ("apps/v1", "StatefulSet"): "statefulsets"}


class ClusterListers:
    def __init__(self, factory: SharedInformerFactory):
        self.namespaces = factory.informer("namespaces")
        self.services = factory.informer("services")
        self.controllers = {kind: factory.informer(plural) for kind, plural in _CONTROLLERS.items()}
        self.pdbs_informer = factory.informer("poddisruptionbudgets")

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        ns = self.namespaces.get(name)
        return ((ns.get("metadata") or {}).get("labels") or {}) if ns is not None else None

    def pdbs(self, namespace: str) -> list[dict]:
        return self.pdbs_informer.list(namespace)

    def default_selector(self, pod: Mapping) -> LabelSelector | None:
        """The union of the selectors of the Services that select the pod and of its controller."""
        meta = pod.get("metadata") or {}
        namespace, labels = meta.get("namespace", ""), meta.get("labels") or {}
        requirements: dict[str, Requirement] = {}
        for svc in self.services.list(namespace):
            selector = (svc.get("spec") or {}).get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                for k, v in selector.items():
                    requirements[f"{k}=" + v] = Requirement(k, "=", (v,))
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        informer = self.controllers.get((owner.get("apiVersion"), owner.get("kind"))) if owner else None
        if owner is not None and informer is not None:
            controller = informer.get(f"{namespace}/{owner.get('name', '')}")
            spec = (controller or {}).get("spec") or {}
            try:
                if owner.get("kind") == "ReplicationController":
                    for k, v in (spec.get("selector") or {}).items():
                        requirements[f"{k}=" + v] = Requirement(k, "=", (v,))
                elif spec.get("selector") is not None:
                    for r in label_selector_from_object(spec["selector"]).requirements:
                        requirements[str(r)] = r
            except SelectorError as exc:
                log.warning("scheduler: controller of pod %s/%s has an invalid selector: %s", namespace,
                            meta.get("name"), exc)
        if not requirements:
            return None
        return LabelSelector(tuple(sorted(requirements.values(), key=lambda r: r.key)))
