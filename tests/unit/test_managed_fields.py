"""managedFields and server-side apply: FieldsV1, Update bookkeeping, apply merge/prune/conflicts."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pyk8s.api import managed_fields as mf
from pyk8s.api.errors import APIError
from pyk8s.api.managed_fields import (
    LAST_APPLIED,
    ApplyConflict,
    apply,
    fields_of,
    keep_unchanged_timestamps,
    parse_fields_v1,
    path_string,
    record_update,
    reset_fields,
    serialize_fields_v1,
    type_info,
    type_info_from_schema,
)

DEPLOYMENT = type_info("apps/v1", "Deployment")
POD = type_info("v1", "Pod")
CONFIGMAP = type_info("v1", "ConfigMap")


def at(minute: int) -> str:
    return f"2025-01-01T00:{minute:02d}:00Z"


def deployment(containers: list | None = None, replicas: int | None = 1, labels: dict | None = None,
               **metadata: object) -> dict:
    spec: dict = {"selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": containers or [{"name": "web", "image": "nginx"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    meta: dict = {"name": "web", "namespace": "default", **metadata}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def do_apply(live: dict | None, config: dict, manager: str = "kubectl", *, force: bool = False,
             now: str = at(0), subresource: str = "") -> dict:
    return apply(live, copy.deepcopy(config), manager=manager, force=force, api_version="apps/v1",
                 subresource=subresource, now=now, meta=DEPLOYMENT)


def update(old: dict | None, new: dict, manager: str, *, now: str = at(0), subresource: str = "",
           api_version: str = "apps/v1") -> dict:
    new = copy.deepcopy(new)
    record_update(old, new, manager=manager, api_version=api_version, subresource=subresource, now=now)
    return new


def entries(obj: dict) -> dict[tuple, dict]:
    """(manager, operation, subresource) -> fieldsV1."""
    return {(e.get("manager"), e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict, manager: str, operation: str = "Apply") -> set[str]:
    """The paths a manager owns, as strings."""
    fields = entries(obj).get((manager, operation, ""), {})
    return {path_string(p) for p in parse_fields_v1(fields)}


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


# ---------------------------------------------------------------------------------------------
# FieldsV1


def test_fields_v1_order_matches_upstream() -> None:
    # structured-merge-diff's golden serialization: field names, then keys, values, indices.
    text = ('{"f:aaa":{},"f:aab":{},"f:aac":{},"f:aad":{},"f:aae":{},"f:aaf":{},"k:{\\"name\\":\\"first\\"}":{},'
            '"k:{\\"name\\":\\"second\\"}":{},"k:{\\"port\\":443,\\"protocol\\":\\"tcp\\"}":{},'
            '"k:{\\"port\\":443,\\"protocol\\":\\"udp\\"}":{},"v:1":{},"v:2":{},"v:3":{},"v:\\"aa\\"":{},"v:\\"ab\\"":{},'
            '"v:true":{},"i:1":{},"i:2":{},"i:3":{},"i:4":{}}')
    shuffled = dict(reversed(list(json.loads(text).items())))
    assert json.dumps(serialize_fields_v1(parse_fields_v1(shuffled)), separators=(",", ":")) == text


def test_fields_v1_members_and_parents() -> None:
    fields = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
              "f:spec": {"f:containers": {'k:{"name":"a"}': {".": {}, "f:image": {}}}}}
    parsed = parse_fields_v1(fields)
    labels, item = ("f:metadata", "f:labels"), ("f:spec", "f:containers", 'k:{"name":"a"}')
    assert parsed == {labels, (*labels, "f:app"), item, (*item, "f:image")}
    assert serialize_fields_v1(parsed) == fields
    # Sets are flat: removing a parent keeps its children, and the other way round.
    assert parsed - {labels} == {(*labels, "f:app"), item, (*item, "f:image")}
    assert parsed - {(*labels, "f:app")} == {labels, item, (*item, "f:image")}
    assert parsed & parse_fields_v1({"f:metadata": {"f:labels": {"f:app": {}}}}) == {(*labels, "f:app")}
    assert parsed | {("f:kind",)} == parsed.union({("f:kind",)})


def test_fields_v1_decoding_rules() -> None:
    # Unknown element types are dropped; null reads as an empty set; a node whose only children
    # are unknown is a member.
    assert parse_fields_v1({"f:a": {}, "r:b": {}}) == {("f:a",)}
    assert parse_fields_v1({"f:a": None}) == {("f:a",)}
    assert parse_fields_v1({"f:a": {"r:x": {}}}) == {("f:a",)}
    # Keys and values are rewritten in canonical form.
    assert parse_fields_v1({'k:{"protocol":"TCP","containerPort":80.0}': {}, "v:1.0": {}, 'v:"<a>"': {},
                            "i:+7": {}}) == {('k:{"containerPort":80,"protocol":"TCP"}',), ("v:1",),
                                             ('v:"\\u003ca\\u003e"',), ("i:7",)}
    for bad in ({"x": {}}, {"fa": {}}, {"i:x": {}}, {'k:{"a":': {}}, {"v:1 2": {}}, {"f:a": "x"}):
        with pytest.raises(ValueError):
            parse_fields_v1(bad)


def test_path_strings() -> None:
    assert path_string(("f:spec", "f:replicas")) == ".spec.replicas"
    assert path_string(("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:ports",
                        'k:{"containerPort":80,"protocol":"TCP"}', "f:containerPort")) == \
        '.spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"].containerPort'
    assert path_string(("f:metadata", "f:finalizers", 'v:"a\\"b"')) == '.metadata.finalizers[="a\\"b"]'
    assert path_string(("f:args", "i:3")) == ".args[3]"


def test_fields_of_deployment_as_upstream_writes_it() -> None:
    config = deployment([{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}],
                        replicas=2, labels={"app": "web"}, uid="u", resourceVersion="5", generation=3)
    assert serialize_fields_v1(fields_of(config, DEPLOYMENT)) == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},  # LabelSelector is an atomic struct
            "f:template": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {
                'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}, "f:resources": {},
                                       # protocol is a key with a default
                                       "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                                           ".": {}, "f:containerPort": {}}}}}}}}}


def test_fields_of_metadata_and_list_kinds() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": "t", "finalizers": ["a/b"],
                        "annotations": {"x": "1"},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "1"}]},
           "spec": {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "k"}],
                    "containers": [{"name": "c", "command": ["sh", "-c"], "env": []}]}}
    # name, namespace, uid, creationTimestamp are never owned; an empty list owns nothing.
    assert {path_string(p) for p in fields_of(pod, POD)} == {
        '.metadata.finalizers[="a/b"]', ".metadata.annotations.x",
        '.metadata.ownerReferences[uid="1"]',  # OwnerReference is atomic
        ".spec.nodeSelector",  # atomic map
        ".spec.tolerations",  # atomic list
        '.spec.containers[name="c"]', '.spec.containers[name="c"].name', '.spec.containers[name="c"].command',
    }


def test_custom_resource_schema() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "legacy": {"type": "array", "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "n",
                   "items": {"type": "object"}},
        "opaque": {"type": "object", "x-kubernetes-map-type": "atomic"},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}
    info = type_info_from_schema("example.com/v1", "Widget", schema, status_subresource=True)
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
           "spec": {"items": [{"id": 1, "v": "x"}], "tags": ["t"], "legacy": [{"n": "z"}], "opaque": {"k": 1},
                    "free": {"deep": {"er": [1]}}}}
    assert {path_string(p) for p in fields_of(obj, info)} == {
        ".metadata.labels.a", ".spec.items[id=1]", ".spec.items[id=1].id", ".spec.items[id=1].v",
        '.spec.tags[="t"]', '.spec.legacy[n="z"]', ".spec.legacy[n=\"z\"].n", ".spec.opaque",
        ".spec.free.deep", ".spec.free.deep.er"}
    assert reset_fields(info, "") == {("f:status",)}
    assert reset_fields(info, "status") == {("f:spec",)}


def test_reset_fields() -> None:
    assert reset_fields(DEPLOYMENT, "") == {("f:status",)}
    assert reset_fields(DEPLOYMENT, "status") == {("f:spec",), ("f:metadata", "f:labels")}
    assert reset_fields(CONFIGMAP, "") == frozenset()
    assert ("f:metadata", "f:ownerReferences") in reset_fields(POD, "status")


# ---------------------------------------------------------------------------------------------
# record_update (create, update, non-apply patch)


def defaulted(config: dict) -> dict:
    """A Deployment as `kubectl create` sends it once the server has defaulted it."""
    obj = copy.deepcopy(config)
    obj.setdefault("spec", {}).update({
        "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}})
    pod = obj["spec"].setdefault("template", {}).setdefault("spec", {})
    pod.update({"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30})
    for c in pod.get("containers", []):
        c.update({"imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log",
                  "terminationMessagePolicy": "File"})
    return obj


def test_create_owns_every_field_like_kubectl_create() -> None:
    config = deployment(labels={"app": "web"}, containers=[{"name": "nginx", "image": "nginx"}])
    created = update(None, defaulted(config), "kubectl-create")
    (entry,) = created["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "fieldsV1"} == {
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": at(0),
        "fieldsType": "FieldsV1"}
    # Structs Go always writes (spec, strategy, template) are owned through their fields; maps and
    # pointers that appeared (labels, rollingUpdate) and the empty resources struct are owned too.
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {}, "f:selector": {},
            "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {'k:{"name":"nginx"}': {
                        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                        "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                    "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                    "f:terminationGracePeriodSeconds": {}}}}}


def test_create_of_a_configmap() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "c", "namespace": "default", "annotations": {LAST_APPLIED: "{}"}},
          "data": {"key": "a", "legacy": "b"}}
    created = update(None, cm, "kubectl-client-side-apply", api_version="v1")
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {".": {}, "f:key": {}, "f:legacy": {}},
        "f:metadata": {"f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}}}}


def test_edit_moves_the_changed_field() -> None:
    created = update(None, defaulted(deployment()), "kubectl-create")
    edited = copy.deepcopy(created)
    edited["spec"]["replicas"] = 3
    edited = update(created, edited, "kubectl-edit", now=at(5))
    assert entries(edited)[("kubectl-edit", "Update", "")] == {"f:spec": {"f:replicas": {}}}
    assert ".spec.replicas" not in owned(edited, "kubectl-create", "Update")
    assert [e["manager"] for e in edited["metadata"]["managedFields"]] == ["kubectl-create", "kubectl-edit"]
    assert edited["metadata"]["managedFields"][1]["time"] == at(5)
    # Nothing changed: nothing moves, no time is touched.
    again = update(edited, edited, "kubectl-edit", now=at(9))
    assert again["metadata"]["managedFields"] == edited["metadata"]["managedFields"]
    # The editor's fields accumulate.
    relabeled = copy.deepcopy(edited)
    relabeled["metadata"]["labels"] = {"tier": "a"}
    relabeled = update(edited, relabeled, "kubectl-edit", now=at(10))
    assert owned(relabeled, "kubectl-edit", "Update") == {".spec.replicas", ".metadata.labels",
                                                          ".metadata.labels.tier"}


def test_removed_fields_leave_every_entry() -> None:
    created = update(None, defaulted(deployment()), "kubectl-create")
    trimmed = copy.deepcopy(created)
    del trimmed["spec"]["revisionHistoryLimit"]
    trimmed = update(created, trimmed, "kubectl-replace")
    assert ".spec.revisionHistoryLimit" not in owned(trimmed, "kubectl-create", "Update")
    assert ("kubectl-replace", "Update", "") not in entries(trimmed)


def test_status_writes_and_reset_fields() -> None:
    created = update(None, defaulted(deployment()), "kubectl-create")
    status = copy.deepcopy(created)
    status["status"] = {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
    status["spec"]["replicas"] = 9  # the status strategy resets spec: not owned by the writer
    status = update(created, status, "kube-controller-manager", subresource="status")
    (entry,) = [e for e in status["metadata"]["managedFields"] if e["manager"] == "kube-controller-manager"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:conditions": {".": {}, 'k:{"type":"Available"}': {
        ".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}}
    assert ".spec.replicas" in owned(status, "kubectl-create", "Update")
    # The main resource ignores status.
    main = copy.deepcopy(created)
    main["status"] = {"replicas": 4}
    assert "f:status" not in json.dumps(update(created, main, "someone")["metadata"].get("managedFields"))


def test_managed_fields_sent_by_the_client() -> None:
    created = update(None, defaulted(deployment()), "kubectl-create")
    base = copy.deepcopy(created)
    # A decodable list replaces the stored one.
    mine = copy.deepcopy(created)
    mine["metadata"]["managedFields"] = [{"manager": "mine", "operation": "Apply", "apiVersion": "apps/v1",
                                          "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    assert {e["manager"] for e in update(base, mine, "kubectl-replace")["metadata"]["managedFields"]} == {"mine"}
    # An invalid one is ignored.
    bad = copy.deepcopy(created)
    bad["metadata"]["managedFields"] = [{"manager": "x", "operation": "Patch", "apiVersion": "v1"}]
    assert update(base, bad, "kubectl-replace")["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    # [] and [{}] reset them; an update of an object without managers then stays untracked.
    for reset in ([], [{}]):
        cleared = copy.deepcopy(created)
        cleared["metadata"]["managedFields"] = reset
        cleared = update(base, cleared, "kubectl-replace")
        assert "managedFields" not in cleared["metadata"]
        changed = copy.deepcopy(cleared)
        changed["spec"]["replicas"] = 4
        assert "managedFields" not in update(cleared, changed, "kubectl-edit")["metadata"]
    # A create always tracks, even after [].
    fresh = defaulted(deployment())
    fresh["metadata"]["managedFields"] = []
    assert entries(update(None, fresh, "kubectl-create"))
    # Subresource writes keep the stored managers whatever the request says.
    sub = copy.deepcopy(created)
    sub["metadata"]["managedFields"] = []
    sub["status"] = {"replicas": 1}
    sub = update(base, sub, "kcm", subresource="status")
    assert {e["manager"] for e in sub["metadata"]["managedFields"]} == {"kubectl-create", "kcm"}


def test_update_managers_are_capped() -> None:
    obj = update(None, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k0": "v"}},
                 "m00", api_version="v1")
    for i in range(1, 12):
        new = copy.deepcopy(obj)
        new["data"][f"k{i}"] = "v"
        obj = update(obj, new, f"m{i:02d}", now=at(i), api_version="v1")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    # Twelve entries: the three oldest of the apiVersion merge into one bucket, which takes the
    # time of the last one merged.
    assert managers == ["ancient-changes"] + [f"m{i:02d}" for i in range(3, 12)]
    bucket = obj["metadata"]["managedFields"][0]
    assert bucket["fieldsV1"] == {"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}}
    assert bucket["time"] == at(2)


def test_entries_sorted_and_times_normalized() -> None:
    obj = deployment()
    obj["metadata"]["managedFields"] = [
        {"manager": "b", "operation": "Update", "apiVersion": "apps/v1", "time": "2025-01-01T02:00:00+02:00",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "z", "operation": "Apply", "apiVersion": "apps/v1", "time": "2025-01-01T05:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:x": {}}}}},
        {"manager": "a", "operation": "Update", "apiVersion": "apps/v1", "time": "2025-01-01T03:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}}]
    new = copy.deepcopy(obj)
    new["metadata"]["labels"] = {"new": "1"}
    del new["metadata"]["managedFields"]
    out = update(obj, new, "c", now="2025-01-01T04:00:00Z")
    assert [(e["manager"], e["time"]) for e in out["metadata"]["managedFields"]] == [
        ("z", "2025-01-01T05:00:00Z"), ("b", "2025-01-01T00:00:00Z"), ("a", "2025-01-01T03:00:00Z"),
        ("c", "2025-01-01T04:00:00Z")]


def test_unidentifiable_list_element_drops_managed_fields() -> None:
    created = update(None, defaulted(deployment()), "kubectl-create")
    broken = copy.deepcopy(created)
    containers(broken).append({"image": "no-name"})
    assert "managedFields" not in update(created, broken, "kubectl-edit")["metadata"]


def test_keep_unchanged_timestamps() -> None:
    created = update(None, defaulted(deployment()), "kubectl-create")
    later = copy.deepcopy(created)
    later["metadata"]["managedFields"][0]["time"] = at(30)
    keep_unchanged_timestamps(created, later)
    assert later == created
    later["metadata"]["managedFields"][0]["time"] = at(30)
    later["spec"]["replicas"] = 7
    keep_unchanged_timestamps(created, later)
    assert later["metadata"]["managedFields"][0]["time"] == at(30)


# ---------------------------------------------------------------------------------------------
# apply


def test_create_on_apply() -> None:
    config = deployment(labels={"app": "web"})
    obj = do_apply(None, config)
    assert {k: v for k, v in obj.items() if k != "metadata"} == {k: v for k, v in config.items() if k != "metadata"}
    (entry,) = obj["metadata"]["managedFields"]
    assert entry == {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": at(0),
                     "fieldsType": "FieldsV1", "fieldsV1": serialize_fields_v1(fields_of(config, DEPLOYMENT))}
    assert "f:name" not in entry["fieldsV1"]["f:metadata"]
    assert config == deployment(labels={"app": "web"})  # the configuration is left alone


def test_reapplying_changes_nothing() -> None:
    obj = defaulted(do_apply(None, deployment()))
    again = do_apply(obj, deployment(), now=at(30))
    assert again == obj


def test_dropped_field_is_removed() -> None:
    obj = defaulted(do_apply(None, deployment(labels={"app": "web", "tier": "fe"},
                                              containers=[{"name": "web", "image": "nginx"},
                                                          {"name": "side", "image": "envoy"}])))
    obj = do_apply(obj, deployment(labels={"app": "web"}, replicas=None), now=at(1))
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert "replicas" not in obj["spec"]
    assert [c["name"] for c in containers(obj)] == ["web"]
    # Defaulted fields of the remaining container stay: nobody applied them.
    assert containers(obj)[0]["imagePullPolicy"] == "Always"
    assert obj["metadata"]["managedFields"][0]["time"] == at(1)
    # Dropping every label removes the map.
    obj = do_apply(obj, deployment(replicas=None), now=at(2))
    assert "labels" not in obj["metadata"]


def test_dropped_field_stays_when_another_manager_owns_it() -> None:
    obj = do_apply(None, deployment(labels={"app": "web"}))
    obj = do_apply(obj, deployment(labels={"app": "web"}, replicas=None), "other")
    obj = do_apply(obj, deployment(replicas=None, labels={}), now=at(1))
    assert obj["metadata"]["labels"] == {"app": "web"}  # "other" applied it too
    assert "replicas" not in obj["spec"]  # only kubectl had
    assert ".metadata.labels.app" in owned(obj, "other")


def test_disjoint_appliers_do_not_conflict() -> None:
    obj = do_apply(None, deployment(labels={"a": "1"}))
    obj = do_apply(obj, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
                                                                                     "labels": {"b": "2"}}}, "other")
    assert obj["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert owned(obj, "other") == {".metadata.labels.b"}
    assert ".metadata.labels.a" in owned(obj, "kubectl")


def test_conflict_with_an_applier() -> None:
    obj = do_apply(None, deployment(replicas=3))
    with pytest.raises(ApplyConflict) as caught:
        do_apply(obj, deployment(replicas=5), "other")
    err = caught.value
    assert err.message == 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'
    assert err.causes == [{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"',
                           "field": ".spec.replicas"}]
    assert err.api_error().status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": err.message,
        "reason": "Conflict", "details": {"causes": err.causes}, "code": 409}
    # The same value is no conflict: both own it.
    shared = do_apply(obj, deployment(replicas=3), "other")
    assert ".spec.replicas" in owned(shared, "other") and ".spec.replicas" in owned(shared, "kubectl")


def test_conflicts_with_several_managers() -> None:
    obj = do_apply(None, deployment(replicas=3, labels={"a": "1", "b": "1"}))
    edited = copy.deepcopy(obj)
    containers(edited)[0]["image"] = "nginx:2"
    edited = update(obj, edited, "kubectl-set", subresource="")
    status = copy.deepcopy(edited)
    status["status"] = {"replicas": 3}
    status = update(edited, status, "kcm", subresource="status")
    config = deployment(replicas=4, labels={"a": "2", "b": "2"}, containers=[{"name": "web", "image": "nginx:3"}])
    config["status"] = {"replicas": 9}
    with pytest.raises(ApplyConflict) as caught:
        do_apply(status, config, "other", subresource="status")
    # Via /status only status may change hands (spec and labels are reset): "kcm" holds it.
    assert caught.value.message == ('Apply failed with 1 conflict: conflict with "kcm" with subresource "status" '
                                    "using apps/v1: .status.replicas")
    with pytest.raises(ApplyConflict) as caught:
        do_apply(status, config, "other")
    assert caught.value.message == (
        "Apply failed with 4 conflicts: conflicts with \"kubectl\":\n- .metadata.labels.a\n- .metadata.labels.b\n"
        "- .spec.replicas\nconflicts with \"kubectl-set\" using apps/v1:\n"
        '- .spec.template.spec.containers[name="web"].image')
    assert [c["message"] for c in caught.value.causes] == ['conflict with "kubectl"'] * 3 + [
        'conflict with "kubectl-set" using apps/v1']


def test_force_takes_ownership() -> None:
    obj = do_apply(None, deployment(replicas=3))
    forced = do_apply(obj, deployment(replicas=5), "other", force=True, now=at(2))
    assert forced["spec"]["replicas"] == 5
    assert ".spec.replicas" in owned(forced, "other")
    assert ".spec.replicas" not in owned(forced, "kubectl")
    # kubectl no longer owns replicas: dropping it from its configuration leaves it.
    again = do_apply(forced, deployment(replicas=None), now=at(3))
    assert again["spec"]["replicas"] == 5


def test_apply_after_an_update_conflicts() -> None:
    obj = do_apply(None, deployment(replicas=3))
    scaled = copy.deepcopy(obj)
    scaled["spec"]["replicas"] = 7
    scaled = update(obj, scaled, "kubectl-scale")
    with pytest.raises(ApplyConflict) as caught:
        do_apply(scaled, deployment(replicas=3))
    assert caught.value.causes == [{"reason": "FieldManagerConflict",
                                    "message": 'conflict with "kubectl-scale" using apps/v1',
                                    "field": ".spec.replicas"}]


def test_containers_merge_by_name() -> None:
    obj = do_apply(None, deployment([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]))
    obj = do_apply(obj, deployment([{"name": "c", "image": "c:1"}], replicas=None), "other")
    assert [c["name"] for c in containers(obj)] == ["a", "b", "c"]
    obj = do_apply(obj, deployment([{"name": "b", "image": "b:2"}, {"name": "a", "image": "a:1"},
                                    {"name": "d", "image": "d:1"}]), now=at(1))
    # structured-merge-diff's order: the configuration's elements in its order, a live-only element
    # where it was relative to the shared ones.
    assert [(c["name"], c["image"]) for c in containers(obj)] == [("b", "b:2"), ("c", "c:1"), ("a", "a:1"),
                                                                  ("d", "d:1")]


def test_finalizers_are_a_set() -> None:
    obj = do_apply(None, deployment(finalizers=["x/a", "x/b"]))
    obj = do_apply(obj, deployment(finalizers=["x/c", "x/b"], replicas=None), "other")
    assert obj["metadata"]["finalizers"] == ["x/a", "x/c", "x/b"]
    assert owned(obj, "other") >= {'.metadata.finalizers[="x/b"]', '.metadata.finalizers[="x/c"]'}
    obj = do_apply(obj, deployment(finalizers=["x/b"]), now=at(1))
    assert obj["metadata"]["finalizers"] == ["x/c", "x/b"]
    obj = do_apply(obj, deployment(finalizers=[]), now=at(2))
    assert obj["metadata"]["finalizers"] == ["x/c", "x/b"]  # "other" holds both


def test_object_without_managers_is_owned_before_first_apply() -> None:
    live = defaulted(deployment(replicas=2))
    with pytest.raises(ApplyConflict) as caught:
        do_apply(live, deployment(replicas=4))
    assert caught.value.message == ('Apply failed with 1 conflict: conflict with "before-first-apply" using '
                                    "apps/v1: .spec.replicas")
    obj = do_apply(live, deployment(replicas=4), force=True)
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["kubectl", "before-first-apply"]


def test_kubectl_takes_over_from_client_side_apply() -> None:
    last = deployment(replicas=2)
    live = defaulted(last)
    live["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(last)}
    live = update(None, live, "kubectl-client-side-apply")
    live["spec"]["replicas"] = 2
    config = deployment(replicas=3)
    # Fields the annotation explains do not conflict for "kubectl" (and the annotation follows).
    obj = do_apply(live, config)
    assert obj["spec"]["replicas"] == 3
    assert json.loads(obj["metadata"]["annotations"][LAST_APPLIED]) == config
    assert obj["metadata"]["annotations"][LAST_APPLIED].endswith("}\n")
    assert ".spec.replicas" in owned(obj, "kubectl")
    # Any other manager conflicts.
    with pytest.raises(ApplyConflict):
        do_apply(live, config, "helm")
    # A field changed since the last client-side apply still conflicts.
    drifted = copy.deepcopy(live)
    drifted["spec"]["replicas"] = 5
    drifted = update(live, drifted, "kubectl-scale")
    with pytest.raises(ApplyConflict) as caught:
        do_apply(drifted, config)
    assert [c["message"] for c in caught.value.causes] == ['conflict with "kubectl-scale" using apps/v1']


def test_main_resource_apply_does_not_own_status() -> None:
    config = deployment()
    config["status"] = {"replicas": 1}
    obj = do_apply(None, config)
    assert not any(path.startswith(".status") for path in owned(obj, "kubectl"))


def test_null_in_configuration() -> None:
    obj = do_apply(None, deployment(replicas=3))
    obj = do_apply(obj, deployment(replicas=None) | {"spec": {**deployment()["spec"], "replicas": None}}, now=at(1))
    assert "replicas" not in obj["spec"]
    assert ".spec.replicas" in owned(obj, "kubectl")


def test_configuration_errors() -> None:
    config = deployment()
    config["metadata"]["managedFields"] = []
    with pytest.raises(APIError) as caught:
        do_apply(None, config)
    assert (caught.value.code, caught.value.message) == (400, "metadata.managedFields must be nil")
    with pytest.raises(APIError) as caught:
        do_apply(None, deployment([{"image": "x"}]))
    assert (caught.value.code, caught.value.reason) == (500, "")
    assert caught.value.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers: element 0: associative list with keys has an element that omits key '
        'field "name" (and doesn\'t have default value)')
    with pytest.raises(APIError) as caught:
        do_apply(None, deployment([{"name": "a"}, {"name": "a"}]))
    assert caught.value.message.endswith('.spec.template.spec.containers: duplicate entries for key [name="a"]')


# ---------------------------------------------------------------------------------------------
# Properties

LABELS = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["1", "2"]), max_size=4)
ENV = st.lists(st.sampled_from(["E1", "E2", "E3"]), unique=True, max_size=3)


@st.composite
def container_lists(draw: st.DrawFn, names: list[str]) -> list[dict]:
    chosen = draw(st.lists(st.sampled_from(names), unique=True, min_size=0, max_size=len(names)))
    out = []
    for name in chosen:
        c: dict = {"name": name}
        if draw(st.booleans()):
            c["image"] = draw(st.sampled_from(["x:1", "x:2"]))
        env = draw(ENV)
        if env:
            c["env"] = [{"name": e, "value": draw(st.sampled_from(["1", "2"]))} for e in env]
        out.append(c)
    return out


def partial(labels: dict, conts: list[dict], replicas: int | None = None) -> dict:
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    if labels:
        config["metadata"]["labels"] = labels
    spec: dict = {}
    if replicas is not None:
        spec["replicas"] = replicas
    if conts:
        spec["template"] = {"spec": {"containers": conts}}
    if spec:
        config["spec"] = spec
    return config


CONFIGS = st.builds(partial, LABELS, container_lists(["a", "b", "c"]), st.none() | st.integers(0, 3))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(first=CONFIGS, second=CONFIGS)
def test_applying_the_same_configuration_twice_changes_nothing(first: dict, second: dict) -> None:
    obj = do_apply(None, first)
    once = do_apply(obj, second, "kubectl", now=at(1), force=True)
    assert do_apply(once, second, "kubectl", now=at(2)) == once


@FAST
@given(steps=st.lists(st.tuples(st.booleans(), LABELS, container_lists(["p", "q"]), container_lists(["r", "s"])),
                      min_size=1, max_size=5))
def test_disjoint_managers_never_conflict(steps: list) -> None:
    obj, last = None, {}
    for step, (first, labels, mine, theirs) in enumerate(steps):
        manager = "one" if first else "two"
        # Each manager has its own label keys and containers.
        config = partial({f"{manager}-{k}": v for k, v in labels.items()}, mine if first else theirs)
        obj = do_apply(obj, config, manager, now=at(step))
        last[manager] = config
    for manager, config in last.items():
        assert {path_string(p) for p in fields_of(config, DEPLOYMENT)} == owned(obj, manager)
        for key, value in config["metadata"].get("labels", {}).items():
            assert obj["metadata"]["labels"][key] == value
        names = [c["name"] for c in containers(obj)] if "spec" in obj else []
        for c in config.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert c["name"] in names


def _literal_prune(merged: dict, root: mf._Type, owners: list, last: frozenset) -> dict:
    """Upstream's Updater.prune step by step: remove the completed previous set, add back what
    any manager owns, then remove only the previous set's paths that are still missing."""

    def complete(fields: set) -> set:  # EnsureNamedFieldsAreMembers
        out = set(fields)
        for path in fields:
            out.update(path[:end] for end in range(1, len(path)) if mf._is_struct_field(root, path[:end]))
        return out

    def fields(value: object) -> set:
        return complete(mf._value_set(value, root))

    last_complete = complete(set(last))
    pruned = mf._remove(merged, root, mf._trie(last_complete))
    owned_complete = complete(set().union(*owners))
    pruned = mf._remove(merged, root, mf._trie(fields(merged) - (fields(pruned) | owned_complete)))
    return mf._remove(merged, root, mf._trie((fields(merged) - fields(pruned)) & last_complete))


@FAST
@given(first=CONFIGS, edit=LABELS, other=CONFIGS, second=CONFIGS)
def test_prune_matches_upstream_algorithm(first: dict, edit: dict, other: dict, second: dict) -> None:
    obj = defaulted(do_apply(None, first))
    if edit:
        edited = copy.deepcopy(obj)
        edited["metadata"]["labels"] = edit
        obj = update(obj, edited, "kubectl-label")
    obj = do_apply(obj, other, "other", force=True)
    managed = mf._decode(obj["metadata"]["managedFields"])
    previous = managed.entries.get(("kubectl", "Apply", "", ""))
    assume(previous is not None)
    last = previous.fields
    applied = mf.fields_of(second, DEPLOYMENT)
    owners = [applied] + [e.fields for i, e in managed.entries.items() if i[0] != "kubectl"]
    merged = mf._merge(mf._without_managed_fields(obj), second, DEPLOYMENT.root)
    assert mf._prune(merged, DEPLOYMENT.root, owners, last) == _literal_prune(merged, DEPLOYMENT.root, owners, last)
