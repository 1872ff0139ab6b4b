"""Job controller syncs against a fake API and hand-filled informer caches, with an injected wall clock:
expectations, the finalizer-based counting protocol (and its crash recovery), backoff, deadline, policies."""

from __future__ import annotations

import copy
import itertools

import pytest

from pyk8s.client import APIStatusError, RequeueAfter, SharedInformerFactory
from pyk8s.controllers.job import JobController
from pyk8s.controllers.job_util import JOB_TRACKING_FINALIZER, rfc3339

NOW = 1_700_000_000.0


class FakeAPI:
    def __init__(self):
        self.calls: list[tuple] = []
        self.names = itertools.count()
        self.live_job: dict | None = None

    async def create(self, body: dict) -> dict:
        name = body["metadata"]["generateName"] + str(next(self.names))
        self.calls.append(("create", name))
        return {**body, "metadata": {**body["metadata"], "name": name, "uid": f"uid-{name}"}}

    async def delete(self, resource: str, name: str, namespace: str | None = None, **_: object) -> dict:
        self.calls.append(("delete", name))
        return {}

    async def patch(self, resource: str, name: str, patch: dict, namespace: str | None = None, **_: object) -> dict:
        if "ownerReferences" in patch["metadata"]:
            self.calls.append(("own", name, patch["metadata"]["ownerReferences"], patch["metadata"]["finalizers"]))
            return {"metadata": {"name": name, "uid": patch["metadata"]["uid"],
                                 "ownerReferences": patch["metadata"]["ownerReferences"],
                                 "finalizers": patch["metadata"]["finalizers"]}, "status": {"phase": "Running"}}
        self.calls.append(("patch", name, patch["metadata"].get("$deleteFromPrimitiveList/finalizers")))
        return {}

    async def update_status(self, obj: dict, **_: object) -> dict:
        self.calls.append(("status", copy.deepcopy(obj["status"])))
        return obj

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict:
        if resource == "jobs" and self.live_job is not None:
            return self.live_job
        raise APIStatusError({"kind": "Status", "code": 404, "reason": "NotFound", "message": "nope"})

    def statuses(self) -> list[dict]:
        return [c[1] for c in self.calls if c[0] == "status"]


class Harness:
    def __init__(self, factory: SharedInformerFactory | None = None, **spec):
        self.api = FakeAPI()
        self.now = NOW
        self.ctl = JobController(self.api, factory or SharedInformerFactory(self.api), wall=lambda: self.now)
        self.job = {"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
                    "spec": {"parallelism": 2, "completions": 2, "backoffLimit": 6, "completionMode": "NonIndexed",
                             "suspend": False, "podReplacementPolicy": "TerminatingOrFailed",
                             "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "job-uid"}},
                             "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "job-uid"}},
                                          "spec": {"restartPolicy": "Never", "containers": [{"name": "main"}]}},
                             **spec},
                    "status": {"startTime": rfc3339(NOW - 5)}}
        self.ctl.job_informer.indexer.upsert("ns/j", self.job)

    def set_status(self, **status) -> None:
        self.job["status"].update(status)
        self.ctl.job_informer.indexer.upsert("ns/j", self.job)

    def add_pod(self, name: str, phase: str = "Running", *, finalizer: bool = True, exit_code: int | None = None,
                finished_at: float | None = None, deleting: bool = False) -> dict:
        status: dict = {"phase": phase}
        if exit_code is not None:
            status["containerStatuses"] = [{"name": "main", "state": {"terminated": {
                "exitCode": exit_code, "finishedAt": rfc3339(finished_at or NOW)}}}]
        meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1",
                "creationTimestamp": rfc3339(NOW - 10),
                "labels": {"batch.kubernetes.io/controller-uid": "job-uid"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid",
                                     "controller": True}],
                "finalizers": [JOB_TRACKING_FINALIZER] if finalizer else []}
        if deleting:
            meta["deletionTimestamp"] = rfc3339(NOW)
        pod = {"metadata": meta, "spec": {}, "status": status}
        self.ctl.pod_informer.indexer.upsert(f"ns/{name}", pod)
        return pod

    async def sync(self) -> float | None:
        try:
            await self.ctl.sync("ns/j")
        except RequeueAfter as requeue:
            return requeue.delay
        return None


