"""The EndpointSlice reconciler without a server: endpoint conditions, zones, packing into slices of 100 with
minimal churn, the placeholder slice, recycling of slices, address types and port groups; and the tracker of
the slices a controller wrote."""

from __future__ import annotations

import copy
import itertools

from test_endpointslice_endpoints import make_pod, make_service

from pyk8s.controllers.endpoints_util import EndpointSliceTracker
from pyk8s.controllers.endpointslice import (
    MANAGED_BY,
    SlicePlan,
    plan_for_address_type,
    pod_to_endpoint,
    reuse_deleted_slices,
)

NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}},
         "n2": {"metadata": {"name": "n2", "labels": {}}}}
_names = itertools.count()


def pods(count: int, start: int = 0, **kw) -> list[dict]:
    return [make_pod(f"p{i}", f"10.42.{i // 250}.{i % 250 + 1}", **kw) for i in range(start, start + count)]


def plan(service: dict, pod_list: list[dict], existing: list[dict], address_type: str = "IPv4") -> SlicePlan:
    out = plan_for_address_type(service, pod_list, copy.deepcopy(existing), address_type, NODES.get)
    reuse_deleted_slices(out, service)
    return out


def apply(result: SlicePlan, existing: list[dict]) -> list[dict]:
    """What the apiserver would hold after the plan's writes."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for slice_ in result.create:
        slice_ = copy.deepcopy(slice_)
        name = slice_["metadata"].pop("generateName") + f"{next(_names):05d}"
        slice_["metadata"].update(name=name, uid=f"uid-{name}", resourceVersion="1", generation=1)
        by_name[name] = slice_
    for slice_ in result.update:
        by_name[slice_["metadata"]["name"]] = copy.deepcopy(slice_)
    for slice_ in result.delete:
        del by_name[slice_["metadata"]["name"]]
    return list(by_name.values())


def sizes(slices: list[dict]) -> list[int]:
    return sorted((len(s["endpoints"]) for s in slices), reverse=True)


def test_endpoint_conditions_zone_node_and_target():
    service = make_service()
    ready = pod_to_endpoint(make_pod("a", "10.42.0.2"), NODES["n1"], service, "IPv4")
    assert ready == {"addresses": ["10.42.0.2"], "conditions": {"ready": True, "serving": True, "terminating": False},
                     "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
                     "nodeName": "n1", "zone": "zone-a"}
    not_ready = pod_to_endpoint(make_pod("b", ready=False, node="n2"), NODES["n2"], service, "IPv4")
    assert not_ready["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert "zone" not in not_ready
    terminating = pod_to_endpoint(make_pod("c", deleting=True), NODES["n1"], service, "IPv4")
    assert terminating["conditions"] == {"ready": False, "serving": True, "terminating": True}
    published = pod_to_endpoint(make_pod("d", ready=False, deleting=True), None, make_service(publish=True), "IPv4")
    assert published["conditions"] == {"ready": True, "serving": False, "terminating": True}
    hostname = pod_to_endpoint(make_pod("e", hostname="e", subdomain="web"), None, service, "IPv4")
    assert hostname["hostname"] == "e"


def test_new_service_gets_slices_of_at_most_100_with_labels_and_owner():
    service = make_service(labels={"tier": "front", "endpointslice.kubernetes.io/managed-by": "me"})
    result = plan(service, pods(250), [])
    assert not result.update and not result.delete and not result.errors
    assert sorted(len(s["endpoints"]) for s in result.create) == [50, 100, 100]
    first = result.create[0]
    assert first["metadata"]["generateName"] == "web-" and "name" not in first["metadata"]
    assert first["metadata"]["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                                           "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
    assert first["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                     "uid": "svc-web", "controller": True,
                                                     "blockOwnerDeletion": True}]
    assert first["addressType"] == "IPv4"
    assert first["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    all_ips = sorted(e["addresses"][0] for s in result.create for e in s["endpoints"])
    assert len(set(all_ips)) == 250


def test_unchanged_state_writes_nothing():
    service = make_service()
    state = apply(plan(service, pods(150), []), [])
    result = plan(service, pods(150), state)
    assert (result.create, result.update, result.delete) == ([], [], [])


def test_scale_up_fills_the_unchanged_slice_closest_to_full():
    service = make_service()
    state = apply(plan(service, pods(160), []), [])  # 100 + 60
    assert sizes(state) == [100, 60]
    result = plan(service, pods(190), state)  # 30 more: they fit the 60-slice
    assert not result.create and not result.delete
    [updated] = result.update
    assert len(updated["endpoints"]) == 90
    state = apply(result, state)
    assert sizes(state) == [100, 90]
    result = plan(service, pods(230), state)  # 40 more fit nowhere: a new slice, the others untouched
    assert not result.update and [len(s["endpoints"]) for s in result.create] == [40]


def test_removed_endpoints_make_room_for_new_ones_in_the_same_write():
    service = make_service()
    state = apply(plan(service, pods(200), []), [])
    # 10 pods of one slice go away, 10 others arrive: one slice is updated, nothing else is written.
    victim = state[0]
    gone = {e["targetRef"]["name"] for e in victim["endpoints"][:10]}
    remaining = [p for p in pods(200) if p["metadata"]["name"] not in gone] + pods(10, start=200)
    result = plan(service, remaining, state)
    assert not result.create and not result.delete
    [updated] = result.update
    assert updated["metadata"]["name"] == victim["metadata"]["name"] and len(updated["endpoints"]) == 100


def test_readiness_change_updates_only_the_slice_holding_the_pod():
    service = make_service()
    state = apply(plan(service, pods(150), []), [])
    changed = pods(150)
    changed[0] = make_pod("p0", "10.42.0.1", ready=False)
    [updated] = plan(service, changed, state).update
    endpoint = next(e for e in updated["endpoints"] if e["targetRef"]["name"] == "p0")
    assert endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}


def test_no_endpoints_keeps_one_placeholder_slice():
    service = make_service()
    result = plan(service, [], [])
    [placeholder] = result.create
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    state = apply(result, [])
    again = plan(service, [], state)
    assert (again.create, again.update, again.delete) == ([], [], [])
    # Pods arrive: the placeholder is reused, not replaced.
    filled = plan(service, pods(3), state)
    assert not filled.create and not filled.delete
    assert filled.update[0]["metadata"]["name"] == state[0]["metadata"]["name"]
    # And when they all go, the emptied slice becomes the placeholder again (one update, no create/delete).
    state = apply(filled, state)
    emptied = plan(service, [], state)
    assert not emptied.create and not emptied.delete and emptied.update[0]["endpoints"] == []


def test_slices_of_another_service_incarnation_are_deleted():
    old_service = make_service()
    state = apply(plan(old_service, pods(5), []), [])
    new_service = {**make_service(), "metadata": {**make_service()["metadata"], "uid": "svc-web-2"}}
    result = plan(new_service, pods(5), state)
    # Not owned by the new Service: deleted, never recycled; fresh slices are created.
    assert [s["metadata"]["name"] for s in result.delete] == [state[0]["metadata"]["name"]]
    assert len(result.create) == 1 and not result.update


def test_port_change_recycles_the_old_slice():
    service = make_service()
    state = apply(plan(service, pods(5), []), [])
    moved = make_service(ports=[{"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"}])
    result = plan(moved, pods(5), state)
    assert not result.create and not result.delete
    [updated] = result.update
    assert updated["metadata"]["name"] == state[0]["metadata"]["name"]
    assert updated["ports"][0]["port"] == 9090 and len(updated["endpoints"]) == 5


def test_named_ports_resolving_differently_give_separate_slices():
    service = make_service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    a = pods(2, ports=[{"name": "web", "containerPort": 8080}])
    b = pods(3, start=2, ports=[{"name": "web", "containerPort": 9090}])
    result = plan(service, a + b, [])
    assert sorted((s["ports"][0]["port"], len(s["endpoints"])) for s in result.create) == [(8080, 2), (9090, 3)]


def test_pod_on_a_missing_node_is_skipped_with_an_error_unless_published():
    service = make_service()
    stray = make_pod("stray", "10.42.9.9", node="gone")
    result = plan(service, [*pods(2), stray], [])
    assert len(result.create[0]["endpoints"]) == 2
    assert result.errors and "Node gone Not Found" in result.errors[0]
    published = plan(make_service(publish=True), [stray], [])
    assert published.create[0]["endpoints"][0]["targetRef"]["name"] == "stray" and not published.errors


def test_dual_stack_pods_give_one_slice_per_address_type():
    service = make_service(families=["IPv4", "IPv6"])
    pod = make_pod("a", ips=["10.42.0.2", "fd00::2"])
    assert plan(service, [pod], [], "IPv6").create[0]["endpoints"][0]["addresses"] == ["fd00::2"]
    assert plan(service, [pod], [], "IPv4").create[0]["endpoints"][0]["addresses"] == ["10.42.0.2"]


def test_tracker_tells_own_writes_from_others_and_stale_caches():
    tracker = EndpointSliceTracker()
    slice_ = {"metadata": {"uid": "u1", "generation": 2, "namespace": "ns",
                           "labels": {"kubernetes.io/service-name": "web"}}}
    assert tracker.should_sync(slice_)
    tracker.update(slice_)
    assert not tracker.should_sync(slice_)
    older = copy.deepcopy(slice_)
    older["metadata"]["generation"] = 1
    assert tracker.stale_slices("ns/web", [older])
    assert tracker.stale_slices("ns/web", [])  # a slice we wrote is not in the cache yet
    assert not tracker.stale_slices("ns/web", [slice_])
    tracker.expect_deletion(slice_)
    assert tracker.stale_slices("ns/web", [slice_])
    assert tracker.handle_deletion(slice_)  # our own deletion
    assert not tracker.handle_deletion(slice_)  # someone else's (unknown to us)
    assert not tracker.stale_slices("ns/web", [])
