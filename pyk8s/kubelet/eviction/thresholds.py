"""Eviction thresholds: the kubelet's `--eviction-hard/-soft/-soft-grace-period/-minimum-reclaim` flags, parsed and
validated like upstream (pkg/kubelet/eviction/helpers.go ParseThresholdConfig), and the threshold arithmetic the
eviction manager runs every cycle (thresholdsMet, grace periods, node conditions, the transition period).

A threshold is `<signal><<quantity or percentage>`: `memory.available<100Mi`, `nodefs.available<10%`. Percentages are
single-precision floats as upstream keeps them, so `10%` of a capacity rounds exactly as the kubelet's does.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from ...api import quantity as quantities

MEMORY_AVAILABLE = "memory.available"
ALLOCATABLE_MEMORY_AVAILABLE = "allocatableMemory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
IMAGEFS_INODES_FREE = "imagefs.inodesFree"
CONTAINERFS_AVAILABLE = "containerfs.available"
CONTAINERFS_INODES_FREE = "containerfs.inodesFree"
PID_AVAILABLE = "pid.available"

RESOURCE_MEMORY = "memory"
RESOURCE_EPHEMERAL_STORAGE = "ephemeral-storage"
RESOURCE_INODES = "inodes"
RESOURCE_PIDS = "pids"

# What each signal starves (upstream signalToResource); a signal missing here is not a valid signal.
SIGNAL_RESOURCE = {
    MEMORY_AVAILABLE: RESOURCE_MEMORY,
    ALLOCATABLE_MEMORY_AVAILABLE: RESOURCE_MEMORY,
    IMAGEFS_AVAILABLE: RESOURCE_EPHEMERAL_STORAGE,
    IMAGEFS_INODES_FREE: RESOURCE_INODES,
    CONTAINERFS_AVAILABLE: RESOURCE_EPHEMERAL_STORAGE,
    CONTAINERFS_INODES_FREE: RESOURCE_INODES,
    NODEFS_AVAILABLE: RESOURCE_EPHEMERAL_STORAGE,
    NODEFS_INODES_FREE: RESOURCE_INODES,
    PID_AVAILABLE: RESOURCE_PIDS,
}

MEMORY_PRESSURE = "MemoryPressure"
DISK_PRESSURE = "DiskPressure"
PID_PRESSURE = "PIDPressure"
PRESSURE_CONDITIONS = (MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE)

SIGNAL_CONDITION = {
    MEMORY_AVAILABLE: MEMORY_PRESSURE,
    ALLOCATABLE_MEMORY_AVAILABLE: MEMORY_PRESSURE,
    IMAGEFS_AVAILABLE: DISK_PRESSURE,
    IMAGEFS_INODES_FREE: DISK_PRESSURE,
    CONTAINERFS_AVAILABLE: DISK_PRESSURE,
    CONTAINERFS_INODES_FREE: DISK_PRESSURE,
    NODEFS_AVAILABLE: DISK_PRESSURE,
    NODEFS_INODES_FREE: DISK_PRESSURE,
    PID_AVAILABLE: PID_PRESSURE,
}

# The kubelet's defaults on Linux (pkg/kubelet/eviction/defaults_linux.go), and KubeletConfiguration's.
DEFAULT_EVICTION_HARD = ("memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,"
                         "imagefs.inodesFree<5%")
DEFAULT_PRESSURE_TRANSITION_PERIOD = 300.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ThresholdError(ValueError):
    """A flag the kubelet would refuse to start with; the message is upstream's."""


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


@dataclass(frozen=True)
class ThresholdValue:
    """Either an absolute quantity (bytes, inodes or pids) or a fraction of the capacity (0..1, float32)."""

    quantity: quantities.Quantity | None = None
    percentage: float = 0.0

    def amount(self, capacity: int) -> int:
        """The value in absolute units against `capacity` (upstream GetThresholdQuantity)."""
        if self.quantity is not None:
            return int(self.quantity.value)
        return int(float(capacity) * self.percentage)

    def text(self, capacity: int) -> str:
        """How upstream prints the absolute value: the flag's own text, or the computed amount in binary SI."""
        if self.quantity is not None:
            return str(self.quantity)
        return quantities.canonical(Fraction(self.amount(capacity)), quantities.BINARY_SI)


