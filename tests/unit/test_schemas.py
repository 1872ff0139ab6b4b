"""The v1.32 schemas: definition lookup and the errors upstream's strict JSON decoder reports."""

from __future__ import annotations

import copy
import json
import time

import pytest

from pyk8s.api import schemas
from pyk8s.api.kinds import REGISTRY

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"note": "x"},
                 "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"anything": {}}}}]},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "500m", "memory": 1}, "requests": {"cpu": 0.25}},
                    "env": [{"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                }],
                "volumes": [{"name": "v", "emptyDir": {}}],
            },
        },
    },
    "status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True",
                                              "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
}


def deployment(**changes: object) -> dict:
    obj = copy.deepcopy(DEPLOYMENT)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = obj
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value
    return obj


# ---------------------------------------------------------------------------------------------
# Definitions


@pytest.mark.parametrize("kind", REGISTRY.kinds, ids=lambda k: f"{k.group or 'core'}/{k.version}/{k.kind}")
def test_every_registry_kind_has_a_definition(kind):
    name = schemas.definition_for(kind.group, kind.version, kind.kind)
    assert name is not None and name.endswith("." + kind.kind)
    if not kind.create_only:  # the review kinds have no List type
        assert schemas.definition_for(kind.group, kind.version, kind.kind + "List") == name + "List"
    for sub in kind.subresources:
        # Connect subresources (pods/exec, nodes/proxy...) name their query-parameter kind, which has no schema.
        if sub.kind and not sub.kind.endswith("Options"):
            group = kind.group if sub.group is None else sub.group
            assert schemas.definition_for(group, sub.version or kind.version, sub.kind) is not None


def test_definition_names():
    assert schemas.definition_for("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert schemas.definition_for("", "v1", "Event") == "io.k8s.api.core.v1.Event"
    assert schemas.definition_for("events.k8s.io", "v1", "Event") == "io.k8s.api.events.v1.Event"
    assert schemas.definition_for("autoscaling", "v1", "Scale") == "io.k8s.api.autoscaling.v1.Scale"
    assert schemas.definition_for("apps", "v1", "DeleteOptions") == "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
    assert schemas.definition_for("apps", "v1", "Nope") is None


def test_definitions_keep_the_extensions():
    ports = schemas.definitions()["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]


# ---------------------------------------------------------------------------------------------
# Unknown fields


def test_a_valid_object_has_no_unknown_fields():
    assert schemas.unknown_fields("apps", "v1", "Deployment", DEPLOYMENT) == []


def test_unknown_fields_are_reported_with_their_paths_in_document_order():
    obj = deployment(spec__foo=1, spec__template__spec__containers__0__bar={"x": 1},
                     spec__template__spec__containers__0__ports__0__hostIPs=["a"], bogus=True)
    obj["metadata"]["extra"] = "x"
    assert schemas.unknown_fields("apps", "v1", "Deployment", obj) == [
        'unknown field "metadata.extra"',
        'unknown field "spec.template.spec.containers[0].ports[0].hostIPs"',
        'unknown field "spec.template.spec.containers[0].bar"',
        'unknown field "spec.foo"',
        'unknown field "bogus"',
    ]


def test_map_values_and_list_items_of_structs_are_walked():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"claims": [{"name": "c", "x": 1}]}}],
                    "overhead": {"cpu": "1"}}}
    assert schemas.unknown_fields("", "v1", "Pod", obj) == [
        'unknown field "spec.containers[1].resources.claims[0].x"',
    ]


def test_free_form_values_are_opaque():
    # labels/annotations maps, IntOrString, Quantity, FieldsV1, RawExtension take any content.
    obj = deployment(spec__strategy__rollingUpdate__maxSurge={"weird": 1},
                     spec__template__spec__containers__0__resources__limits={"cpu": {"x": 1}})
    assert schemas.unknown_fields("apps", "v1", "Deployment", obj) == []
    revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
                "revision": 1, "data": {"spec": {"anything": {"goes": True}}}}
    assert schemas.unknown_fields("apps", "v1", "ControllerRevision", revision) == []


def test_wrongly_typed_values_are_left_to_the_type_check():
    obj = deployment(spec="nope", metadata=[{"x": 1}])
    assert schemas.unknown_fields("apps", "v1", "Deployment", obj) == []


def test_null_values_are_not_walked():
    assert schemas.unknown_fields("apps", "v1", "Deployment", deployment(spec=None)) == []


def test_unknown_fields_of_every_group():
    obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"},
           "rules": [{"verbs": ["get"], "resources": ["pods"], "apiGroup": ""}]}
    assert schemas.unknown_fields("rbac.authorization.k8s.io", "v1", "ClusterRole", obj) == [
        'unknown field "rules[0].apiGroup"',
    ]
    hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"maxReplicas": 2, "metrics": []}}
    assert schemas.unknown_fields("autoscaling", "v1", "HorizontalPodAutoscaler", hpa) == [
        'unknown field "spec.metrics"',
    ]
    assert schemas.unknown_fields("autoscaling", "v2", "HorizontalPodAutoscaler", hpa) == []


def test_unknown_fields_are_deduplicated_and_capped_at_100():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    obj.update({f"x{i}": i for i in range(150)})
    problems = schemas.unknown_fields("", "v1", "ConfigMap", obj)
    assert len(problems) == 100 and problems[0] == 'unknown field "x0"' and problems[-1] == 'unknown field "x99"'


def test_field_names_are_quoted_like_go():
    obj = {"metadata": {"name": "c"}, 'we"ird\\': 1, "tab\there": 2, "bell\x07": 3, "ünï": 4}
    assert schemas.unknown_fields("", "v1", "ConfigMap", obj) == [
        'unknown field "we\\"ird\\\\"',
        'unknown field "tab\\there"',
        'unknown field "bell\\a"',
        'unknown field "ünï"',
    ]


