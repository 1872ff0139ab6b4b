"""The node lifecycle, node IPAM and pod GC decisions, without a server."""

from __future__ import annotations

import math

import pytest

from pyk8s.controllers.nodeipam import CIDRFull, CIDRSet
from pyk8s.controllers.nodelifecycle import (
    MESSAGE_UNKNOWN,
    REASON_UNKNOWN,
    TAINT_MEMORY_PRESSURE,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    eviction_time,
    is_stale,
    parse_timestamp,
    pod_not_ready_patch,
    reconcile_taints,
    rfc3339,
    tolerates,
    unknown_conditions,
    wanted_taints,
)
from pyk8s.controllers.podgc import orphaned, terminated_to_delete

T0 = 1_700_000_000.0


def node(ready: str = "True", heartbeat: float = T0, *, unschedulable: bool = False, taints: list | None = None,
         extra: tuple[tuple[str, str], ...] = ()) -> dict:
    conditions = [{"type": t, "status": s, "lastHeartbeatTime": rfc3339(heartbeat),
                   "lastTransitionTime": rfc3339(T0 - 100), "reason": "KubeletReady", "message": "ok"}
                  for t, s in (("Ready", ready), ("MemoryPressure", "False"), ("DiskPressure", "False"),
                               ("PIDPressure", "False"), *extra)]
    return {"metadata": {"name": "n1", "creationTimestamp": rfc3339(T0 - 1000)},
            "spec": {"unschedulable": unschedulable, "taints": taints or []}, "status": {"conditions": conditions}}


def lease(renew: float) -> dict:
    stamp = rfc3339(renew)[:-1] + ".123456Z"
    return {"spec": {"holderIdentity": "n1", "renewTime": stamp}}


def test_parse_timestamp_micro_and_plain():
    assert parse_timestamp("2023-11-14T22:13:20Z") == T0
    assert parse_timestamp("2023-11-14T22:13:20.500000Z") == T0 + 0.5
    assert parse_timestamp(None) is None and parse_timestamp("garbage") is None


def test_fresh_lease_keeps_node_healthy_even_with_old_status_heartbeat():
    assert not is_stale(node(heartbeat=T0 - 300), lease(T0 - 5), T0, 40)
    assert not is_stale(node(heartbeat=T0 - 5), None, T0, 40)
    assert is_stale(node(heartbeat=T0 - 300), lease(T0 - 41), T0, 40)


def test_node_without_any_heartbeat_counts_from_creation():
    fresh = {"metadata": {"creationTimestamp": rfc3339(T0 - 10)}, "status": {}}
    assert not is_stale(fresh, None, T0, 40)
    assert is_stale(fresh, None, T0 + 60, 40)


def test_unknown_conditions_keep_transition_rules():
    n = node()
    n["status"]["conditions"].append({"type": "NetworkUnavailable", "status": "False"})
    conditions = {c["type"]: c for c in unknown_conditions(n, T0)}
    for type_ in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        c = conditions[type_]
        assert (c["status"], c["reason"], c["message"]) == ("Unknown", REASON_UNKNOWN, MESSAGE_UNKNOWN)
        assert c["lastTransitionTime"] == rfc3339(T0)
        assert c["lastHeartbeatTime"] == rfc3339(T0)  # the kubelet's last heartbeat is kept
    assert conditions["NetworkUnavailable"]["status"] == "False"
    # already Unknown: nothing to write, and the transition time stays
    n["status"]["conditions"] = list(conditions.values())
    assert unknown_conditions(n, T0 + 30) is None


def test_unknown_conditions_adds_missing_ones():
    conditions = unknown_conditions({"metadata": {}, "status": {}}, T0)
    assert {c["type"] for c in conditions} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert all(c["reason"] == "NodeStatusNeverUpdated" for c in conditions)


