"""KubeSchedulerConfiguration profiles, scoring strategies, ImageLocality and percentageOfNodesToScore."""

from __future__ import annotations

import pytest

from pyk8s.scheduler.config import ConfigError, build_framework, load_config, parse_config
from pyk8s.scheduler.framework import Framework, num_feasible_nodes_to_find
from pyk8s.scheduler.plugins import CycleState, ImageLocality, NodeResourcesFit, PluginHandle, PodInfo

from scheduler_builders import make_node, make_pod, place

V1 = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}


@pytest.mark.parametrize("nodes, pct, expected", [
    (50, None, 50), (100, None, 100), (1000, None, 420), (5000, None, 500), (6000, None, 300),
    (1000, 30, 300), (1000, 5, 100), (1000, 100, 1000), (20000, None, 1000),
])
def test_num_feasible_nodes_to_find(nodes, pct, expected):
    assert num_feasible_nodes_to_find(nodes, pct) == expected


def test_framework_stops_filtering_at_the_target_and_rotates():
    nodes = [make_node(f"n{i}") for i in range(500)]
    fw = Framework()
    first = fw.schedule(make_pod("a"), nodes)
    assert first.evaluated == first.feasible == 230  # 50 - 500/125 = 46 %
    assert fw.next_start_index == 230
    fw.schedule(make_pod("b"), nodes)
    assert fw.next_start_index == 460


def score(plugin, pod: dict, node) -> int:
    return plugin.score(CycleState(), PodInfo.of(pod), node)


def test_scoring_strategies():
    empty, busy = make_node("empty", cpu="4", memory="4Gi"), make_node("busy", cpu="4", memory="4Gi")
    place(busy, make_pod("x", cpu="2"))
    pod = make_pod("p", cpu="1")
    least = NodeResourcesFit()
    assert score(least, pod, empty) > score(least, pod, busy)
    most = NodeResourcesFit({"scoringStrategy": {"type": "MostAllocated"}})
    assert score(most, pod, busy) > score(most, pod, empty)
    # cpu only: requested 1 of 4 = 25 % on the empty node, 75 % on the busy one
    shape = NodeResourcesFit({"scoringStrategy": {"type": "RequestedToCapacityRatio",
                                                  "resources": [{"name": "cpu", "weight": 1}],
                                                  "requestedToCapacityRatio": {"shape": [
                                                      {"utilization": 0, "score": 0},
                                                      {"utilization": 100, "score": 10}]}}})
    assert score(shape, pod, empty) == 25 and score(shape, pod, busy) == 75


@pytest.mark.parametrize("args", [
    {"scoringStrategy": {"type": "Nope"}},
    {"scoringStrategy": {"type": "RequestedToCapacityRatio"}},
    {"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [
        {"utilization": 50, "score": 1}, {"utilization": 10, "score": 2}]}}},
])
def test_bad_fit_args_are_rejected(args):
    profile = parse_config({**V1, "profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": args}]}]})
    with pytest.raises(ConfigError, match="scoringStrategy"):
        build_framework(profile.profiles[0], PluginHandle(), None)


def test_image_locality_prefers_nodes_with_the_image():
    mb = 1024 * 1024
    nodes = [make_node("has", images=[{"names": ["docker.io/library/nginx:1.27"], "sizeBytes": 500 * mb}]),
             make_node("lacks")]
    plugin, state, pod = ImageLocality(), CycleState(), PodInfo.of(make_pod("p", image="nginx:1.27"))
    assert plugin.pre_score(state, pod, nodes, nodes)
    # 500 MB spread over 1 of 2 nodes = 250 MB, scaled between 23 MB and 1000 MB
    assert plugin.score(state, pod, nodes[0]) == 100 * (250 * mb - 23 * mb) // (977 * mb)
    assert plugin.score(state, pod, nodes[1]) == 0


def test_profiles_plugins_and_args(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
parallelism: 4
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  percentageOfNodesToScore: 100
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
      enabled:
      - name: NodeResourcesFit
        weight: 5
    filter:
      disabled:
      - name: NodePorts
    postFilter:
      disabled:
      - name: DefaultPreemption
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
  - name: InterPodAffinity
    args:
      hardPodAffinityWeight: 3
""")
    config = load_config(path)
    default, packer = (build_framework(p, PluginHandle(), None, config.percentage_of_nodes_to_score)
                       for p in config.profiles)
    assert default.percentage_of_nodes_to_score == 30 and packer.percentage_of_nodes_to_score == 100
    assert [p.name for p in default.filters] == ["NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity",
                                                 "NodePorts", "NodeResourcesFit", "PodTopologySpread",
                                                 "InterPodAffinity"]
    assert "NodePorts" not in {p.name for p in packer.filters}
    assert "NodeResourcesBalancedAllocation" not in packer.weights and packer.weights["NodeResourcesFit"] == 5
    assert default.preemption is not None and packer.preemption is None
    fit = next(p for p in packer.scorers if p.name == "NodeResourcesFit")
    assert fit.strategy == "MostAllocated"
    ipa = next(p for p in packer.scorers if p.name == "InterPodAffinity")
    assert ipa.hard_pod_affinity_weight == 3
    assert [p.name for p in default.pre_enqueue] == ["SchedulingGates"]


def test_multi_point_disable_all_then_enable():
    config = parse_config({**V1, "profiles": [{"schedulerName": "minimal", "plugins": {"multiPoint": {
        "disabled": [{"name": "*"}], "enabled": [{"name": "NodeResourcesFit", "weight": 2}]}}}]})
    fw = build_framework(config.profiles[0], PluginHandle(), None)
    assert [p.name for p in fw.filters] == ["NodeResourcesFit"] and fw.weights == {"NodeResourcesFit": 2}
    assert fw.preemption is None and fw.pre_enqueue == []


@pytest.mark.parametrize("doc, message", [
    ({"apiVersion": "v1", "kind": "Pod"}, "no kind"),
    ({**V1, "profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]}, 'plugin "Nope" does not exist'),
    ({**V1, "profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}, "Duplicate value"),
    ({**V1, "percentageOfNodesToScore": 150}, "not in valid range"),
    ({**V1, "profiles": [{"plugins": {"filters": {}}}]}, "unknown field"),
])
def test_invalid_configurations(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(doc)


def test_cli_rejects_a_bad_configuration_before_starting(tmp_path):
    from click.testing import CliRunner

    from pyk8s.cli import main

    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = tmp_path / "scheduler.yaml"
    config.write_text(f"apiVersion: {V1['apiVersion']}\nkind: {V1['kind']}\nprofiles:\n- plugins:\n"
                      "    score:\n      enabled:\n      - name: NoSuchPlugin\n")
    result = CliRunner().invoke(main, ["scheduler", "--kubeconfig", str(kubeconfig), "--config", str(config)])
    assert result.exit_code == 2
    assert 'plugin "NoSuchPlugin" does not exist' in result.output