def test_unknown_kinds_are_not_checked():
    assert schemas.unknown_fields("example.com", "v1", "Widget", {"anything": 1}) == []


def test_unknown_fields_of_a_deployment_take_well_under_a_millisecond():
    obj = deployment(spec__foo=1)
    schemas.unknown_fields("apps", "v1", "Deployment", obj)  # compile once
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        schemas.unknown_fields("apps", "v1", "Deployment", obj)
    assert (time.perf_counter() - start) / runs < 0.001


# ---------------------------------------------------------------------------------------------
# Duplicate fields


def test_duplicate_fields_anywhere_in_a_document():
    raw = b'{"a": 1, "a": {"b": [{"c": 1, "c": 2, "c": 3}]}, "d": [[{"e": 1, "e": 1}]], "metadata": ' \
          b'{"name": "x", "name": "y", "labels": {"k": "1", "k": "2"}}}'
    assert schemas.duplicate_fields(raw) == [
        'duplicate field "a"',
        'duplicate field "a.b[0].c"',
        'duplicate field "d[0][0].e"',
        'duplicate field "metadata.name"',
        'duplicate field "metadata.labels.k"',
    ]


def test_no_duplicates():
    assert schemas.duplicate_fields(json.dumps(DEPLOYMENT).encode()) == []
    assert schemas.duplicate_fields(b"[1, 2]") == []
    assert schemas.duplicate_fields('{"a": {"a": 1}}') == []


# ---------------------------------------------------------------------------------------------
# Strict errors of a typed body (what a create/update reports)


def test_strict_errors_interleave_unknown_and_duplicate_fields_in_document_order():
    raw = (b'{"apiVersion": "apps/v1", "kind": "Deployment",'
           b' "metadata": {"name": "a", "name": "b", "labels": {"x": "1", "x": "2"}},'
           b' "spec": {"foo": 1, "foo": 2, "replicas": 1, "replicas": 2,'
           b'  "strategy": {"rollingUpdate": {"maxSurge": {"k": 1, "k": 2}}},'
           b'  "template": {"spec": {"containers": [{"name": "c", "bogus": 1}, {"name": "d", "name": "e"}]}}}}')
    assert schemas.strict_errors("apps", "v1", "Deployment", raw) == [
        'duplicate field "metadata.name"',
        'duplicate field "metadata.labels.x"',
        'unknown field "spec.foo"',  # a repeated unknown field is reported once, as unknown
        'duplicate field "spec.replicas"',
        'unknown field "spec.template.spec.containers[0].bogus"',
        'duplicate field "spec.template.spec.containers[1].name"',
    ]


def test_strict_errors_see_both_values_of_a_duplicated_field():
    raw = b'{"metadata": {"name": "a"}, "spec": {"a": 1}, "spec": {"b": 1}}'
    assert schemas.strict_errors("apps", "v1", "Deployment", raw) == [
        'unknown field "spec.a"', 'duplicate field "spec"', 'unknown field "spec.b"',
    ]


def test_strict_errors_of_a_clean_body():
    assert schemas.strict_errors("apps", "v1", "Deployment", json.dumps(DEPLOYMENT)) == []
    assert schemas.strict_errors("example.com", "v1", "Widget", b'{"a": 1, "a": 2}') == []


# ---------------------------------------------------------------------------------------------
# Type errors


@pytest.mark.parametrize(("obj", "message"), [
    (deployment(spec__replicas="3"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (deployment(spec__replicas=1.5),
     "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (deployment(spec__replicas=3000000000),
     "json: cannot unmarshal number 3000000000 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (deployment(spec__template__spec__containers__0__ports__0__containerPort="80"),
     ("json: cannot unmarshal string into Go struct field ContainerPort.spec.template.spec.containers.ports."
      "containerPort of type int32")),
    (deployment(metadata__labels={"a": 1}),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
    (deployment(spec="x"),
     "json: cannot unmarshal string into Go struct field Deployment.spec of type v1.DeploymentSpec"),
    (deployment(spec__template__spec__containers={"name": "x"}),
     ("json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type "
      "[]v1.Container")),
    (deployment(metadata__labels=["a"]),
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    (deployment(spec__paused="yes"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.paused of type bool"),
    (deployment(metadata__name=7),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string"),
    (deployment(metadata__creationTimestamp=True),
     "json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.creationTimestamp of type string"),
    ([1], "json: cannot unmarshal array into Go value of type v1.Deployment"),
])
def test_type_errors(obj, message):
    assert schemas.type_error("apps", "v1", "Deployment", obj) == message


def test_the_first_type_error_wins_unless_a_type_decoding_itself_fails_later():
    obj = deployment(spec__replicas="3", spec__paused="x")
    assert schemas.type_error("apps", "v1", "Deployment", obj).endswith("spec.replicas of type int32")
    # IntOrString's own decoder stops the decoding where it fails.
    obj = deployment(spec__replicas="3", spec__strategy__rollingUpdate__maxSurge=True)
    assert schemas.type_error("apps", "v1", "Deployment", obj) == (
        "json: cannot unmarshal bool into Go struct field RollingUpdateDeployment.spec.strategy.rollingUpdate."
        "maxSurge of type int32")


def test_values_that_decode():
    assert schemas.type_error("apps", "v1", "Deployment", DEPLOYMENT) is None
    assert schemas.type_error("apps", "v1", "Deployment", deployment(spec=None, status={"replicas": None})) is None
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}}
    assert schemas.type_error("", "v1", "Secret", secret) is None
    secret["data"]["k"] = 1
    assert schemas.type_error("", "v1", "Secret", secret) == (
        "json: cannot unmarshal number into Go struct field Secret.data of type []uint8")
