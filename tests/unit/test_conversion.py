"""Conversions between served forms: HPA autoscaling/v1 <-> v2, Event events.k8s.io/v1 <-> core/v1."""

from __future__ import annotations

import copy
import json

import pytest

from pyk8s.api.conversion import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
    event_core_to_v1,
    event_v1_to_core,
    hpa_v1_to_v2,
    hpa_v2_to_v1,
)

TIME = "2024-05-01T10:00:00Z"


def hpa_v2(**spec_extra) -> dict:
    """A v2 HPA as kube-apiserver serializes it, using every kind of metric."""
    return {
        "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
                     "annotations": {"owner": "team-a"}},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"a": "1"}}},
                                          "target": {"type": "AverageValue", "averageValue": "100"}}},
                {"type": "Object", "object": {
                    "describedObject": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
                    "target": {"type": "Value", "value": "2k"},
                    "metric": {"name": "requests"}}},
                {"type": "External", "external": {
                    "metric": {"name": "queue", "selector": {"matchExpressions": [
                        {"key": "q", "operator": "In", "values": ["jobs"]}]}},
                    "target": {"type": "AverageValue", "averageValue": "30"}}},
                {"type": "ContainerResource", "containerResource": {
                    "name": "memory", "container": "app", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
                {"type": "Resource", "resource": {"name": "memory",
                                                  "target": {"type": "Utilization", "averageUtilization": 70}}},
                {"type": "Resource", "resource": {"name": "cpu",
                                                  "target": {"type": "Utilization", "averageUtilization": 60}}},
            ],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            },
            **spec_extra,
        },
        "status": {
            "observedGeneration": 3, "lastScaleTime": TIME, "currentReplicas": 4, "desiredReplicas": 5,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu",
                                                  "current": {"averageValue": "250m", "averageUtilization": 55}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "90"}}},
                {"type": "Object", "object": {"metric": {"name": "requests"}, "current": {"value": "1500"},
                                              "describedObject": {"kind": "Ingress", "name": "main"}}},
                {"type": "External", "external": {"metric": {"name": "queue"},
                                                  "current": {"value": "10", "averageValue": "3"}}},
                {"type": "ContainerResource", "containerResource": {
                    "name": "memory", "container": "app", "current": {"averageValue": "900Mi"}}},
            ],
            "conditions": [
                {"type": "AbleToScale", "status": "True", "lastTransitionTime": TIME, "reason": "ReadyForNewScale",
                 "message": "recommended size matches current size"},
                {"type": "ScalingLimited", "status": "False", "lastTransitionTime": TIME,
                 "reason": "DesiredWithinRange", "message": "the desired count is within the acceptable range"},
            ],
        },
    }


def test_hpa_v2_to_v1_known_example():
    v1 = hpa_v2_to_v1(hpa_v2())
    assert v1["apiVersion"] == "autoscaling/v1" and v1["kind"] == "HorizontalPodAutoscaler"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 60}
    assert v1["status"] == {"observedGeneration": 3, "lastScaleTime": TIME, "currentReplicas": 4,
                            "desiredReplicas": 5, "currentCPUUtilizationPercentage": 55}
    annotations = v1["metadata"]["annotations"]
    assert annotations["owner"] == "team-a"
    # The exact JSON kube-apiserver writes: Go field order, omitempty, v2beta1-shaped metrics.
    assert annotations[METRICS_ANNOTATION] == (
        '[{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"100","selector":{"matchLabels":{"a":"1"}}}},'
        '{"type":"Object","object":{"target":{"kind":"Ingress","name":"main","apiVersion":"networking.k8s.io/v1"},'
        '"metricName":"requests","targetValue":"2k"}},'
        '{"type":"External","external":{"metricName":"queue","metricSelector":{"matchExpressions":'
        '[{"key":"q","operator":"In","values":["jobs"]}]},"targetAverageValue":"30"}},'
        '{"type":"ContainerResource","containerResource":{"name":"memory","targetAverageValue":"1Gi",'
        '"container":"app"}},'
        '{"type":"Resource","resource":{"name":"memory","targetAverageUtilization":70}}]')
    assert json.loads(annotations[CURRENT_METRICS_ANNOTATION])[0] == {
        "type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 55, "currentAverageValue": "250m"}}
    assert annotations[BEHAVIOR_ANNOTATION] == (
        '{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,'
        '"PeriodSeconds":15},{"Type":"Percent","Value":100,"PeriodSeconds":15}]},"ScaleDown":'
        '{"StabilizationWindowSeconds":300,"SelectPolicy":"Min","Policies":[{"Type":"Percent","Value":100,'
        '"PeriodSeconds":15}]}}')
    assert json.loads(annotations[CONDITIONS_ANNOTATION])[1]["reason"] == "DesiredWithinRange"


def test_hpa_v2_v1_v2_round_trip_preserves_everything():
    original = hpa_v2()
    snapshot = copy.deepcopy(original)
    assert hpa_v1_to_v2(hpa_v2_to_v1(original)) == original
    assert original == snapshot  # inputs are not mutated


def test_hpa_v1_v2_v1_round_trip_preserves_everything():
    v1 = hpa_v2_to_v1(hpa_v2())
    snapshot = copy.deepcopy(v1)
    assert hpa_v2_to_v1(hpa_v1_to_v2(v1)) == v1
    assert v1 == snapshot


def test_plain_v1_hpa_to_v2():
    v1 = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1",
          "metadata": {"name": "web", "namespace": "default"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 3,
                   "targetCPUUtilizationPercentage": 50},
          "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20}}
    v2 = hpa_v1_to_v2(v1)
    assert v2 == {
        "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}]},
        "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20}}}]},
    }
    back = hpa_v2_to_v1(v2)
    assert back["spec"] == v1["spec"] and back["status"] == v1["status"]
    # The CPU status is kept whole in the annotation, even though it maps onto a v1 field too.
    assert json.loads(back["metadata"]["annotations"][CURRENT_METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 20,
                                          "currentAverageValue": "0"}}]


