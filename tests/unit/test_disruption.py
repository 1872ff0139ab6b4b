"""The disruption controller's arithmetic (pyk8s.controllers.disruption), table by table."""

from __future__ import annotations

import pytest

from pyk8s.api.disruption import scaled_value
from pyk8s.client import RequeueAfter, SharedInformerFactory
from pyk8s.client.workqueue import FakeClock
from pyk8s.controllers.disruption import (
    DELETION_TIMEOUT,
    DisruptionController,
    SyncError,
    _ScaleSources,
    count_healthy,
    expected_and_desired,
    failed_status,
    live_disruptions,
    next_status,
    rfc3339,
    stale_disruption_wait,
)

NOW = 1_800_000_000.0


def pod(name: str, ready: bool = True, deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "ns"}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize(("value", "total", "round_up", "expected"), [
    (3, 10, True, 3), ("50%", 5, True, 3), ("50%", 5, False, 2), ("0%", 7, True, 0), ("100%", 7, True, 7),
    ("34%", 3, True, 2), ("34%", 3, False, 1),
])
def test_scaled_value(value, total, round_up, expected):
    assert scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize(("spec", "pods", "scale", "expected"), [
    ({"minAvailable": 2}, 3, None, (3, 2)),  # an integer needs no controller
    ({"minAvailable": "50%"}, 3, 5, (5, 3)),  # rounded up
    ({"maxUnavailable": 1}, 3, 4, (4, 3)),
    ({"maxUnavailable": "25%"}, 3, 10, (10, 7)),  # 2.5 unavailable rounds up to 3
    ({"maxUnavailable": 5}, 3, 2, (2, 0)),  # never below zero
    ({"maxUnavailable": "100%"}, 3, 3, (3, 0)),
    ({}, 3, None, (0, 0)),
])
def test_expected_and_desired(spec, pods, scale, expected):
    def ask() -> int:
        assert scale is not None, "scale asked for a spec that does not need it"
        return scale

    assert expected_and_desired(spec, pods, ask) == expected


def test_bad_percentage_is_a_sync_error():
    with pytest.raises(SyncError, match="invalid value for IntOrString"):
        expected_and_desired({"minAvailable": "lots"}, 1, lambda: 3)


def test_healthy_count_leaves_out_deleting_recently_disrupted_and_unready_pods():
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), pod("d"), pod("e")]
    disrupted = {"d": rfc3339(NOW - 10), "e": rfc3339(NOW - DELETION_TIMEOUT - 5)}
    assert count_healthy(pods, disrupted, NOW) == 2  # a, and e whose eviction is stale


def test_disrupted_pods_expire_after_two_minutes_or_once_deleting():
    pods = [pod("fresh"), pod("stale"), pod("going", deleting=True)]
    recorded = {"fresh": rfc3339(NOW - 30), "stale": rfc3339(NOW - 121), "going": rfc3339(NOW - 5),
                "gone": rfc3339(NOW - 5)}
    kept, recheck, overdue = live_disruptions(recorded, pods, NOW)
    assert kept == {"fresh": rfc3339(NOW - 30)}
    assert recheck == NOW - 30 + DELETION_TIMEOUT
    assert [p["metadata"]["name"] for p in overdue] == ["stale"]


@pytest.mark.parametrize(("healthy", "desired", "expected", "allowed", "reason"), [
    (3, 2, 3, 1, "SufficientPods"), (2, 2, 2, 0, "InsufficientPods"), (1, 2, 2, 0, "InsufficientPods"),
    (3, 0, 0, 0, "InsufficientPods"),  # no expected pods: nothing may go yet
    (5, 1, 5, 4, "SufficientPods"),
])
def test_next_status(healthy, desired, expected, allowed, reason):
    pdb = {"metadata": {"generation": 3}, "status": {}}
    status = next_status(pdb, healthy, desired, expected, {}, NOW)
    assert status is not None
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"], status["disruptionsAllowed"],
            status["observedGeneration"]) == (healthy, desired, expected, allowed, 3)
    [condition] = status["conditions"]
    assert condition["type"] == "DisruptionAllowed" and condition["reason"] == reason
    assert condition["status"] == ("True" if allowed else "False") and condition["observedGeneration"] == 3
    # Written back, the same inputs ask for no write.
    assert next_status({"metadata": {"generation": 3}, "status": status}, healthy, desired, expected, {}, NOW) is None


def test_condition_transition_time_moves_only_on_change():
    first = next_status({"metadata": {"generation": 1}, "status": {}}, 3, 2, 3, {}, NOW)
    again = next_status({"metadata": {"generation": 2}, "status": first}, 4, 2, 4, {}, NOW + 60)
    assert again["conditions"][0]["lastTransitionTime"] == rfc3339(NOW)
    flipped = next_status({"metadata": {"generation": 2}, "status": again}, 2, 2, 4, {}, NOW + 120)
    assert flipped["conditions"][0]["lastTransitionTime"] == rfc3339(NOW + 120)


def test_failed_status_allows_nothing_and_says_why():
    status = failed_status({"status": {"disruptionsAllowed": 3, "observedGeneration": 2}}, "found no controllers",
                           NOW)
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed",
                                     "message": "found no controllers", "observedGeneration": 2,
                                     "lastTransitionTime": rfc3339(NOW)}]


class _Lister:
    def __init__(self, *objs: dict):
        self.objs = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs}

    def get(self, key: str) -> dict | None:
        return self.objs.get(key)


def _obj(kind: str, name: str, uid: str, replicas: int, owner: dict | None = None) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": uid}
    if owner:
        meta["ownerReferences"] = [owner]
    return {"kind": kind, "metadata": meta, "spec": {"replicas": replicas}}


