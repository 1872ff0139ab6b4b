"""InterPodAffinity: filter and score tables (cases follow upstream's plugin tests)."""

from __future__ import annotations

import pytest

from pyk8s.scheduler.plugins import Code, CycleState, InterPodAffinity, PodInfo
from pyk8s.scheduler.plugins.inter_pod_affinity import (
    AFFINITY_REASON,
    ANTI_AFFINITY_REASON,
    EXISTING_ANTI_AFFINITY_REASON,
)

from scheduler_builders import affinity, anti_affinity, make_node, make_pod, place, term

ZONE = "topology.kubernetes.io/zone"


def cluster():
    """n1, n2 in zone a; n3 in zone b; n4 without a zone."""
    return [make_node("n1", zone="a"), make_node("n2", zone="a"), make_node("n3", zone="b"), make_node("n4")]


def run(pod: dict, nodes, plugin: InterPodAffinity | None = None) -> dict[str, str | None]:
    plugin = plugin or InterPodAffinity()
    state = CycleState()
    info = PodInfo.of(pod)
    status = plugin.pre_filter(state, info, nodes)
    if status is not None:
        assert status.code is Code.SKIP  # nothing to check: every node passes
        return {n.name: None for n in nodes}
    out = {}
    for n in nodes:
        status = plugin.filter(state, info, n)
        out[n.name] = status.reasons[0] if status else None
    return out


def test_required_anti_affinity_by_hostname_and_by_zone():
    nodes = cluster()
    place(nodes[0], make_pod("web-0", labels={"app": "web"}))
    incoming = make_pod("web-1", labels={"app": "web"}, affinity=anti_affinity(term(app="web")))
    assert run(incoming, nodes) == {"n1": ANTI_AFFINITY_REASON, "n2": None, "n3": None, "n4": None}
    incoming = make_pod("web-1", labels={"app": "web"}, affinity=anti_affinity(term(ZONE, app="web")))
    # a node without the topology key is not in any zone, so it cannot conflict
    assert run(incoming, nodes) == {"n1": ANTI_AFFINITY_REASON, "n2": ANTI_AFFINITY_REASON, "n3": None, "n4": None}


def test_anti_affinity_status_lets_preemption_try():
    nodes = cluster()
    place(nodes[0], make_pod("web-0", labels={"app": "web"}))
    state, info = CycleState(), PodInfo.of(make_pod("x", labels={"app": "web"},
                                                    affinity=anti_affinity(term(app="web"))))
    plugin = InterPodAffinity()
    plugin.pre_filter(state, info, nodes)
    assert plugin.filter(state, info, nodes[0]).code is Code.UNSCHEDULABLE


def test_existing_pods_anti_affinity_is_honoured():
    nodes = cluster()
    place(nodes[2], make_pod("db", labels={"app": "db"}, affinity=anti_affinity(term(ZONE, app="web"))))
    assert run(make_pod("web", labels={"app": "web"}), nodes) == {
        "n1": None, "n2": None, "n3": EXISTING_ANTI_AFFINITY_REASON, "n4": None}
    assert run(make_pod("other", labels={"app": "other"}), nodes) == dict.fromkeys(("n1", "n2", "n3", "n4"))


def test_required_affinity_needs_a_matching_pod_in_the_domain():
    nodes = cluster()
    place(nodes[0], make_pod("db", labels={"app": "db"}))
    incoming = make_pod("web", affinity=affinity(term(ZONE, app="db")))
    assert run(incoming, nodes) == {"n1": None, "n2": None, "n3": AFFINITY_REASON, "n4": AFFINITY_REASON}
    state, info = CycleState(), PodInfo.of(incoming)
    plugin = InterPodAffinity()
    plugin.pre_filter(state, info, nodes)
    assert plugin.filter(state, info, nodes[2]).code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_first_pod_of_a_self_affine_group_may_go_anywhere_with_the_key():
    nodes = cluster()
    incoming = make_pod("web-0", labels={"app": "web"}, affinity=affinity(term(ZONE, app="web")))
    assert run(incoming, nodes) == {"n1": None, "n2": None, "n3": None, "n4": AFFINITY_REASON}
    # not self-matching: no pod anywhere, so nowhere
    incoming = make_pod("x", labels={"app": "x"}, affinity=affinity(term(ZONE, app="web")))
    assert set(run(incoming, nodes).values()) == {AFFINITY_REASON}


@pytest.mark.parametrize("extra, blocked", [
    ({}, False),  # the term's namespace defaults to the incoming pod's
    ({"namespaces": ["other"]}, True),
    ({"namespaceSelector": {}}, True),  # every namespace
    ({"namespaceSelector": {"matchLabels": {"team": "blue"}}}, True),
    ({"namespaceSelector": {"matchLabels": {"team": "red"}}}, False),
])
def test_namespaces_and_namespace_selector(extra, blocked):
    nodes = cluster()
    place(nodes[0], make_pod("web-0", namespace="other", labels={"app": "web"}))
    labels = {"other": {"team": "blue"}, "ns": {}}
    plugin = InterPodAffinity(namespace_labels=labels.get)
    incoming = make_pod("web-1", labels={"app": "web"}, affinity=anti_affinity({**term(app="web"), **extra}))
    assert (run(incoming, nodes, plugin)["n1"] == ANTI_AFFINITY_REASON) == blocked


