"""The three endpoints controllers' syncs against an in-memory API: what they write, when they write nothing,
how they treat a cache behind their own writes, and how they clean up."""

from __future__ import annotations

import copy
import itertools

import pytest
from test_endpointslice_endpoints import make_pod, make_service

from pyk8s.client import APIStatusError, RequeueAfter, SharedInformerFactory
from pyk8s.controllers.endpoints import OVER_CAPACITY_ANNOTATION, EndpointsController
from pyk8s.controllers.endpoints_util import TRIGGER_TIME_ANNOTATION
from pyk8s.controllers.endpointslice import EndpointSliceController
from pyk8s.controllers.endpointslicemirroring import EndpointSliceMirroringController

RESOURCES = {"Endpoints": "endpoints", "EndpointSlice": "endpointslices"}


class FakeAPI:
    """Endpoints and EndpointSlices by (resource, namespace, name), with the server-set metadata the
    controllers rely on (generated names, uids, generation bumps)."""

    def __init__(self):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.writes: list[tuple[str, str]] = []
        self.counter = itertools.count(1)
        self.conflict_next_update = False

    def _key(self, obj: dict) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return RESOURCES[obj["kind"]], meta["namespace"], meta["name"]

    async def create(self, body: dict) -> dict:
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = meta.pop("generateName") + f"{next(self.counter):05d}"
        if self._key(obj) in self.objects:
            raise APIStatusError({"code": 409, "reason": "AlreadyExists", "message": "already exists"})
        meta.update(uid=f"uid-{meta['name']}", resourceVersion=str(next(self.counter)), generation=1)
        self.objects[self._key(obj)] = obj
        self.writes.append(("create", meta["name"]))
        return copy.deepcopy(obj)

    async def update(self, body: dict) -> dict:
        if self.conflict_next_update:
            self.conflict_next_update = False
            raise APIStatusError({"code": 409, "reason": "Conflict", "message": "the object has been modified"})
        obj = copy.deepcopy(body)
        old = self.objects[self._key(obj)]
        obj["metadata"].update(uid=old["metadata"]["uid"], resourceVersion=str(next(self.counter)),
                               generation=old["metadata"]["generation"] + 1)
        self.objects[self._key(obj)] = obj
        self.writes.append(("update", obj["metadata"]["name"]))
        return copy.deepcopy(obj)

    async def delete(self, resource: str, name: str, namespace: str | None = None, **_: object) -> dict:
        if self.objects.pop((resource, namespace or "", name), None) is None:
            raise APIStatusError({"code": 404, "reason": "NotFound", "message": "not found"})
        self.writes.append(("delete", name))
        return {}

    def of(self, resource: str) -> list[dict]:
        return [o for (r, _, _), o in self.objects.items() if r == resource]


class Recorder:
    def __init__(self):
        self.reasons: list[str] = []

    def event(self, obj, type_, reason, message):
        self.reasons.append(reason)


def sync_cache(informer, api: FakeAPI, resource: str) -> None:
    """Make an informer's cache show what the fake server holds."""
    for key in informer.keys():
        informer.indexer.remove(key)
    for obj in api.of(resource):
        informer.indexer.upsert(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}", copy.deepcopy(obj))


def add(informer, obj: dict) -> None:
    meta = obj["metadata"]
    key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    informer.indexer.upsert(key, obj)


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


async def test_endpoints_controller_writes_once_then_keeps_still(api: FakeAPI):
    recorder = Recorder()
    ctl = EndpointsController(api, SharedInformerFactory(api), recorder)
    service = make_service(cluster_ip="None")
    add(ctl.services, service)
    for pod in (make_pod("a", "10.42.0.2"), make_pod("b", "10.42.0.3", ready=False)):
        add(ctl.pods, pod)
    await ctl.sync("ns/web")
    [endpoints] = api.of("endpoints")
    assert endpoints["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    assert endpoints["metadata"]["annotations"] == {TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"}
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == ["10.42.0.2"]
    assert [a["ip"] for a in endpoints["subsets"][0]["notReadyAddresses"]] == ["10.42.0.3"]
    sync_cache(ctl.endpoints, api, "endpoints")
    await ctl.sync("ns/web")
    assert api.writes == [("create", "web")]  # nothing changed: no second write

    api.conflict_next_update = True  # a write race is retried quietly, without a Warning event
    add(ctl.pods, make_pod("c", "10.42.0.4"))
    with pytest.raises(RequeueAfter):
        await ctl.sync("ns/web")
    assert recorder.reasons == []
    await ctl.sync("ns/web")
    assert api.writes[-1] == ("update", "web")


