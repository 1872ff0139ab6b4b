"""Conversions between the served forms of one stored object.

HorizontalPodAutoscaler is stored as autoscaling/v2 and also served as autoscaling/v1;
Event is stored as core/v1 and also served as events.k8s.io/v1. The mappings follow
upstream's pkg/apis/autoscaling/v1/conversion.go and pkg/apis/events/v1/conversion.go
(through the internal types), including the round-trip annotations autoscaling/v1 uses to
carry v2-only fields and the exact JSON kube-apiserver writes into them. Outputs are new
dicts in the target form's wire shape (fields Go always serializes are present); inputs
are never modified.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
ROUND_TRIP_ANNOTATIONS = (METRICS_ANNOTATION, CURRENT_METRICS_ANNOTATION, BEHAVIOR_ANNOTATION,
                          CONDITIONS_ANNOTATION)
# autoscaling/v1 without a CPU target meant "80% CPU" (applied explicitly when converting to v2).
DEFAULT_CPU_UTILIZATION = 80


# ---------------------------------------------------------------------------------------------
# A small model of Go's encoding/json for the structs that travel inside the annotations: field
# order, omitempty, zero values, and the lenient decoding (case-insensitive keys, unknown keys
# ignored, any type error rejects the whole document).

class _DecodeError(Exception):
    pass


STRING, INT, QUANTITY, TIME = "string", "int", "quantity", "time"


def _struct(*fields: tuple[str, Any, bool]) -> tuple:
    return ("struct", fields)


def _ptr(t: Any) -> tuple:
    return ("ptr", t)


def _list(t: Any) -> tuple:
    return ("list", t)


def _map(t: Any) -> tuple:
    return ("map", t)


_OBJECT_REFERENCE = _struct(("kind", STRING, False), ("name", STRING, False), ("apiVersion", STRING, True))
_LABEL_SELECTOR = _ptr(_struct(
    ("matchLabels", _map(STRING), True),
    ("matchExpressions", _list(_struct(("key", STRING, False), ("operator", STRING, False),
                                       ("values", _list(STRING), True))), True),
))
_QUANTITY_PTR = _ptr(QUANTITY)
_INT_PTR = _ptr(INT)

# k8s.io/api/autoscaling/v1 MetricSpec and friends (v2beta1-shaped).
_V1_METRIC_SPEC = _struct(
    ("type", STRING, False),
    ("object", _ptr(_struct(("target", _OBJECT_REFERENCE, False), ("metricName", STRING, False),
                            ("targetValue", QUANTITY, False), ("selector", _LABEL_SELECTOR, True),
                            ("averageValue", _QUANTITY_PTR, True))), True),
    ("pods", _ptr(_struct(("metricName", STRING, False), ("targetAverageValue", QUANTITY, False),
                          ("selector", _LABEL_SELECTOR, True))), True),
    ("resource", _ptr(_struct(("name", STRING, False), ("targetAverageUtilization", _INT_PTR, True),
                              ("targetAverageValue", _QUANTITY_PTR, True))), True),
    ("containerResource", _ptr(_struct(("name", STRING, False), ("targetAverageUtilization", _INT_PTR, True),
                                       ("targetAverageValue", _QUANTITY_PTR, True),
                                       ("container", STRING, False))), True),
    ("external", _ptr(_struct(("metricName", STRING, False), ("metricSelector", _LABEL_SELECTOR, True),
                              ("targetValue", _QUANTITY_PTR, True),
                              ("targetAverageValue", _QUANTITY_PTR, True))), True),
)
_V1_METRIC_STATUS = _struct(
    ("type", STRING, False),
    ("object", _ptr(_struct(("target", _OBJECT_REFERENCE, False), ("metricName", STRING, False),
                            ("currentValue", QUANTITY, False), ("selector", _LABEL_SELECTOR, True),
                            ("averageValue", _QUANTITY_PTR, True))), True),
    ("pods", _ptr(_struct(("metricName", STRING, False), ("currentAverageValue", QUANTITY, False),
                          ("selector", _LABEL_SELECTOR, True))), True),
    ("resource", _ptr(_struct(("name", STRING, False), ("currentAverageUtilization", _INT_PTR, True),
                              ("currentAverageValue", QUANTITY, False))), True),
    ("containerResource", _ptr(_struct(("name", STRING, False), ("currentAverageUtilization", _INT_PTR, True),
                                       ("currentAverageValue", QUANTITY, False),
                                       ("container", STRING, False))), True),
    ("external", _ptr(_struct(("metricName", STRING, False), ("metricSelector", _LABEL_SELECTOR, True),
                              ("currentValue", QUANTITY, False),
                              ("currentAverageValue", _QUANTITY_PTR, True))), True),
)
_V1_CONDITION = _struct(("type", STRING, False), ("status", STRING, False), ("lastTransitionTime", TIME, True),
                        ("reason", STRING, True), ("message", STRING, True))
# Upstream marshals the *internal* behavior type, which has no json tags: Go field names, no omitempty.
_INTERNAL_SCALING_RULES = _ptr(_struct(
    ("StabilizationWindowSeconds", _INT_PTR, False),
    ("SelectPolicy", _ptr(STRING), False),
    ("Policies", _list(_struct(("Type", STRING, False), ("Value", INT, False), ("PeriodSeconds", INT, False))),
     False),
))
_INTERNAL_BEHAVIOR = _struct(("ScaleUp", _INTERNAL_SCALING_RULES, False), ("ScaleDown", _INTERNAL_SCALING_RULES, False))


def _is_empty(t: Any, value: Any) -> bool:
    """Go's omitempty test; it never applies to struct-typed fields (Quantity and Time included)."""
    if value is None:
        return t not in (QUANTITY, TIME) and t[0] != "struct"
    if t == STRING:
        return value == ""
    if t == INT:
        return value == 0
    if isinstance(t, tuple) and t[0] in ("list", "map"):
        return len(value) == 0
    return False