@dataclass(frozen=True)
class Threshold:
    signal: str
    value: ThresholdValue
    grace_period: float = 0.0  # seconds; 0 makes a hard threshold
    min_reclaim: ThresholdValue | None = None

    @property
    def hard(self) -> bool:
        return self.grace_period == 0

    @property
    def resource(self) -> str | None:
        return SIGNAL_RESOURCE.get(self.signal)

    @property
    def condition(self) -> str | None:
        return SIGNAL_CONDITION.get(self.signal)


@dataclass(frozen=True)
class Observation:
    """What the node has of one signal: how much is left, out of how much, and when it was measured."""

    available: int
    capacity: int
    time: float | None = None


# ---- flags -------------------------------------------------------------------------------------------

def parse_flag_map(value: str | Mapping[str, str] | None, separator: str) -> dict[str, str]:
    """`a<1,b<2` (separator "<", upstream LangleSeparatedMapStringString) or `a=1,b=2` (MapStringString)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    result: dict[str, str] = {}
    for pair in value.split(","):
        if not pair:
            continue
        key, found, item = pair.partition(separator)
        if not found:
            raise ThresholdError(f"malformed pair, expect string{separator}string")
        result[key.strip()] = item.strip()
    return result


def _unsupported(signal: str) -> ThresholdError:
    return ThresholdError(f"unsupported eviction signal {signal}")


def _parse_percentage(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise ThresholdError(f'strconv.ParseFloat: parsing "{text.rstrip("%")}": invalid syntax') from None
    return _float32(_float32(value) / 100)


def _parse_quantity(text: str) -> quantities.Quantity:
    try:
        return quantities.parse(text)
    except quantities.QuantityError as exc:
        raise ThresholdError(str(exc)) from None


def _parse_statement(signal: str, text: str) -> Threshold | None:
    """One `signal<value`; None for 0% and 100%, which upstream ignores."""
    if signal not in SIGNAL_RESOURCE:
        raise _unsupported(signal)
    if text.endswith("%"):
        if text in ("0%", "100%"):
            return None
        percentage = _parse_percentage(text)
        if percentage < 0:
            raise ThresholdError(f"eviction percentage threshold {signal} must be >= 0%: {text}")
        if percentage > 1:
            raise ThresholdError(f"eviction percentage threshold {signal} must be <= 100%: {text}")
        return Threshold(signal, ThresholdValue(percentage=percentage))
    value = _parse_quantity(text)
    if value.value <= 0:
        raise ThresholdError(f"eviction threshold {signal} must be positive: {value}")
    return Threshold(signal, ThresholdValue(quantity=value))


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    source = text
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ThresholdError(f'time: invalid duration "{source}"')
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text:
        raise ThresholdError(f'time: invalid duration "{source}"')
    return sign * total


def _parse_grace_periods(statements: Mapping[str, str]) -> dict[str, float]:
    periods = {}
    for signal, text in statements.items():
        if signal not in SIGNAL_RESOURCE:
            raise _unsupported(signal)
        period = parse_duration(text)
        if period < 0:
            raise ThresholdError(f"invalid eviction grace period specified: {text}, must be a positive value")
        periods[signal] = period
    return periods


def _parse_minimum_reclaims(statements: Mapping[str, str]) -> dict[str, ThresholdValue]:
    reclaims = {}
    for signal, text in statements.items():
        if signal not in SIGNAL_RESOURCE:
            raise _unsupported(signal)
        if text.endswith("%"):
            percentage = _parse_percentage(text)
            if percentage <= 0:
                raise ThresholdError(f"eviction percentage minimum reclaim {signal} must be positive: {text}")
            reclaims[signal] = ThresholdValue(percentage=percentage)
            continue
        value = _parse_quantity(text)
        if value.value < 0:
            raise ThresholdError(f"negative eviction minimum reclaim specified for {signal}")
        reclaims[signal] = ThresholdValue(quantity=value)
    return reclaims


def parse_threshold_config(hard: str | Mapping[str, str] | None = DEFAULT_EVICTION_HARD,
                           soft: str | Mapping[str, str] | None = None,
                           soft_grace_period: str | Mapping[str, str] | None = None,
                           minimum_reclaim: str | Mapping[str, str] | None = None,
                           *, enforce_node_allocatable: Iterable[str] = ()) -> list[Threshold]:
    """The thresholds the kubelet enforces, from the four flags (strings or maps, as the config file has them).

    Every soft threshold needs a grace period. With `pods` in --enforce-node-allocatable each hard memory threshold
    also applies to the pods' cgroup (allocatableMemory.available), as upstream's addAllocatableThresholds does.
    """
    results = [t for signal, text in parse_flag_map(hard, "<").items()
               if (t := _parse_statement(signal, text)) is not None]
    soft_thresholds = [t for signal, text in parse_flag_map(soft, "<").items()
                       if (t := _parse_statement(signal, text)) is not None]
    periods = _parse_grace_periods(parse_flag_map(soft_grace_period, "="))
    reclaims = _parse_minimum_reclaims(parse_flag_map(minimum_reclaim, "="))
    for threshold in soft_thresholds:
        if threshold.signal not in periods:
            raise ThresholdError(f"grace period must be specified for the soft eviction threshold {threshold.signal}")
        results.append(Threshold(threshold.signal, threshold.value, periods[threshold.signal]))
    results = [Threshold(t.signal, t.value, t.grace_period, reclaims.get(t.signal)) for t in results]
    if "pods" in set(enforce_node_allocatable):
        results += [Threshold(ALLOCATABLE_MEMORY_AVAILABLE, t.value, 0.0, t.min_reclaim)
                    for t in results if t.signal == MEMORY_AVAILABLE and t.hard]
    return results


# ---- the per-cycle arithmetic ---------------------------------------------------------------------------

def thresholds_met(thresholds: Iterable[Threshold], observations: Mapping[str, Observation],
                   enforce_min_reclaim: bool) -> list[Threshold]:
    """Thresholds whose signal is below the threshold value (plus the minimum reclaim when asked)."""
    met = []
    for threshold in thresholds:
        observed = observations.get(threshold.signal)
        if observed is None:
            continue
        amount = threshold.value.amount(observed.capacity)
        if enforce_min_reclaim and threshold.min_reclaim is not None:
            amount += threshold.min_reclaim.amount(observed.capacity)
        if amount > observed.available:
            met.append(threshold)
    return met


def merge_thresholds(first: Iterable[Threshold], second: Iterable[Threshold]) -> list[Threshold]:
    merged = list(first)
    merged += [t for t in second if t not in merged]
    return merged


def thresholds_first_observed_at(thresholds: Iterable[Threshold], previous: Mapping[Threshold, float],
                                 now: float) -> dict[Threshold, float]:
    return {t: previous.get(t, now) for t in thresholds}


def thresholds_met_grace_period(observed_at: Mapping[Threshold, float], now: float) -> list[Threshold]:
    return [t for t, at in observed_at.items() if now - at >= t.grace_period]


def thresholds_updated_stats(thresholds: Iterable[Threshold], observations: Mapping[str, Observation],
                             last: Mapping[str, Observation]) -> list[Threshold]:
    """Thresholds whose signal was measured again since the last cycle (stale stats never evict twice)."""
    updated = []
    for threshold in thresholds:
        observed, previous = observations.get(threshold.signal), last.get(threshold.signal)
        if (observed is None or observed.time is None or previous is None or previous.time is None
                or observed.time > previous.time):
            updated.append(threshold)
    return updated


def node_conditions(thresholds: Iterable[Threshold]) -> list[str]:
    found = {t.condition for t in thresholds if t.condition}
    return [c for c in PRESSURE_CONDITIONS if c in found]


def node_conditions_last_observed_at(conditions: Iterable[str], previous: Mapping[str, float],
                                     now: float) -> dict[str, float]:
    result = dict(previous)
    for condition in conditions:
        result[condition] = now
    return result


def node_conditions_observed_since(observed_at: Mapping[str, float], period: float, now: float) -> list[str]:
    """Conditions seen within the transition period: pressure stays reported until it has been gone that long."""
    return [c for c in PRESSURE_CONDITIONS if c in observed_at and now - observed_at[c] < period]


def eviction_priority_key(threshold: Threshold) -> int:
    """Memory first, thresholds without a resource to reclaim last (upstream byEvictionPriority)."""
    if threshold.signal in (MEMORY_AVAILABLE, ALLOCATABLE_MEMORY_AVAILABLE):
        return 0
    return 1 if threshold.resource else 2


def reclaimable_threshold(thresholds: Iterable[Threshold]) -> Threshold | None:
    for threshold in sorted(thresholds, key=eviction_priority_key):
        if threshold.resource:
            return threshold
    return None