async def test_creates_parallelism_pods_once_until_they_are_observed():
    h = Harness()
    await h.sync()
    creates = [c for c in h.api.calls if c[0] == "create"]
    assert len(creates) == 2
    status = h.api.statuses()[-1]
    assert status["startTime"] and status["ready"] == 0 and status["terminating"] == 0
    assert status["active"] == 2  # counted as soon as created, as upstream does
    # The informer has not seen the pods yet: expectations keep a second sync from creating more.
    await h.sync()
    assert len([c for c in h.api.calls if c[0] == "create"]) == 2
    h.ctl.expectations.creation_observed("ns/j")
    h.ctl.expectations.creation_observed("ns/j")
    h.add_pod("a")
    h.add_pod("b")
    await h.sync()
    assert len([c for c in h.api.calls if c[0] == "create"]) == 2


async def test_finished_pod_is_recorded_uncounted_then_released_then_counted():
    h = Harness(completions=1, parallelism=1)
    h.add_pod("a", "Succeeded", exit_code=0)
    await h.sync()
    kinds = [c[0] for c in h.api.calls]
    assert kinds == ["status", "patch", "status"]
    first, last = h.api.statuses()
    assert first["uncountedTerminatedPods"] == {"succeeded": ["uid-a"]} and "succeeded" not in first
    assert h.api.calls[1] == ("patch", "a", [JOB_TRACKING_FINALIZER])
    assert last["succeeded"] == 1 and last["uncountedTerminatedPods"] == {}
    assert {c["type"] for c in last["conditions"]} == {"SuccessCriteriaMet", "Complete"}
    assert last["completionTime"] == rfc3339(NOW)


async def test_after_a_crash_uncounted_uids_are_counted_exactly_once():
    h = Harness(completions=2, parallelism=2)
    # Crashed after step 1 for "a" (finalizer still there) and after step 2 for "b" (finalizer gone).
    h.set_status(uncountedTerminatedPods={"succeeded": ["uid-a", "uid-b"]})
    h.add_pod("a", "Succeeded", exit_code=0)
    h.add_pod("b", "Succeeded", exit_code=0, finalizer=False)
    await h.sync()
    assert [c for c in h.api.calls if c[0] == "patch"] == [("patch", "a", [JOB_TRACKING_FINALIZER])]
    assert not [c for c in h.api.calls if c[0] == "create"]
    last = h.api.statuses()[-1]
    assert last["succeeded"] == 2 and last["uncountedTerminatedPods"] == {}


async def test_removal_in_flight_is_not_counted_again_from_a_stale_cache():
    h = Harness(completions=2, parallelism=1)
    h.add_pod("a", "Succeeded", exit_code=0)
    await h.sync()
    assert h.api.statuses()[-1]["succeeded"] == 1
    # The cache still shows "a" with its finalizer and the job without the counted status.
    h.set_status(succeeded=1, uncountedTerminatedPods={})
    h.api.calls.clear()
    await h.sync()
    assert not any(c[0] == "status" and c[1].get("succeeded", 0) > 1 for c in h.api.calls)


async def test_failure_backoff_delays_the_replacement():
    h = Harness(completions=1, parallelism=1)
    h.add_pod("a", "Failed", exit_code=1, finished_at=NOW - 4, finalizer=False)
    h.set_status(failed=1)
    delay = await h.sync()
    assert delay == pytest.approx(6.0)
    assert not [c for c in h.api.calls if c[0] == "create"]
    h.now = NOW + 7
    h.ctl.expectations.delete("ns/j")
    await h.sync()
    assert len([c for c in h.api.calls if c[0] == "create"]) == 1


