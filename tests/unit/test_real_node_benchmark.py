"""The real-node benchmark's accounting: CRI call durations and the kubelet's gaps read from containerd's log, and
nearest-rank percentiles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

real_node = pytest.importorskip("real_node")

SANDBOX = "&PodSandboxMetadata{Name:%s,Uid:u,Namespace:ns,Attempt:0,}"
CONTAINER = "&ContainerMetadata{Name:c,Attempt:0,}"


def line(second: str, message: str, level: str = "info") -> str:
    return f'time="2026-11-26T22:43:{second}Z" level={level} msg="{message}"'


LOG = "\n".join([
    line("40.200000000", f"RunPodSandbox for {SANDBOX % 'p-1'}"),
    line("40.300000000", f"RunPodSandbox for {SANDBOX % 'p-2'}"),
    line("41.000000000", f'RunPodSandbox for {SANDBOX % "p-1"} returns sandbox id \\"sb1\\"'),
    line("41.250000000", f'CreateContainer within sandbox \\"sb1\\" for container {CONTAINER}'),
    line("41.300000000", "something else", level="debug"),
    line("41.450000000", f'CreateContainer within sandbox \\"sb1\\" for {CONTAINER} returns container id \\"c1\\"'),
    line("41.460000000", 'StartContainer for \\"c1\\"'),
    line("41.760000000", 'StartContainer for \\"c1\\" returns successfully'),
]) + "\n"


def test_cri_call_times_from_containerd_log(tmp_path: Path) -> None:
    log = tmp_path / "containerd.log"
    log.write_text(LOG)
    calls = real_node.cri_call_times(log, {"p-1", "p-2"})  # p-2 never finished: left out
    assert {name: [round(v, 3) for v in values] for name, values in calls.items()} == {
        "RunPodSandbox": [0.8], "kubelet_between_sandbox_and_create": [0.25], "CreateContainer": [0.2],
        "kubelet_between_create_and_start": [0.01], "StartContainer": [0.3]}


def test_nearest_rank_percentiles() -> None:
    values = [i / 100 for i in range(1, 101)]  # 0.01 .. 1.00
    assert real_node.percentiles(values) == {"p50_s": 0.5, "p90_s": 0.9, "p99_s": 0.99, "max_s": 1.0}
    assert real_node.percentiles([]) == {}
