"""Custom resource validation benchmark: what the apiserver does to each CR write, in-process.

Prints one JSON object per line:
  cr_create      median / p99 µs for prune + default + validate of a realistic custom resource
                 (a dozen fields, nested objects, a list-type map, a set, int-or-string, an embedded
                 resource, 3 x-kubernetes-validations rules) on a fresh deep copy (target: median <= 500 µs)
  cr_update      the same with the old object given (ratcheting and the transition rule)
  validate_only  median µs of validate() alone (no CEL rules fire differently; for reference)
  compile        ms to run schema_errors and build CompiledSchema once (CRD create/update time)

Usage: python benchmarks/cr_validation.py [--iterations N]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

# Import this checkout's pyk8s even when the virtualenv's editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyk8s.api.structural import CompiledSchema, schema_errors

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image", "replicas"],
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be >= minReplicas"},
                {"rule": "self.ports.all(p, p.port > 1024 || p.name.startsWith('privileged-'))",
                 "message": "low ports need a privileged- name"},
                {"rule": "!has(oldSelf.storage) || self.storage == oldSelf.storage",
                 "message": "storage is immutable", "reason": "FieldValueForbidden"},
            ],
            "properties": {
                "image": {"type": "string", "maxLength": 200, "pattern": "^[a-z0-9./:-]+$"},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 100},
                "minReplicas": {"type": "integer", "minimum": 0, "default": 1},
                "mode": {"type": "string", "enum": ["Auto", "Manual", "Locked"], "default": "Auto"},
                "storage": {"x-kubernetes-int-or-string": True,
                            "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "maxItems": 16,
                          "items": {"type": "object", "required": ["name", "port"], "properties": {
                              "name": {"type": "string", "maxLength": 63},
                              "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                              "protocol": {"type": "string", "enum": ["TCP", "UDP"], "default": "TCP"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "resources": {"type": "object", "properties": {
                    "cpu": {"type": "string"}, "memory": {"type": "string"},
                    "limits": {"type": "object", "properties": {"cpu": {"type": "string"},
                                                                "memory": {"type": "string"}}}}},
                "schedule": {"type": "object", "properties": {
                    "start": {"type": "string", "format": "date-time"},
                    "window": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                    "suspend": {"type": "boolean", "default": False}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def resource() -> dict:
    return {
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "image": "registry.example.com/web:1.2.3", "replicas": 3, "storage": "10Gi",
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090, "protocol": "TCP"},
                      {"name": "privileged-dns", "port": 53, "protocol": "UDP"}],
            "tags": ["frontend", "prod", "eu"],
            "env": {"LOG_LEVEL": "info", "REGION": "eu-west-1"},
            "resources": {"cpu": "500m", "memory": "256Mi", "limits": {"cpu": "1", "memory": "512Mi"}},
            "schedule": {"start": "2026-01-01T00:00:00Z", "window": "30m"},
            "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                         "data": {"a": "b"}},
            "unknownField": "pruned",
        },
    }


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps({"benchmark": "cr_validation", **fields}) + "\n")
    sys.stdout.flush()


def timed(fn, iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_us": round(statistics.median(ordered), 1),
            "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()

    start = time.perf_counter()
    assert schema_errors(SCHEMA, "spec.versions[0].schema.openAPIV3Schema") == []
    schema = CompiledSchema(SCHEMA)
    emit(measure="compile", ms=round((time.perf_counter() - start) * 1e3, 2))

    template = resource()
    old = copy.deepcopy(template)
    schema.prune(old)
    schema.default(old)

    def create() -> None:
        obj = copy.deepcopy(template)
        schema.prune(obj)
        schema.default(obj)
        errors = schema.validate(obj)
        assert not errors, errors

    def update() -> None:
        obj = copy.deepcopy(template)
        obj["spec"]["replicas"] = 4
        schema.prune(obj)
        schema.default(obj)
        errors = schema.validate(obj, old)
        assert not errors, errors

    def copy_only() -> None:
        copy.deepcopy(template)

    for fn in (create, update, copy_only):  # warm caches (regexes, CEL activations)
        timed(fn, 50)
    emit(measure="cr_create", target_median_us=500, **summary(timed(create, args.iterations)),
         deepcopy_median_us=summary(timed(copy_only, args.iterations))["median_us"])
    emit(measure="cr_update", **summary(timed(update, args.iterations)))
    ready = copy.deepcopy(template)
    schema.prune(ready)
    schema.default(ready)
    emit(measure="validate_only", **summary(timed(lambda: schema.validate(ready), args.iterations)))


if __name__ == "__main__":
    main()
