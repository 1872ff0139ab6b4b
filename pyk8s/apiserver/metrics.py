"""Prometheus metrics in the text exposition format, with no dependencies."""

from __future__ import annotations

import bisect
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        # verb, group, resource, subresource, code
        self.requests: dict[tuple[str, str, str, str, str], int] = defaultdict(int)
        self.latency: dict[tuple[str, str, str], list[int]] = {}  # verb, group, resource -> bucket counts
        self.latency_sum: dict[tuple[str, str, str], float] = defaultdict(float)
        self.watchers: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, verb: str, group: str, resource: str, subresource: str, code: int, seconds: float) -> None:
        self.requests[(verb, group, resource, subresource, str(code))] += 1
        if verb == "watch":
            return  # a watch's duration is its timeout, not a latency
        key = (verb, group, resource)
        buckets = self.latency.get(key)
        if buckets is None:
            buckets = self.latency[key] = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[key] += seconds

    def render(self, store_revision: int, extra: dict[str, float] | None = None) -> str:
        lines = ["# HELP apiserver_request_total Counter of apiserver requests broken out by verb, group, "
                 "resource and HTTP response code.", "# TYPE apiserver_request_total counter"]
        for (verb, group, resource, subresource, code), count in sorted(self.requests.items()):
            lines.append(f'apiserver_request_total{{code="{code}",group="{group}",resource="{resource}",'
                         f'subresource="{subresource}",verb="{verb}"}} {count}')
        lines += ["# HELP apiserver_request_duration_seconds Response latency distribution in seconds.",
                  "# TYPE apiserver_request_duration_seconds histogram"]
        for (verb, group, resource), buckets in sorted(self.latency.items()):
            labels = f'group="{group}",resource="{resource}",verb="{verb}"'
            cumulative = 0
            for bound, count in zip(LATENCY_BUCKETS, buckets[:-1], strict=True):
                cumulative += count
                lines.append(f'apiserver_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative}')
            cumulative += buckets[-1]
            lines.append(f'apiserver_request_duration_seconds_bucket{{{labels},le="+Inf"}} {cumulative}')
            total = self.latency_sum[(verb, group, resource)]
            lines.append(f"apiserver_request_duration_seconds_sum{{{labels}}} {total}")
            lines.append(f"apiserver_request_duration_seconds_count{{{labels}}} {cumulative}")
        lines += ["# HELP apiserver_registered_watchers Number of currently registered watchers.",
                  "# TYPE apiserver_registered_watchers gauge"]
        for (group, resource), count in sorted(self.watchers.items()):
            lines.append(f'apiserver_registered_watchers{{group="{group}",resource="{resource}"}} {count}')
        lines += ["# HELP pyk8s_store_revision The store's current revision.", "# TYPE pyk8s_store_revision gauge",
                  f"pyk8s_store_revision {store_revision}"]
        for name, value in (extra or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"
