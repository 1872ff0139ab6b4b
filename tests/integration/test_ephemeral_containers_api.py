"""pods/ephemeralcontainers against the real kubectl and the Python client: `kubectl debug` adds an ephemeral
container through the subresource (discovery lists it), and the apiserver refuses what upstream refuses."""

from __future__ import annotations

import json

from conftest import Cluster


def _pod(namespace: str, name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                       "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}})


def test_kubectl_debug_adds_an_ephemeral_container(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=_pod(namespace, "target"))
    cluster.kubectl("debug", "-n", namespace, "target", "--image=busybox:1.36", "--target=app", "-c", "dbg",
                    "--", "sh", "-c", "ps")
    pod = cluster.kubectl_json("get", "pod", "-n", namespace, "target")
    [debugger] = pod["spec"]["ephemeralContainers"]
    assert debugger["name"] == "dbg" and debugger["targetContainerName"] == "app"
    assert debugger["command"] == ["sh", "-c", "ps"]
    # Defaulted like any container.
    assert debugger["terminationMessagePath"] == "/dev/termination-log"
    assert debugger["imagePullPolicy"] == "IfNotPresent"
    assert pod["spec"]["containers"][0]["name"] == "app"

    # The same name again, or a target that does not exist: Invalid with upstream's causes.
    again = cluster.kubectl("debug", "-n", namespace, "target", "--image=busybox:1.36", "-c", "dbg", "--",
                            "true", check=False)
    assert again.returncode != 0 and "existing ephemeral containers \"dbg\" may not be changed" in again.stderr
    missing = cluster.kubectl("debug", "-n", namespace, "target", "--image=busybox:1.36", "--target=nope",
                              "-c", "dbg2", check=False)
    assert missing.returncode != 0
    assert 'spec.ephemeralContainers[1].targetContainerName: Not found: "nope"' in missing.stderr


def test_ephemeral_containers_subresource_rules(cluster: Cluster, namespace: str, api_client) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    resources = {r.name: r for r in core.get_api_resources().resources}
    assert sorted(resources["pods/ephemeralcontainers"].verbs) == ["get", "patch", "update"]
    assert resources["pods/ephemeralcontainers"].kind == "Pod"

    created = json.loads(_pod(namespace, "p"))
    created["spec"]["ephemeralContainers"] = [{"name": "dbg", "image": "busybox:1.36"}]
    try:
        core.create_namespaced_pod(namespace, created)
        raise AssertionError("a pod with ephemeral containers was created")
    except ApiException as exc:
        assert exc.status == 422
        causes = json.loads(exc.body)["details"]["causes"]
        assert {"reason": "FieldValueForbidden", "message": "Forbidden: cannot be set on create",
                "field": "spec.ephemeralContainers"} in causes

    cluster.kubectl("apply", "-f", "-", input=_pod(namespace, "p"))
    patch = {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36",
                                               "ports": [{"containerPort": 80}]}]}}
    try:
        core.patch_namespaced_pod_ephemeralcontainers("p", namespace, patch)
        raise AssertionError("an ephemeral container with ports was accepted")
    except ApiException as exc:
        assert exc.status == 422
        assert "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container" in exc.body

    patch = {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36", "stdin": True}]}}
    pod = core.patch_namespaced_pod_ephemeralcontainers("p", namespace, patch)
    assert [c.name for c in pod.spec.ephemeral_containers] == ["dbg"]
    assert core.read_namespaced_pod_ephemeralcontainers("p", namespace).spec.ephemeral_containers[0].stdin
    # The subresource changes nothing else; the main resource cannot remove ephemeral containers.
    sneaky = {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"}],
                       "ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36", "stdin": True},
                                               {"name": "dbg2", "image": "busybox:1.36"}]}}
    pod = core.patch_namespaced_pod_ephemeralcontainers("p", namespace, sneaky)
    assert pod.spec.containers[0].image == "busybox:1.36"
    assert [c.name for c in pod.spec.ephemeral_containers] == ["dbg", "dbg2"]
    removed = cluster.kubectl("patch", "pod", "p", "-n", namespace, "--type=json",
                              "-p", '[{"op": "remove", "path": "/spec/ephemeralContainers"}]', check=False)
    assert removed.returncode != 0 and "pod updates may not change fields" in removed.stderr
