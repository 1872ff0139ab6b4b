"""Scheduler filter/score plugins, request arithmetic and the FitError message (tables of cases)."""

from __future__ import annotations

import random

import pytest

from pyk8s.scheduler.cache import NodeInfo, SchedulerCache
from pyk8s.scheduler.framework import Framework
from pyk8s.scheduler.plugins import (
    BalancedAllocation,
    Code,
    CycleState,
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeResourcesFit,
    NodeUnschedulable,
    PodInfo,
    TaintToleration,
)
from pyk8s.scheduler.resources import pod_requests


def node(name: str = "n1", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False, extra: dict | None = None) -> NodeInfo:
    spec: dict = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return NodeInfo(name, {"metadata": {"name": name, "labels": labels or {}}, "spec": spec,
                           "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods,
                                                      "ephemeral-storage": "10Gi", **(extra or {})}}})


_uid = iter(range(10**6))


def pod(requests: dict | None = None, *, name: str = "p", init: list | None = None, ports: list | None = None,
        overhead: dict | None = None, **spec) -> dict:
    container: dict = {"name": "c", "resources": {"requests": requests or {}}}
    if ports:
        container["ports"] = ports
    s = {"containers": [container], **spec}
    if init:
        s["initContainers"] = init
    if overhead:
        s["overhead"] = overhead
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"u{next(_uid)}"}, "spec": s}


def run_filter(plugin, p: dict, n: NodeInfo):
    state, info = CycleState(), PodInfo.of(p)
    if hasattr(plugin, "pre_filter") and plugin.pre_filter(state, info, [n]) is not None:
        return None  # Skip: nothing to check
    return plugin.filter(state, info, n)


@pytest.mark.parametrize("p, expected", [
    (pod({"cpu": "500m", "memory": "1Gi"}), {"cpu": 500, "memory": 1 << 30}),
    # init containers: max(sum(app), max(init))
    (pod({"cpu": "1"}, init=[{"name": "i", "resources": {"requests": {"cpu": "2"}}}]), {"cpu": 2000}),
    (pod({"cpu": "3"}, init=[{"name": "i", "resources": {"requests": {"cpu": "2"}}}]), {"cpu": 3000}),
    # a sidecar adds to the app containers and to later init containers
    (pod({"cpu": "1"}, init=[{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                             {"name": "i", "resources": {"requests": {"cpu": "2"}}}]), {"cpu": 3000}),
    (pod({"cpu": "1"}, overhead={"cpu": "250m"}), {"cpu": 1250}),
])
def test_pod_requests(p, expected):
    assert pod_requests(p) == expected


@pytest.mark.parametrize("n, p, reason", [
    (node(), pod(), None),
    (node(unschedulable=True), pod(), "node(s) were unschedulable"),
    (node(unschedulable=True), pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                                 "effect": "NoSchedule"}]), None),
    (node(unschedulable=True), pod(tolerations=[{"operator": "Exists"}]), None),
])
def test_node_unschedulable(n, p, reason):
    status = run_filter(NodeUnschedulable(), p, n)
    assert (status.reasons[0] if status else None) == reason
    if status:
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


@pytest.mark.parametrize("wanted, ok", [(None, True), ("n1", True), ("n2", False)])
def test_node_name(wanted, ok):
    p = pod(nodeName=wanted) if wanted else pod()
    assert (run_filter(NodeName(), p, node("n1")) is None) == ok


@pytest.mark.parametrize("existing, p, reasons", [
    ([], pod({"cpu": "4", "memory": "8Gi"}), None),
    ([], pod({"cpu": "4100m"}), ["Insufficient cpu"]),
    ([pod({"cpu": "3"})], pod({"cpu": "2", "memory": "9Gi"}), ["Insufficient cpu", "Insufficient memory"]),
    ([], pod({"ephemeral-storage": "11Gi"}), ["Insufficient ephemeral-storage"]),
    ([], pod({"example.com/gpu": "1"}), ["Insufficient example.com/gpu"]),
    ([pod()], pod(), ["Too many pods"]),
])
def test_node_resources_fit(existing, p, reasons):
    n = node(pods="1" if reasons == ["Too many pods"] else "110")
    for e in existing:
        n.add_pod(e)
    status = run_filter(NodeResourcesFit(), p, n)
    assert (status.reasons if status else None) == reasons