def _encode(t: Any, value: Any) -> Any:
    """A dict in the struct's JSON shape (absent keys mean Go zero values) -> what json.Marshal writes."""
    if t == STRING:
        return value if value is not None else ""
    if t == INT:
        return value if value is not None else 0
    if t == QUANTITY:
        return value if value is not None else "0"
    if t == TIME:
        return value  # a zero metav1.Time marshals as null
    kind, inner = t
    if kind == "ptr":
        return None if value is None else _encode(inner, value)
    if kind == "list":
        return None if value is None else [_encode(inner, v) for v in value]
    if kind == "map":
        return None if value is None else {k: _encode(inner, value[k]) for k in sorted(value)}
    value = value or {}
    out = {}
    for name, field_type, omitempty in inner:
        field_value = value.get(name)
        if omitempty and _is_empty(field_type, field_value):
            continue
        out[name] = _encode(field_type, field_value)
    return out


def _go_json(t: Any, value: Any) -> str:
    text = json.dumps(_encode(t, value), separators=(",", ":"), ensure_ascii=False)
    # encoding/json escapes HTML-significant characters and the JS line separators.
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _decode(t: Any, value: Any) -> Any:
    """Parsed JSON -> a dict in the struct's JSON shape, or _DecodeError where json.Unmarshal fails."""
    if t == STRING:
        if value is None or isinstance(value, str):
            return value or ""
        raise _DecodeError
    if t == INT:
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
            return value
        raise _DecodeError
    if t == QUANTITY:
        if value is None:
            return "0"
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return str(value)
        raise _DecodeError
    if t == TIME:
        if value is None or isinstance(value, str):
            return value
        raise _DecodeError
    kind, inner = t
    if kind == "ptr":
        return None if value is None else _decode(inner, value)
    if kind == "list":
        if value is None:
            return None
        if not isinstance(value, list):
            raise _DecodeError
        return [_decode(inner, v) for v in value]
    if kind == "map":
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _DecodeError
        return {k: _decode(inner, v) for k, v in value.items()}
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _DecodeError
    out: dict = {}
    by_fold = {name.lower(): (name, field_type) for name, field_type, _ in inner}
    exact = {name: (name, field_type) for name, field_type, _ in inner}
    for key, field_value in value.items():
        field = exact.get(key) or by_fold.get(key.lower())
        if field is not None:
            out[field[0]] = _decode(field[1], field_value)
    return out


