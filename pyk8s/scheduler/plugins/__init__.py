"""The in-tree plugins (one module each) and the registry that builds them by name from a profile.

Default order and weights follow upstream's default profile (the volume plugins do not exist here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyk8s.api.selectors import LabelSelector

from .balanced_allocation import BalancedAllocation
from .base import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    NamespaceLabels,
    PodInfo,
    Status,
    error,
    required_node_affinity_matches,
    term_matches,
    tolerated,
    tolerates,
    unresolvable,
    unschedulable,
)
from .image_locality import ImageLocality
from .inter_pod_affinity import InterPodAffinity
from .node_affinity import NodeAffinity
from .node_name import NodeName
from .node_ports import NodePorts
from .node_resources_fit import ArgsError, NodeResourcesFit
from .node_unschedulable import NodeUnschedulable
from .pod_topology_spread import PodTopologySpread
from .scheduling_gates import SchedulingGates
from .taint_toleration import TaintToleration


@dataclass
class PluginHandle:
    """What plugins may read from the cluster besides nodes and pods (the scheduler's listers)."""

    namespace_labels: NamespaceLabels = lambda name: None
    default_selector: Callable[[Mapping], LabelSelector | None] = lambda pod: None


Factory = Callable[[Mapping, PluginHandle], Any]

REGISTRY: dict[str, Factory] = {
    "SchedulingGates": lambda args, h: SchedulingGates(),
    "NodeUnschedulable": lambda args, h: NodeUnschedulable(),
    "NodeName": lambda args, h: NodeName(),
    "TaintToleration": lambda args, h: TaintToleration(),
    "NodeAffinity": lambda args, h: NodeAffinity(),
    "NodePorts": lambda args, h: NodePorts(),
    "NodeResourcesFit": lambda args, h: NodeResourcesFit(args),
    "PodTopologySpread": lambda args, h: PodTopologySpread(args, h.default_selector),
    "InterPodAffinity": lambda args, h: InterPodAffinity(args, h.namespace_labels),
    "NodeResourcesBalancedAllocation": lambda args, h: BalancedAllocation(),
    "ImageLocality": lambda args, h: ImageLocality(),
}

# Plugins that exist upstream and are accepted in a configuration but have no separate object here:
# PrioritySort is the queue's order, DefaultPreemption the PostFilter, DefaultBinder the binding call.
BUILT_IN = ("PrioritySort", "DefaultPreemption", "DefaultBinder")

# upstream's default profile: (name, score weight or 0 when the plugin does not score)
DEFAULT_PLUGINS: tuple[tuple[str, int], ...] = (
    ("SchedulingGates", 0), ("PrioritySort", 0), ("NodeUnschedulable", 0), ("NodeName", 0),
    ("TaintToleration", 3), ("NodeAffinity", 2), ("NodePorts", 0), ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2), ("InterPodAffinity", 2), ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1), ("DefaultBinder", 0),
)


def default_filters(handle: PluginHandle | None = None) -> list:
    handle = handle or PluginHandle()
    plugins = [REGISTRY[name]({}, handle) for name, _ in DEFAULT_PLUGINS if name in REGISTRY]
    return [p for p in plugins if hasattr(p, "filter")]


def default_scorers(handle: PluginHandle | None = None) -> list:
    handle = handle or PluginHandle()
    return [REGISTRY[name]({}, handle) for name, weight in DEFAULT_PLUGINS if weight]


__all__ = ["MAX_NODE_SCORE", "ArgsError", "BalancedAllocation", "Code", "CycleState", "ImageLocality",
           "InterPodAffinity", "NodeAffinity", "NodeName", "NodePorts", "NodeResourcesFit", "NodeUnschedulable",
           "PluginHandle", "PodInfo", "PodTopologySpread", "REGISTRY", "SchedulingGates", "Status",
           "TaintToleration", "default_filters", "default_scorers", "error", "required_node_affinity_matches",
           "term_matches", "tolerated", "tolerates", "unresolvable", "unschedulable", "BUILT_IN",
           "DEFAULT_PLUGINS"]
