"""Strategic merge patch: upstream's semantics on real kinds, errors, and kubectl's three-way patch."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.strategic_merge import (
    StrategicMergeError,
    apply_strategic_merge_patch,
    create_three_way_patch,
    patch_meta,
)

DEPLOYMENT = patch_meta("apps", "v1", "Deployment")
POD = patch_meta("", "v1", "Pod")
SERVICE = patch_meta("", "v1", "Service")
NODE = patch_meta("", "v1", "Node")
CONFIGMAP = patch_meta("", "v1", "ConfigMap")


def deployment(containers: list, **spec: object) -> dict:
    pod_spec = {"containers": containers}
    pod_spec.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}}


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def template_patch(**pod: object) -> dict:
    return {"spec": {"template": {"spec": pod}}}


def names(items: list) -> list:
    return [item["name"] for item in items]


WEB = {"name": "web", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
       "ports": [{"containerPort": 80, "protocol": "TCP"}]}
SIDECAR = {"name": "sidecar", "image": "envoy:1.29"}


# ---------------------------------------------------------------------------------------------
# Patch metadata


@pytest.mark.parametrize(("meta", "path", "strategy", "merge_key"), [
    (DEPLOYMENT, "spec.template.spec.containers", "merge", "name"),
    (DEPLOYMENT, "spec.template.spec.containers.env", "merge", "name"),
    (DEPLOYMENT, "spec.template.spec.containers.ports", "merge", "containerPort"),
    (DEPLOYMENT, "spec.template.spec.containers.volumeMounts", "merge", "mountPath"),
    (DEPLOYMENT, "spec.template.spec.volumes", "merge,retainKeys", "name"),
    (DEPLOYMENT, "spec.strategy", "retainKeys", ""),
    (DEPLOYMENT, "spec.template.spec.tolerations", "", ""),
    (DEPLOYMENT, "metadata.finalizers", "merge", ""),
    (DEPLOYMENT, "metadata.ownerReferences", "merge", "uid"),
    (DEPLOYMENT, "status.conditions", "merge", "type"),
    (SERVICE, "spec.ports", "merge", "port"),
    (NODE, "spec.taints", "", ""),
    (NODE, "spec.podCIDRs", "merge", ""),
    (NODE, "status.addresses", "merge", "type"),
    (patch_meta("policy", "v1", "PodDisruptionBudget"), "spec.selector", "replace", ""),
])
def test_patch_meta(meta, path, strategy, merge_key):
    field = meta.lookup(path)
    assert (field.strategy, field.merge_key) == (strategy, merge_key)


def test_patch_meta_unknown():
    assert patch_meta("example.com", "v1", "Widget") is None
    assert DEPLOYMENT.lookup("spec.template.spec.nope") is None
    assert patch_meta("apps", "v1", "Deployment") is DEPLOYMENT


# ---------------------------------------------------------------------------------------------
# Application: table of cases on real kinds. Each: (meta, original, patch, expected).

CASES = {
    "container merged by name, others kept": (
        DEPLOYMENT, deployment([WEB, SIDECAR]), template_patch(containers=[{"name": "sidecar", "image": "envoy:2"}]),
        deployment([WEB, {"name": "sidecar", "image": "envoy:2"}])),
    # Without $setElementOrder a new item goes in front (upstream's docs show the same for
    # `kubectl patch` adding a container).
    "new container goes first": (
        DEPLOYMENT, deployment([WEB]), template_patch(containers=[{"name": "sidecar", "image": "envoy:1.29"}]),
        deployment([SIDECAR, WEB])),
    "env merged by name, ports by containerPort": (
        DEPLOYMENT, deployment([WEB]),
        template_patch(containers=[{"name": "web", "env": [{"name": "B", "value": "3"}],
                                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]),
        deployment([{**WEB, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]}])),
    "kubectl apply patch: $setElementOrder orders containers and env": (
        DEPLOYMENT, deployment([WEB, SIDECAR]),
        template_patch(**{"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                          "containers": [{"name": "web", "image": "nginx:1.26",
                                          "$setElementOrder/env": [{"name": "C"}, {"name": "A"}, {"name": "B"}],
                                          "env": [{"name": "C", "value": "0"}]}]}),
        deployment([SIDECAR, {**WEB, "image": "nginx:1.26", "env": [
            {"name": "C", "value": "0"}, {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}])),
    # Named items take the order list's order; a server-only item goes before the first named
    # item that followed it in the original list.
    "$setElementOrder interleaves server-only items": (
        DEPLOYMENT,
        deployment([{"name": "web", "env": [{"name": "A"}, {"name": "INJECTED"}, {"name": "B"}]}]),
        template_patch(containers=[{"name": "web", "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}]),
        deployment([{"name": "web", "env": [{"name": "INJECTED"}, {"name": "B"}, {"name": "A"}]}])),
    # Upstream merges in the original list's own array: the deletion shifts items left and the
    # addition lands in the freed slot, and the $setElementOrder pass orders server-only items
    # by that array (upstream's own test data has the same case).
    "$setElementOrder with a deletion and an addition": (
        DEPLOYMENT,
        deployment([{"name": "web", "env": [{"name": "A"}, {"name": "B", "value": "b"}, {"name": "C", "value": "c"}]}]),
        template_patch(containers=[{"name": "web", "$setElementOrder/env": [{"name": "B"}, {"name": "D"}],
                                    "env": [{"name": "D"}, {"name": "A", "$patch": "delete"}]}]),
        deployment([{"name": "web", "env": [{"name": "B", "value": "b"}, {"name": "C", "value": "c"},
                                            {"name": "D"}]}])),
    "$setElementOrder on a primitive list": (
        DEPLOYMENT, {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$setElementOrder/finalizers": ["c", "a"], "finalizers": ["c"]}},
        {"metadata": {"finalizers": ["b", "c", "a"]}}),
    "finalizers union": (
        DEPLOYMENT, {"metadata": {"finalizers": ["x", "y"]}}, {"metadata": {"finalizers": ["z", "x"]}},
        {"metadata": {"finalizers": ["z", "x", "y"]}}),
    "$deleteFromPrimitiveList": (
        DEPLOYMENT, {"metadata": {"finalizers": ["x", "y", "z"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["y", "absent"]}},
        {"metadata": {"finalizers": ["x", "z"]}}),
    "$deleteFromPrimitiveList on a missing list adds nothing": (
        DEPLOYMENT, {"metadata": {"name": "n"}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["y"]}},
        {"metadata": {"name": "n"}}),
    "$deleteFromPrimitiveList works on replace lists too": (
        DEPLOYMENT, deployment([{"name": "web", "args": ["a", "b"]}]),
        template_patch(containers=[{"name": "web", "$deleteFromPrimitiveList/args": ["a"]}]),
        deployment([{"name": "web", "args": ["b"]}])),
    "volume source switched with $retainKeys": (
        DEPLOYMENT,
        deployment([WEB], volumes=[{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}]),
        template_patch(volumes=[{"name": "v", "emptyDir": {}, "$retainKeys": ["emptyDir", "name"]}]),
        deployment([WEB], volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}])),
    "deployment strategy switched with $retainKeys": (
        DEPLOYMENT, {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
        {"spec": {"strategy": {"type": "Recreate"}}}),
    "$patch: replace in a map": (
        DEPLOYMENT, {"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}},
        {"spec": {"selector": {"matchLabels": {"$patch": "replace", "c": "3"}}}},
        {"spec": {"selector": {"matchLabels": {"c": "3"}}}}),
    "$patch: replace in a list": (
        DEPLOYMENT, deployment([WEB, SIDECAR]),
        template_patch(containers=[{"name": "only", "image": "x"}, {"$patch": "replace"}]),
        deployment([{"name": "only", "image": "x"}])),
    "$patch: delete in a list": (
        DEPLOYMENT, deployment([WEB, SIDECAR]), template_patch(containers=[{"name": "web", "$patch": "delete"}]),
        deployment([SIDECAR])),
    "$patch: delete in a map empties it": (
        DEPLOYMENT, {"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}},
        template_patch(nodeSelector={"$patch": "delete"}),
        {"spec": {"template": {"spec": {"nodeSelector": {}}}}}),
    "$patch: delete of a missing map adds nothing": (
        DEPLOYMENT, {"spec": {"replicas": 1}}, {"spec": {"strategy": {"$patch": "delete"}}}, {"spec": {"replicas": 1}}),
    "tolerations replaced": (
        POD, {"spec": {"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}},
        {"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}},
        {"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
    "pod container image": (
        POD, {"spec": {"containers": [dict(WEB), dict(SIDECAR)]}},
        {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
        {"spec": {"containers": [{**WEB, "image": "nginx:1.27"}, SIDECAR]}}),
    "null deletes keys": (
        DEPLOYMENT, {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"paused": True, "replicas": 2}},
        {"metadata": {"labels": {"a": None, "absent": None}}, "spec": {"paused": None}},
        {"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 2}}),
    "nulls inside an added value are dropped": (
        DEPLOYMENT, {"spec": {}}, {"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}},
        {"spec": {"strategy": {"type": "Recreate"}}}),
    "nested maps merge": (
        DEPLOYMENT, deployment([{"name": "web", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
        template_patch(containers=[{"name": "web", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}}]),
        deployment([{"name": "web",
                     "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1"}}}])),
    "a value of another type replaces": (
        DEPLOYMENT, {"spec": {"strategy": {"type": "Recreate"}}}, {"spec": {"strategy": "x"}},
        {"spec": {"strategy": "x"}}),
    "service ports merged by port": (
        SERVICE, {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}},
        {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]}}),
    "cordon": (
        NODE, {"spec": {"podCIDR": "10.0.0.0/24"}}, {"spec": {"unschedulable": True}},
        {"spec": {"podCIDR": "10.0.0.0/24", "unschedulable": True}}),
    "node taints replaced": (
        NODE, {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}},
        {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
    "node conditions merged by type": (
        NODE,
        {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]}}),
    "unknown fields merge as plain maps": (
        DEPLOYMENT, {"spec": {"extra": {"a": {"x": 1}, "l": [1]}}},
        {"spec": {"extra": {"a": {"y": 2}, "l": [2]}, "new": {"k": None, "v": 1}}},
        {"spec": {"extra": {"a": {"x": 1, "y": 2}, "l": [2]}, "new": {"v": 1}}}),
    "empty patch": (DEPLOYMENT, deployment([WEB]), {}, deployment([WEB])),
    "$patch: delete at the top": (DEPLOYMENT, deployment([WEB]), {"$patch": "delete"}, {}),
    # Upstream's ordering comparison claims "less" for any item missing from the order list, so
    # the result follows Go's sort.SliceStable step by step.
    "ordering items missing from the order list": (
        DEPLOYMENT, deployment([{"name": "web", "args": ["y"]}]),
        template_patch(containers=[{"name": "web", "$setElementOrder/args": [], "args": ["x", "y"]}]),
        deployment([{"name": "web", "args": ["y", "x"]}])),
}


@pytest.mark.parametrize("name", CASES)
def test_apply(name):
    meta, original, patch, expected = CASES[name]
    frozen = copy.deepcopy((original, patch))
    assert apply_strategic_merge_patch(original, patch, meta) == expected
    assert (original, patch) == frozen


def test_result_shares_nothing_with_inputs():
    original = deployment([WEB])
    patch = template_patch(containers=[{"name": "new", "env": [{"name": "X"}]}])
    result = apply_strategic_merge_patch(original, patch, DEPLOYMENT)
    pod_spec(result)["containers"][0]["env"].append({"name": "Y"})
    pod_spec(result)["containers"][1]["env"].append({"name": "Y"})
    assert patch == template_patch(containers=[{"name": "new", "env": [{"name": "X"}]}])
    assert original == deployment([WEB])


# ---------------------------------------------------------------------------------------------
# Errors: upstream's messages, and the status the apiserver answers.

ERRORS = {
    "missing merge key": (
        template_patch(containers=[{"image": "x", "n": 1.5, "big": 1000000.0, "ok": True}]), 500,
        "map: map[big:1e+06 image:x n:1.5 ok:true] does not contain declared merge key: name"),
    "missing merge key in a delete directive": (
        template_patch(containers=[{"$patch": "delete"}]), 500,
        "map: map[$patch:delete] does not contain declared merge key: name"),
    "unknown $patch in a map": (
        {"spec": {"template": {"$patch": "nope"}}}, 500, "unknown patch type: nope in map: map[$patch:nope]"),
    "$patch: merge in a map": (
        {"spec": {"$patch": "merge", "replicas": 2}}, 500,
        "unknown patch type: merge in map: map[$patch:merge replicas:2]"),
    "non-string $patch": (
        {"spec": {"$patch": 1}}, 500, "unknown patch type: %!s(int64=1) in map: map[$patch:1]"),
    "unknown $patch in a list": (
        template_patch(containers=[{"name": "web", "$patch": "x"}]), 500,
        "unknown patch type: x in map: map[$patch:x name:web]"),
    "$patch: merge in a list": (
        template_patch(containers=[{"$patch": "merge"}]), 500, "merging lists cannot yet be specified in the patch"),
    "$setElementOrder out of order": (
        template_patch(**{"$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                          "containers": [{"name": "sidecar"}, {"name": "web"}]}), 500,
        "The order in patch list:\n[map[name:sidecar] map[name:web]]\n doesn't match $setElementOrder list:\n"
        "[map[name:web] map[name:sidecar]]\n"),
    "$setElementOrder not a list": (
        template_patch(**{"$setElementOrder/containers": "web"}), 500,
        "expected a []interface {}, but received a string"),
    "$setElementOrder without a field": (
        {"metadata": {"$setElementOrder": ["a"]}}, 400, "invalid patch format of setElementOrder list"),
    "$deleteFromPrimitiveList without a field": (
        {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}, 400, "invalid patch format of primitive list"),
    "$retainKeys missing a patched field": (
        {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}, 400,
        "invalid patch format of retainKeys"),
    "$retainKeys not a list": (
        {"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "invalid patch format of retainKeys"),
    "list of lists in a merge list": (
        {"metadata": {"ownerReferences": [["a"]]}}, 422, "lists of lists are not supported"),
    "mixed element types": (
        {"metadata": {"finalizers": [1]}}, 500, "list element types are not identical: [[a] [1]]"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors(name):
    patch, code, message = ERRORS[name]
    original = deployment([WEB, SIDECAR])
    original["metadata"].update(finalizers=["a"], ownerReferences=[])
    original["spec"]["strategy"] = {"type": "RollingUpdate"}
    with pytest.raises(StrategicMergeError) as caught:
        apply_strategic_merge_patch(original, patch, DEPLOYMENT)
    assert (caught.value.code, caught.value.message) == (code, message)


def test_merge_key_less_merge_list_of_maps():
    with pytest.raises(StrategicMergeError, match="^cannot merge lists without merge key for string$"):
        apply_strategic_merge_patch({"metadata": {"finalizers": []}}, {"metadata": {"finalizers": [{"a": 1}]}},
                                    DEPLOYMENT)


@pytest.mark.parametrize(("code", "status"), [
    (400, {"code": 400, "reason": "BadRequest", "message": "m"}),
    (422, {"code": 422, "reason": "Invalid",
           "message": "the server rejected our request due to an error in our request"}),
    (500, {"code": 500, "reason": "", "message": "m"}),
])
def test_api_error(code, status):
    error = StrategicMergeError("m", code).api_error()
    assert {"code": error.code, "reason": error.reason, "message": error.message} == status


# ---------------------------------------------------------------------------------------------
# kubectl's three-way patch


def test_three_way_patch_like_kubectl_apply():
    last = deployment([WEB, SIDECAR], volumes=[{"name": "v", "hostPath": {"path": "/x"}}])
    current = copy.deepcopy(last)
    current["metadata"]["uid"] = "u"
    current["status"] = {"replicas": 1}
    pod_spec(current)["dnsPolicy"] = "ClusterFirst"
    pod_spec(current)["containers"][0]["env"].append({"name": "INJECTED", "value": "x"})
    modified = deployment([{**WEB, "image": "nginx:1.26", "env": [{"name": "B", "value": "2"}]}],
                          volumes=[{"name": "v", "emptyDir": {}}])

    patch = create_three_way_patch(last, modified, current, DEPLOYMENT)

    assert patch == template_patch(**{
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"name": "web", "image": "nginx:1.26", "$setElementOrder/env": [{"name": "B"}],
                        "env": [{"name": "A", "$patch": "delete"}]},
                       {"name": "sidecar", "$patch": "delete"}],
        "$setElementOrder/volumes": [{"name": "v"}],
        "volumes": [{"name": "v", "emptyDir": {}, "hostPath": None, "$retainKeys": ["emptyDir", "name"]}],
    })
    result = apply_strategic_merge_patch(current, patch, DEPLOYMENT)
    assert pod_spec(result) == {
        "containers": [{**WEB, "image": "nginx:1.26", "env": [{"name": "B", "value": "2"},
                                                             {"name": "INJECTED", "value": "x"}]}],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "dnsPolicy": "ClusterFirst",
    }
    assert (result["status"], result["metadata"]["uid"]) == ({"replicas": 1}, "u")


def test_three_way_patch_empty_when_nothing_changed():
    obj = deployment([WEB, SIDECAR])
    assert create_three_way_patch(obj, obj, obj, DEPLOYMENT) == {}


# ---------------------------------------------------------------------------------------------
# Properties

POOL = ["a", "b", "c", "d"]
values = st.sampled_from(["1", "2", "x"])
labels = st.dictionaries(st.sampled_from(POOL), values, max_size=3)
env = st.lists(st.fixed_dictionaries({"name": st.sampled_from(POOL)}, optional={"value": values}),
               max_size=4, unique_by=lambda e: e["name"])
ports = st.lists(st.fixed_dictionaries({"containerPort": st.sampled_from([80, 443, 8080])},
                                       optional={"name": st.sampled_from(["http", "tls"]), "protocol": st.just("TCP")}),
                 max_size=3, unique_by=lambda p: p["containerPort"])
containers = st.lists(st.fixed_dictionaries(
    {"name": st.sampled_from(POOL), "image": st.sampled_from(["nginx:1", "nginx:2"])},
    optional={"env": env, "ports": ports, "args": st.lists(st.sampled_from(POOL), max_size=3),
              "resources": st.fixed_dictionaries({}, optional={"limits": labels, "requests": labels})}),
    min_size=1, max_size=3, unique_by=lambda c: c["name"])
volume_sources = st.one_of(st.just({"emptyDir": {}}), st.builds(lambda p: {"hostPath": {"path": p}}, values),
                           st.builds(lambda n: {"configMap": {"name": n}}, values))
volumes = st.lists(st.builds(lambda n, source: {"name": n, **source}, st.sampled_from(POOL), volume_sources),
                   max_size=3, unique_by=lambda v: v["name"])
tolerations = st.lists(st.fixed_dictionaries({"key": st.sampled_from(POOL), "operator": st.just("Exists")}),
                       max_size=2)
pod_specs = st.fixed_dictionaries({"containers": containers}, optional={
    "volumes": volumes, "tolerations": tolerations, "nodeSelector": labels, "initContainers": containers})
metadata = st.fixed_dictionaries({"name": st.just("obj")}, optional={
    "labels": labels, "annotations": labels, "finalizers": st.lists(st.sampled_from(POOL), max_size=3, unique=True)})
strategies = st.one_of(st.just({"type": "Recreate"}), st.builds(
    lambda s: {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": s}}, st.sampled_from([1, "25%"])))
deployments = st.fixed_dictionaries({
    "apiVersion": st.just("apps/v1"), "kind": st.just("Deployment"), "metadata": metadata,
    "spec": st.fixed_dictionaries({"template": st.fixed_dictionaries({"spec": pod_specs}, optional={
        "metadata": st.fixed_dictionaries({}, optional={"labels": labels})})},
        optional={"replicas": st.integers(0, 3), "strategy": strategies, "paused": st.booleans()}),
})
pods = st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("Pod"), "metadata": metadata,
                              "spec": pod_specs})
configmaps = st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("ConfigMap"), "metadata": metadata},
                                   optional={"data": labels, "binaryData": labels, "immutable": st.booleans()})
objects = st.one_of(st.tuples(st.just(DEPLOYMENT), deployments, deployments),
                    st.tuples(st.just(POD), pods, pods),
                    st.tuples(st.just(CONFIGMAP), configmaps, configmaps))

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def without_deletions(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_deletions(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_deletions(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def decoded(value: object) -> object:
    """What decoding into the Go type keeps: no nulls, no `$` keys (unknown fields)."""
    if isinstance(value, dict):
        return {k: decoded(v) for k, v in value.items() if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


@PROPERTY_SETTINGS
@given(objects)
def test_three_way_patch_reproduces_the_file(case):
    """With the live object equal to the last applied one, applying kubectl's patch gives the file."""
    meta, last, modified = case
    patch = create_three_way_patch(last, modified, last, meta)
    assert apply_strategic_merge_patch(last, patch, meta) == modified