def _read_annotation(t: Any, text: str) -> Any:
    """The decoded annotation, or None where upstream would ignore it as malformed."""
    try:
        return _decode(t, json.loads(text))
    except (ValueError, _DecodeError):
        return None


def _compact(d: dict) -> dict:
    """Drop None values: pointer fields with omitempty."""
    return {k: v for k, v in d.items() if v is not None}


def _non_empty(d: dict) -> dict:
    """Drop zero values ("", 0, None): fields with omitempty."""
    return {k: v for k, v in d.items() if v is not None and v != "" and v != 0}


# ---------------------------------------------------------------------------------------------
# HorizontalPodAutoscaler: autoscaling/v2 (stored) <-> autoscaling/v1.

def _reference(ref: Mapping | None) -> dict:
    """CrossVersionObjectReference as serialized (same shape in v1 and v2)."""
    return _encode(_OBJECT_REFERENCE, ref)


def _v2_identifier(name: str, selector: Any) -> dict:
    return _compact({"name": name, "selector": selector})


def _metric_spec_to_v1(m: Mapping) -> dict:
    out: dict = {"type": m.get("type", "")}
    if (src := m.get("object")) is not None:
        target, metric = src.get("target") or {}, src.get("metric") or {}
        out["object"] = {"target": src.get("describedObject"), "metricName": metric.get("name", ""),
                         "targetValue": target.get("value"), "selector": metric.get("selector"),
                         "averageValue": target.get("averageValue")}
    if (src := m.get("pods")) is not None:
        target, metric = src.get("target") or {}, src.get("metric") or {}
        out["pods"] = {"metricName": metric.get("name", ""), "targetAverageValue": target.get("averageValue"),
                       "selector": metric.get("selector")}
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            target = src.get("target") or {}
            out[key] = {"name": src.get("name", ""), "targetAverageUtilization": target.get("averageUtilization"),
                        "targetAverageValue": target.get("averageValue"), "container": src.get("container", "")}
    if (src := m.get("external")) is not None:
        target, metric = src.get("target") or {}, src.get("metric") or {}
        out["external"] = {"metricName": metric.get("name", ""), "metricSelector": metric.get("selector"),
                           "targetValue": target.get("value"), "targetAverageValue": target.get("averageValue")}
    return out


def _metric_spec_from_v1(m: Mapping) -> dict:
    out: dict = {"type": m["type"]}
    if (src := m.get("object")) is not None:
        target_type = "Value" if src.get("averageValue") is None else "AverageValue"
        out["object"] = {
            "describedObject": _reference(src["target"]),
            "target": _compact({"type": target_type, "value": src["targetValue"],
                                "averageValue": src.get("averageValue")}),
            "metric": _v2_identifier(src["metricName"], src.get("selector")),
        }
    if (src := m.get("pods")) is not None:
        out["pods"] = {"metric": _v2_identifier(src["metricName"], src.get("selector")),
                       "target": {"type": "AverageValue", "averageValue": src["targetAverageValue"]}}
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            utilization = src.get("targetAverageUtilization")
            target = _compact({"type": "AverageValue" if utilization is None else "Utilization",
                               "averageValue": src.get("targetAverageValue"), "averageUtilization": utilization})
            out[key] = {"name": src["name"], "target": target}
            if key == "containerResource":
                out[key]["container"] = src["container"]
    if (src := m.get("external")) is not None:
        target_type = "AverageValue" if src.get("targetValue") is None else "Value"
        out["external"] = {
            "metric": _v2_identifier(src["metricName"], src.get("metricSelector")),
            "target": _compact({"type": target_type, "value": src.get("targetValue"),
                                "averageValue": src.get("targetAverageValue")}),
        }
    return out


