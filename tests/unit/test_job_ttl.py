"""The TTL-after-finished controller with an injected wall clock and a fake API."""

from __future__ import annotations

import pytest

from pyk8s.client import APIStatusError, RequeueAfter, SharedInformerFactory
from pyk8s.controllers.job_util import rfc3339
from pyk8s.controllers.ttlafterfinished import TTLAfterFinishedController, seconds_until_expiry

FINISHED = 1_700_000_000.0


def job(ttl: int | None = 30, finished: str | None = "Complete", deleting: bool = False, uid: str = "u1") -> dict:
    obj: dict = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns", "uid": uid},
                 "spec": {}, "status": {}}
    if ttl is not None:
        obj["spec"]["ttlSecondsAfterFinished"] = ttl
    if finished:
        obj["status"]["conditions"] = [{"type": finished, "status": "True",
                                        "lastTransitionTime": rfc3339(FINISHED)}]
    if deleting:
        obj["metadata"]["deletionTimestamp"] = rfc3339(FINISHED)
    return obj


def test_expiry_arithmetic():
    assert seconds_until_expiry(job(), FINISHED + 10) == 20
    assert seconds_until_expiry(job(finished="Failed"), FINISHED + 45) == -15
    assert seconds_until_expiry(job(ttl=None), FINISHED) is None
    assert seconds_until_expiry(job(finished=None), FINISHED) is None
    assert seconds_until_expiry(job(deleting=True), FINISHED + 100) is None


class FakeAPI:
    def __init__(self, fresh: dict | None):
        self.fresh = fresh
        self.deletes: list[tuple] = []

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict:
        if self.fresh is None:
            raise APIStatusError({"kind": "Status", "code": 404, "reason": "NotFound", "message": "gone"})
        return self.fresh

    async def delete(self, resource: str, name: str, namespace: str | None = None, **options: object) -> dict:
        self.deletes.append((resource, name, namespace, options))
        return {}


async def sync(ctl: TTLAfterFinishedController) -> float | None:
    try:
        await ctl.sync("ns/j")
    except RequeueAfter as requeue:
        return requeue.delay
    return None


def controller(cached: dict, fresh: dict | None, now: float) -> tuple[TTLAfterFinishedController, FakeAPI]:
    api = FakeAPI(fresh)
    ctl = TTLAfterFinishedController(api, SharedInformerFactory(api), wall=lambda: now)
    ctl.job_informer.indexer.upsert("ns/j", cached)
    return ctl, api


async def test_not_due_requeues_for_the_expiry():
    ctl, api = controller(job(), job(), FINISHED + 10)
    assert await sync(ctl) == pytest.approx(20)
    assert not api.deletes


async def test_due_job_is_deleted_foreground_with_a_uid_precondition():
    ctl, api = controller(job(), job(uid="u1"), FINISHED + 31)
    assert await sync(ctl) is None
    assert api.deletes == [("jobs", "j", "ns", {"propagation_policy": "Foreground", "preconditions": {"uid": "u1"}})]


async def test_a_ttl_raised_meanwhile_is_honoured():
    ctl, api = controller(job(ttl=30), job(ttl=300), FINISHED + 31)
    assert await sync(ctl) == pytest.approx(269)
    assert not api.deletes


async def test_job_gone_or_running_again_is_left_alone():
    ctl, api = controller(job(), None, FINISHED + 31)
    assert await sync(ctl) is None and not api.deletes
    ctl, api = controller(job(), job(finished=None), FINISHED + 31)
    assert await sync(ctl) is None and not api.deletes
