"""Strategic merge patch benchmark: applying a typical `kubectl apply` patch in-process.

Prints one JSON object per line:
  apply_smp     median / p99 µs to apply the patch kubectl sends for a changed image, a changed
                env var and a new one (with $setElementOrder for containers and env, and the new
                last-applied annotation) to a ~5 KB Deployment (target: median <= 1000 µs)
  three_way     median µs to compute that patch (the client-side helper, for reference)
  patch_meta    ms to build the Deployment's patch metadata once (cold, includes loading the
                definitions)

Usage: python benchmarks/strategic_merge.py [--iterations N]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import orjson

# Import this checkout's pyk8s even when the virtualenv's editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyk8s.api.strategic_merge import apply_strategic_merge_patch, create_three_way_patch, patch_meta

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps({"benchmark": "strategic_merge", **fields}) + "\n")
    sys.stdout.flush()


def container(name: str, image: str, port: int) -> dict:
    return {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(8)]
        + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}, {"name": "data", "mountPath": "/data"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"}, "periodSeconds": 5,
                           "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }


def manifest() -> dict:
    """What the user applies."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "frontend"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {
                    "containers": [container("web", "nginx:1.25", 80), container("sidecar", "envoy:1.29", 9901)],
                    "volumes": [{"name": "config", "configMap": {"name": "web-config"}},
                                {"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def with_last_applied(obj: dict, applied: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("annotations", {})[LAST_APPLIED] = orjson.dumps(applied).decode() + "\n"
    return obj


def live(applied: dict) -> dict:
    """The stored object: the manifest plus server-set metadata, defaults and status."""
    obj = with_last_applied(applied, applied)
    obj["metadata"].update({
        "uid": "3f1c9a52-8a43-4c55-9f3e-0d8c2a1b7e6f", "resourceVersion": "123456", "generation": 4,
        "creationTimestamp": "2024-05-01T10:00:00Z",
    })
    obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"
    spec = obj["spec"]
    spec.update({"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}})
    spec["template"]["spec"].update({"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName":
                                     "default-scheduler", "securityContext": {}, "terminationGracePeriodSeconds": 30})
    obj["status"] = {
        "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "conditions": [{"type": t, "status": "True", "reason": r, "message": f"{t} condition message for web",
                        "lastUpdateTime": "2024-05-01T10:01:00Z", "lastTransitionTime": "2024-05-01T10:00:00Z"}
                       for t, r in (("Available", "MinimumReplicasAvailable"),
                                    ("Progressing", "NewReplicaSetAvailable"))],
    }
    return obj


def median_us(fn, iterations: int) -> tuple[float, float]:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()

    start = time.perf_counter()
    meta = patch_meta("apps", "v1", "Deployment")
    emit(metric="patch_meta", ms=round((time.perf_counter() - start) * 1000, 2))
    assert meta is not None

    applied = manifest()
    current = live(applied)
    changed = copy.deepcopy(applied)
    web = changed["spec"]["template"]["spec"]["containers"][0]
    web["image"] = "nginx:1.26"
    web["env"][3]["value"] = "changed"
    web["env"].insert(0, {"name": "NEW_VAR", "value": "new"})
    modified = with_last_applied(changed, changed)
    last = json.loads(current["metadata"]["annotations"][LAST_APPLIED])
    patch = create_three_way_patch(last, modified, current, meta)

    result = apply_strategic_merge_patch(current, patch, meta)
    assert result["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] == "NEW_VAR"
    assert result["status"] == current["status"]

    median, p99 = median_us(lambda: apply_strategic_merge_patch(current, patch, meta), args.iterations)
    emit(metric="apply_smp", object_bytes=len(orjson.dumps(current)), patch_bytes=len(orjson.dumps(patch)),
         median_us=round(median, 1), p99_us=round(p99, 1), target_us=1000)
    median, _ = median_us(lambda: create_three_way_patch(last, modified, current, meta), args.iterations // 5)
    emit(metric="three_way", median_us=round(median, 1))


if __name__ == "__main__":
    main()
