"""Priority (upstream plugin/pkg/admission/priority): a pod's priorityClassName becomes its
integer priority and preemption policy; pods without one get the global default class (or 0);
only one PriorityClass may be the global default. The two system classes exist from the start
(upstream's priority bootstrap post-start hook)."""

from __future__ import annotations

import copy
import logging

from ...api.errors import APIError
from .interfaces import CREATE, UPDATE, AdmissionPlugin, Attributes
from .state import ClusterState

log = logging.getLogger("pyk8s.apiserver.admission.priority")

DEFAULT_PRIORITY = 0  # when no class is the global default
DEFAULT_PREEMPTION = "PreemptLowerPriority"
SYSTEM_PRIORITY_CLASSES = (
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-node-critical"},
     "value": 2000001000,
     "description": "Used for system critical pods that must not be moved from their current node."},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-cluster-critical"},
     "value": 2000000000,
     "description": "Used for system critical pods that must run in the cluster, but can be moved to another "
                    "node if necessary."},
)


def global_default(classes: list[dict]) -> dict | None:
    """The global default class; if a race left several, the lowest value wins (as upstream)."""
    best = None
    for pc in classes:
        if pc.get("globalDefault") and (best is None or pc.get("value", 0) < best.get("value", 0)):
            best = pc
    return best


class Priority(AdmissionPlugin):
    name = "Priority"
    mutating = True
    validating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.classes = state.kind("scheduling.k8s.io", "v1", "PriorityClass")

    def handles(self, attrs: Attributes) -> bool:
        if attrs.subresource or attrs.operation not in (CREATE, UPDATE) or attrs.obj is None:
            return False
        return attrs.is_pod() or attrs.resource == ("scheduling.k8s.io", "priorityclasses")

    async def admit(self, attrs: Attributes) -> None:
        if not attrs.is_pod():
            return
        spec = attrs.obj.setdefault("spec", {})  # type: ignore[union-attr]
        if attrs.operation == UPDATE:
            # Set on create; an update that leaves it out keeps it (validation forbids changing it).
            old_priority = ((attrs.old or {}).get("spec") or {}).get("priority")
            if spec.get("priority") is None and old_priority is not None:
                spec["priority"] = old_priority
            return
        class_name = spec.get("priorityClassName", "")
        if not class_name:
            default = global_default(self.state.list(self.classes))
            if default is not None:
                spec["priorityClassName"] = default["metadata"]["name"]
                priority, preemption = default.get("value", 0), default.get("preemptionPolicy") or DEFAULT_PREEMPTION
            else:
                priority, preemption = DEFAULT_PRIORITY, DEFAULT_PREEMPTION
        else:
            pc = await self.state.get(self.classes, "", class_name)
            if pc is None:
                raise attrs.forbidden(f"no PriorityClass with name {class_name} was found")
            priority, preemption = pc.get("value", 0), pc.get("preemptionPolicy") or DEFAULT_PREEMPTION
        if spec.get("priority") is not None and spec["priority"] != priority:
            raise attrs.forbidden(f"the integer value of priority ({spec['priority']}) must not be provided in pod "
                                  f"spec; priority admission controller computed {priority} from the given "
                                  "PriorityClass name")
        spec["priority"] = priority
        if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != preemption:
            raise attrs.forbidden(f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                                  f"provided in pod spec; priority admission controller computed {preemption} from "
                                  "the given PriorityClass name")
        spec["preemptionPolicy"] = preemption

    async def validate(self, attrs: Attributes) -> None:
        if attrs.is_pod() or not attrs.obj.get("globalDefault"):  # type: ignore[union-attr]
            return
        default = global_default(self.state.list(self.classes))
        if default is None:
            return
        if attrs.operation == CREATE or default["metadata"]["name"] != attrs.name:
            raise attrs.forbidden(f"PriorityClass {default['metadata']['name']} is already marked as default. "
                                  "Only one default can exist")


async def ensure_system_priority_classes(rest) -> None:
    """Create the system classes where they are missing (upstream's priority bootstrap hook)."""
    from ..rest import WriteOptions  # here, not at the top: rest imports the admission package

    kind = ClusterState.kind("scheduling.k8s.io", "v1", "PriorityClass")
    for template in SYSTEM_PRIORITY_CLASSES:
        name = template["metadata"]["name"]
        if rest.cache.cache_for(kind).objects.get(kind.key("", name)) is not None:
            continue
        try:
            await rest.create(kind, "", copy.deepcopy(template), WriteOptions(field_manager="kube-apiserver"))
            log.info("created priorityclass %s", name)
        except APIError as exc:
            if exc.code != 409:
                raise