@PROPERTY_SETTINGS
@given(objects, st.data())
def test_apply_is_idempotent(case, data):
    meta, last, modified = case
    current = data.draw({DEPLOYMENT: deployments, POD: pods, CONFIGMAP: configmaps}[meta])
    # A list item the patch adds is added as is, directives and all (as upstream does): a
    # `$patch: delete` inside it only acts on the second application. So: no deletions.
    patch = without_deletions(create_three_way_patch(last, modified, current, meta))
    once = apply_strategic_merge_patch(current, patch, meta)
    # Values the patch adds are added with their nulls and `$retainKeys`/`$setElementOrder` keys
    # (as upstream's are); the second application consumes them. Decoding drops them.
    assert decoded(apply_strategic_merge_patch(once, patch, meta)) == decoded(once)


# Edits on disjoint fields of a Deployment: (field, patch) pairs; patches on different fields commute.
def _edits(obj: dict) -> st.SearchStrategy:
    names_ = names(pod_spec(obj)["containers"])
    per_container = [
        st.builds(lambda image, n=n: (f"image/{n}", template_patch(containers=[{"name": n, "image": image}])),
                  st.sampled_from(["busybox", "nginx:3"])) for n in names_
    ] + [
        st.builds(lambda e, n=n: (f"env/{n}", template_patch(containers=[{"name": n, "env": e}])), env)
        for n in names_
    ]
    return st.one_of(
        *per_container,
        st.builds(lambda k, v: (f"label/{k}", {"metadata": {"labels": {k: v}}}), st.sampled_from(POOL),
                  st.one_of(st.none(), values)),
        st.builds(lambda r: ("replicas", {"spec": {"replicas": r}}), st.integers(0, 5)),
        st.builds(lambda f: ("finalizers", {"metadata": {"finalizers": f}}), st.lists(st.sampled_from(POOL),
                                                                                     max_size=2, unique=True)),
        st.builds(lambda f: ("finalizers", {"metadata": {"$deleteFromPrimitiveList/finalizers": f}}),
                  st.lists(st.sampled_from(POOL), max_size=2)),
        st.builds(lambda v: ("volumes", template_patch(volumes=v)), volumes),
        st.builds(lambda t: ("tolerations", template_patch(tolerations=t)), tolerations),
        st.builds(lambda s: ("strategy", {"spec": {"strategy": {**s, "$retainKeys": sorted(s)}}}), strategies),
        st.just(("containers", template_patch(containers=[{"name": "new", "image": "x"}]))),
    )


def _apply_all(obj: dict, patches: list[dict]) -> dict:
    for patch in patches:
        obj = apply_strategic_merge_patch(obj, patch, DEPLOYMENT)
    return obj


@PROPERTY_SETTINGS
@given(deployments, st.data())
def test_disjoint_patches_commute(obj, data):
    edits = data.draw(st.lists(_edits(obj), min_size=2, max_size=6, unique_by=lambda e: e[0]))
    split = data.draw(st.integers(1, len(edits) - 1))
    first = [patch for _, patch in edits[:split]]
    second = [patch for _, patch in edits[split:]]
    assert _apply_all(obj, first + second) == _apply_all(obj, second + first)