def _metric_status_to_v1(m: Mapping) -> dict:
    out: dict = {"type": m.get("type", "")}
    if (src := m.get("object")) is not None:
        current, metric = src.get("current") or {}, src.get("metric") or {}
        out["object"] = {"target": src.get("describedObject"), "metricName": metric.get("name", ""),
                         "currentValue": current.get("value"), "selector": metric.get("selector"),
                         "averageValue": current.get("averageValue")}
    if (src := m.get("pods")) is not None:
        current, metric = src.get("current") or {}, src.get("metric") or {}
        out["pods"] = {"metricName": metric.get("name", ""), "currentAverageValue": current.get("averageValue"),
                       "selector": metric.get("selector")}
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            current = src.get("current") or {}
            out[key] = {"name": src.get("name", ""), "currentAverageUtilization": current.get("averageUtilization"),
                        "currentAverageValue": current.get("averageValue"), "container": src.get("container", "")}
    if (src := m.get("external")) is not None:
        current, metric = src.get("current") or {}, src.get("metric") or {}
        out["external"] = {"metricName": metric.get("name", ""), "metricSelector": metric.get("selector"),
                           "currentValue": current.get("value"), "currentAverageValue": current.get("averageValue")}
    return out


def _metric_status_from_v1(m: Mapping) -> dict:
    out: dict = {"type": m["type"]}
    if (src := m.get("object")) is not None:
        out["object"] = {
            "metric": _v2_identifier(src["metricName"], src.get("selector")),
            "current": _compact({"value": src["currentValue"], "averageValue": src.get("averageValue")}),
            "describedObject": _reference(src["target"]),
        }
    if (src := m.get("pods")) is not None:
        out["pods"] = {"metric": _v2_identifier(src["metricName"], src.get("selector")),
                       "current": {"averageValue": src["currentAverageValue"]}}
    for key in ("resource", "containerResource"):
        if (src := m.get(key)) is not None:
            current = _compact({"averageValue": src["currentAverageValue"],
                                "averageUtilization": src.get("currentAverageUtilization")})
            out[key] = {"name": src["name"], "current": current}
            if key == "containerResource":
                out[key]["container"] = src["container"]
    if (src := m.get("external")) is not None:
        out["external"] = {
            "metric": _v2_identifier(src["metricName"], src.get("metricSelector")),
            "current": _compact({"value": src["currentValue"], "averageValue": src.get("currentAverageValue")}),
        }
    return out


def _behavior_to_internal(behavior: Mapping) -> dict:
    def rules(r: Mapping | None) -> dict | None:
        if r is None:
            return None
        policies = r.get("policies")
        return {
            "StabilizationWindowSeconds": r.get("stabilizationWindowSeconds"),
            "SelectPolicy": r.get("selectPolicy"),
            "Policies": None if policies is None else [
                {"Type": p.get("type", ""), "Value": p.get("value", 0), "PeriodSeconds": p.get("periodSeconds", 0)}
                for p in policies
            ],
        }

    return {"ScaleUp": rules(behavior.get("scaleUp")), "ScaleDown": rules(behavior.get("scaleDown"))}


def _behavior_from_internal(behavior: Mapping) -> dict:
    def rules(r: Mapping | None) -> dict | None:
        if r is None:
            return None
        out = _compact({"stabilizationWindowSeconds": r.get("StabilizationWindowSeconds"),
                        "selectPolicy": r.get("SelectPolicy")})
        if r.get("Policies"):
            out["policies"] = [{"type": p["Type"], "value": p["Value"], "periodSeconds": p["PeriodSeconds"]}
                               for p in r["Policies"]]
        return out

    return _compact({"scaleUp": rules(behavior.get("ScaleUp")), "scaleDown": rules(behavior.get("ScaleDown"))})


def _is_cpu_resource(m: Mapping) -> bool:
    return m.get("type") == "Resource" and m.get("resource") is not None and m["resource"].get("name") == "cpu"


def _metadata_without_round_trip(meta: Mapping | None) -> tuple[dict, dict]:
    meta = copy.deepcopy(dict(meta or {}))
    annotations = {k: v for k, v in (meta.pop("annotations", None) or {}).items() if k not in ROUND_TRIP_ANNOTATIONS}
    return meta, annotations


