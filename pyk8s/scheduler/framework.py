"""One scheduling decision: filter every node, score the feasible ones, pick the best; explain failures."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from .cache import NodeInfo
from .plugins import Code, FilterPlugin, PodInfo, ScorePlugin, Status, default_filters, default_scorers

NO_NODE_AVAILABLE = "0/{} nodes are available"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass
class FitError:
    """Why no node fits: the first failing filter's status per node (upstream's Diagnosis)."""

    num_all_nodes: int
    node_statuses: dict[str, Status] = field(default_factory=dict)
    post_filter_msg: str = ""

    @property
    def unschedulable_plugins(self) -> set[str]:
        return {s.plugin for s in self.node_statuses.values()}

    def message(self) -> str:
        msg = NO_NODE_AVAILABLE.format(self.num_all_nodes) + ":"
        histogram: Counter[str] = Counter()
        for status in self.node_statuses.values():
            histogram.update(status.reasons)
        reasons = sorted(f"{count} {reason}" for reason, count in histogram.items())
        if reasons:
            msg += f" {', '.join(reasons)}."
        if self.post_filter_msg:
            msg += f" {self.post_filter_msg}."
        return msg


def preemption_message(fit: FitError) -> str:
    """What upstream's DefaultPreemption says when it finds no victims (no pod may be preempted here)."""
    statuses = {}
    for node, status in fit.node_statuses.items():
        reason = PREEMPTION_NOT_HELPFUL if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE else NO_VICTIMS
        statuses[node] = Status(status.code, [reason])
    inner = FitError(fit.num_all_nodes, statuses).message()
    return "preemption: " + inner[:-1]  # the outer message adds the final period


@dataclass
class ScheduleResult:
    node: str | None
    feasible: int = 0
    evaluated: int = 0
    fit_error: FitError | None = None


class Framework:
    """The filter and score plugins of one profile, run over the cache's nodes."""

    def __init__(self, filters: list[FilterPlugin] | None = None, scorers: list[ScorePlugin] | None = None,
                 rng: random.Random | None = None):
        self.filters = filters if filters is not None else default_filters()
        self.scorers = scorers if scorers is not None else default_scorers()
        self.rng = rng or random.Random()

    def run_filters(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for plugin in self.filters:
            status = plugin.filter(pod, node)
            if status is not None:
                status.plugin = plugin.name
                return status
        return None

    def score(self, pod: PodInfo, nodes: list[NodeInfo]) -> dict[str, int]:
        totals = dict.fromkeys((n.name for n in nodes), 0)
        for plugin in self.scorers:
            scores = {n.name: plugin.score(pod, n) for n in nodes}
            plugin.normalize(scores)
            for name, s in scores.items():
                totals[name] += s * plugin.weight
        return totals

    def schedule(self, pod: dict, nodes: list[NodeInfo]) -> ScheduleResult:
        if not nodes:
            return ScheduleResult(None, fit_error=FitError(0))
        info = PodInfo.of(pod)
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        for node in nodes:
            status = self.run_filters(info, node)
            if status is None:
                feasible.append(node)
            else:
                statuses[node.name] = status
        if not feasible:
            fit = FitError(len(nodes), statuses)
            fit.post_filter_msg = preemption_message(fit)
            return ScheduleResult(None, 0, len(nodes), fit)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, 1, len(nodes))
        return ScheduleResult(self.select(self.score(info, feasible)), len(feasible), len(nodes))

    def select(self, scores: dict[str, int]) -> str:
        """The highest score; ties broken uniformly at random (reservoir sampling, like upstream)."""
        best, best_score, ties = "", -1, 0
        for name, s in scores.items():
            if s > best_score:
                best, best_score, ties = name, s, 1
            elif s == best_score:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    best = name
        return best
