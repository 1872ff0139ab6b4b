"""SchedulingQueue ordering, backoff and unschedulable handling on a fake clock."""

from __future__ import annotations

import asyncio

from pyk8s.scheduler.queue import ACTIVE, BACKOFF, GATED, UNSCHEDULABLE, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, priority: int = 0) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name}, "spec": {"priority": priority}}


def pop(q: SchedulingQueue):
    return asyncio.run(asyncio.wait_for(q.pop(), 1))


def test_priority_then_arrival_order():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    for name, prio in (("low1", 0), ("high", 10), ("low2", 0)):
        q.add(pod(name, prio))
        clock.now += 1
    assert [pop(q).uid for _ in range(3)] == ["high", "low1", "low2"]


def test_unschedulable_waits_for_event_then_backs_off_doubling_to_cap():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"))
    qp = pop(q)
    q.add_unschedulable(qp)
    assert q.where("p") == UNSCHEDULABLE
    q.move_all_unschedulable("NodeAdd")
    assert q.where("p") == BACKOFF  # 1 s backoff after the first attempt
    clock.now += 1
    q.flush_backoff()
    assert q.where("p") == ACTIVE
    durations = []
    for _ in range(6):
        qp = pop(q)
        durations.append(q.backoff_duration(qp))
        q.add_unschedulable(qp, error=True)
        clock.now += 10
        q.flush_backoff()
    assert durations == [2, 4, 8, 10, 10, 10]


def test_event_during_attempt_sends_pod_to_backoff_not_unschedulable():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"))
    qp = pop(q)
    q.move_all_unschedulable("NodeUpdate")
    q.add_unschedulable(qp)
    assert q.where("p") == BACKOFF


def test_deleted_pod_is_dropped_and_leftovers_flush():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("gone"))
    q.add(pod("stuck"))
    gone = pop(q)
    q.delete(gone.pod)
    q.add_unschedulable(gone)
    assert q.where("gone") is None
    q.add_unschedulable(pop(q))
    clock.now += 301
    q.flush_unschedulable_leftovers()
    assert q.where("stuck") == ACTIVE


def gate(pod_: dict):
    gates = (pod_.get("spec") or {}).get("schedulingGates")
    return ("SchedulingGates", "waiting for scheduling gates") if gates else None


def test_gated_pod_waits_until_its_gates_are_removed():
    q = SchedulingQueue(clock=Clock(), pre_enqueue=gate)
    gated = pod("g")
    gated["spec"]["schedulingGates"] = [{"name": "example.com/wait"}]
    q.add(gated)
    assert q.where("g") == GATED and q.get("g").gated_by[0] == "SchedulingGates"
    q.move_all_unschedulable("NodeAdd")  # cluster events do not release gated pods
    assert q.where("g") == GATED
    released = pod("g")
    q.update(gated, released)
    assert q.where("g") == ACTIVE and pop(q).uid == "g"


def test_only_events_relevant_to_the_rejecting_plugins_move_a_pod():
    clock = Clock()
    q = SchedulingQueue(clock=clock, plugin_events={"NodeResourcesFit": frozenset({"AssignedPodDelete", "NodeAdd"}),
                                                    "TaintToleration": frozenset({"NodeUpdate", "NodeAdd"})})
    q.add(pod("p"))
    qp = pop(q)
    qp.unschedulable_plugins = {"NodeResourcesFit"}
    q.add_unschedulable(qp)
    q.move_all_unschedulable("NodeUpdate")
    assert q.where("p") == UNSCHEDULABLE
    q.move_all_unschedulable("AssignedPodDelete")
    assert q.where("p") == BACKOFF


def test_irrelevant_event_during_the_attempt_does_not_send_to_backoff():
    q = SchedulingQueue(clock=Clock(), plugin_events={"NodeResourcesFit": frozenset({"AssignedPodDelete"})})
    q.add(pod("p"))
    qp = pop(q)
    q.move_all_unschedulable("NodeUpdate")
    qp.unschedulable_plugins = {"NodeResourcesFit"}
    q.add_unschedulable(qp)
    assert q.where("p") == UNSCHEDULABLE