def test_scale_sources_walk_replicasets_up_to_deployments():
    deploy = _obj("Deployment", "web", "d1", 6)
    owned_rs = _obj("ReplicaSet", "web-1", "r1", 2, {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                    "uid": "d1", "controller": True})
    bare_rs = _obj("ReplicaSet", "solo", "r2", 3)
    sources = _ScaleSources({"ReplicaSet": _Lister(owned_rs, bare_rs), "Deployment": _Lister(deploy),
                             "StatefulSet": _Lister(_obj("StatefulSet", "db", "s1", 4)),
                             "ReplicationController": _Lister(_obj("ReplicationController", "old", "c1", 5))})

    def ref(kind: str, name: str, uid: str, api_version: str = "apps/v1") -> dict:
        return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True}

    assert sources.find(ref("ReplicaSet", "web-1", "r1"), "ns") == ("d1", 6)
    assert sources.find(ref("ReplicaSet", "solo", "r2"), "ns") == ("r2", 3)
    assert sources.find(ref("StatefulSet", "db", "s1"), "ns") == ("s1", 4)
    assert sources.find(ref("ReplicationController", "old", "c1", "v1"), "ns") == ("c1", 5)
    assert sources.find(ref("ReplicaSet", "solo", "other-uid"), "ns") is None  # a namesake, not the owner
    assert sources.find(ref("Job", "j", "j1", "batch/v1"), "ns") is None


def _targeted(reason: str = "EvictionByEvictionAPI", status: str = "True", since: float = NOW - 30,
              phase: str = "Running", deleting: bool = False) -> dict:
    obj = pod("t", deleting=deleting)
    obj["status"]["phase"] = phase
    obj["status"]["conditions"].append({"type": "DisruptionTarget", "status": status, "reason": reason,
                                        "lastTransitionTime": rfc3339(since)})
    return obj


@pytest.mark.parametrize(("obj", "expected"), [
    (_targeted(), 90.0),  # two minutes after the condition was set
    (_targeted(since=NOW - 500), 0.0),  # stale now
    (_targeted(status="False"), None),
    (_targeted(reason="TerminationByKubelet", since=NOW - 500), None),  # the kubelet's own: never stale
    (_targeted(phase="Succeeded", since=NOW - 500), None),
    (_targeted(deleting=True, since=NOW - 500), None),
    (pod("plain"), None),
])
def test_stale_disruption_target(obj, expected):
    assert stale_disruption_wait(obj, NOW) == expected


class _FakeAPI:
    def __init__(self):
        self.status_updates: list[dict] = []
        self.status_patches: list[tuple] = []

    async def update_status(self, obj: dict, **_kwargs) -> dict:
        self.status_updates.append(obj)
        return obj

    async def patch_status(self, resource, name, patch, namespace=None, **kwargs) -> dict:
        self.status_patches.append((resource, name, namespace, patch, kwargs))
        return {}


def _controller() -> tuple[DisruptionController, _FakeAPI]:
    api = _FakeAPI()
    controller = DisruptionController(api, SharedInformerFactory(api), clock=FakeClock(0.0),  # type: ignore
                                      wall_clock=lambda: NOW)
    return controller, api


def _put(informer, obj: dict) -> None:
    informer.indexer.upsert(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}", obj)


async def test_sync_writes_status_from_pods_and_the_owning_replicaset():
    controller, api = _controller()
    rs = _obj("ReplicaSet", "web", "rs1", 4)
    _put(controller.sources.informers["ReplicaSet"], rs)
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": True}
    for name, ready in (("a", True), ("b", True), ("c", False)):
        obj = pod(name, ready=ready)
        obj["metadata"].update(labels={"app": "web"}, ownerReferences=[owner], resourceVersion="1")
        _put(controller.pods, obj)
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": {"name": "web", "namespace": "ns", "generation": 2, "resourceVersion": "5"},
              "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}
    _put(controller.pdbs, budget)
    await controller.sync("ns/web")
    [written] = api.status_updates
    status = written["status"]
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"], status["observedGeneration"]) == (4, 2, 2, 0, 2)
    assert status["conditions"][0]["reason"] == "InsufficientPods"


async def test_sync_without_a_known_owner_fails_safe():
    controller, api = _controller()
    obj = pod("a")
    obj["metadata"].update(labels={"app": "x"}, ownerReferences=[
        {"apiVersion": "example.com/v1", "kind": "Thing", "name": "t", "uid": "u", "controller": True}])
    _put(controller.pods, obj)
    _put(controller.pdbs, {"metadata": {"name": "x", "namespace": "ns", "generation": 1},
                           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "x"}}},
                           "status": {"disruptionsAllowed": 1}})
    await controller.sync("ns/x")
    [condition] = api.status_updates[0]["status"]["conditions"]
    assert api.status_updates[0]["status"]["disruptionsAllowed"] == 0
    assert (condition["reason"], condition["message"]) == ("SyncFailed", 'found no controllers for pod "a"')


async def test_stale_disruption_target_is_cleared_and_a_fresh_one_waits():
    controller, api = _controller()
    stale = _targeted(since=NOW - 500)
    stale["metadata"]["resourceVersion"] = "7"
    _put(controller.pods, stale)
    await controller.sync_stale_pod("ns/t")
    [(resource, name, namespace, patch, kwargs)] = api.status_patches
    assert (resource, name, namespace, kwargs) == ("pods", "t", "ns", {"patch_type": "strategic"})
    assert patch["status"]["conditions"] == [{"type": "DisruptionTarget", "status": "False",
                                              "lastTransitionTime": rfc3339(NOW)}]
    _put(controller.pods, _targeted())
    with pytest.raises(RequeueAfter):
        await controller.sync_stale_pod("ns/t")