def test_match_and_mismatch_label_keys():
    nodes = cluster()
    place(nodes[0], make_pod("v1", labels={"app": "web", "version": "v1"}))
    place(nodes[1], make_pod("v2", labels={"app": "web", "version": "v2"}))
    incoming = make_pod("new", labels={"app": "web", "version": "v2"},
                        affinity=anti_affinity({**term(app="web"), "matchLabelKeys": ["version"]}))
    assert run(incoming, nodes) == {"n1": None, "n2": ANTI_AFFINITY_REASON, "n3": None, "n4": None}
    incoming = make_pod("new", labels={"app": "web", "version": "v2"},
                        affinity=anti_affinity({**term(app="web"), "mismatchLabelKeys": ["version"]}))
    assert run(incoming, nodes) == {"n1": ANTI_AFFINITY_REASON, "n2": None, "n3": None, "n4": None}


def test_invalid_term_is_an_error_not_a_crash():
    bad = {"topologyKey": "kubernetes.io/hostname",
           "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}}
    status = InterPodAffinity().pre_filter(CycleState(), PodInfo.of(make_pod("x", affinity=anti_affinity(bad))),
                                           cluster())
    assert status is not None and status.code is Code.ERROR and "Bogus" in status.reasons[0]


def test_existing_pod_with_invalid_term_is_ignored():
    nodes = cluster()
    bad = {"topologyKey": "kubernetes.io/hostname",
           "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}}
    place(nodes[0], make_pod("broken", affinity=anti_affinity(bad)))
    assert run(make_pod("x"), nodes) == dict.fromkeys(("n1", "n2", "n3", "n4"))


def test_add_and_remove_pod_update_the_counts():
    nodes = cluster()
    victim = place(nodes[0], make_pod("web-0", labels={"app": "web"})) and nodes[0].pods[next(iter(nodes[0].pods))]
    plugin = InterPodAffinity()
    state, info = CycleState(), PodInfo.of(make_pod("web-1", labels={"app": "web"},
                                                    affinity=anti_affinity(term(app="web"))))
    plugin.pre_filter(state, info, nodes)
    assert plugin.filter(state, info, nodes[0]) is not None
    plugin.remove_pod(state, info, victim, nodes[0])
    assert plugin.filter(state, info, nodes[0]) is None
    plugin.add_pod(state, info, victim, nodes[0])
    assert plugin.filter(state, info, nodes[0]) is not None


def score(pod: dict, nodes, plugin: InterPodAffinity | None = None) -> dict[str, int]:
    plugin = plugin or InterPodAffinity()
    state, info = CycleState(), PodInfo.of(pod)
    if not plugin.pre_score(state, info, nodes, nodes):
        return {}
    scores = {n.name: plugin.score(state, info, n) for n in nodes}
    plugin.normalize(state, scores)
    return scores


def weighted(weight: int, t: dict) -> dict:
    return {"weight": weight, "podAffinityTerm": t}


def test_preferred_affinity_and_anti_affinity_scores():
    nodes = cluster()
    place(nodes[0], make_pod("db", labels={"app": "db"}))
    place(nodes[2], make_pod("cache", labels={"app": "cache"}))
    pod = make_pod("web", affinity={**affinity(preferred=[weighted(10, term(ZONE, app="db"))]),
                                    **anti_affinity(preferred=[weighted(5, term(ZONE, app="cache"))])})
    # zone a: +10, zone b: -5, n4: 0 -> normalized onto 0..100
    assert score(pod, nodes) == {"n1": 100, "n2": 100, "n3": 0, "n4": 33}


def test_existing_pods_terms_score_the_incoming_pod():
    nodes = cluster()
    place(nodes[0], make_pod("db", labels={"app": "db"}, affinity=affinity(term(app="web"))))
    place(nodes[2], make_pod("x", labels={"app": "x"},
                             affinity=anti_affinity(preferred=[weighted(7, term(ZONE, app="web"))])))
    result = score(make_pod("web", labels={"app": "web"}), nodes)
    assert result["n1"] == 100 and result["n3"] == 0 and 0 < result["n2"] == result["n4"] < 100
    # hardPodAffinityWeight 0 ignores existing pods' required affinity
    result = score(make_pod("web", labels={"app": "web"}), nodes, InterPodAffinity({"hardPodAffinityWeight": 0}))
    assert result["n1"] == result["n2"] == result["n4"] == 100 and result["n3"] == 0


def test_no_affinity_anywhere_skips_scoring():
    assert score(make_pod("web"), cluster()) == {}