def test_v1_without_cpu_target_gets_the_implicit_80_percent():
    v1 = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                                "maxReplicas": 3}}
    v2 = hpa_v1_to_v2(v1)
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 80}}}]
    # v2 always serializes desiredReplicas and currentMetrics (null when there are none).
    assert v2["status"] == {"desiredReplicas": 0, "currentMetrics": None}
    assert hpa_v2_to_v1(v2)["spec"]["targetCPUUtilizationPercentage"] == 80


def test_v2_without_status_serializes_v1_required_fields():
    v2 = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                                "maxReplicas": 3, "metrics": []}}
    v1 = hpa_v2_to_v1(v2)
    assert v1["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    assert "annotations" not in v1["metadata"]


def test_cpu_target_comes_back_after_other_metrics():
    # Upstream appends the CPU utilization target after the metrics from the annotation.
    v2 = hpa_v2()
    cpu = v2["spec"]["metrics"].pop()
    v2["spec"]["metrics"].insert(0, cpu)
    restored = hpa_v1_to_v2(hpa_v2_to_v1(v2))["spec"]["metrics"]
    assert restored[-1] == cpu and restored[:-1] == v2["spec"]["metrics"][1:]


def test_cpu_average_value_target_stays_in_the_annotation():
    metric = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue",
                                                                          "averageValue": "500m"}}}
    v2 = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                                "maxReplicas": 3, "metrics": [metric]}}
    v1 = hpa_v2_to_v1(v2)
    assert "targetCPUUtilizationPercentage" not in v1["spec"]
    assert json.loads(v1["metadata"]["annotations"][METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "targetAverageValue": "500m"}}]
    assert hpa_v1_to_v2(v1)["spec"]["metrics"] == [metric]


def test_fields_v1_cannot_hold_come_back_as_upstream_fills_them():
    # v1's non-pointer quantities serialize as "0" when v2 had nothing there.
    v2 = {"metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3, "metrics": [
              {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"},
                                            "target": {"type": "AverageValue", "averageValue": "5"},
                                            "metric": {"name": "m"}}}]}}
    restored = hpa_v1_to_v2(hpa_v2_to_v1(v2))["spec"]["metrics"][0]["object"]["target"]
    assert restored == {"type": "AverageValue", "value": "0", "averageValue": "5"}


def test_user_supplied_round_trip_annotations_are_replaced():
    v2 = hpa_v2()
    v2["metadata"]["annotations"][METRICS_ANNOTATION] = "stale"
    v2["metadata"]["annotations"][BEHAVIOR_ANNOTATION] = "stale"
    del v2["spec"]["behavior"]
    annotations = hpa_v2_to_v1(v2)["metadata"]["annotations"]
    assert annotations[METRICS_ANNOTATION] != "stale"
    assert BEHAVIOR_ANNOTATION not in annotations


@pytest.mark.parametrize("annotation, value", [
    (METRICS_ANNOTATION, "not json"),
    (METRICS_ANNOTATION, '[{"type":"Pods","pods":{"metricName":7}}]'),
    (BEHAVIOR_ANNOTATION, '{"ScaleUp":{"Policies":"x"}}'),
    (BEHAVIOR_ANNOTATION, "{}"),
    (CURRENT_METRICS_ANNOTATION, "{}"),
    (CONDITIONS_ANNOTATION, "[1]"),
])
def test_malformed_round_trip_annotations_are_ignored_and_dropped(annotation, value):
    v1 = {"metadata": {"name": "web", "annotations": {annotation: value}},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                   "targetCPUUtilizationPercentage": 50}}
    v2 = hpa_v1_to_v2(v1)
    assert "annotations" not in v2["metadata"]
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]
    assert "behavior" not in v2["spec"] and "conditions" not in v2["status"]


