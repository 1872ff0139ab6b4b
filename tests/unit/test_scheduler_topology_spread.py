"""PodTopologySpread: filter and score tables (cases follow upstream's plugin tests)."""

from __future__ import annotations

import pytest

from pyk8s.api.selectors import label_selector_from_object
from pyk8s.scheduler.plugins import Code, CycleState, PodInfo, PodTopologySpread
from pyk8s.scheduler.plugins.node_resources_fit import ArgsError
from pyk8s.scheduler.plugins.pod_topology_spread import MISSING_LABEL_REASON, REASON

from scheduler_builders import make_node, make_pod, place

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def spread(key: str = ZONE, max_skew: int = 1, when: str = "DoNotSchedule", **extra) -> dict:
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}, **extra}


def web(name: str, **kw) -> dict:
    return make_pod(name, labels={"app": "web", **kw.pop("labels", {})}, **kw)


def zones():
    """a: a1 (2 web pods), a2; b: b1 (1 web pod); c: c1 (none); nozone (1 web pod)."""
    nodes = [make_node("a1", zone="a"), make_node("a2", zone="a"), make_node("b1", zone="b"),
             make_node("c1", zone="c"), make_node("nozone")]
    place(nodes[0], web("w0"), web("w1"))
    place(nodes[2], web("w2"))
    place(nodes[4], web("w3"))
    return nodes


def run(pod: dict, nodes, plugin: PodTopologySpread | None = None) -> dict[str, str | None]:
    plugin = plugin or PodTopologySpread()
    state, info = CycleState(), PodInfo.of(pod)
    status = plugin.pre_filter(state, info, nodes)
    if status is not None:
        assert status.code is Code.SKIP  # nothing to check: every node passes
        return {n.name: None for n in nodes}
    out = {}
    for n in nodes:
        status = plugin.filter(state, info, n)
        out[n.name] = status.reasons[0] if status else None
    return out


def test_max_skew_across_zones():
    result = run(web("new", topologySpreadConstraints=[spread()]), zones())
    # counts a=2, b=1, c=0: only zone c keeps the skew at 1; a node without the key is unresolvable
    assert result == {"a1": REASON, "a2": REASON, "b1": REASON, "c1": None, "nozone": MISSING_LABEL_REASON}
    result = run(web("new", topologySpreadConstraints=[spread(max_skew=2)]), zones())
    assert result == {"a1": REASON, "a2": REASON, "b1": None, "c1": None, "nozone": MISSING_LABEL_REASON}


def test_missing_label_is_unresolvable():
    state, info = CycleState(), PodInfo.of(web("new", topologySpreadConstraints=[spread()]))
    plugin = PodTopologySpread()
    nodes = zones()
    plugin.pre_filter(state, info, nodes)
    assert plugin.filter(state, info, nodes[4]).code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert plugin.filter(state, info, nodes[0]).code is Code.UNSCHEDULABLE


def test_pod_not_matching_its_own_selector_does_not_add_to_the_skew():
    other = make_pod("new", labels={"app": "other"}, topologySpreadConstraints=[spread()])
    assert run(other, zones()) == {"a1": REASON, "a2": REASON, "b1": None, "c1": None,
                                   "nozone": MISSING_LABEL_REASON}


def test_min_domains_treats_missing_domains_as_empty():
    nodes = [make_node("a1", zone="a"), make_node("b1", zone="b")]
    place(nodes[0], web("w0"))
    place(nodes[1], web("w1"))
    assert run(web("new", topologySpreadConstraints=[spread()]), nodes) == {"a1": None, "b1": None}
    # with minDomains 3 only two domains exist, so the global minimum counts as 0: skew 1+1-0 > 1
    assert run(web("new", topologySpreadConstraints=[spread(minDomains=3)]), nodes) == {"a1": REASON, "b1": REASON}


