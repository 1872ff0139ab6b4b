"""Event correlation (aggregate, de-duplicate, spam filter) and the recorder's write path."""

from __future__ import annotations

import asyncio
import copy
import itertools

import pytest

from pyk8s.client.api import APIStatusError
from pyk8s.client.events import (
    COMBINED_PREFIX,
    EventCorrelator,
    EventRecorder,
    aggregate_key,
    event_key,
    object_reference,
)
from pyk8s.client.workqueue import FakeClock

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n"}}


def nanos():
    counter = itertools.count(1_700_000_000_000_000_000, 1_000_000)
    return lambda: next(counter)


def recorder(client=None, **kw) -> EventRecorder:
    wall = nanos()
    clock = kw.pop("clock", FakeClock())
    return EventRecorder(client, "test-controller", "host-a", wall_ns=wall,
                         correlator=EventCorrelator(clock, wall_ns=wall), **kw)


def written(event: dict, rv: int) -> dict:
    """What the server would answer for a write of `event`."""
    out = copy.deepcopy(event)
    out["metadata"]["resourceVersion"] = str(rv)
    return out


def test_make_event_shape():
    event = recorder().make_event(POD, "Warning", "BackOff", "restarting failed container")
    assert event["metadata"]["namespace"] == "shop"
    name, _, suffix = event["metadata"]["name"].partition(".")
    assert name == "web-1" and int(suffix, 16) > 0
    assert event["involvedObject"] == {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "u-1",
                                       "apiVersion": "v1", "resourceVersion": "42"}
    assert event["source"] == {"component": "test-controller", "host": "host-a"}
    assert event["reportingComponent"] == "test-controller" and event["reportingInstance"] == "host-a"
    assert event["count"] == 1 and event["firstTimestamp"] == event["lastTimestamp"]
    assert event["firstTimestamp"].endswith("Z") and "." not in event["firstTimestamp"]


def test_cluster_scoped_objects_get_events_in_default():
    event = recorder().make_event(NODE, "Normal", "NodeReady", "ready", field_path="spec")
    assert event["metadata"]["namespace"] == "default"
    assert "namespace" not in event["involvedObject"] and event["involvedObject"]["fieldPath"] == "spec"


def test_object_reference_accepts_a_reference():
    ref = {"kind": "Pod", "namespace": "a", "name": "b", "uid": "c", "apiVersion": "v1"}
    assert object_reference(ref) == ref


def test_keys_separate_message_from_similarity():
    rec = recorder()
    a = rec.make_event(POD, "Warning", "Failed", "one")
    b = rec.make_event(POD, "Warning", "Failed", "two")
    assert event_key(a) != event_key(b)
    assert aggregate_key(a) == aggregate_key(b)
    other_reason = rec.make_event(POD, "Warning", "Other", "one")
    assert aggregate_key(other_reason) != aggregate_key(a)
    assert event_key(a) == event_key(rec.make_event(POD, "Warning", "Failed", "one")), \
        "timestamps and names do not make events different"


def test_identical_events_become_a_count_patch():
    rec = recorder()
    correlator = rec.correlator
    first = correlator.correlate(rec.make_event(POD, "Normal", "Pulled", "image pulled"))
    assert first.patch is None and not first.skip
    correlator.update_state(written(first.event, 100))
    second = correlator.correlate(rec.make_event(POD, "Normal", "Pulled", "image pulled"))
    assert second.event["metadata"]["name"] == first.event["metadata"]["name"]
    assert second.event["firstTimestamp"] == first.event["firstTimestamp"]
    assert second.patch == {"count": 2, "lastTimestamp": second.event["lastTimestamp"], "message": "image pulled"}
    correlator.update_state(written(second.event, 101))
    third = correlator.correlate(rec.make_event(POD, "Normal", "Pulled", "image pulled"))
    assert third.patch["count"] == 3


def test_similar_events_are_combined_after_ten_messages():
    rec = recorder()
    correlator = rec.correlator
    results = [correlator.correlate(rec.make_event(POD, "Warning", "FailedMount", f"volume {i}"))
               for i in range(9)]
    assert all(r.patch is None and not r.event["message"].startswith(COMBINED_PREFIX) for r in results)
    tenth = correlator.correlate(rec.make_event(POD, "Warning", "FailedMount", "volume 9"))
    assert tenth.event["message"] == COMBINED_PREFIX + "volume 9"
    assert tenth.patch is None and tenth.event["count"] == 1
    assert tenth.event["metadata"]["name"].startswith("web-1.")
    correlator.update_state(written(tenth.event, 200))
    eleventh = correlator.correlate(rec.make_event(POD, "Warning", "FailedMount", "volume 10"))
    assert eleventh.event["metadata"]["name"] == tenth.event["metadata"]["name"], \
        "later similar events land on the one combined Event"
    assert eleventh.patch == {"count": 2, "lastTimestamp": eleventh.event["lastTimestamp"],
                              "message": COMBINED_PREFIX + "volume 10"}