def test_annotations_decode_like_go():
    # encoding/json matches keys case-insensitively and ignores unknown ones.
    v1 = {"metadata": {"name": "web", "annotations": {
        BEHAVIOR_ANNOTATION: '{"scaleDown":{"selectPolicy":"Disabled","extra":1}}',
        METRICS_ANNOTATION: '[{"Type":"Pods","Pods":{"MetricName":"qps","TargetAverageValue":"1"}}]'}},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}}
    v2 = hpa_v1_to_v2(v1)
    assert v2["spec"]["behavior"] == {"scaleDown": {"selectPolicy": "Disabled"}}
    assert v2["spec"]["metrics"] == [{"type": "Pods", "pods": {"metric": {"name": "qps"},
                                                               "target": {"type": "AverageValue", "averageValue": "1"}}}]  # noqa: E501


def test_annotation_json_escapes_html_characters_like_go():
    v2 = hpa_v2()
    v2["status"]["conditions"][0]["message"] = "a <b> & c"
    annotation = hpa_v2_to_v1(v2)["metadata"]["annotations"][CONDITIONS_ANNOTATION]
    assert "a \\u003cb\\u003e \\u0026 c" in annotation
    assert hpa_v1_to_v2(hpa_v2_to_v1(v2))["status"]["conditions"][0]["message"] == "a <b> & c"


# --- events --------------------------------------------------------------------------------------

CORE_EVENT = {
    "kind": "Event", "apiVersion": "v1",
    "metadata": {"name": "web.17c", "namespace": "default", "uid": "e-1", "resourceVersion": "9"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "p-1", "apiVersion": "v1",
                       "resourceVersion": "5", "fieldPath": "spec.containers{app}"},
    "reason": "BackOff", "message": "Back-off restarting failed container",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2024-05-01T09:00:00Z", "lastTimestamp": TIME, "count": 7, "type": "Warning",
    "eventTime": "2024-05-01T09:00:00.123456Z",
    "series": {"count": 6, "lastObservedTime": "2024-05-01T10:00:00.000001Z"},
    "action": "Restarting",
    "related": {"kind": "Node", "name": "node-1", "apiVersion": "v1"},
    "reportingComponent": "kubelet", "reportingInstance": "node-1",
}


def test_event_core_to_v1_known_example():
    v1 = event_core_to_v1(CORE_EVENT)
    assert v1 == {
        "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": CORE_EVENT["metadata"],
        "eventTime": "2024-05-01T09:00:00.123456Z",
        "series": {"count": 6, "lastObservedTime": "2024-05-01T10:00:00.000001Z"},
        "reportingController": "kubelet", "reportingInstance": "node-1", "action": "Restarting",
        "reason": "BackOff", "regarding": CORE_EVENT["involvedObject"], "related": CORE_EVENT["related"],
        "note": "Back-off restarting failed container", "type": "Warning",
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": "2024-05-01T09:00:00Z", "deprecatedLastTimestamp": TIME,
        "deprecatedCount": 7,
    }


def test_event_round_trips_preserve_everything():
    snapshot = copy.deepcopy(CORE_EVENT)
    assert event_v1_to_core(event_core_to_v1(CORE_EVENT)) == CORE_EVENT
    assert CORE_EVENT == snapshot
    v1 = event_core_to_v1(CORE_EVENT)
    assert event_core_to_v1(event_v1_to_core(v1)) == v1


def test_sparse_events_get_the_fields_go_always_serializes():
    v1 = {"metadata": {"name": "e", "namespace": "d"}, "eventTime": "2024-05-01T09:00:00.000000Z",
          "reportingController": "example.com/ctl", "reportingInstance": "ctl-1", "action": "Reconcile",
          "reason": "Synced", "regarding": {"kind": "Deployment", "name": "web"}, "type": "Normal"}
    core = event_v1_to_core(v1)
    assert core == {
        "kind": "Event", "apiVersion": "v1", "metadata": v1["metadata"],
        "involvedObject": {"kind": "Deployment", "name": "web"}, "reason": "Synced", "source": {},
        "firstTimestamp": None, "lastTimestamp": None, "type": "Normal",
        "eventTime": "2024-05-01T09:00:00.000000Z", "action": "Reconcile",
        "reportingComponent": "example.com/ctl", "reportingInstance": "ctl-1",
    }
    legacy = {"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "name": "p"},
              "message": "hello", "source": {"component": "kubelet"}}
    v1_form = event_core_to_v1(legacy)
    assert v1_form["eventTime"] is None and v1_form["note"] == "hello"
    assert v1_form["deprecatedSource"] == {"component": "kubelet"}
    assert "reportingController" not in v1_form and "series" not in v1_form