def test_extended_resource_fits_when_offered():
    assert run_filter(NodeResourcesFit(), pod({"example.com/gpu": "2"}), node(extra={"example.com/gpu": "2"})) is None


def expr(key, op, *values):
    return {"key": key, "operator": op, "values": list(values)} if values else {"key": key, "operator": op}


def required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


LABELS = {"zone": "a", "disk": "ssd", "cores": "8"}


@pytest.mark.parametrize("spec, ok", [
    ({}, True),
    ({"nodeSelector": {"zone": "a"}}, True),
    ({"nodeSelector": {"zone": "b"}}, False),
    ({"nodeSelector": {"gpu": ""}}, False),
    ({"affinity": required({"matchExpressions": [expr("zone", "In", "a", "b")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("zone", "NotIn", "a")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("gpu", "NotIn", "x")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("disk", "Exists")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("disk", "DoesNotExist")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("cores", "Gt", "4")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("cores", "Lt", "4")]})}, False),
    ({"affinity": required({"matchExpressions": [expr("zone", "Gt", "4")]})}, False),
    ({"affinity": required({"matchFields": [expr("metadata.name", "In", "n1")]})}, True),
    ({"affinity": required({"matchFields": [expr("metadata.name", "NotIn", "n1")]})}, False),
    # terms are ORed, expressions within a term ANDed; an empty term matches nothing
    ({"affinity": required({"matchExpressions": [expr("zone", "In", "b")]},
                           {"matchExpressions": [expr("disk", "In", "ssd")]})}, True),
    ({"affinity": required({"matchExpressions": [expr("zone", "In", "a"), expr("disk", "In", "hdd")]})}, False),
    ({"affinity": required({})}, False),
    ({"nodeSelector": {"zone": "a"}, "affinity": required({"matchExpressions": [expr("zone", "In", "b")]})}, False),
])
def test_node_affinity_filter(spec, ok):
    status = run_filter(NodeAffinity(), pod(**spec), node("n1", labels=LABELS))
    assert (status is None) == ok
    if status:
        assert status.reasons == ["node(s) didn't match Pod's node affinity/selector"]


TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize("taints, tolerations, reason", [
    ([], [], None),
    ([TAINT], [], "node(s) had untolerated taint {dedicated: gpu}"),
    ([{**TAINT, "effect": "NoExecute"}], [], "node(s) had untolerated taint {dedicated: gpu}"),
    ([{**TAINT, "effect": "PreferNoSchedule"}], [], None),
    ([TAINT], [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}], None),
    ([TAINT], [{"key": "dedicated", "operator": "Exists"}], None),
    ([TAINT], [{"key": "dedicated", "value": "cpu"}], "node(s) had untolerated taint {dedicated: gpu}"),
    ([TAINT], [{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}],
     "node(s) had untolerated taint {dedicated: gpu}"),
    ([{"key": "k", "effect": "NoSchedule"}], [], "node(s) had untolerated taint {k: }"),
])
def test_taint_toleration_filter(taints, tolerations, reason):
    status = run_filter(TaintToleration(), pod(tolerations=tolerations), node(taints=taints))
    assert (status.reasons[0] if status else None) == reason


def port(p, proto="TCP", ip=None):
    out = {"containerPort": p, "hostPort": p, "protocol": proto}
    if ip:
        out["hostIP"] = ip
    return out


@pytest.mark.parametrize("used, wanted, ok", [
    ([port(80)], [port(81)], True),
    ([port(80)], [port(80)], False),
    ([port(80)], [port(80, "UDP")], True),
    ([port(80, ip="10.0.0.1")], [port(80, ip="10.0.0.2")], True),
    ([port(80, ip="10.0.0.1")], [port(80)], False),
])
def test_node_ports(used, wanted, ok):
    n = node()
    n.add_pod(pod(ports=used))
    assert (run_filter(NodePorts(), pod(ports=wanted), n) is None) == ok


