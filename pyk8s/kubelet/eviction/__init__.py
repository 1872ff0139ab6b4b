"""Node-pressure eviction: signals (what the node has left), thresholds (the flags and their arithmetic), ranking
(which pod goes first) and the manager that runs it every 10 s."""

from .manager import EvictionConfig, EvictionManager, EvictPod, is_critical_pod
from .signals import HostStatsProvider, StatsProvider, StatsUnavailable, Summary
from .thresholds import ThresholdError, parse_threshold_config

__all__ = ["EvictPod", "EvictionConfig", "EvictionManager", "HostStatsProvider", "StatsProvider", "StatsUnavailable",
           "Summary", "ThresholdError", "is_critical_pod", "parse_threshold_config"]
