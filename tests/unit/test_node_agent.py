"""A real node's status builders and host readings: capacity/allocatable, pressure and Ready conditions, images."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.kubelet.node import PressureTracker, condition_events, hugepages, os_image
from pyk8s.kubelet.node_status import (
    NETWORK_NOT_READY,
    RUNTIME_DOWN,
    EvictionThresholds,
    HostCapacity,
    NodeSignals,
    capacity_and_allocatable,
    node_images,
    ready_message,
    real_node_conditions,
    real_node_object,
    real_status_needs_update,
    under_pressure,
)

GiB = 1024**3
MiB = 1024**2


def test_capacity_and_allocatable_keep_back_the_hard_eviction_thresholds() -> None:
    host = HostCapacity(cpu=4, memory=16 * GiB, ephemeral_storage=100 * GiB, hugepages={"hugepages-2Mi": 0})
    capacity, allocatable = capacity_and_allocatable(host, EvictionThresholds())
    assert capacity == {"cpu": "4", "ephemeral-storage": "100Gi", "hugepages-2Mi": "0", "memory": "16Gi",
                        "pods": "110"}
    # memory.available<100Mi and nodefs.available<10% come off allocatable, as upstream with no reservations.
    assert allocatable["memory"] == f"{16 * 1024 - 100}Mi"
    assert allocatable["ephemeral-storage"] == "90Gi"
    assert allocatable["cpu"] == "4" and allocatable["pods"] == "110" and allocatable["hugepages-2Mi"] == "0"


def test_capacity_of_odd_sizes_is_in_kibibytes_like_cadvisor() -> None:
    host = HostCapacity(cpu=2, memory=16314536 * 1024, ephemeral_storage=102626232 * 1024, pods=50)
    capacity, allocatable = capacity_and_allocatable(host, EvictionThresholds(memory_available_bytes=0))
    assert capacity["memory"] == "16314536Ki" and capacity["ephemeral-storage"] == "102626232Ki"
    assert capacity["pods"] == "50" and allocatable["memory"] == "16314536Ki"


def _signals(**overrides) -> NodeSignals:
    values = {"memory_available": 8 * GiB, "nodefs_available": 50 * GiB, "nodefs_capacity": 100 * GiB,
              "imagefs_available": 50 * GiB, "imagefs_capacity": 100 * GiB, "pids_available": 30000,
              "pid_max": 32768}
    return NodeSignals(**{**values, **overrides})


@pytest.mark.parametrize("overrides, pressured", [
    ({}, set()),
    ({"memory_available": 99 * MiB}, {"MemoryPressure"}),
    ({"memory_available": 100 * MiB}, set()),
    ({"nodefs_available": 9 * GiB}, {"DiskPressure"}),
    ({"imagefs_available": 14 * GiB}, {"DiskPressure"}),
    ({"imagefs_available": 16 * GiB}, set()),
    ({"pids_available": 1000}, {"PIDPressure"}),
    ({"pids_available": 0, "pid_max": 0}, set()),  # no pid_max known: no verdict
])
def test_pressure_follows_upstreams_default_thresholds(overrides: dict, pressured: set) -> None:
    result = under_pressure(_signals(**overrides), EvictionThresholds())
    assert {name for name, active in result.items() if active} == pressured


def test_conditions_report_pressure_and_readiness_with_upstreams_texts() -> None:
    conditions = real_node_conditions({"MemoryPressure": True}, [], 1000.0)
    by_type = {c["type"]: c for c in conditions}
    assert [c["type"] for c in conditions] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert by_type["MemoryPressure"]["status"] == "True"
    assert by_type["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert by_type["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert by_type["Ready"] == {"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": "1970-01-01T00:16:40Z",
                                "lastTransitionTime": "1970-01-01T00:16:40Z"}

    later = real_node_conditions({}, [NETWORK_NOT_READY], 2000.0, conditions)
    by_type = {c["type"]: c for c in later}
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["reason"] == "KubeletNotReady"
    assert by_type["Ready"]["message"] == NETWORK_NOT_READY
    assert by_type["Ready"]["lastTransitionTime"] == "1970-01-01T00:33:20Z"
    # DiskPressure did not change: its transition time stays, its heartbeat moves.
    assert by_type["DiskPressure"]["lastTransitionTime"] == "1970-01-01T00:16:40Z"
    assert by_type["DiskPressure"]["lastHeartbeatTime"] == "1970-01-01T00:33:20Z"


def test_ready_message_is_a_go_error_aggregate() -> None:
    assert ready_message([RUNTIME_DOWN]) == "container runtime is down"
    assert ready_message([RUNTIME_DOWN, NETWORK_NOT_READY]) == f"[container runtime is down, {NETWORK_NOT_READY}]"


def test_images_are_biggest_first_and_capped_like_upstream() -> None:
    images = [([f"sha{i}", f"name{i}:a", f"name{i}:b", "x", "y", "z"], i * 100) for i in range(60)]
    images.append(([], 10**9))  # an image without names is left out
    listed = node_images(images)
    assert len(listed) == 50
    assert listed[0] == {"names": ["sha59", "name59:a", "name59:b", "x", "y"], "sizeBytes": 5900}
    assert [image["sizeBytes"] for image in listed] == sorted((i * 100 for i in range(10, 60)), reverse=True)


def test_a_changed_image_list_is_written_at_once() -> None:
    status = {"capacity": {"cpu": "1"}, "conditions": real_node_conditions({}, [], 1.0), "images": []}
    assert not real_status_needs_update(status, {**status, "conditions": real_node_conditions({}, [], 50.0)})
    assert real_status_needs_update(status, {**status, "images": [{"names": ["a"], "sizeBytes": 1}]})
    assert real_status_needs_update(status, {**status, "conditions": real_node_conditions({}, [RUNTIME_DOWN], 2.0)})


def test_registered_node_object() -> None:
    node = real_node_object("n1", {"kubernetes.io/hostname": "n1"}, {"capacity": {"cpu": "1"}})
    assert node["metadata"]["annotations"] == {"node.alpha.kubernetes.io/ttl": "0",
                                               "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    assert node["spec"] == {} and node["status"] == {"capacity": {"cpu": "1"}}


def test_pressure_is_held_for_the_transition_period() -> None:
    now = [0.0]
    tracker = PressureTracker(period=300, clock=lambda: now[0])
    assert tracker.observe({"MemoryPressure": False}) == {"MemoryPressure": False}
    assert tracker.observe({"MemoryPressure": True}) == {"MemoryPressure": True}
    now[0] = 299.0
    assert tracker.observe({"MemoryPressure": False}) == {"MemoryPressure": True}
    now[0] = 300.0
    assert tracker.observe({"MemoryPressure": False}) == {"MemoryPressure": False}


def test_condition_changes_become_upstreams_node_events() -> None:
    first = real_node_conditions({}, [NETWORK_NOT_READY], 1.0)
    assert condition_events(None, first) == ["NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                                             "NodeHasSufficientPID", "NodeNotReady"]
    ready = real_node_conditions({}, [], 2.0, first)
    assert condition_events(first, ready) == ["NodeReady"]
    assert condition_events(ready, real_node_conditions({}, [], 3.0, ready)) == []


def test_os_image_is_the_pretty_name(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    assert os_image(release) == "Debian GNU/Linux 12 (bookworm)"
    assert os_image(tmp_path / "missing") == "Linux"


def test_hugepages_are_read_per_page_size(tmp_path: Path) -> None:
    for size, count in (("2048kB", 3), ("1048576kB", 0)):
        (tmp_path / f"hugepages-{size}").mkdir()
        (tmp_path / f"hugepages-{size}" / "nr_hugepages").write_text(f"{count}\n")
    assert hugepages(tmp_path) == {"hugepages-1Gi": 0, "hugepages-2Mi": 3 * 2 * MiB}
    assert hugepages(tmp_path / "none") == {}
