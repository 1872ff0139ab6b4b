"""The official `kubernetes` Python client against pyk8s: typed CRUD, patches, selectors, watch."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import validate_tree


def _pod(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def test_typed_crud_and_patch(api_client, namespace: str):
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_pod(namespace, _pod("p1", {"app": "a"}))
    assert created.metadata.uid and created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always" and created.spec.dns_policy == "ClusterFirst"
    assert created.status.qos_class == "BestEffort"
    validate_tree(api_client.sanitize_for_serialization(created))
    read = core.read_namespaced_pod("p1", namespace)
    assert read.metadata.resource_version == created.metadata.resource_version
    patched = core.patch_namespaced_pod("p1", namespace, [{"op": "add", "path": "/metadata/labels/extra",
                                                            "value": "yes"}])
    assert patched.metadata.labels == {"app": "a", "extra": "yes"}
    listed = core.list_namespaced_pod(namespace, label_selector="extra=yes")
    assert [p.metadata.name for p in listed.items] == ["p1"]
    assert listed.metadata.resource_version
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("nope", namespace)
    assert exc.value.status == 404 and '"reason":"NotFound"' in exc.value.body.replace(" ", "")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(namespace, _pod("p1"))
    assert exc.value.status == 409
    core.delete_namespaced_pod("p1", namespace, grace_period_seconds=0)
    assert core.list_namespaced_pod(namespace).items == []


def test_pagination_and_delete_collection(api_client, namespace: str):
    core = client.CoreV1Api(api_client)
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{i}", "labels": {"batch": "1"}}})
    first = core.list_namespaced_config_map(namespace, limit=2, label_selector="batch=1")
    assert len(first.items) == 2 and first.metadata._continue
    second = core.list_namespaced_config_map(namespace, limit=2, label_selector="batch=1",
                                             _continue=first.metadata._continue)
    third = core.list_namespaced_config_map(namespace, limit=2, label_selector="batch=1",
                                            _continue=second.metadata._continue)
    names = [c.metadata.name for c in first.items + second.items + third.items]
    assert names == [f"cm-{i}" for i in range(5)] and not third.metadata._continue
    core.delete_collection_namespaced_config_map(namespace, label_selector="batch=1")
    assert core.list_namespaced_config_map(namespace, label_selector="batch=1").items == []


def test_watch_from_resource_version(api_client, namespace: str):
    core = client.CoreV1Api(api_client)
    listed = core.list_namespaced_config_map(namespace)
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def consume():
        w = watch.Watch()
        # Only w1: the root-CA publisher adds kube-root-ca.crt to the new namespace at about this time.
        for event in w.stream(core.list_namespaced_config_map, namespace, field_selector="metadata.name=w1",
                              resource_version=listed.metadata.resource_version, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "w1"}})
    core.patch_namespaced_config_map("w1", namespace, [{"op": "add", "path": "/data", "value": {"a": "b"}}])
    core.delete_namespaced_config_map("w1", namespace)
    assert done.wait(25)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_without_resource_version_starts_with_existing_objects(api_client, namespace: str):
    core = client.CoreV1Api(api_client)
    # Labelled, to tell it from the kube-root-ca.crt the root-CA publisher adds to every namespace.
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "pre", "labels": {"test": "pre"}}})
    w = watch.Watch()
    first = next(iter(w.stream(core.list_namespaced_config_map, namespace, label_selector="test",
                               timeout_seconds=5)))
    w.stop()
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "pre")


def test_apps_and_scale_subresource(api_client, namespace: str):
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    scale = apps.read_namespaced_deployment_scale("d", namespace)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=d"
    apps.patch_namespaced_deployment_scale("d", namespace, [{"op": "replace", "path": "/spec/replicas",
                                                             "value": 4}])
    deployment = apps.read_namespaced_deployment("d", namespace)
    assert deployment.spec.replicas == 4
    # a dict body goes out as a strategic merge patch, which the Scale subresource accepts as upstream does
    assert apps.patch_namespaced_deployment_scale("d", namespace, {"spec": {"replicas": 2}}).spec.replicas == 2
    deployment = apps.read_namespaced_deployment("d", namespace)
    assert deployment.spec.replicas == 2
    assert deployment.spec.template.spec.containers[0].image_pull_policy == "Always"  # untagged image
    validate_tree(api_client.sanitize_for_serialization(deployment))


def test_hpa_served_in_both_versions(api_client, namespace: str):
    v2 = client.AutoscalingV2Api(api_client)
    v1 = client.AutoscalingV1Api(api_client)
    v1.create_namespaced_horizontal_pod_autoscaler(namespace, {
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                 "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}})
    as_v2 = v2.read_namespaced_horizontal_pod_autoscaler("h", namespace)
    assert as_v2.spec.metrics[0].resource.target.average_utilization == 50
    as_v1 = v1.read_namespaced_horizontal_pod_autoscaler("h", namespace)
    assert as_v1.spec.target_cpu_utilization_percentage == 50