def _with_annotations(meta: dict, annotations: dict) -> dict:
    if annotations:
        meta["annotations"] = annotations
    return meta


def hpa_v2_to_v1(obj: Mapping) -> dict:
    """autoscaling/v2 HorizontalPodAutoscaler -> autoscaling/v1; v2-only fields go into annotations."""
    obj = copy.deepcopy(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    # Round-trip annotations already on the object are never passed through: only the ones made here.
    meta, annotations = _metadata_without_round_trip(obj.get("metadata"))
    metrics = spec.get("metrics") or []
    other = [_metric_spec_to_v1(m) for m in metrics
             if not (_is_cpu_resource(m) and (m["resource"].get("target") or {}).get("averageUtilization") is not None)]
    if other:
        annotations[METRICS_ANNOTATION] = _go_json(_list(_V1_METRIC_SPEC), other)
    current_metrics = status.get("currentMetrics") or []
    if current_metrics:
        # Kept even when it is only CPU utilization, so that the raw value survives too.
        annotations[CURRENT_METRICS_ANNOTATION] = _go_json(
            _list(_V1_METRIC_STATUS), [_metric_status_to_v1(m) for m in current_metrics])
    if spec.get("behavior") is not None:
        annotations[BEHAVIOR_ANNOTATION] = _go_json(_INTERNAL_BEHAVIOR, _behavior_to_internal(spec["behavior"]))
    conditions = status.get("conditions") or []
    if conditions:
        annotations[CONDITIONS_ANNOTATION] = _go_json(_list(_V1_CONDITION), conditions)

    v1_spec: dict = {"scaleTargetRef": _reference(spec.get("scaleTargetRef"))}
    if spec.get("minReplicas") is not None:
        v1_spec["minReplicas"] = spec["minReplicas"]
    v1_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    for m in metrics:  # the first CPU resource metric decides
        if _is_cpu_resource(m):
            utilization = (m["resource"].get("target") or {}).get("averageUtilization")
            if utilization is not None:
                v1_spec["targetCPUUtilizationPercentage"] = utilization
            break

    v1_status: dict = _compact({"observedGeneration": status.get("observedGeneration"),
                                "lastScaleTime": status.get("lastScaleTime")})
    v1_status["currentReplicas"] = status.get("currentReplicas", 0)
    v1_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    for m in current_metrics:  # the last CPU utilization reported wins
        if _is_cpu_resource(m):
            utilization = (m["resource"].get("current") or {}).get("averageUtilization")
            if utilization is not None:
                v1_status["currentCPUUtilizationPercentage"] = utilization

    return {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1",
            "metadata": _with_annotations(meta, annotations), "spec": v1_spec, "status": v1_status}


def hpa_v1_to_v2(obj: Mapping) -> dict:
    """autoscaling/v1 HorizontalPodAutoscaler -> autoscaling/v2, restoring fields kept in annotations."""
    obj = copy.deepcopy(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    given = (obj.get("metadata") or {}).get("annotations") or {}
    meta, annotations = _metadata_without_round_trip(obj.get("metadata"))

    metrics: list[dict] = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}}]
    if METRICS_ANNOTATION in given:
        other = _read_annotation(_list(_V1_METRIC_SPEC), given[METRICS_ANNOTATION])
        if other is not None:
            # The CPU target from the spec goes after the annotation's metrics.
            metrics = [_metric_spec_from_v1(m) for m in other] + metrics
    behavior = None
    if BEHAVIOR_ANNOTATION in given:
        internal = _read_annotation(_INTERNAL_BEHAVIOR, given[BEHAVIOR_ANNOTATION])
        if internal is not None and (internal.get("ScaleUp") is not None or internal.get("ScaleDown") is not None):
            behavior = _behavior_from_internal(internal)
    # None stays None: v2 always serializes currentMetrics, as null when there are none.
    current_metrics: list[dict] | None = None
    if status.get("currentCPUUtilizationPercentage") is not None:
        current_metrics = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
    if CURRENT_METRICS_ANNOTATION in given:
        # The annotation has more detail than the single CPU value, so it replaces it.
        decoded = _read_annotation(_list(_V1_METRIC_STATUS), given[CURRENT_METRICS_ANNOTATION])
        if decoded is not None:
            current_metrics = [_metric_status_from_v1(m) for m in decoded]
    if not metrics:
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    conditions: list[dict] = []
    if CONDITIONS_ANNOTATION in given:
        decoded = _read_annotation(_list(_V1_CONDITION), given[CONDITIONS_ANNOTATION])
        if decoded is not None:
            conditions = [_encode(_V1_CONDITION, c) for c in decoded]

    v2_spec: dict = {"scaleTargetRef": _reference(spec.get("scaleTargetRef"))}
    if spec.get("minReplicas") is not None:
        v2_spec["minReplicas"] = spec["minReplicas"]
    v2_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    v2_spec["metrics"] = metrics
    if behavior is not None:
        v2_spec["behavior"] = behavior

    v2_status: dict = _compact({"observedGeneration": status.get("observedGeneration"),
                                "lastScaleTime": status.get("lastScaleTime")})
    if status.get("currentReplicas"):
        v2_status["currentReplicas"] = status["currentReplicas"]
    v2_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    v2_status["currentMetrics"] = current_metrics
    if conditions:
        v2_status["conditions"] = conditions

    return {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
            "metadata": _with_annotations(meta, annotations), "spec": v2_spec, "status": v2_status}


