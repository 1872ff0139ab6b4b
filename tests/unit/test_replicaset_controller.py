"""ReplicaSet controller pieces without a server: deletion ranking, slow start, expectations, status."""

from __future__ import annotations

import pytest

from pyk8s.client import FakeClock
from pyk8s.controllers.replicaset import (
    REPLICASET,
    REPLICATIONCONTROLLER,
    Expectations,
    ReplicaSetController,
    pods_to_delete,
    slow_start_batch,
    slow_start_batches,
)


def pod(name: str, *, node: str | None = None, phase: str = "Pending", ready: str | None = None,
        created: str = "2024-01-01T00:00:00Z", restarts: int = 0) -> dict:
    status: dict = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": ready}]
    spec = {"nodeName": node} if node else {}
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": created, "labels": {"app": "a"}},
            "spec": spec, "status": status}


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_ranking_main_keys():
    pods = [
        pod("ready-old", node="n", phase="Running", ready="2024-01-01T00:00:00Z"),
        pod("ready-new", node="n", phase="Running", ready="2024-01-02T00:00:00Z"),
        pod("running-notready", node="n", phase="Running"),
        pod("unknown", node="n", phase="Unknown"),
        pod("pending-assigned", node="n"),
        pod("unassigned"),
    ]
    assert names(pods_to_delete(pods, 6)) == ["unassigned", "pending-assigned", "unknown", "running-notready",
                                               "ready-new", "ready-old"]
    assert names(pods_to_delete(pods, 2)) == ["unassigned", "pending-assigned"]


def test_ranking_restarts_then_newer_first():
    pods = [pod("old", created="2024-01-01T00:00:00Z"), pod("new", created="2024-01-03T00:00:00Z"),
            pod("crashy", created="2024-01-01T00:00:00Z", restarts=5)]
    assert names(pods_to_delete(pods, 3)) == ["crashy", "new", "old"]


def test_slow_start_batch_sizes():
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(15) == [1, 2, 4, 8]


async def test_slow_start_stops_at_first_failing_batch():
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("quota")

    successes, error = await slow_start_batch(10, fn)
    assert calls == 3  # batches 1 and 2; the second batch failed, so no batch of 4
    assert successes == 2
    assert isinstance(error, RuntimeError)


async def test_slow_start_all_succeed():
    async def fn() -> None:
        return None

    assert await slow_start_batch(7, fn) == (7, None)


def test_expectations_creations_and_deletions():
    clock = FakeClock()
    exp = Expectations(clock)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # counted once (update with deletionTimestamp, then delete)
    exp.deletion_observed("ns/rs", "ns/other")
    assert not exp.satisfied("ns/rs")
    exp.deletion_observed("ns/rs", "ns/b")
    assert exp.satisfied("ns/rs")


def test_expectations_expire_after_five_minutes():
    clock = FakeClock()
    exp = Expectations(clock)
    exp.expect_creations("ns/rs", 3)
    clock.step(299)
    assert not exp.satisfied("ns/rs")
    clock.step(2)
    assert exp.satisfied("ns/rs")
    exp.delete("ns/rs")
    assert exp.get("ns/rs") is None


def test_selectors():
    assert REPLICASET.selector_matches({"matchLabels": {"app": "a"}}, {"app": "a", "x": "y"})
    assert not REPLICASET.selector_matches({"matchLabels": {"app": "a"}}, {"app": "b"})
    assert not REPLICASET.selector_matches({}, {"app": "a"})
    assert REPLICASET.selector_matches({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]},
                                       {"app": "a"})
    assert REPLICATIONCONTROLLER.selector_matches({"app": "a"}, {"app": "a"})
    assert not REPLICATIONCONTROLLER.selector_matches({}, {"app": "a"})


@pytest.fixture
def controller() -> ReplicaSetController:
    class _Factory:
        def informer(self, _kind, **_):
            class _Inf:
                def add_handler(self, **_):
                    return None

                async def wait_for_sync(self):
                    return True
            return _Inf()
    return ReplicaSetController(None, _Factory())  # type: ignore[arg-type]


def test_status_min_ready_seconds_and_failure_condition(controller: ReplicaSetController):
    now = 1_704_067_260.0  # 2024-01-01T00:01:00Z
    rs = {"metadata": {"name": "rs", "namespace": "ns", "generation": 3},
          "spec": {"replicas": 4, "minReadySeconds": 30, "selector": {"matchLabels": {"app": "a"}},
                   "template": {"metadata": {"labels": {"app": "a", "tier": "web"}}}}}
    pods = [pod("a", ready="2024-01-01T00:00:00Z"), pod("b", ready="2024-01-01T00:00:45Z"), pod("c")]
    pods[0]["metadata"]["labels"]["tier"] = "web"
    status = controller.calculate_status(rs, pods, RuntimeError("forbidden"), now=now)
    assert status["replicas"] == 3
    assert status["fullyLabeledReplicas"] == 1
    assert status["readyReplicas"] == 2
    assert status["availableReplicas"] == 1
    assert status["observedGeneration"] == 3
    [cond] = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "ReplicaFailure", "True", "FailedCreate", "forbidden")
    rs["status"] = status
    cleared = controller.calculate_status(rs, pods, None, now=now)
    assert "conditions" not in cleared


def test_pod_from_template(controller: ReplicaSetController):
    rs = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
          "spec": {"template": {"metadata": {"labels": {"app": "a"}, "annotations": {"k": "v"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    p = controller._pod_from_template(rs)
    assert p["metadata"]["generateName"] == "web-"
    assert p["metadata"]["labels"] == {"app": "a"}
    assert p["metadata"]["annotations"] == {"k": "v"}
    assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                 "uid": "u1", "controller": True, "blockOwnerDeletion": True}]
    assert p["spec"]["containers"][0]["image"] == "nginx"