async def test_endpoints_controller_truncates_over_capacity(api: FakeAPI):
    ctl = EndpointsController(api, SharedInformerFactory(api), max_capacity=2)
    add(ctl.services, make_service())
    for i in range(3):
        add(ctl.pods, make_pod(f"p{i}", f"10.42.0.{i + 2}"))
    await ctl.sync("ns/web")
    [endpoints] = api.of("endpoints")
    assert endpoints["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION] == "truncated"
    assert len(endpoints["subsets"][0]["addresses"]) == 2
    sync_cache(ctl.endpoints, api, "endpoints")
    ctl.pods.indexer.remove("ns/p2")
    await ctl.sync("ns/web")  # back under capacity: the annotation goes
    [endpoints] = api.of("endpoints")
    assert OVER_CAPACITY_ANNOTATION not in endpoints["metadata"].get("annotations", {})


async def test_endpoints_controller_leaves_selectorless_services_and_deletes_orphans(api: FakeAPI):
    ctl = EndpointsController(api, SharedInformerFactory(api))
    manual = make_service("manual", selector={})
    add(ctl.services, manual)
    user_endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual", "namespace": "ns"},
                      "subsets": [{"addresses": [{"ip": "192.0.2.1"}]}]}
    await api.create(user_endpoints)
    await ctl.sync("ns/manual")
    assert api.writes == [("create", "manual")]  # only the user's own write
    # An Endpoints whose Service is gone (deleted while no controller ran) is found at start-up and deleted.
    await api.create({**user_endpoints, "metadata": {"name": "orphan", "namespace": "ns"}})
    sync_cache(ctl.endpoints, api, "endpoints")
    ctl._queue_leftover_endpoints()
    assert ctl.queue.len() == 2
    await ctl.sync("ns/orphan")
    assert [o["metadata"]["name"] for o in api.of("endpoints")] == ["manual"]


async def test_endpointslice_controller_waits_for_its_cache_and_repairs_foreign_changes(api: FakeAPI):
    ctl = EndpointSliceController(api, SharedInformerFactory(api), Recorder())
    add(ctl.services, make_service())
    add(ctl.nodes, {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}})
    add(ctl.pods, make_pod("a", "10.42.0.2"))
    await ctl.sync("ns/web")
    [slice_] = api.of("endpointslices")
    assert slice_["endpoints"][0]["zone"] == "z1"
    assert slice_["metadata"]["annotations"] == {TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"}
    # The cache has not seen the new slice yet: the sync waits instead of creating a duplicate.
    with pytest.raises(RequeueAfter):
        await ctl.sync("ns/web")
    sync_cache(ctl.slices, api, "endpointslices")
    await ctl.sync("ns/web")
    assert api.writes == [("create", slice_["metadata"]["name"])]
    # Our own write's event queues nothing; someone else's change or deletion does.
    cached = ctl.slices.list()[0]
    ctl._slice_updated(cached, cached)
    assert ctl.queue.len() == 0
    edited = copy.deepcopy(cached)
    edited["metadata"]["generation"] += 1
    ctl._slice_updated(cached, edited)
    assert ctl.queue.len() == 1
    ctl.tracker.expect_deletion(cached)
    ctl._slice_deleted(cached)  # a deletion we made
    assert ctl.queue.len() == 1


async def test_mirroring_controller_mirrors_and_cleans_up(api: FakeAPI):
    ctl = EndpointSliceMirroringController(api, SharedInformerFactory(api), Recorder())
    add(ctl.services, make_service("db", selector={}))
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": "db", "namespace": "ns", "uid": "ep-db"},
                 "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 5432}]}]}
    add(ctl.endpoints, endpoints)
    await ctl.sync("ns/db")
    [mirrored] = api.of("endpointslices")
    assert mirrored["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslicemirroring-controller.k8s.io"
    sync_cache(ctl.slices, api, "endpointslices")
    await ctl.sync("ns/db")
    assert len(api.writes) == 1
    # Marked skip-mirror: the mirrored slice is deleted.
    add(ctl.endpoints, {**endpoints, "metadata": {**endpoints["metadata"],
                                                  "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}})
    await ctl.sync("ns/db")
    assert api.of("endpointslices") == [] and api.writes[-1] == ("delete", mirrored["metadata"]["name"])