# ---------------------------------------------------------------------------------------------
# Event: core/v1 (stored) <-> events.k8s.io/v1.

def event_core_to_v1(obj: Mapping) -> dict:
    """core/v1 Event -> events.k8s.io/v1 Event."""
    obj = copy.deepcopy(obj)
    out: dict = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": obj.get("metadata") or {},
                 "eventTime": obj.get("eventTime")}
    series = obj.get("series")
    if series is not None:
        out["series"] = {"count": series.get("count", 0), "lastObservedTime": series.get("lastObservedTime")}
    out.update(_non_empty({
        "reportingController": obj.get("reportingComponent"),
        "reportingInstance": obj.get("reportingInstance"),
        "action": obj.get("action"),
        "reason": obj.get("reason"),
    }))
    out["regarding"] = obj.get("involvedObject") or {}
    if obj.get("related") is not None:
        out["related"] = obj["related"]
    out.update(_non_empty({"note": obj.get("message"), "type": obj.get("type")}))
    out["deprecatedSource"] = obj.get("source") or {}
    out["deprecatedFirstTimestamp"] = obj.get("firstTimestamp")
    out["deprecatedLastTimestamp"] = obj.get("lastTimestamp")
    if obj.get("count"):
        out["deprecatedCount"] = obj["count"]
    return out


def event_v1_to_core(obj: Mapping) -> dict:
    """events.k8s.io/v1 Event -> core/v1 Event."""
    obj = copy.deepcopy(obj)
    out: dict = {"kind": "Event", "apiVersion": "v1", "metadata": obj.get("metadata") or {},
                 "involvedObject": obj.get("regarding") or {}}
    out.update(_non_empty({"reason": obj.get("reason"), "message": obj.get("note")}))
    out["source"] = obj.get("deprecatedSource") or {}
    out["firstTimestamp"] = obj.get("deprecatedFirstTimestamp")
    out["lastTimestamp"] = obj.get("deprecatedLastTimestamp")
    out.update(_non_empty({"count": obj.get("deprecatedCount"), "type": obj.get("type")}))
    out["eventTime"] = obj.get("eventTime")
    series = obj.get("series")
    if series is not None:
        core_series = {"count": series["count"]} if series.get("count") else {}
        core_series["lastObservedTime"] = series.get("lastObservedTime")
        out["series"] = core_series
    if obj.get("action"):
        out["action"] = obj["action"]
    if obj.get("related") is not None:
        out["related"] = obj["related"]
    out["reportingComponent"] = obj.get("reportingController") or ""
    out["reportingInstance"] = obj.get("reportingInstance") or ""
    return out
