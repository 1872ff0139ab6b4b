"""DaemonSet placement and rolling-update arithmetic without a server."""

from __future__ import annotations

import pytest

from pyk8s.controllers.daemonset import (
    node_name_affinity,
    rolling_update_plan,
    should_run_on_node,
    surge_and_unavailable,
    target_node_name,
    with_daemon_tolerations,
)
from pyk8s.controllers.history import CONTROLLER_REVISION_HASH_LABEL


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []}}


def daemonset(**pod_spec) -> dict:
    return {"metadata": {"name": "ds", "generation": 2},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}], **pod_spec}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}}


def taint(key: str, effect: str, value: str = "") -> dict:
    return {"key": key, "value": value, "effect": effect}


def test_tolerations_added_like_upstream():
    keys = [(t["key"], t["effect"], t["operator"]) for t in with_daemon_tolerations({})["tolerations"]]
    assert keys == [("node.kubernetes.io/not-ready", "NoExecute", "Exists"),
                    ("node.kubernetes.io/unreachable", "NoExecute", "Exists"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule", "Exists"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule", "Exists"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule", "Exists"),
                    ("node.kubernetes.io/unschedulable", "NoSchedule", "Exists")]
    host = with_daemon_tolerations({"hostNetwork": True, "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}, {"key": "mine", "operator": "Exists"}]})["tolerations"]
    assert host[0] == {"key": "mine", "operator": "Exists"}
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"} in host
    # The automatic one replaces an equal toleration with a time limit: daemon pods are never evicted for it.
    assert [t for t in host if t["key"] == "node.kubernetes.io/not-ready"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]


@pytest.mark.parametrize(("n", "ds", "expected"), [
    (node("a"), daemonset(), (True, True)),
    (node("a", {"disk": "ssd"}), daemonset(nodeSelector={"disk": "ssd"}), (True, True)),
    (node("a"), daemonset(nodeSelector={"disk": "ssd"}), (False, False)),
    (node("a", taints=[taint("gpu", "NoSchedule")]), daemonset(), (False, True)),  # keeps a running pod
    (node("a", taints=[taint("gpu", "NoExecute")]), daemonset(), (False, False)),
    (node("a", taints=[taint("gpu", "NoSchedule")]), daemonset(tolerations=[{"key": "gpu", "operator": "Exists"}]),
     (True, True)),
    (node("a", taints=[taint("gpu", "PreferNoSchedule")]), daemonset(), (True, True)),
    (node("a", taints=[taint("node.kubernetes.io/unschedulable", "NoSchedule")]), daemonset(), (True, True)),
    (node("a", taints=[taint("node.kubernetes.io/not-ready", "NoExecute")]), daemonset(), (True, True)),
    (node("a", taints=[taint("node.kubernetes.io/network-unavailable", "NoSchedule")]), daemonset(),
     (False, True)),
    (node("a", taints=[taint("node.kubernetes.io/network-unavailable", "NoSchedule")]),
     daemonset(hostNetwork=True), (True, True)),
    (node("b"), daemonset(nodeName="a"), (False, False)),
    (node("a", {"zone": "z1"}), daemonset(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}),
     (True, True)),
    (node("a", {"zone": "z2"}), daemonset(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}),
     (False, False)),
])
def test_should_run_on_node(n, ds, expected):
    assert should_run_on_node(ds, n) == expected


def test_node_name_affinity_and_target():
    affinity = node_name_affinity({"podAntiAffinity": {"x": 1}, "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}}, "n1")
    assert affinity["podAntiAffinity"] == {"x": 1}
    assert affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [{"weight": 1}]
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    assert target_node_name({"spec": {"affinity": affinity}}) == "n1"
    assert target_node_name({"spec": {"nodeName": "n2", "affinity": affinity}}) == "n2"
    assert target_node_name({"spec": {}}) is None


def test_surge_and_unavailable_round_up():
    ds = daemonset()
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": "10%", "maxSurge": 0}
    assert surge_and_unavailable(ds, 15) == (0, 2)
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": "25%"}
    assert surge_and_unavailable(ds, 5) == (2, 0)
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": 0}
    assert surge_and_unavailable(ds, 5) == (0, 1)


def pod(name: str, hash_: str, *, ready: bool = True, deleting: bool = False) -> dict:
    meta: dict = {"name": name, "labels": {CONTROLLER_REVISION_HASH_LABEL: hash_},
                  "creationTimestamp": "2024-01-01T00:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-02T00:00:00Z"
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                  "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    return {"metadata": meta, "spec": {}, "status": status}


def test_rolling_update_plan_with_max_unavailable():
    ds = daemonset()
    node_pods = {"a": [pod("a", "old")], "b": [pod("b", "old")], "c": [pod("c", "new")],
                 "d": [pod("d", "old", ready=False)]}
    delete, create = rolling_update_plan(ds, node_pods, 4, "new", now=10**10)
    # The unavailable old pod is replaced at once; one available old pod within maxUnavailable 1.
    assert [p["metadata"]["name"] for p in delete] == ["d", "a"] and create == []
    node_pods["c"] = [pod("c", "new", ready=False)]  # an updated pod not yet available uses up the budget
    delete, _ = rolling_update_plan(ds, node_pods, 4, "new", now=10**10)
    assert [p["metadata"]["name"] for p in delete] == ["d"]


def test_rolling_update_plan_with_surge():
    ds = daemonset()
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": 1}
    node_pods = {"a": [pod("a", "old")], "b": [pod("b", "old")], "c": [pod("c-old", "old"), pod("c-new", "new")]}
    delete, create = rolling_update_plan(ds, node_pods, 3, "new", now=10**10)
    # c's new pod is available: its old pod goes; one more node may surge.
    assert [p["metadata"]["name"] for p in delete] == ["c-old"] and create == ["a"]
    node_pods["c"] = [pod("c-old", "old"), pod("c-new", "new", ready=False)]
    delete, create = rolling_update_plan(ds, node_pods, 3, "new", now=10**10)
    assert delete == [] and create == []
