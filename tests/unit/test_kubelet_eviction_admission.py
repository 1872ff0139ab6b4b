"""Pod admission under node pressure (upstream eviction_manager_test.go TestAdmitUnderNodeConditions)."""

from __future__ import annotations

import pytest

from pyk8s.kubelet.admission import AdmitResult, admit


def _pod(name: str, *, requests: dict | None = None, priority: int | None = None, tolerations: list | None = None,
         annotations: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "resources": {"requests": requests} if requests else {}}]}
    if priority is not None:
        spec["priority"] = priority
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name, "namespace": "default", "annotations": annotations or {}}, "spec": spec}


BEST_EFFORT = _pod("best-effort")
BURSTABLE = _pod("burstable", requests={"memory": "100Mi"})
CRITICAL = _pod("critical", priority=2000000000)
MIRROR = _pod("mirror", annotations={"kubernetes.io/config.mirror": "abc"})
TOLERATES_MEMORY = _pod("tolerant", tolerations=[{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
                                                  "effect": "NoSchedule"}])
TOLERATES_ALL = _pod("tolerates-all", tolerations=[{"operator": "Exists"}])
TOLERATES_DISK = _pod("disk-tolerant", tolerations=[{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists",
                                                     "effect": "NoSchedule"}])


@pytest.mark.parametrize(("pod", "conditions", "admitted"), [
    (BEST_EFFORT, {}, True),
    (BEST_EFFORT, {"MemoryPressure": False, "DiskPressure": False}, True),
    (BEST_EFFORT, ["MemoryPressure"], False),
    (BURSTABLE, ["MemoryPressure"], True),
    (CRITICAL, ["MemoryPressure"], True),
    (TOLERATES_MEMORY, ["MemoryPressure"], True),
    (TOLERATES_ALL, ["MemoryPressure"], True),
    (TOLERATES_DISK, ["MemoryPressure"], False),
    (BURSTABLE, ["DiskPressure"], False),
    (TOLERATES_MEMORY, ["DiskPressure"], False),
    (BURSTABLE, ["MemoryPressure", "DiskPressure"], False),
    (BURSTABLE, ["PIDPressure"], False),
    (CRITICAL, ["DiskPressure"], True),
    (MIRROR, ["DiskPressure", "MemoryPressure"], True),
])
def test_admission_under_pressure(pod: dict, conditions, admitted: bool) -> None:
    assert admit(pod, conditions).admit is admitted


def test_rejection_carries_upstreams_reason_and_message() -> None:
    assert admit(BEST_EFFORT, {"MemoryPressure": True, "DiskPressure": False, "PIDPressure": False}) == AdmitResult(
        False, "Evicted", "The node had condition: [MemoryPressure]. ")
    assert admit(BURSTABLE, ["DiskPressure", "MemoryPressure"]).message == (
        "The node had condition: [MemoryPressure DiskPressure]. ")