async def test_backoff_limit_sets_failure_target_then_failed_once_pods_are_gone():
    h = Harness(completions=1, parallelism=1, backoffLimit=0)
    h.add_pod("a", "Failed", exit_code=1)
    await h.sync()
    last = h.api.statuses()[-1]
    assert last["failed"] == 1
    types = {c["type"]: c for c in last["conditions"]}
    assert types["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert types["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in last


async def test_deadline_deletes_active_pods_and_waits_for_them_before_failed():
    h = Harness(activeDeadlineSeconds=3)
    h.add_pod("a")
    h.add_pod("b")
    await h.sync()
    assert sorted(c[1] for c in h.api.calls if c[0] == "delete") == ["a", "b"]
    status = h.api.statuses()[-1]
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget"]
    assert status["terminating"] == 2 and "active" not in status
    # The pods are now seen terminating: counted as failed, released, and the Job is Failed.
    h.set_status(**status)
    h.ctl.expectations.delete("ns/j")
    h.add_pod("a", deleting=True)
    h.add_pod("b", deleting=True)
    await h.sync()
    last = h.api.statuses()[-1]
    assert last["failed"] == 2
    assert "Failed" not in {c["type"] for c in last["conditions"]}  # still terminating
    h.set_status(**last)
    h.add_pod("a", "Failed", finalizer=False, deleting=True)
    h.add_pod("b", "Failed", finalizer=False, deleting=True)
    h.ctl.pod_informer.indexer.remove("ns/a")
    h.ctl.pod_informer.indexer.remove("ns/b")
    await h.sync()
    failed = next(c for c in h.api.statuses()[-1]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"


async def test_deadline_not_reached_requeues_for_it():
    h = Harness(activeDeadlineSeconds=30)
    h.add_pod("a")
    h.add_pod("b")
    assert await h.sync() == pytest.approx(25.0)


async def test_ignored_failures_do_not_count():
    h = Harness(completions=1, parallelism=1, backoffLimit=0, podReplacementPolicy="Failed", podFailurePolicy={
        "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}}]})
    h.add_pod("a", "Failed", exit_code=137)
    await h.sync()
    last = h.api.statuses()[-1]
    assert "failed" not in last and not last.get("conditions")
    assert ("patch", "a", [JOB_TRACKING_FINALIZER]) in h.api.calls


async def test_suspended_job_deletes_its_pods():
    h = Harness(suspend=True)
    h.add_pod("a")
    await h.sync()
    assert [c[1] for c in h.api.calls if c[0] == "delete"] == ["a"]
    status = h.api.statuses()[-1]
    assert status["conditions"][0]["reason"] == "JobSuspended" and "startTime" not in status


async def test_orphans_of_a_deleted_job_lose_the_finalizer():
    h = Harness()
    h.add_pod("a")
    h.ctl.job_informer.indexer.remove("ns/j")
    await h.sync()
    assert h.api.calls == [("patch", "a", [JOB_TRACKING_FINALIZER])]


async def test_job_managed_by_another_controller_is_left_alone():
    h = Harness(managedBy="example.com/multikueue")
    h.add_pod("a", "Succeeded", exit_code=0)
    await h.sync()
    assert h.api.calls == []


async def test_matching_orphan_is_adopted_with_the_finalizer_and_a_stray_pod_released():
    h = Harness(manualSelector=True, selector={"matchLabels": {"app": "batch"}}, parallelism=1, completions=1)
    h.api.live_job = h.job
    orphan = h.add_pod("orphan")
    orphan["metadata"]["ownerReferences"] = []
    orphan["metadata"]["finalizers"] = []
    orphan["metadata"]["labels"] = {"app": "batch"}
    h.ctl.pod_informer.indexer.upsert("ns/orphan", orphan)
    stray = h.add_pod("stray")
    stray["metadata"]["labels"] = {"app": "other"}
    h.ctl.pod_informer.indexer.upsert("ns/stray", stray)
    await h.sync()
    owns = {c[1]: c for c in h.api.calls if c[0] == "own"}
    assert owns["orphan"][2][0]["uid"] == "job-uid" and owns["orphan"][3] == [JOB_TRACKING_FINALIZER]
    assert owns["stray"][2] is None and owns["stray"][3] is None
    # The adopted pod is the one active pod: nothing is created.
    assert not [c for c in h.api.calls if c[0] == "create"]
    assert h.api.statuses()[-1]["active"] == 1


async def test_another_controllers_index_of_the_same_informer_does_not_confuse_it():
    factory = SharedInformerFactory(FakeAPI())
    # Another controller indexes the shared pod informer first, under a generic name with other values.
    factory.informer("pods", indexers={"controller-uid": lambda pod: ["ns/whatever"]})
    h = Harness(factory, completions=1, parallelism=1)
    h.add_pod("a")
    await h.sync()
    assert not [c for c in h.api.calls if c[0] == "create"]
    assert h.api.statuses()[-1]["active"] == 1