def test_wanted_taints():
    assert wanted_taints(node()) == set()
    assert wanted_taints(node("Unknown")) == {(TAINT_UNREACHABLE, "NoExecute"), (TAINT_UNREACHABLE, "NoSchedule")}
    assert wanted_taints(node("False")) == {(TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule")}
    assert wanted_taints(node(unschedulable=True)) == {(TAINT_UNSCHEDULABLE, "NoSchedule")}
    pressured = node(extra=(("NetworkUnavailable", "True"),))
    pressured["status"]["conditions"][1]["status"] = "True"
    assert wanted_taints(pressured) == {(TAINT_MEMORY_PRESSURE, "NoSchedule"),
                                        ("node.kubernetes.io/network-unavailable", "NoSchedule")}


def test_reconcile_taints_adds_keeps_and_removes():
    user = {"key": "example.com/gpu", "value": "yes", "effect": "NoSchedule"}
    added = reconcile_taints([user], {(TAINT_UNREACHABLE, "NoExecute")}, T0)
    assert added == [user, {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)}]
    # unchanged: None, and timeAdded is not refreshed
    assert reconcile_taints(added, {(TAINT_UNREACHABLE, "NoExecute")}, T0 + 50) is None
    # healthy again: only the user's taint is left
    assert reconcile_taints(added, set(), T0 + 60) == [user]


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"operator": "Exists"}, {"key": "a", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Exists"}, {"key": "a", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Exists", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}, False),
    ({"key": "a", "value": "x"}, {"key": "a", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Equal", "value": "y"}, {"key": "a", "value": "x", "effect": "NoExecute"}, False),
    ({"key": "b", "operator": "Exists"}, {"key": "a", "effect": "NoExecute"}, False),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute"}, {"key": "a", "effect": "NoExecute"}, True),
])
def test_tolerates(toleration, taint, expected):
    assert tolerates(toleration, taint) is expected


def _pod(*tolerations: dict) -> dict:
    return {"spec": {"tolerations": list(tolerations)}}


UNREACHABLE = {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)}


def test_eviction_time():
    assert eviction_time(_pod(), [UNREACHABLE]) == -math.inf
    assert eviction_time(_pod(), [{"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]) is None
    assert eviction_time(_pod({"key": TAINT_UNREACHABLE, "operator": "Exists"}), [UNREACHABLE]) is None
    tolerate5 = {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    assert eviction_time(_pod(tolerate5), [UNREACHABLE]) == T0 + 5
    # the smallest matching tolerationSeconds wins; zero or less means at once
    assert eviction_time(_pod(tolerate5, {"operator": "Exists", "tolerationSeconds": 3}), [UNREACHABLE]) == T0 + 3
    assert eviction_time(_pod({**tolerate5, "tolerationSeconds": 0}), [UNREACHABLE]) == -math.inf
    # an untolerated second taint evicts at once
    other = {"key": "example.com/x", "effect": "NoExecute", "timeAdded": rfc3339(T0)}
    assert eviction_time(_pod(tolerate5), [UNREACHABLE, other]) == -math.inf


def test_pod_not_ready_patch():
    patch = pod_not_ready_patch({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, T0)
    assert patch == {"status": {"conditions": [{"type": "Ready", "status": "False",
                                                "lastTransitionTime": rfc3339(T0)}]}}
    assert pod_not_ready_patch({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, T0) is None


def test_cidr_set_allocates_distinct_and_reuses_released():
    cidrs = CIDRSet("10.42.0.0/16")
    assert cidrs.occupy("10.42.1.0/24") and not cidrs.occupy("10.43.0.0/24")
    got = [cidrs.allocate() for _ in range(3)]
    assert got == ["10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"]
    cidrs.release("10.42.0.0/24")
    rest = [cidrs.allocate() for _ in range(253)]  # round from the last one, wrapping to the released one
    assert rest[-1] == "10.42.0.0/24" and len(set(rest) | set(got) | {"10.42.1.0/24"}) == 256
    cidrs.release("10.42.9.0/24")
    assert cidrs.allocate() == "10.42.9.0/24"
    with pytest.raises(CIDRFull):
        cidrs.allocate()


def test_pod_gc_decisions():
    def pod(name: str, phase: str, created: int, node: str = "n1") -> dict:
        return {"metadata": {"name": name, "creationTimestamp": rfc3339(T0 + created)},
                "spec": {"nodeName": node}, "status": {"phase": phase}}

    pods = [pod("a", "Succeeded", 3), pod("b", "Failed", 1), pod("c", "Running", 0), pod("d", "Succeeded", 2)]
    assert [p["metadata"]["name"] for p in terminated_to_delete(pods, 1)] == ["b", "d"]
    assert terminated_to_delete(pods, 3) == []
    assert [p["metadata"]["name"] for p in orphaned(pods + [pod("e", "Running", 0, "gone")], {"n1"})] == ["e"]
