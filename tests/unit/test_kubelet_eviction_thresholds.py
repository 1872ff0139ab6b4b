"""Eviction flags and threshold arithmetic (upstream helpers_test.go TestParseThresholdConfig and friends)."""

from __future__ import annotations

import pytest

from pyk8s.api import quantity as quantities
from pyk8s.kubelet.eviction.thresholds import (
    ALLOCATABLE_MEMORY_AVAILABLE,
    DISK_PRESSURE,
    MEMORY_AVAILABLE,
    MEMORY_PRESSURE,
    NODEFS_AVAILABLE,
    PID_AVAILABLE,
    PID_PRESSURE,
    Observation,
    Threshold,
    ThresholdError,
    ThresholdValue,
    node_conditions,
    node_conditions_last_observed_at,
    node_conditions_observed_since,
    parse_duration,
    parse_threshold_config,
    reclaimable_threshold,
    thresholds_first_observed_at,
    thresholds_met,
    thresholds_met_grace_period,
    thresholds_updated_stats,
)

MI = 1024 * 1024


def test_default_hard_thresholds_are_the_kubelets() -> None:
    thresholds = parse_threshold_config()
    assert {t.signal: (str(t.value.quantity) if t.value.quantity else t.value.percentage) for t in thresholds} == {
        "memory.available": "100Mi", "nodefs.available": pytest.approx(0.10), "nodefs.inodesFree": pytest.approx(0.05),
        "imagefs.available": pytest.approx(0.15), "imagefs.inodesFree": pytest.approx(0.05)}
    assert all(t.hard and t.min_reclaim is None for t in thresholds)


def test_soft_thresholds_take_grace_periods_and_minimum_reclaims() -> None:
    thresholds = parse_threshold_config(
        hard="memory.available<150Mi", soft="memory.available<300Mi, nodefs.available<20%",
        soft_grace_period="memory.available=30s,nodefs.available=1m30s",
        minimum_reclaim="memory.available=0Mi,nodefs.available=500Mi")
    hard, soft_memory, soft_disk = thresholds
    assert (hard.signal, str(hard.value.quantity), hard.hard, str(hard.min_reclaim.quantity)) == (
        MEMORY_AVAILABLE, "150Mi", True, "0")
    assert (soft_memory.grace_period, soft_memory.hard, soft_memory.value.amount(0)) == (30.0, False, 300 * MI)
    assert (soft_disk.signal, soft_disk.grace_period, soft_disk.min_reclaim.amount(0)) == (
        NODEFS_AVAILABLE, 90.0, 500 * MI)


def test_maps_from_a_config_file_work_like_flags() -> None:
    assert parse_threshold_config({"memory.available": "1Gi"}) == parse_threshold_config("memory.available<1Gi")


def test_zero_and_hundred_percent_are_ignored() -> None:
    assert parse_threshold_config("nodefs.available<0%,imagefs.available<100%") == []


