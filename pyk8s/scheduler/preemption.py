"""DefaultPreemption (PostFilter): choose a node where evicting lower-priority pods lets the pod fit.

This module decides (CPU only); the scheduler carries the decision out (DisruptionTarget condition, delete,
event, nominatedNodeName). Upstream's order: eligibility; candidates are the nodes that failed with a
resolvable status; per node a dry run removes every lower-priority pod, checks the fit, then gives pods back
most important first (PDB-violating ones first) while the pod still fits; the candidate with the fewest PDB
violations, then the lowest highest-victim priority, the smallest priority sum, the fewest victims and the
latest start of its most important victims wins.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyk8s.api.selectors import SelectorError, label_selector_from_object

from .cache import NodeInfo
from .framework import NO_VICTIMS, FitError, Framework, Nominator, preemption_message
from .plugins import Code, CycleState, PodInfo, Status, unresolvable
from .plugins.node_resources_fit import ArgsError

NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
INT32_OFFSET = 2**31  # upstream adds MaxInt32+1 so that negative priorities sum up as positive numbers


def priority(pod: Mapping) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def start_time(pod: Mapping) -> str:
    return (pod.get("status") or {}).get("startTime") or (pod.get("metadata") or {}).get("creationTimestamp") or ""


def terminating_by_preemption(pod: Mapping) -> bool:
    """Being deleted after the scheduler preempted it (a DisruptionTarget condition PreemptionByScheduler)."""
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
               and c.get("reason") == "PreemptionByScheduler" for c in conditions)


def importance(pod: Mapping) -> tuple[int, str]:
    """Sort key, most important first: higher priority, then the earlier start."""
    return -priority(pod), start_time(pod)


@dataclass
class Candidate:
    node: str
    victims: list[dict] = field(default_factory=list)
    pdb_violations: int = 0

    def rank(self) -> tuple:
        top = max(priority(v) for v in self.victims) if self.victims else -INT32_OFFSET
        earliest_of_top = min((start_time(v) for v in self.victims if priority(v) == top), default="")
        # the latest earliest-start wins, so invert it for min(): later strings sort first when negated
        return (self.pdb_violations, top, sum(priority(v) + INT32_OFFSET for v in self.victims), len(self.victims),
                _Descending(earliest_of_top))


class _Descending:
    def __init__(self, value: str):
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value


@dataclass
class PreemptionResult:
    candidate: Candidate | None
    message: str  # the PostFilter message appended to the FitError ("" when a candidate was found)


PDBLister = Callable[[str], list[dict]]  # namespace -> PodDisruptionBudgets


class DefaultPreemption:
    name = "DefaultPreemption"

    def __init__(self, args: Mapping | None = None, pdbs: PDBLister | None = None,
                 rng: random.Random | None = None):
        args = args or {}
        self.min_candidate_percentage = int(args.get("minCandidateNodesPercentage", 10))
        self.min_candidate_absolute = int(args.get("minCandidateNodesAbsolute", 100))
        if not 0 <= self.min_candidate_percentage <= 100:
            raise ArgsError("minCandidateNodesPercentage: Invalid value: not in valid range [0, 100]")
        if self.min_candidate_absolute < 0:
            raise ArgsError("minCandidateNodesAbsolute: Invalid value: not in valid range [0, inf)")
        if self.min_candidate_percentage == 0 and self.min_candidate_absolute == 0:
            raise ArgsError("minCandidateNodesPercentage: Invalid value: cannot be zero at the same time as "
                            "minCandidateNodesAbsolute")
        self.pdbs: PDBLister = pdbs or (lambda namespace: [])
        self.rng = rng or random.Random()

    # ---- eligibility -----------------------------------------------------------------------

    def ineligible_reason(self, pod: PodInfo, nodes: Mapping[str, NodeInfo], fit: FitError) -> str | None:
        if pod.spec.get("preemptionPolicy") == "Never":
            return NOT_ELIGIBLE_NEVER
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        node = nodes.get(nominated) if nominated else None
        status = fit.node_statuses.get(nominated or "")
        if status is not None and status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            node = None  # the nominated node can no longer work: preempting elsewhere is fine
        if node is not None:
            for other in node.pods.values():
                if priority(other) < pod.priority and terminating_by_preemption(other):
                    return NOT_ELIGIBLE_TERMINATING  # our victims are still going away: wait for them
        return None

    # ---- the decision ----------------------------------------------------------------------

    def preempt(self, framework: Framework, state: CycleState, pod: PodInfo, fit: FitError, nodes: list[NodeInfo],
                nominator: Nominator | None = None) -> PreemptionResult:
        by_name = {n.name: n for n in nodes}
        reason = self.ineligible_reason(pod, by_name, fit)
        if reason is not None:
            return PreemptionResult(None, "preemption: " + reason)
        potential = [by_name[name] for name, status in fit.node_statuses.items()
                     if status.code is Code.UNSCHEDULABLE and name in by_name]
        if not potential:
            return PreemptionResult(None, preemption_message(fit))
        wanted = min(max(len(nodes) * self.min_candidate_percentage // 100, self.min_candidate_absolute),
                     len(potential))
        offset = self.rng.randrange(len(potential))
        candidates: list[Candidate] = []
        dry_run: dict[str, Status] = {}
        for i in range(len(potential)):
            node = potential[(offset + i) % len(potential)]
            candidate, status = self.select_victims(framework, state, pod, node, nominator)
            if candidate is None:
                assert status is not None
                dry_run[node.name] = status
                continue
            candidates.append(candidate)
            if len(candidates) >= wanted:
                break
        if not candidates:
            return PreemptionResult(None, preemption_message(fit, dry_run))
        return PreemptionResult(min(candidates, key=Candidate.rank), "")

    def select_victims(self, framework: Framework, state: CycleState, pod: PodInfo, node: NodeInfo,
                       nominator: Nominator | None) -> tuple[Candidate | None, Status | None]:
        """The fewest lower-priority pods on `node` whose removal lets `pod` fit (a dry run on copies)."""
        lower = [p for p in node.pods.values() if priority(p) < pod.priority]
        if not lower:
            return None, unresolvable(NO_VICTIMS)
        trial, trial_state = node.clone(), state.clone()
        for other in lower:
            trial.remove_pod(other)
            framework.remove_pod(trial_state, pod, other, trial)
        status = framework.run_filters_with_nominated(trial_state, pod, trial, nominator)
        if status is not None:
            return None, status
        lower.sort(key=importance)
        violating, non_violating = self.split_by_pdb(lower)
        victims: list[dict] = []
        violations = 0

        def reprieve(other: dict) -> bool:
            """Give `other` back; True when the pod then no longer fits (so `other` must go)."""
            trial.add_pod(other)
            framework.add_pod(trial_state, pod, other, trial)
            if framework.run_filters_with_nominated(trial_state, pod, trial, nominator) is None:
                return False
            trial.remove_pod(other)
            framework.remove_pod(trial_state, pod, other, trial)
            victims.append(other)
            return True

        for other in violating:
            if reprieve(other):
                violations += 1
        for other in non_violating:
            reprieve(other)
        victims.sort(key=importance)
        return Candidate(node.name, victims, violations), None

    def split_by_pdb(self, pods: list[dict]) -> tuple[list[dict], list[dict]]:
        """Pods whose eviction would exceed a PodDisruptionBudget's allowed disruptions, and the others."""
        allowed: dict[str, int] = {}
        violating, non_violating = [], []
        for pod in pods:
            meta = pod.get("metadata") or {}
            breaks = False
            for pdb in self.pdbs(meta.get("namespace", "")):
                selector_obj = (pdb.get("spec") or {}).get("selector")
                try:
                    selector = label_selector_from_object(selector_obj)
                except SelectorError:
                    continue
                if selector.empty or not selector.matches(meta.get("labels") or {}):
                    continue  # a PDB without a selector protects nothing
                status = pdb.get("status") or {}
                if meta.get("name") in (status.get("disruptedPods") or {}):
                    continue  # already counted by the disruption controller
                key = (pdb.get("metadata") or {}).get("uid") or (pdb.get("metadata") or {}).get("name", "")
                allowed[key] = allowed.get(key, int(status.get("disruptionsAllowed") or 0)) - 1
                if allowed[key] < 0:
                    breaks = True
            (violating if breaks else non_violating).append(pod)
        return violating, non_violating
