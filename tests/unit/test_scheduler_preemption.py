"""DefaultPreemption: candidate selection and victim choice (cases follow upstream's preemption tests)."""

from __future__ import annotations

import random

from pyk8s.scheduler.framework import Framework
from pyk8s.scheduler.preemption import NOT_ELIGIBLE_NEVER, DefaultPreemption

from scheduler_builders import anti_affinity, make_node, make_pod, place, term


def preempt(pod: dict, nodes, pdbs=None, nominator=None):
    fw = Framework(rng=random.Random(0), preemption=DefaultPreemption(pdbs=pdbs, rng=random.Random(0)))
    result = fw.schedule(pod, nodes, nominator)
    assert result.node is None
    return fw.post_filter(result, nodes, nominator), result.fit_error


def names(pods) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_minimal_victims_most_important_reprieved():
    node = place(make_node("n1", cpu="4"), make_pod("low-a", cpu="1", priority=1, start="2024-01-01T00:00:00Z"),
                 make_pod("low-b", cpu="1", priority=2), make_pod("mid", cpu="2", priority=5))
    candidate, _ = preempt(make_pod("high", cpu="2", priority=10), [node])
    # freeing 2 cpu: removing the two least important (priorities 1 and 2) is enough; "mid" stays
    assert candidate.node == "n1" and names(candidate.victims) == ["low-b", "low-a"]


def test_equal_or_higher_priority_pods_are_never_victims():
    node = place(make_node("n1", cpu="2"), make_pod("peer", cpu="2", priority=10))
    candidate, fit = preempt(make_pod("high", cpu="1", priority=10), [node])
    assert candidate is None
    assert fit.message() == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                             "1 No preemption victims found for incoming pod.")


def test_preemption_policy_never():
    node = place(make_node("n1", cpu="2"), make_pod("low", cpu="2", priority=0))
    candidate, fit = preempt(make_pod("high", cpu="1", priority=10, preemptionPolicy="Never"), [node])
    assert candidate is None
    assert fit.message() == "0/1 nodes are available: 1 Insufficient cpu. preemption: " + NOT_ELIGIBLE_NEVER


def test_unresolvable_nodes_are_not_candidates():
    tainted = make_node("t", cpu="2", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    place(tainted, make_pod("low", cpu="2", priority=0))
    candidate, fit = preempt(make_pod("high", cpu="1", priority=10), [tainted])
    assert candidate is None and fit.message().endswith("1 Preemption is not helpful for scheduling.")


def test_removing_every_lower_pod_not_enough_reports_the_filter_reason():
    node = place(make_node("n1", cpu="2"), make_pod("peer", cpu="1", priority=10), make_pod("low", cpu="1"))
    candidate, fit = preempt(make_pod("high", cpu="2", priority=10), [node])
    assert candidate is None
    assert fit.message().endswith("preemption: 0/1 nodes are available: 1 Insufficient cpu.")


def test_lowest_highest_victim_priority_wins():
    a = place(make_node("a", cpu="2"), make_pod("a-low", cpu="2", priority=5))
    b = place(make_node("b", cpu="2"), make_pod("b-low", cpu="2", priority=3))
    candidate, _ = preempt(make_pod("high", cpu="2", priority=10), [a, b])
    assert candidate.node == "b"


def test_fewest_victims_then_latest_start():
    a = place(make_node("a", cpu="2"), make_pod("a1", cpu="1", priority=1), make_pod("a2", cpu="1", priority=1))
    b = place(make_node("b", cpu="2"), make_pod("b1", cpu="2", priority=1))
    candidate, _ = preempt(make_pod("high", cpu="2", priority=10), [a, b])
    assert candidate.node == "b"  # same priorities; a's sum is larger
    old = place(make_node("old", cpu="2"), make_pod("o", cpu="2", priority=1, start="2024-01-01T00:00:00Z"))
    new = place(make_node("new", cpu="2"), make_pod("n", cpu="2", priority=1, start="2025-01-01T00:00:00Z"))
    candidate, _ = preempt(make_pod("high", cpu="2", priority=10), [old, new])
    assert candidate.node == "new"  # the victims that started last lose the least work


def test_pdb_violations_are_avoided():
    a = place(make_node("a", cpu="2"), make_pod("guarded", cpu="2", priority=1, labels={"app": "db"}))
    b = place(make_node("b", cpu="2"), make_pod("free", cpu="2", priority=3))
    pdb = {"metadata": {"name": "db", "uid": "pdb1"}, "spec": {"selector": {"matchLabels": {"app": "db"}}},
           "status": {"disruptionsAllowed": 0}}
    candidate, _ = preempt(make_pod("high", cpu="2", priority=10), [a, b], pdbs=lambda ns: [pdb])
    assert candidate.node == "b" and candidate.pdb_violations == 0
    candidate, _ = preempt(make_pod("high", cpu="2", priority=10), [a], pdbs=lambda ns: [pdb])
    assert candidate.node == "a" and candidate.pdb_violations == 1  # still possible, counted


def test_preemption_fixes_anti_affinity():
    node = place(make_node("n1"), make_pod("low", labels={"app": "web"}, priority=0))
    pod = make_pod("high", labels={"app": "web"}, priority=10, affinity=anti_affinity(term(app="web")))
    candidate, _ = preempt(pod, [node])
    assert candidate.node == "n1" and names(candidate.victims) == ["low"]


def test_nominated_pods_hold_their_room():
    node = make_node("n1", cpu="2")
    nominated = make_pod("preemptor", cpu="2", priority=10)
    fw = Framework()
    lower = fw.schedule(make_pod("late", cpu="1", priority=5), [node], lambda n: [nominated])
    assert lower.node is None  # the room freed for the preemptor is not taken by a lower-priority pod
    higher = fw.schedule(make_pod("urgent", cpu="1", priority=20), [node], lambda n: [nominated])
    assert higher.node == "n1"


def test_waits_while_its_victims_terminate():
    node = make_node("n1", cpu="2")
    terminating = make_pod("leaving", cpu="2", priority=0)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    terminating["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                            "reason": "PreemptionByScheduler"}]
    place(node, terminating)
    pod = make_pod("high", cpu="2", priority=10)
    pod["status"]["nominatedNodeName"] = "n1"
    candidate, fit = preempt(pod, [node])
    assert candidate is None
    assert fit.message().endswith("preemption: not eligible due to a terminating pod on the nominated node.")
