"""One scheduling decision for one profile: PreFilter, Filter (a share of the nodes, nominated pods counted),
PreScore/Score, select; and FitError, which explains a failure in upstream's words."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .cache import NodeInfo
from .plugins import Code, CycleState, PodInfo, Status, default_filters, default_scorers

NO_NODE_AVAILABLE = "0/{} nodes are available"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5

# Pods nominated (by preemption) onto a node name, for the filters to count as if they were running there.
Nominator = Callable[[str], list[dict]]


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int | None = None) -> int:
    """How many feasible nodes to look for before scoring (upstream's adaptive percentageOfNodesToScore)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    pct = percentage or 0
    if pct == 0:
        pct = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    if pct >= 100:
        return num_all_nodes
    return max(num_all_nodes * pct // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass
class FitError:
    """Why no node fits: the first failing filter's status per node (upstream's Diagnosis)."""

    num_all_nodes: int
    node_statuses: dict[str, Status] = field(default_factory=dict)
    post_filter_msg: str = ""  # complete sentences, e.g. "preemption: 0/3 nodes are available: ... ."
    pre_filter_msg: str = ""

    @property
    def unschedulable_plugins(self) -> set[str]:
        return {s.plugin for s in self.node_statuses.values()}

    def message(self) -> str:
        msg = NO_NODE_AVAILABLE.format(self.num_all_nodes) + ":"
        if self.pre_filter_msg:
            msg += f" {self.pre_filter_msg}."
        histogram: Counter[str] = Counter()
        for status in self.node_statuses.values():
            histogram.update(status.reasons)
        reasons = sorted(f"{count} {reason}" for reason, count in histogram.items())
        if reasons:
            msg += f" {', '.join(reasons)}."
        if self.post_filter_msg:
            msg += f" {self.post_filter_msg}"
        return msg


def preemption_message(fit: FitError, dry_run: dict[str, Status] | None = None) -> str:
    """What DefaultPreemption says when it finds no candidate: per node, why preemption cannot help there."""
    statuses = {}
    for node, status in fit.node_statuses.items():
        if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            statuses[node] = Status(status.code, [PREEMPTION_NOT_HELPFUL])
        else:
            statuses[node] = (dry_run or {}).get(node) or Status(status.code, [NO_VICTIMS])
    return "preemption: " + FitError(fit.num_all_nodes, statuses).message()


@dataclass
class ScheduleResult:
    node: str | None
    feasible: int = 0
    evaluated: int = 0
    fit_error: FitError | None = None
    error: Status | None = None  # a PreFilter error (bad input): retry after backoff
    state: CycleState | None = None
    pod_info: PodInfo | None = None


class Framework:
    """The plugins of one profile, run over the cache's nodes.

    `filters` run PreFilter (when they have it) and Filter; `scorers` run PreScore and Score with their
    weight (`weights` overrides a plugin's default). `pre_enqueue` plugins decide whether a pod may queue.
    `preemption` is the PostFilter: "default" builds DefaultPreemption, None disables preemption.
    """

    def __init__(self, filters: list | None = None, scorers: list | None = None, *,
                 pre_enqueue: list | None = None, weights: dict[str, int] | None = None,
                 percentage_of_nodes_to_score: int | None = None, preemption: object = "default",
                 scheduler_name: str = "default-scheduler", rng: random.Random | None = None):
        self.filters = filters if filters is not None else default_filters()
        self.scorers = scorers if scorers is not None else default_scorers()
        self.pre_enqueue = pre_enqueue or []
        self.weights = {p.name: (weights or {}).get(p.name, p.weight) for p in self.scorers}
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        if preemption == "default":
            from .preemption import DefaultPreemption  # the module builds on this one

            preemption = DefaultPreemption(rng=rng)
        self.preemption = preemption  # DefaultPreemption, or None when the profile disables it
        self.scheduler_name = scheduler_name
        self.rng = rng or random.Random()
        self.next_start_index = 0
        self._pre_filters = [p for p in self.filters if hasattr(p, "pre_filter")]
        self._extensions = [p for p in self.filters if hasattr(p, "add_pod")]

    @property
    def plugin_names(self) -> set[str]:
        return {p.name for p in (*self.filters, *self.scorers, *self.pre_enqueue)}

    # ---- PreEnqueue ------------------------------------------------------------------------

    def run_pre_enqueue(self, pod: dict) -> Status | None:
        for plugin in self.pre_enqueue:
            status = plugin.pre_enqueue(pod)
            if status is not None:
                status.plugin = plugin.name
                return status
        return None

    # ---- PreFilter / Filter ----------------------------------------------------------------

    def run_pre_filters(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        skipped = set()
        for plugin in self._pre_filters:
            status = plugin.pre_filter(state, pod, nodes)
            if status is None:
                continue
            if status.code is Code.SKIP:
                skipped.add(plugin.name)
                continue
            status.plugin = plugin.name
            return status
        state.filters = [p for p in self.filters if p.name not in skipped]
        return None

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for plugin in state.filters if state.filters is not None else self.filters:
            status = plugin.filter(state, pod, node)
            if status is not None:
                status.plugin = plugin.name
                return status
        return None

    def add_pod(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo) -> None:
        for plugin in self._extensions:
            plugin.add_pod(state, pod, other, node)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: dict, node: NodeInfo) -> None:
        for plugin in self._extensions:
            plugin.remove_pod(state, pod, other, node)

    def run_filters_with_nominated(self, state: CycleState, pod: PodInfo, node: NodeInfo,
                                   nominator: Nominator | None) -> Status | None:
        """Filter as if the higher-or-equal priority pods nominated onto `node` already ran there, and also
        without them (upstream checks both, since some filters, such as affinity, may pass only with them)."""
        nominated = [p for p in nominator(node.name) if _priority(p) >= pod.priority
                     and p.get("metadata", {}).get("uid") != pod.metadata.get("uid")] if nominator else []
        if not nominated:
            return self.run_filters(state, pod, node)
        with_nominated, with_state = node.clone(), state.clone()
        for other in nominated:
            with_nominated.add_pod(other)
            self.add_pod(with_state, pod, other, with_nominated)
        status = self.run_filters(with_state, pod, with_nominated)
        return status if status is not None else self.run_filters(state, pod, node)

    # ---- the decision ----------------------------------------------------------------------

    def schedule(self, pod: dict, nodes: list[NodeInfo], nominator: Nominator | None = None) -> ScheduleResult:
        info = PodInfo.of(pod)
        state = CycleState()
        if not nodes:
            return ScheduleResult(None, fit_error=FitError(0), state=state, pod_info=info)
        status = self.run_pre_filters(state, info, nodes)
        if status is not None:
            if status.code is Code.ERROR:
                return ScheduleResult(None, error=status, state=state, pod_info=info)
            fit = FitError(len(nodes), {n.name: status for n in nodes})
            return ScheduleResult(None, 0, len(nodes), fit, state=state, pod_info=info)
        nominated_node = (pod.get("status") or {}).get("nominatedNodeName")
        if nominated_node:
            # Preemption made room there: try it first and take it if it fits.
            node = next((n for n in nodes if n.name == nominated_node), None)
            if node is not None and self.run_filters_with_nominated(state, info, node, nominator) is None:
                return ScheduleResult(node.name, 1, 1, state=state, pod_info=info)
        feasible, statuses = self._find_feasible(state, info, nodes, nominator)
        if not feasible:
            return ScheduleResult(None, 0, len(nodes), FitError(len(nodes), statuses), state=state, pod_info=info)
        evaluated = len(feasible) + len(statuses)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, 1, evaluated, state=state, pod_info=info)
        scores = self.score(state, info, feasible, nodes)
        return ScheduleResult(self.select(scores), len(feasible), evaluated, state=state, pod_info=info)

    def post_filter(self, result: ScheduleResult, nodes: list[NodeInfo], nominator: Nominator | None = None):
        """Preemption after a failed Filter: the chosen Candidate, or None (the reason then goes into the
        FitError's message)."""
        fit = result.fit_error
        if self.preemption is None or fit is None or not fit.node_statuses:
            return None
        outcome = self.preemption.preempt(self, result.state, result.pod_info, fit, nodes, nominator)
        if outcome.candidate is None:
            fit.post_filter_msg = outcome.message
        return outcome.candidate

    def _find_feasible(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                       nominator: Nominator | None) -> tuple[list[NodeInfo], dict[str, Status]]:
        """Filter from a start index that rotates between cycles until enough nodes are feasible."""
        total = len(nodes)
        wanted = num_feasible_nodes_to_find(total, self.percentage_of_nodes_to_score) if self.scorers else 1
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        start = self.next_start_index % total
        filters = state.filters if state.filters is not None else self.filters
        processed = 0
        for node in (nodes[start:] + nodes[:start]) if start else nodes:
            processed += 1
            if nominator is not None:
                status = self.run_filters_with_nominated(state, pod, node, nominator)
            else:  # the hot loop: the plugins inline, no nominated pods to consider
                status = None
                for plugin in filters:
                    status = plugin.filter(state, pod, node)
                    if status is not None:
                        status.plugin = plugin.name
                        break
            if status is None:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
            else:
                statuses[node.name] = status
        self.next_start_index = (start + processed) % total
        return feasible, statuses

    def score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo],
              nodes: list[NodeInfo] | None = None) -> dict[str, int]:
        totals = dict.fromkeys((n.name for n in feasible), 0)
        all_nodes = nodes if nodes is not None else feasible
        for plugin in self.scorers:
            pre_score = getattr(plugin, "pre_score", None)
            if pre_score is not None and not pre_score(state, pod, feasible, all_nodes):
                continue  # nothing to tell the nodes apart (upstream's Skip)
            score_nodes = getattr(plugin, "score_nodes", None)
            if score_nodes is not None:  # a plugin's own loop over the nodes: no call per node
                scores = score_nodes(state, pod, feasible)
            else:
                scores = {n.name: plugin.score(state, pod, n) for n in feasible}
            plugin.normalize(state, scores)
            weight = self.weights[plugin.name]
            for name, s in scores.items():
                totals[name] += s * weight
        return totals

    def select(self, scores: dict[str, int]) -> str:
        """The highest score; ties broken uniformly at random (as upstream's reservoir sampling)."""
        best = max(scores.values())
        ties = [name for name, s in scores.items() if s == best]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)


def _priority(pod: dict) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)