def test_aggregation_window_restarts_after_ten_quiet_minutes():
    clock = FakeClock()
    rec = recorder(clock=clock)
    for i in range(9):
        rec.correlator.correlate(rec.make_event(POD, "Warning", "FailedMount", f"volume {i}"))
    clock.step(601)
    result = rec.correlator.correlate(rec.make_event(POD, "Warning", "FailedMount", "volume 9"))
    assert not result.event["message"].startswith(COMBINED_PREFIX)


def test_repeating_a_message_does_not_count_towards_aggregation():
    rec = recorder()
    for _ in range(30):
        result = rec.correlator.correlate(rec.make_event(POD, "Warning", "BackOff", "same"))
        if result.skip:
            break
        assert not result.event["message"].startswith(COMBINED_PREFIX)


def test_spam_filter_allows_a_burst_then_one_per_five_minutes():
    clock = FakeClock()
    rec = recorder(clock=clock)
    outcomes = [rec.correlator.correlate(rec.make_event(POD, "Normal", "Tick", f"m{i % 3}")).skip
                for i in range(30)]
    assert outcomes[:25] == [False] * 25 and outcomes[25:] == [True] * 5
    other = rec.correlator.correlate(rec.make_event(NODE, "Normal", "Tick", "m"))
    assert not other.skip, "the budget is per involved object"
    clock.step(300)
    assert not rec.correlator.correlate(rec.make_event(POD, "Normal", "Tick", "m0")).skip
    assert rec.correlator.correlate(rec.make_event(POD, "Normal", "Tick", "m0")).skip


# ---- recorder write path with a fake API client ----------------------------------------


class FakeEventsAPI:
    def __init__(self):
        self.events: dict[tuple[str, str], dict] = {}
        self.calls: list[str] = []
        self.rv = itertools.count(1)
        self.gate = asyncio.Event()
        self.gate.set()

    async def create(self, body, **_):
        await self.gate.wait()
        self.calls.append("create")
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if key in self.events:
            raise APIStatusError({"kind": "Status", "code": 409, "reason": "AlreadyExists"})
        stored = written(body, next(self.rv))
        self.events[key] = stored
        return stored

    async def patch(self, resource, name, patch, namespace=None, **kwargs):
        await self.gate.wait()
        assert resource == "events" and kwargs.get("patch_type") == "merge"
        self.calls.append("patch")
        stored = self.events.get((namespace, name))
        if stored is None:
            raise APIStatusError({"kind": "Status", "code": 404, "reason": "NotFound"})
        stored.update(patch)
        stored["metadata"]["resourceVersion"] = str(next(self.rv))
        return stored


async def test_recorder_creates_then_patches_in_the_background():
    api = FakeEventsAPI()
    rec = recorder(api)
    rec.event(POD, "Normal", "Scheduled", "assigned shop/web-1 to n1")
    rec.event(POD, "Normal", "Scheduled", "assigned shop/web-1 to n1")
    rec.event(POD, "Warning", "Failed", "boom")
    await asyncio.wait_for(rec.flush(), 5)
    assert api.calls == ["create", "patch", "create"]
    counts = sorted((e["reason"], e["count"]) for e in api.events.values())
    assert counts == [("Failed", 1), ("Scheduled", 2)]
    await rec.close()


async def test_recorder_recreates_an_event_that_vanished():
    api = FakeEventsAPI()
    rec = recorder(api)
    rec.event(POD, "Normal", "Pulled", "pulled")
    await rec.flush()
    api.events.clear()  # expired by the server's event TTL
    rec.event(POD, "Normal", "Pulled", "pulled")
    await rec.flush()
    assert api.calls == ["create", "patch", "create"]
    (event,) = api.events.values()
    assert event["count"] == 2
    await rec.close()


async def test_recorder_never_blocks_and_drops_when_full(caplog):
    api = FakeEventsAPI()
    api.gate.clear()  # the server is stuck
    rec = recorder(api, queue_size=3)
    for i in range(10):
        rec.event(POD, "Normal", "Tick", f"m{i}")  # returns at once every time
    await asyncio.sleep(0)
    assert rec.dropped >= 6
    assert "event queue full" in caplog.text
    api.gate.set()
    await asyncio.wait_for(rec.flush(), 5)
    await rec.close()


def test_recorder_rejects_unknown_types(caplog):
    rec = recorder(FakeEventsAPI())
    rec.event(POD, "Error", "Bad", "nope")
    assert "unsupported event type" in caplog.text


@pytest.mark.parametrize("reason", ["AlreadyExists", "Invalid"])
async def test_recorder_gives_up_on_rejections(reason):
    class Rejecting(FakeEventsAPI):
        async def create(self, body, **_):
            self.calls.append("create")
            raise APIStatusError({"kind": "Status", "code": 409 if reason == "AlreadyExists" else 422,
                                  "reason": reason})

    api = Rejecting()
    rec = recorder(api)
    rec.event(POD, "Normal", "X", "y")
    await asyncio.wait_for(rec.flush(), 5)
    assert api.calls == ["create"]
    await rec.close()