def test_node_affinity_policy():
    nodes = [make_node("a1", zone="a", labels={"pool": "x"}), make_node("b1", zone="b", labels={"pool": "y"}),
             make_node("c1", zone="c", labels={"pool": "x"})]
    place(nodes[0], web("w0"))
    # Honor (default): zone b is outside the pod's nodeSelector and does not count, so the minimum is c=0
    honor = web("new", nodeSelector={"pool": "x"}, topologySpreadConstraints=[spread()])
    assert run(honor, nodes) == {"a1": REASON, "b1": None, "c1": None}
    ignore = web("new", nodeSelector={"pool": "x"}, topologySpreadConstraints=[spread(nodeAffinityPolicy="Ignore")])
    assert run(ignore, nodes) == {"a1": REASON, "b1": None, "c1": None}
    place(nodes[2], web("w1"))
    # now a=1, c=1; with Honor zone b is not a domain so the minimum is 1; with Ignore b=0 is
    assert run(honor, nodes) == {"a1": None, "b1": None, "c1": None}
    assert run(ignore, nodes) == {"a1": REASON, "b1": None, "c1": REASON}


def test_node_taints_policy():
    taint = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    nodes = [make_node("a1", zone="a"), make_node("b1", zone="b", taints=taint)]
    place(nodes[0], web("w0"))
    assert run(web("new", topologySpreadConstraints=[spread()]), nodes) == {"a1": REASON, "b1": None}
    honor = web("new", topologySpreadConstraints=[spread(nodeTaintsPolicy="Honor")])
    assert run(honor, nodes) == {"a1": None, "b1": None}  # the tainted zone is no domain: minimum is a=1


def test_match_label_keys_narrow_the_selector():
    nodes = [make_node("a1", zone="a"), make_node("b1", zone="b")]
    place(nodes[0], web("old", labels={"rev": "1"}))
    pod = web("new", labels={"rev": "2"}, topologySpreadConstraints=[spread(matchLabelKeys=["rev"])])
    assert run(pod, nodes) == {"a1": None, "b1": None}


def test_add_and_remove_pod():
    nodes = [make_node("a1", zone="a"), make_node("b1", zone="b")]
    victim = web("w0")
    place(nodes[0], victim)
    plugin = PodTopologySpread()
    state, info = CycleState(), PodInfo.of(web("new", topologySpreadConstraints=[spread()]))
    plugin.pre_filter(state, info, nodes)
    assert plugin.filter(state, info, nodes[0]) is not None
    plugin.remove_pod(state, info, victim, nodes[0])
    assert plugin.filter(state, info, nodes[0]) is None


def score(pod: dict, nodes, plugin: PodTopologySpread | None = None) -> dict[str, int]:
    plugin = plugin or PodTopologySpread()
    state, info = CycleState(), PodInfo.of(pod)
    if not plugin.pre_score(state, info, nodes, nodes):
        return {}
    scores = {n.name: plugin.score(state, info, n) for n in nodes}
    plugin.normalize(state, scores)
    return scores


def test_schedule_anyway_prefers_the_emptier_zone():
    result = score(web("new", topologySpreadConstraints=[spread(when="ScheduleAnyway")]), zones())
    assert result["c1"] == 100 and result["c1"] > result["b1"] > result["a1"] == result["a2"]
    assert result["nozone"] == 0  # ignored: misses the topology key


def test_system_default_constraints_spread_pods_of_one_owner():
    nodes = [make_node("h1", zone="a"), make_node("h2", zone="a"), make_node("h3", zone="b")]
    place(nodes[0], web("w0"), web("w1"))
    plugin = PodTopologySpread(default_selector=lambda pod: label_selector_from_object({"matchLabels":
                                                                                        {"app": "web"}}))
    result = score(web("new"), nodes, plugin)
    assert result["h3"] == 100 and result["h1"] < result["h2"] < result["h3"]
    # without an owning Service/controller there is nothing to spread
    assert score(web("new"), nodes) == {}


def test_args_validation():
    with pytest.raises(ArgsError):
        PodTopologySpread({"defaultingType": "Weird"})
    with pytest.raises(ArgsError):
        PodTopologySpread({"defaultingType": "System", "defaultConstraints": [spread()]})
    listed = PodTopologySpread({"defaultingType": "List", "defaultConstraints": [spread(HOST, when="DoNotSchedule")]},
                               default_selector=lambda pod: label_selector_from_object({"matchLabels":
                                                                                        {"app": "web"}}))
    nodes = [make_node("h1"), make_node("h2")]
    place(nodes[0], web("w0"))
    assert run(web("new"), nodes, listed) == {"h1": REASON, "h2": None}
