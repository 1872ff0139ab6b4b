"""Server-side apply and managedFields benchmark, in-process, on a ~5 KB Deployment.

Prints one JSON object per line:
  apply_noop     median / p99 µs of `apply` re-applying the configuration that created the
                 object (what a repeated `kubectl apply --server-side` costs; target <= 1000 µs)
  apply_change   median / p99 µs of `apply` with a changed image and replica count (target <= 1000 µs)
  apply_prune    median / p99 µs of `apply` of a configuration that drops an env var and a
                 volume mount (the prune path)
  record_update  median / p99 µs of `record_update` for a `kubectl edit`-style update of the
                 stored object, with a controller's status entry present (target <= 500 µs)
  object_bytes   size of the stored Deployment as JSON, for reference

Each is measured twice: "repeat" runs the same request again and again (the module's caches of
parsed and serialized field sets hit); "cold" runs it once on each of many Deployments that
differ in their names, labels and container names, with the module's caches emptied before each
run (the worst case: nothing about the object or the manifest was seen before). The garbage
collector is paused while timing.

Usage: python benchmarks/server_side_apply.py [--iterations N]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

# Import this checkout's pyk8s even when the virtualenv's editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyk8s.api import defaults, managed_fields
from pyk8s.api.managed_fields import apply, record_update, type_info

API_VERSION = "apps/v1"


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps({"benchmark": "server_side_apply", **fields}) + "\n")
    sys.stdout.flush()


def container(name: str, image: str, port: int) -> dict:
    return {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(8)]
        + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}, {"name": "data", "mountPath": "/data"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"}, "periodSeconds": 5},
    }


def manifest(name: str = "web") -> dict:
    """What the user applies."""
    return {
        "apiVersion": API_VERSION, "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name, "tier": "frontend"},
                     "annotations": {"team": "platform", "description": "the web frontend"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "frontend"}},
                "spec": {
                    "containers": [container(name, "nginx:1.25", 8080), container(f"{name}-proxy", "envoy:1.29", 9901)],
                    "volumes": [{"name": "config", "configMap": {"name": "web-config"}},
                                {"name": "data", "emptyDir": {}}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
                },
            },
        },
    }


def stored(config: dict) -> dict:
    """The object after a create-on-apply, defaulting, and a status write by the controller."""
    obj = apply(None, config, manager="kubectl", force=False, api_version=API_VERSION, subresource="",
                now="2025-01-01T00:00:00Z")
    defaults.deployment(obj)
    obj["metadata"].update({"uid": "0b9f3c1e-5f1d-4c1a-9d7e-3f2b1c0d9e8a", "resourceVersion": "1042",
                            "generation": 1, "creationTimestamp": "2025-01-01T00:00:00Z"})
    with_status = copy.deepcopy(obj)
    with_status["status"] = {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": "2025-01-01T00:00:10Z",
             "lastTransitionTime": "2025-01-01T00:00:10Z", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": "2025-01-01T00:00:10Z",
             "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "NewReplicaSetAvailable",
             "message": 'ReplicaSet "web-5d8f7c9b6d" has successfully progressed.'},
        ],
    }
    record_update(obj, with_status, manager="kube-controller-manager", api_version=API_VERSION,
                  subresource="status", now="2025-01-01T00:00:10Z")
    return with_status


def summary(samples: list[float]) -> dict:
    samples.sort()
    return {"median_us": round(statistics.median(samples), 1), "p99_us": round(samples[int(len(samples) * 0.99)], 1)}


def clear_caches() -> None:
    """Empties the module's memoized results, except the compiled schema."""
    for name, value in vars(managed_fields).items():
        if hasattr(value, "cache_clear") and name not in ("type_info", "_go_emitted"):
            value.cache_clear()


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - start) / 1000


class Case:
    """One Deployment as stored, and the requests the benchmarks send for it."""

    def __init__(self, name: str) -> None:
        self.config = manifest(name)
        self.live = stored(self.config)
        self.changed = copy.deepcopy(self.config)
        self.changed["spec"]["replicas"] = 5
        self.changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
        self.pruned = copy.deepcopy(self.config)
        web = self.pruned["spec"]["template"]["spec"]["containers"][0]
        web["env"].pop(3)
        web["volumeMounts"].pop()
        self.edited = copy.deepcopy(self.live)
        self.edited["spec"]["template"]["spec"]["containers"][1]["image"] = "envoy:1.30"
        self.edited["metadata"]["labels"]["release"] = "2025-01"

    def apply(self, config: dict) -> Callable[[], object]:
        return lambda: apply(self.live, config, manager="kubectl", force=False, api_version=API_VERSION,
                             subresource="", now="2025-01-01T00:01:00Z")

    def update(self) -> None:
        new = dict(self.edited)
        new["metadata"] = dict(self.edited["metadata"])  # record_update replaces metadata.managedFields
        record_update(self.live, new, manager="kubectl-edit", api_version=API_VERSION, subresource="",
                      now="2025-01-01T00:02:00Z")

    def runs(self) -> dict[str, Callable[[], object]]:
        return {"apply_noop": self.apply(self.config), "apply_change": self.apply(self.changed),
                "apply_prune": self.apply(self.pruned), "record_update": self.update}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--objects", type=int, default=300, help="Deployments for the cold runs")
    args = parser.parse_args()
    type_info(API_VERSION, "Deployment")  # compile the schema outside the timings

    case = Case("web")
    cases = [Case(f"app-{i}") for i in range(args.objects)]
    emit(name="object_bytes", bytes=len(orjson.dumps(case.live)))
    gc.collect()
    gc.disable()
    for name, run in case.runs().items():
        for _ in range(min(50, args.iterations)):
            run()
        emit(name=name, mode="repeat", **summary([timed(run) for _ in range(args.iterations)]))
    for name in case.runs():
        samples = []
        for c in cases:
            clear_caches()
            samples.append(timed(c.runs()[name]))
        emit(name=name, mode="cold", **summary(samples))
    gc.enable()


if __name__ == "__main__":
    main()