def test_least_allocated_and_balanced_scores():
    empty, busy = node("empty"), node("busy")
    busy.add_pod(pod({"cpu": "2", "memory": "1Gi"}))
    p = PodInfo.of(pod({"cpu": "1", "memory": "2Gi"}))
    fit = NodeResourcesFit()
    assert fit.score(CycleState(), p, empty) == (75 + 75) // 2
    assert fit.score(CycleState(), p, busy) == (25 + 62) // 2
    bal = BalancedAllocation()
    assert bal.score(CycleState(), p, empty) == 100
    assert bal.score(CycleState(), p, busy) == int((1 - abs(0.75 - 0.375) / 2) * 100)


def test_taint_and_affinity_normalize():
    tt = TaintToleration()
    scores = {"a": 0, "b": 2, "c": 1}
    tt.normalize(CycleState(), scores)
    assert scores == {"a": 100, "b": 0, "c": 50}
    na = NodeAffinity()
    scores = {"a": 0, "b": 10, "c": 5}
    na.normalize(CycleState(), scores)
    assert scores == {"a": 0, "b": 100, "c": 50}


def test_framework_prefers_affinity_and_untainted_nodes():
    nodes = [node("plain"), node("preferred", labels={"disk": "ssd"}),
             node("soft-tainted", labels={"disk": "ssd"}, taints=[{"key": "k", "effect": "PreferNoSchedule"}])]
    p = pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}}]}})
    result = Framework(rng=random.Random(1)).schedule(p, nodes)
    assert result.node == "preferred" and result.feasible == 3


def test_framework_spreads_by_least_allocated_and_assume_prevents_overcommit():
    cache = SchedulerCache()
    for name in ("a", "b"):
        cache.add_node(node(name).node)
    fw = Framework(rng=random.Random(0))
    placed = []
    for i in range(4):
        p = pod({"cpu": "2"}, name=f"p{i}")
        result = fw.schedule(p, cache.node_infos())
        placed.append(result.node)
        if result.node:
            cache.assume(p, result.node)
    assert sorted(placed[:2]) == ["a", "b"]
    assert sorted(placed) == ["a", "a", "b", "b"]
    p = pod({"cpu": "2"}, name="p4")
    result = fw.schedule(p, cache.node_infos())
    assert result.node is None and result.fit_error.message().startswith("0/2 nodes are available: 2 Insufficient cpu.")
    cache.forget(cache.nodes["a"].pods[next(iter(cache.nodes["a"].pods))])
    assert fw.schedule(p, cache.node_infos()).node == "a"


def test_fit_error_message_matches_upstream():
    nodes = [node("tainted", taints=[TAINT]), node("cordoned", unschedulable=True), node("small1", cpu="1"),
             node("small2", cpu="1"), node("selector", labels={"x": "y"}, cpu="1")]
    p = pod({"cpu": "2"}, nodeSelector={"x": "y"})
    fw = Framework()
    result = fw.schedule(p, nodes)
    assert result.node is None and fw.post_filter(result, nodes) is None
    assert result.fit_error.message() == (
        "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, "
        "1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/5 nodes are available: 1 No preemption victims found for incoming pod, "
        "4 Preemption is not helpful for scheduling.")
    result = fw.schedule(pod({"cpu": "2"}), nodes)
    assert fw.post_filter(result, nodes) is None
    assert result.fit_error.message() == (
        "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "1 node(s) were unschedulable, 3 Insufficient cpu. "
        "preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, "
        "3 No preemption victims found for incoming pod.")
    assert result.fit_error.unschedulable_plugins == {"TaintToleration", "NodeUnschedulable", "NodeResourcesFit"}


def test_balanced_allocation_counts_actual_requests():
    # a pod without requests leaves the fractions as they are (NodeResourcesFit scores it as 100m/200Mi)
    n = node("n", cpu="4", memory="4Gi")
    n.add_pod(pod({"cpu": "2"}))
    p = PodInfo.of(pod())
    assert BalancedAllocation().score(CycleState(), p, n) == 75  # cpu 0.5, memory 0
    assert BalancedAllocation().score_nodes(CycleState(), p, [n]) == {"n": 75}
