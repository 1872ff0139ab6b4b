"""EndpointSlice mirroring without a server: which Endpoints are mirrored, how subsets map to slices, labels and
annotations carried over, the per-subset limit, invalid addresses, and slice reuse."""

from __future__ import annotations

import copy

from pyk8s.controllers.endpointslicemirroring import (
    MANAGED_BY,
    desired_mirror,
    plan_mirror,
    should_mirror,
)


def endpoints(subsets: list[dict], *, labels: dict | None = None, annotations: dict | None = None) -> dict:
    meta = {"name": "ext", "namespace": "ns", "uid": "ep-uid", "labels": labels or {}, "annotations": annotations or {}}
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}


def existing_from(plan_slices: list[dict], name: str = "ext-abcde") -> list[dict]:
    out = []
    for i, slice_ in enumerate(plan_slices):
        slice_ = copy.deepcopy(slice_)
        slice_["metadata"].pop("generateName", None)
        slice_["metadata"].update(name=f"{name}{i}", uid=f"u{i}", resourceVersion="5", generation=1)
        out.append(slice_)
    return out


def test_skip_mirror_label_and_leader_annotation_are_not_mirrored():
    assert should_mirror(endpoints([]))
    assert not should_mirror(endpoints([], labels={"endpointslice.kubernetes.io/skip-mirror": "true"}))
    assert not should_mirror(endpoints([], annotations={"control-plane.alpha.kubernetes.io/leader": "{}"}))
    assert not should_mirror(None)


def test_subset_becomes_a_slice_with_labels_annotations_and_owner():
    ep = endpoints([{"addresses": [{"ip": "192.0.2.10", "nodeName": "n1", "hostname": "db-0"}],
                     "notReadyAddresses": [{"ip": "192.0.2.11"}],
                     "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}],
                   labels={"team": "data"},
                   annotations={"note": "x", "endpoints.kubernetes.io/last-change-trigger-time": "t",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    result = plan_mirror(ep, [], desired_mirror(ep))
    [slice_] = result.create
    assert slice_["metadata"]["generateName"] == "ext-"
    assert slice_["metadata"]["labels"] == {"team": "data", "kubernetes.io/service-name": "ext",
                                            "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
    assert slice_["metadata"]["annotations"] == {"note": "x"}
    assert slice_["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "Endpoints", "name": "ext",
                                                        "uid": "ep-uid", "controller": True,
                                                        "blockOwnerDeletion": True}
    assert slice_["addressType"] == "IPv4"
    assert slice_["ports"] == [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    assert slice_["endpoints"] == [
        {"addresses": ["192.0.2.10"], "conditions": {"ready": True}, "hostname": "db-0", "nodeName": "n1"},
        {"addresses": ["192.0.2.11"], "conditions": {"ready": False}}]


def test_mixed_families_and_port_sets_give_separate_slices_and_invalid_ips_are_counted():
    ep = endpoints([{"addresses": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}, {"ip": "not-an-ip"}],
                     "ports": [{"port": 80}]},
                    {"addresses": [{"ip": "192.0.2.2"}], "ports": [{"port": 81}]}])
    desired = desired_mirror(ep)
    assert desired.invalid == 1 and desired.skipped == 1
    result = plan_mirror(ep, [], desired)
    assert sorted((s["addressType"], s["ports"][0]["port"], len(s["endpoints"])) for s in result.create) == [
        ("IPv4", 80, 1), ("IPv4", 81, 1), ("IPv6", 80, 1)]


def test_at_most_max_addresses_per_subset_are_mirrored():
    ep = endpoints([{"addresses": [{"ip": f"10.0.{i // 200}.{i % 200}"} for i in range(12)],
                     "notReadyAddresses": [{"ip": "10.9.9.9"}], "ports": [{"port": 80}]}])
    desired = desired_mirror(ep, max_per_subset=10)
    assert desired.skipped == 3 and desired.invalid == 0
    [slice_] = plan_mirror(ep, [], desired, max_per_subset=10).create
    assert len(slice_["endpoints"]) == 10 and all(e["conditions"]["ready"] for e in slice_["endpoints"])


def test_unchanged_mirror_writes_nothing_and_changes_update_in_place():
    ep = endpoints([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}], labels={"a": "b"})
    state = existing_from(plan_mirror(ep, [], desired_mirror(ep)).create)
    again = plan_mirror(ep, state, desired_mirror(ep))
    assert (again.create, again.update, again.delete) == ([], [], [])
    ep["subsets"][0]["addresses"].append({"ip": "192.0.2.2"})
    [updated] = plan_mirror(ep, state, desired_mirror(ep)).update
    assert updated["metadata"]["name"] == state[0]["metadata"]["name"] and len(updated["endpoints"]) == 2
    ep["metadata"]["labels"] = {"a": "c"}
    assert plan_mirror(ep, state, desired_mirror(ep)).update  # a label change is mirrored too


def test_port_change_reuses_the_slice_and_emptied_endpoints_delete_it():
    ep = endpoints([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}])
    state = existing_from(plan_mirror(ep, [], desired_mirror(ep)).create)
    ep["subsets"][0]["ports"] = [{"port": 8080}]
    result = plan_mirror(ep, state, desired_mirror(ep))
    assert not result.create and not result.delete
    assert result.update[0]["metadata"]["name"] == state[0]["metadata"]["name"]
    assert result.update[0]["ports"][0]["port"] == 8080
    ep["subsets"] = []
    gone = plan_mirror(ep, state, desired_mirror(ep))
    assert [s["metadata"]["name"] for s in gone.delete] == [state[0]["metadata"]["name"]] and not gone.create


def test_duplicate_mirrored_slices_are_collapsed_to_one():
    ep = endpoints([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}])
    one = plan_mirror(ep, [], desired_mirror(ep)).create
    state = existing_from(one + copy.deepcopy(one))
    result = plan_mirror(ep, state, desired_mirror(ep))
    assert [s["metadata"]["name"] for s in result.delete] == [state[1]["metadata"]["name"]]
    assert not result.create and not result.update
