"""A real node's status builders and host readings: capacity/allocatable, pressure and Ready conditions, images."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.kubelet.agent import eviction_settings
from pyk8s.kubelet.eviction.thresholds import parse_threshold_config
from pyk8s.kubelet.node import condition_events, hugepages, os_image
from pyk8s.kubelet.node_status import (
    NETWORK_NOT_READY,
    RUNTIME_DOWN,
    HostCapacity,
    capacity_and_allocatable,
    node_images,
    ready_message,
    real_node_conditions,
    real_node_object,
    real_status_needs_update,
)

GiB = 1024**3
MiB = 1024**2


def test_capacity_and_allocatable_keep_back_the_hard_eviction_thresholds() -> None:
    host = HostCapacity(cpu=4, memory=16 * GiB, ephemeral_storage=100 * GiB, hugepages={"hugepages-2Mi": 0})
    capacity, allocatable = capacity_and_allocatable(host, parse_threshold_config())
    assert capacity == {"cpu": "4", "ephemeral-storage": "100Gi", "hugepages-2Mi": "0", "memory": "16Gi",
                        "pods": "110"}
    # memory.available<100Mi and nodefs.available<10% come off allocatable, as upstream with no reservations.
    assert allocatable["memory"] == f"{16 * 1024 - 100}Mi"
    # 10% is a float32 as upstream keeps it: 10737418400 bytes of 100Gi, so allocatable is not a round number.
    assert allocatable["ephemeral-storage"] == str(100 * GiB - 10737418400)
    assert allocatable["cpu"] == "4" and allocatable["pods"] == "110" and allocatable["hugepages-2Mi"] == "0"


def test_capacity_of_odd_sizes_is_in_kibibytes_like_cadvisor() -> None:
    host = HostCapacity(cpu=2, memory=16314536 * 1024, ephemeral_storage=102626232 * 1024, pods=50)
    capacity, allocatable = capacity_and_allocatable(host, [])
    assert capacity["memory"] == "16314536Ki" and capacity["ephemeral-storage"] == "102626232Ki"
    assert capacity["pods"] == "50" and allocatable["memory"] == "16314536Ki"


def test_allocatable_follows_the_configured_hard_thresholds_only() -> None:
    host = HostCapacity(cpu=4, memory=16 * GiB, ephemeral_storage=100 * GiB)
    # A given --eviction-hard replaces the defaults: no nodefs threshold, so no storage is kept back; a
    # percentage is of the memory capacity (float32, as upstream).
    _, allocatable = capacity_and_allocatable(host, eviction_settings(hard="memory.available<25%").thresholds)
    assert allocatable["memory"] == "12Gi" and allocatable["ephemeral-storage"] == "100Gi"
    # Soft thresholds keep nothing back.
    soft = eviction_settings(hard="", soft="memory.available<1Gi", soft_grace_period="memory.available=1m")
    assert capacity_and_allocatable(host, soft.thresholds)[1]["memory"] == "16Gi"


@pytest.mark.parametrize("flags, message", [
    ({"hard": "memory.available<-1Mi"}, "eviction threshold memory.available must be positive: -1Mi"),
    ({"soft": "memory.available<1Gi"}, "grace period must be specified for the soft eviction threshold "
                                       "memory.available"),
    ({"pressure_transition_period": "5 minutes"}, 'time: invalid duration "5 minutes"'),
    ({"image_gc_high_threshold": 101}, "invalid configuration: imageGCHighThresholdPercent "
                                       "(--image-gc-high-threshold) 101 must be between 0 and 100, inclusive"),
    ({"image_gc_low_threshold": 85}, "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) "
                                     "85 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 85"),
])
def test_eviction_flags_are_refused_with_upstreams_messages(flags: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        eviction_settings(**flags)
    assert str(caught.value) == message


def test_eviction_flag_defaults_are_the_kubelets() -> None:
    settings = eviction_settings()
    assert sorted(t.signal for t in settings.thresholds) == ["imagefs.available", "imagefs.inodesFree",
                                                             "memory.available", "nodefs.available",
                                                             "nodefs.inodesFree"]
    assert settings.pressure_transition_period == 300.0
    assert (settings.image_gc.high_threshold_percent, settings.image_gc.low_threshold_percent) == (85, 80)
    tuned = eviction_settings(hard="memory.available<99%", pressure_transition_period="30s",
                              image_gc_high_threshold=100, image_gc_low_threshold=90)
    assert [t.signal for t in tuned.thresholds] == ["memory.available"]
    assert tuned.pressure_transition_period == 30.0 and tuned.image_gc.disabled


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