def test_enforced_node_allocatable_adds_the_pods_memory_threshold() -> None:
    thresholds = parse_threshold_config("memory.available<100Mi", enforce_node_allocatable=["pods"])
    assert [t.signal for t in thresholds] == [MEMORY_AVAILABLE, ALLOCATABLE_MEMORY_AVAILABLE]
    assert thresholds[1].value == thresholds[0].value


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hard": "mem.available<100Mi"}, "unsupported eviction signal mem.available"),
    ({"hard": "memory.available"}, "malformed pair, expect string<string"),
    ({"hard": "memory.available<-1Mi"}, "eviction threshold memory.available must be positive: -1Mi"),
    ({"hard": "memory.available<0"}, "eviction threshold memory.available must be positive: 0"),
    ({"hard": "nodefs.available<-5%"}, "eviction percentage threshold nodefs.available must be >= 0%: -5%"),
    ({"hard": "nodefs.available<150%"}, "eviction percentage threshold nodefs.available must be <= 100%: 150%"),
    ({"hard": "nodefs.available<ten%"}, 'strconv.ParseFloat: parsing "ten": invalid syntax'),
    ({"hard": "memory.available<1Qi"}, quantities.FORMAT_ERROR),
    ({"soft": "memory.available<1Gi"}, "grace period must be specified for the soft eviction threshold "
                                       "memory.available"),
    ({"soft": "memory.available<1Gi", "soft_grace_period": "memory.available=-1m"},
     "invalid eviction grace period specified: -1m, must be a positive value"),
    ({"soft_grace_period": "memory.available=soon"}, 'time: invalid duration "soon"'),
    ({"soft_grace_period": "memory.available:1m"}, "malformed pair, expect string=string"),
    ({"minimum_reclaim": "nodefs.available=0%"}, "eviction percentage minimum reclaim nodefs.available must be "
                                                 "positive: 0%"),
    ({"minimum_reclaim": "memory.available=-1Mi"}, "negative eviction minimum reclaim specified for "
                                                   "memory.available"),
    ({"minimum_reclaim": "disk.available=1Mi"}, "unsupported eviction signal disk.available"),
])
def test_invalid_flags_get_upstreams_messages(kwargs: dict, message: str) -> None:
    with pytest.raises(ThresholdError) as failure:
        parse_threshold_config(**kwargs)
    assert str(failure.value) == message


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("30s", 30), ("1m30s", 90), ("1.5h", 5400), ("500ms", 0.5)])
def test_durations_are_gos(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_percentages_are_single_precision_like_upstream() -> None:
    # float32(0.1) * 1000000007 truncates to 100000002 (a float64 0.1 would give 100000000).
    (threshold,) = parse_threshold_config("nodefs.available<10%")
    assert threshold.value.amount(1_000_000_007) == int(1_000_000_007 * 0.10000000149011612)
    assert threshold.value.text(1000 * MI) == "104857601"


def _threshold(signal: str, quantity: str, grace: float = 0, min_reclaim: str | None = None) -> Threshold:
    return Threshold(signal, ThresholdValue(quantity=quantities.parse(quantity)), grace,
                     ThresholdValue(quantity=quantities.parse(min_reclaim)) if min_reclaim else None)


def test_thresholds_met_and_minimum_reclaim() -> None:
    hard = _threshold(MEMORY_AVAILABLE, "1Gi", min_reclaim="500Mi")
    observed = {MEMORY_AVAILABLE: Observation(available=1200 * MI, capacity=8192 * MI)}
    assert thresholds_met([hard], observed, enforce_min_reclaim=False) == []
    # Once met, a threshold stays met until available is above value + minimum reclaim.
    assert thresholds_met([hard], observed, enforce_min_reclaim=True) == [hard]
    assert thresholds_met([hard], {MEMORY_AVAILABLE: Observation(1600 * MI, 8192 * MI)}, True) == []
    assert thresholds_met([hard], {}, False) == []  # no observation, nothing met


def test_grace_periods_and_updated_stats() -> None:
    soft = _threshold(MEMORY_AVAILABLE, "1Gi", grace=60)
    hard = _threshold(PID_AVAILABLE, "100")
    first = thresholds_first_observed_at([soft, hard], {}, now=1000)
    assert thresholds_met_grace_period(first, now=1000) == [hard]
    later = thresholds_first_observed_at([soft, hard], first, now=1059)
    assert later == first
    assert thresholds_met_grace_period(later, now=1060) == [soft, hard]
    stale = {MEMORY_AVAILABLE: Observation(1, 2, time=5), PID_AVAILABLE: Observation(1, 2, time=5)}
    fresh = {MEMORY_AVAILABLE: Observation(1, 2, time=6), PID_AVAILABLE: Observation(1, 2, time=5)}
    assert thresholds_updated_stats([soft, hard], fresh, stale) == [soft]


def test_pressure_is_held_for_the_transition_period() -> None:
    met = [_threshold(MEMORY_AVAILABLE, "1Gi"), _threshold(NODEFS_AVAILABLE, "1Gi")]
    assert node_conditions(met) == [MEMORY_PRESSURE, DISK_PRESSURE]
    seen = node_conditions_last_observed_at(node_conditions(met), {}, now=100)
    seen = node_conditions_last_observed_at([PID_PRESSURE], seen, now=200)
    assert seen == {MEMORY_PRESSURE: 100, DISK_PRESSURE: 100, PID_PRESSURE: 200}
    assert node_conditions_observed_since(seen, period=300, now=399) == [MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE]
    assert node_conditions_observed_since(seen, period=300, now=400) == [PID_PRESSURE]


def test_memory_is_reclaimed_before_anything_else() -> None:
    disk, memory, pids = (_threshold(NODEFS_AVAILABLE, "1Gi"), _threshold(MEMORY_AVAILABLE, "1Gi"),
                          _threshold(PID_AVAILABLE, "10"))
    assert reclaimable_threshold([disk, pids, memory]) == memory
    assert reclaimable_threshold([pids, disk]) == pids
    assert reclaimable_threshold([]) is None
