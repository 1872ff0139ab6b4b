"""InterPodAffinity: required and preferred pod affinity / anti-affinity, including the anti-affinity of the
pods already running.

PreFilter counts, once per cycle, matching pods per (topologyKey, value): for the incoming pod's required
affinity terms, its required anti-affinity terms, and the existing pods' required anti-affinity terms that
match the incoming pod. Filter is then a few dict look-ups per node. PreScore likewise sums term weights per
topology value, and Score adds up the node's values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyk8s.api.selectors import LabelSelector, SelectorError, label_selector_from_object, new_requirement

from ..cache import NodeInfo, affinity_nodes, pod_uid
from .base import (
    MAX_NODE_SCORE,
    CycleState,
    NamespaceLabels,
    PodInfo,
    Status,
    error,
    skip,
    unresolvable,
    unschedulable,
)

log = logging.getLogger(__name__)

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"

Counts = dict[str, dict[str, int]]  # topologyKey -> value -> matching pods


@dataclass(frozen=True)
class AffinityTerm:
    """One pod (anti-)affinity term with its selectors parsed and matchLabelKeys merged in."""

    selector: LabelSelector
    namespaces: frozenset[str]
    namespace_selector: LabelSelector
    topology_key: str
    weight: int = 0

    def matches(self, pod: Mapping, namespace_labels: Mapping[str, str] | None) -> bool:
        meta = pod.get("metadata") or {}
        if meta.get("namespace", "") not in self.namespaces and not (
                namespace_labels is not None and self.namespace_selector.matches(namespace_labels)):
            return False
        return self.selector.matches(meta.get("labels") or {})


def compile_term(term: Mapping, owner: Mapping, weight: int = 0) -> AffinityTerm:
    """Raises SelectorError for an invalid selector."""
    meta = owner.get("metadata") or {}
    labels = meta.get("labels") or {}
    selector = label_selector_from_object(term.get("labelSelector"))
    extra = [new_requirement(key, "in", [labels[key]]) for key in term.get("matchLabelKeys") or () if key in labels]
    extra += [new_requirement(key, "notin", [labels[key]]) for key in term.get("mismatchLabelKeys") or ()
              if key in labels]
    if extra and not selector.nothing:
        selector = LabelSelector(tuple(sorted((*selector.requirements, *extra), key=lambda r: r.key)))
    namespaces = frozenset(term.get("namespaces") or ())
    ns_selector_obj = term.get("namespaceSelector")
    ns_selector = label_selector_from_object(ns_selector_obj)
    if not namespaces and ns_selector_obj is None:
        namespaces = frozenset({meta.get("namespace", "")})
    return AffinityTerm(selector, namespaces, ns_selector, term.get("topologyKey", ""), weight)


@dataclass
class PodTerms:
    """All terms of one pod, compiled."""

    required_affinity: list[AffinityTerm] = field(default_factory=list)
    required_anti_affinity: list[AffinityTerm] = field(default_factory=list)
    preferred_affinity: list[AffinityTerm] = field(default_factory=list)
    preferred_anti_affinity: list[AffinityTerm] = field(default_factory=list)

    @classmethod
    def of(cls, pod: Mapping) -> PodTerms:
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        pa, paa = affinity.get("podAffinity") or {}, affinity.get("podAntiAffinity") or {}
        return cls([compile_term(t, pod) for t in pa.get(REQUIRED) or ()],
                   [compile_term(t, pod) for t in paa.get(REQUIRED) or ()],
                   [compile_term(w.get("podAffinityTerm") or {}, pod, int(w.get("weight") or 0))
                    for w in pa.get(PREFERRED) or ()],
                   [compile_term(w.get("podAffinityTerm") or {}, pod, int(w.get("weight") or 0))
                    for w in paa.get(PREFERRED) or ()])

    @property
    def empty(self) -> bool:
        return not (self.required_affinity or self.required_anti_affinity or self.preferred_affinity
                    or self.preferred_anti_affinity)


def _bump(counts: Counts, node: NodeInfo, key: str, delta: int) -> None:
    value = node.labels.get(key)
    if value is None:
        return
    by_value = counts.setdefault(key, {})
    by_value[value] = by_value.get(value, 0) + delta


@dataclass
class PreFilterState:
    terms: PodTerms
    namespace_labels: Mapping[str, str] | None  # of the incoming pod's namespace
    existing_anti_affinity: Counts = field(default_factory=dict)
    affinity: Counts = field(default_factory=dict)
    anti_affinity: Counts = field(default_factory=dict)

    def clone(self) -> PreFilterState:
        return PreFilterState(self.terms, self.namespace_labels,
                              {k: dict(v) for k, v in self.existing_anti_affinity.items()},
                              {k: dict(v) for k, v in self.affinity.items()},
                              {k: dict(v) for k, v in self.anti_affinity.items()})


class InterPodAffinity:
    name = "InterPodAffinity"
    weight = 2
    events = frozenset({"AssignedPodAdd", "AssignedPodUpdate", "AssignedPodDelete", "NodeAdd", "NodeUpdate"})

    def __init__(self, args: Mapping | None = None, namespace_labels: NamespaceLabels | None = None):
        args = args or {}
        self.hard_pod_affinity_weight = int(args.get("hardPodAffinityWeight", 1))
        self.ignore_preferred_of_existing = bool(args.get("ignorePreferredTermsOfExistingPods", False))
        self.namespace_labels: NamespaceLabels = namespace_labels or (lambda name: None)

    @staticmethod
    def terms_of(pod: dict, node: NodeInfo) -> PodTerms | None:
        """The compiled terms of a pod placed on `node`, compiled once while it stays there."""
        uid = pod_uid(pod)
        terms = node.derived.get(uid)
        if isinstance(terms, PodTerms):
            return terms
        try:
            terms = PodTerms.of(pod)
        except SelectorError as exc:  # an invalid term of a running pod cannot block everyone else
            log.warning("InterPodAffinity: ignoring the affinity of pod %s: %s", uid, exc)
            return None
        if uid in node.pods:
            node.derived[uid] = terms
        return terms

    # ---- filter ----------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        try:
            terms = PodTerms.of(pod.pod)
        except SelectorError as exc:
            return error(f"parsing pod affinity terms: {exc}")
        ns_labels = self.namespace_labels(pod.namespace)
        s = PreFilterState(terms, ns_labels)
        state[self.name] = s
        for node in affinity_nodes(nodes)[1]:
            for other in node.pods_with_required_anti_affinity.values():
                self._count_existing_anti_affinity(s, pod.pod, other, node, 1)
        if terms.required_affinity or terms.required_anti_affinity:
            ns_cache: dict[str, Mapping[str, str] | None] = {}
            for node in nodes:
                if node.pods:
                    for other in node.pods.values():
                        self._count_incoming(s, other, node, 1, ns_cache)
        if not (terms.required_affinity or terms.required_anti_affinity or s.existing_anti_affinity):
            return skip()  # nothing can fail (a preemption dry run only removes pods, so this holds there)
        return None

    def _count_existing_anti_affinity(self, s: PreFilterState, incoming: dict, other: dict, node: NodeInfo,
                                      delta: int) -> None:
        other_terms = self.terms_of(other, node)
        if other_terms is None:
            return
        for term in other_terms.required_anti_affinity:
            if term.matches(incoming, s.namespace_labels):
                _bump(s.existing_anti_affinity, node, term.topology_key, delta)

    def _count_incoming(self, s: PreFilterState, other: dict, node: NodeInfo, delta: int,
                        ns_cache: dict[str, Mapping[str, str] | None]) -> None:
        namespace = (other.get("metadata") or {}).get("namespace", "")
        if namespace not in ns_cache:
            ns_cache[namespace] = self.namespace_labels(namespace)
        ns_labels = ns_cache[namespace]
        affinity = s.terms.required_affinity
        if affinity and all(t.matches(other, ns_labels) for t in affinity):
            for term in affinity:
                _bump(s.affinity, node, term.topology_key, delta)
        for term in s.terms.required_anti_affinity:
            if term.matches(other, ns_labels):
                _bump(s.anti_affinity, node, term.topology_key, delta)

    def _update(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo, delta: int) -> None:
        s: PreFilterState | None = state.get(self.name)
        if s is None:
            return
        self._count_existing_anti_affinity(s, pod.pod, other, node, delta)
        self._count_incoming(s, other, node, delta, {})

    def add_pod(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo) -> None:
        self._update(state, pod, other, node, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo) -> None:
        self._update(state, pod, other, node, -1)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: PreFilterState = state[self.name]
        labels = node.labels
        if s.terms.required_affinity and not self._affinity_satisfied(s, pod, labels):
            return unresolvable(AFFINITY_REASON)
        for term in s.terms.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and s.anti_affinity.get(term.topology_key, {}).get(value, 0) > 0:
                return unschedulable(ANTI_AFFINITY_REASON)
        for key, by_value in s.existing_anti_affinity.items():
            value = labels.get(key)
            if value is not None and by_value.get(value, 0) > 0:
                return unschedulable(EXISTING_ANTI_AFFINITY_REASON)
        return None

    @staticmethod
    def _affinity_satisfied(s: PreFilterState, pod: PodInfo, labels: Mapping[str, str]) -> bool:
        pods_exist = True
        for term in s.terms.required_affinity:
            value = labels.get(term.topology_key)
            if value is None:
                return False  # every topology key must be on the node
            if s.affinity.get(term.topology_key, {}).get(value, 0) <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # The first pod of a group with affinity to itself: no pod anywhere matches, but it matches its own
        # terms, so it may go anywhere that has the topology keys (else such groups could never start).
        no_matches = not any(v > 0 for by_value in s.affinity.values() for v in by_value.values())
        return no_matches and all(t.matches(pod.pod, s.namespace_labels) for t in s.terms.required_affinity)

    # ---- score -----------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo], nodes: list[NodeInfo]) -> bool:
        s: PreFilterState | None = state.get(self.name)
        terms = s.terms if s is not None else PodTerms.of(pod.pod)
        ns_labels = s.namespace_labels if s is not None else self.namespace_labels(pod.namespace)
        has_preferred = bool(terms.preferred_affinity or terms.preferred_anti_affinity)
        scores: Counts = {}
        ns_cache: dict[str, Mapping[str, str] | None] = {}
        for node in nodes if has_preferred else affinity_nodes(nodes)[0]:
            others: Iterable[dict] = node.pods.values() if has_preferred else node.pods_with_affinity.values()
            for other in others:
                self._score_pair(scores, pod, ns_labels, terms, other, node, ns_cache)
        state[self.name + "/score"] = scores
        return bool(scores)

    def _score_pair(self, scores: Counts, pod: PodInfo, ns_labels: Mapping[str, str] | None, terms: PodTerms,
                    other: dict, node: NodeInfo, ns_cache: dict[str, Mapping[str, str] | None]) -> None:
        if terms.preferred_affinity or terms.preferred_anti_affinity:
            namespace = (other.get("metadata") or {}).get("namespace", "")
            if namespace not in ns_cache:
                ns_cache[namespace] = self.namespace_labels(namespace)
            other_ns_labels = ns_cache[namespace]
            for term in terms.preferred_affinity:
                if term.matches(other, other_ns_labels):
                    _bump(scores, node, term.topology_key, term.weight)
            for term in terms.preferred_anti_affinity:
                if term.matches(other, other_ns_labels):
                    _bump(scores, node, term.topology_key, -term.weight)
        other_terms = self.terms_of(other, node)
        if other_terms is None:
            return
        if self.hard_pod_affinity_weight > 0:
            for term in other_terms.required_affinity:
                if term.matches(pod.pod, ns_labels):
                    _bump(scores, node, term.topology_key, self.hard_pod_affinity_weight)
        if self.ignore_preferred_of_existing:
            return
        for term in other_terms.preferred_affinity:
            if term.matches(pod.pod, ns_labels):
                _bump(scores, node, term.topology_key, term.weight)
        for term in other_terms.preferred_anti_affinity:
            if term.matches(pod.pod, ns_labels):
                _bump(scores, node, term.topology_key, -term.weight)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        labels = node.labels
        total = 0
        for key, by_value in state[self.name + "/score"].items():
            value = labels.get(key)
            if value is not None:
                total += by_value.get(value, 0)
        return total

    def normalize(self, state: CycleState, scores: dict[str, int]) -> None:
        if not scores:
            return
        low, high = min(scores.values()), max(scores.values())
        spread = high - low
        for name, s in scores.items():
            scores[name] = int(MAX_NODE_SCORE * (s - low) / spread) if spread > 0 else 0
