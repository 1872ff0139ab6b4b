"""A kopf operator, written here, against a real server: a CRD with a status subresource, create and delete
handlers, finalizers, events, merge patches of the object and of /status, and kopf's JSON-patch precondition."""

from __future__ import annotations

import json
import textwrap

import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Cluster, eventually

GROUP = "kopf.pyk8s.test"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gadgets.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gdg"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
            "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
        }],
    },
}
OPERATOR = textwrap.dedent(f"""
    import kopf

    @kopf.on.login()
    def login(**kwargs):
        # kopf's own kubeconfig reader (KUBECONFIG is set by the test after the client library was imported)
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup()
    def configure(settings, **_):
        settings.watching.server_timeout = 10
        settings.watching.client_timeout = 20

    @kopf.on.create("{GROUP}", "v1", "gadgets")
    def created(spec, body, patch, **_):
        kopf.info(body, reason="Configured", message=f"gadget of size {{spec.get('size')}}")
        patch.metadata.setdefault("labels", {{}})["configured"] = "yes"
        return {{"size": spec.get("size")}}

    @kopf.on.delete("{GROUP}", "v1", "gadgets")
    def deleted(logger, **_):
        logger.info("gadget is going away")
""")
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


@pytest.fixture
def gadgets_crd(cluster: Cluster):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/gadgets.{GROUP}", "--timeout=60s")
    yield
    cluster.kubectl("delete", "crd", f"gadgets.{GROUP}", "--ignore-not-found", "--timeout=60s")


def gadget(cluster: Cluster, namespace: str) -> dict | None:
    result = cluster.kubectl("get", "gadget", "g1", "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_kopf_operator_lifecycle(cluster: Cluster, namespace: str, gadgets_crd, api_client, tmp_path, monkeypatch):
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    args = ["run", "--standalone", "--verbose", "--all-namespaces", str(operator)]
    with KopfRunner(args, timeout=120) as runner:
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g1", "namespace": namespace},
                "spec": {"size": 3}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(body))

        def handled():
            obj = gadget(cluster, namespace)
            return obj if obj and (obj.get("status") or {}).get("created") else None

        obj = eventually(handled, timeout=60)
        assert obj["status"]["created"] == {"size": 3}  # the handler's result, patched into /status
        assert FINALIZER in obj["metadata"]["finalizers"]  # added with a merge patch for the delete handler
        assert obj["metadata"]["labels"] == {"configured": "yes"}  # the handler's merge patch to the object
        assert obj["metadata"]["generation"] == 1  # status and metadata changes do not bump it
        assert "kopf.zalando.org/last-handled-configuration" in obj["metadata"]["annotations"]
        events = eventually(lambda: json.loads(cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=g1,reason=Configured",
            "-o", "json").stdout)["items"], timeout=30)
        assert events[0]["message"] == "gadget of size 3" and events[0]["involvedObject"]["kind"] == "Gadget"
        assert events[0]["involvedObject"]["apiVersion"] == f"{GROUP}/v1"
        assert cluster.kubectl("get", "gdg", "-n", namespace).stdout.split()[:4] == ["NAME", "SIZE", "g1", "3"]

        # kopf's precondition: a JSON patch whose first op tests the resourceVersion; a stale one is a 422.
        api = client.CustomObjectsApi(api_client)
        stale = str(int(obj["metadata"]["resourceVersion"]) - 1)
        with pytest.raises(ApiException) as exc:
            api.patch_namespaced_custom_object(GROUP, "v1", namespace, "gadgets", "g1", [
                {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
                {"op": "remove", "path": "/metadata/finalizers"}], _content_type="application/json-patch+json")
        assert exc.value.status == 422
        assert FINALIZER in gadget(cluster, namespace)["metadata"]["finalizers"]

        cluster.kubectl("delete", "gadget", "g1", "-n", namespace, "--timeout=60s")
        eventually(lambda: gadget(cluster, namespace) is None, timeout=60)
    assert runner.exception is None
    assert runner.exit_code == 0
    output = runner.output
    assert "Traceback" not in output
    assert output.count("Handler 'created' succeeded.") == 1
    assert output.count("Handler 'deleted' succeeded.") == 1
    assert "gadget is going away" in output
    assert "Removing the finalizer" in output
