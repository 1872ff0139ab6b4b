"""CustomResourceDefinitions end to end: real kubectl and the `kubernetes` Python client against a real server.

Every test defines its own CRD (its own group) and deletes it at the end, so the shared cluster keeps no
custom resources that other tests could see (`kubectl get all`, discovery)."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import KUBECTL_132, Cluster, eventually, kubectl_132_available
from schema_oracle import assert_valid

JSON_PATCH = "application/json-patch+json"  # the client sends custom-object patches as merge patches otherwise


def widget_crd(group: str, *, plural: str = "widgets", kind: str = "Widget", scope: str = "Namespaced",
               versions: list[dict] | None = None, short_names: list[str] | None = None,
               categories: list[str] | None = None) -> dict:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object",
                 "properties": {"replicas": {"type": "integer", "minimum": 0},
                                "color": {"type": "string", "default": "blue"},
                                "selector": {"type": "string"}},
                 "x-kubernetes-validations": [{"rule": "self.replicas <= 10", "message": "at most 10 replicas"}]},
        "status": {"type": "object", "properties": {
            "replicas": {"type": "integer"}, "selector": {"type": "string"},
            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}
    version = {
        "name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                 "statusReplicasPath": ".status.replicas",
                                                 "labelSelectorPath": ".status.selector"}},
        "additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
        "selectableFields": [{"jsonPath": ".spec.color"}],
    }
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope,
                     "names": {"plural": plural, "singular": plural[:-1], "kind": kind,
                               "shortNames": short_names or [], "categories": categories or []},
                     "versions": versions or [version]}}


def widget(group: str, name: str, namespace: str | None, **spec) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": meta, "spec": spec}


def install(cluster: Cluster, crd: dict) -> dict:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")
    installed = cluster.kubectl_json("get", "crd", crd["metadata"]["name"])  # schema-checked
    return installed


def uninstall(cluster: Cluster, name: str) -> None:
    cluster.kubectl("delete", "crd", name, "--ignore-not-found", "--timeout=60s")


@pytest.fixture
def crds(cluster: Cluster):
    """Names of CRDs a test created; deleted afterwards whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        uninstall(cluster, name)


def cr_json(cluster: Cluster, *args: str) -> dict:
    """A custom resource (or list) from kubectl; there is no v1.32 schema for it, so the oracle checks its
    metadata as ObjectMeta (wrapped in a ConfigMap, whose other fields are optional)."""
    obj = json.loads(cluster.kubectl(*args, "-o", "json").stdout)
    for item in obj.get("items", [obj]) if obj.get("kind", "").endswith("List") else [obj]:
        assert_valid({"apiVersion": "v1", "kind": "ConfigMap", "metadata": item["metadata"]})
    return obj


def raw_get(cluster: Cluster, path: str, accept: str = "application/json") -> dict:
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "tls" / "ca.crt"))
    ctx.load_cert_chain(str(cluster.data_dir / "tls" / "admin.crt"), str(cluster.data_dir / "tls" / "admin.key"))
    request = urllib.request.Request(cluster.url + path, headers={"Accept": accept})
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def test_crd_status_names_and_conditions(cluster: Cluster, crds: list[str]):
    group = "status.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    crd = install(cluster, widget_crd(group, short_names=["wdg"]))
    assert crd["metadata"]["generation"] == 1
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    assert crd["spec"]["names"]["listKind"] == "WidgetList"
    status = crd["status"]
    assert status["storedVersions"] == ["v1"]
    assert status["acceptedNames"] == {"plural": "widgets", "singular": "widget", "kind": "Widget",
                                       "listKind": "WidgetList", "shortNames": ["wdg"]}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "True" and conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert conditions["Established"]["status"] == "True"
    assert conditions["Established"]["reason"] == "InitialNamesAccepted"
    listed = cluster.kubectl_json("get", "crds")
    assert f"widgets.{group}" in [item["metadata"]["name"] for item in listed["items"]]
    # A second CRD of the group that wants a name already in use is not accepted.
    crds.append(f"gadgets.{group}")
    clash = widget_crd(group, plural="gadgets", kind="Gadget", short_names=["wdg"])
    cluster.kubectl("apply", "-f", "-", input=json.dumps(clash))

    def names_rejected():
        obj = cluster.kubectl_json("get", "crd", f"gadgets.{group}")
        cond = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        return cond.get("NamesAccepted", {}).get("reason") == "ShortNamesConflict" and cond

    cond = eventually(names_rejected, timeout=30)
    assert cond["NamesAccepted"]["message"] == '"wdg" is already in use'
    assert cond["NamesAccepted"]["status"] == "False"
    # Not established until every name is accepted, as upstream: the resource is not served.
    assert cond["Established"]["status"] == "False" and cond["Established"]["reason"] == "NotAccepted"
    assert cluster.kubectl("get", f"gadgets.{group}", check=False).returncode != 0
    # Once the name is free again, the waiting CRD gets it.
    uninstall(cluster, f"widgets.{group}")
    cluster.kubectl("wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=60s")
    assert cluster.kubectl_json("get", "crd", f"gadgets.{group}")["status"]["acceptedNames"]["shortNames"] == ["wdg"]
    assert cr_json(cluster, "get", f"gadgets.{group}", "-A")["items"] == []


def test_custom_resources_with_kubectl(cluster: Cluster, namespace: str, crds: list[str]):
    group = "kubectl.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group, short_names=["wdg"], categories=["pyk8stest", "all"]))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(widget(group, "w1", None, replicas=2)))
    obj = cr_json(cluster, "get", "widgets", "w1", "-n", namespace)
    assert obj["apiVersion"] == f"{group}/v1" and obj["kind"] == "Widget"
    assert obj["spec"] == {"replicas": 2, "color": "blue"}  # defaulted by the schema
    assert obj["metadata"]["generation"] == 1 and "status" not in obj
    # printer columns, short names and categories
    table = cluster.kubectl("get", "wdg", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "COLOR", "AGE"]
    assert table[1].split()[:3] == ["w1", "2", "blue"]
    for category in ("pyk8stest", "all"):
        listed = cluster.kubectl("get", category, "-n", namespace, "-o", "name").stdout.split()
        assert f"widget.{group}/w1" in listed
    # spec changes bump the generation; status goes only through /status
    cluster.kubectl("patch", "widget", "w1", "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"color":"red"},"status":{"replicas":7}}')
    obj = cr_json(cluster, "get", "widget", "w1", "-n", namespace)
    assert obj["spec"]["color"] == "red" and obj["metadata"]["generation"] == 2 and "status" not in obj
    cluster.kubectl("patch", "widget", "w1", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", '{"status":{"replicas":2,"selector":"app=w1","conditions":[{"type":"Ready","status":"True"}],'
                          '"unknown":"pruned"}}')
    obj = cr_json(cluster, "get", "widget", "w1", "-n", namespace)
    assert obj["status"] == {"replicas": 2, "selector": "app=w1", "conditions": [{"type": "Ready", "status": "True"}]}
    assert obj["metadata"]["generation"] == 2
    cluster.kubectl("wait", "--for=condition=Ready", "widget/w1", "-n", namespace, "--timeout=30s")
    cluster.kubectl("wait", "--for=jsonpath={.status.replicas}=2", "widget/w1", "-n", namespace, "--timeout=30s")
    # scale
    cluster.kubectl("scale", "widget", "w1", "-n", namespace, "--replicas=4")
    obj = cr_json(cluster, "get", "widget", "w1", "-n", namespace)
    assert obj["spec"]["replicas"] == 4 and obj["metadata"]["generation"] == 3
    scale = json.loads(cluster.kubectl("get", "--raw", f"/apis/{group}/v1/namespaces/{namespace}/widgets/w1/scale")
                       .stdout)
    assert scale["spec"] == {"replicas": 4} and scale["status"] == {"replicas": 2, "selector": "app=w1"}
    assert_valid(scale)
    # strategic merge patch is refused for custom resources, as upstream
    result = cluster.kubectl("patch", "widget", "w1", "-n", namespace, "--type=strategic", "-p",
                             '{"spec":{"color":"green"}}', check=False)
    assert result.returncode != 0 and "not supported" in result.stderr
    # server-side apply
    applied = widget(group, "w2", namespace, replicas=1, color="green")
    cluster.kubectl("apply", "--server-side", "--field-manager=crd-test", "-f", "-", input=json.dumps(applied))
    obj = cr_json(cluster, "get", "widget", "w2", "-n", namespace, "--show-managed-fields")
    assert obj["spec"] == {"replicas": 1, "color": "green"}
    assert any(m["manager"] == "crd-test" and m["operation"] == "Apply" for m in obj["metadata"]["managedFields"])
    # selectable fields
    names = cluster.kubectl("get", "widgets", "-n", namespace, "--field-selector", "spec.color=green", "-o",
                            "name").stdout.split()
    assert names == [f"widget.{group}/w2"]
    bad = cluster.kubectl("get", "widgets", "-n", namespace, "--field-selector", "spec.replicas=1", check=False)
    assert bad.returncode != 0 and "field label not supported" in bad.stderr
    # explain reads the CRD's schema from /openapi/v3
    explained = cluster.kubectl("explain", "widgets.spec").stdout
    assert "replicas" in explained and "<integer>" in explained and "color" in explained
    cluster.kubectl("delete", "widget", "w1", "w2", "-n", namespace)
    assert cr_json(cluster, "get", "widgets", "-n", namespace)["items"] == []


def test_invalid_custom_resources_are_422_with_causes(cluster: Cluster, namespace: str, api_client,
                                                      crds: list[str]):
    group = "invalid.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group))
    api = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as exc:
        api.create_namespaced_custom_object(group, "v1", namespace, "widgets",
                                            widget(group, "bad", namespace, replicas="two"))
    status = json.loads(exc.value.body)
    assert exc.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == group
    # as upstream: the type error, then the note that CEL rules were skipped because of it
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.replicas", "<nil>"]
    assert status["details"]["causes"][0]["reason"] == "FieldValueTypeInvalid"
    # a CEL rule
    with pytest.raises(ApiException) as exc:
        api.create_namespaced_custom_object(group, "v1", namespace, "widgets",
                                            widget(group, "many", namespace, replicas=11))
    status = json.loads(exc.value.body)
    assert exc.value.status == 422
    assert any("at most 10 replicas" in c["message"] for c in status["details"]["causes"])
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                             input=json.dumps(widget(group, "neg", None, replicas=-1)))
    assert result.returncode != 0 and "spec.replicas" in result.stderr and "is invalid" in result.stderr
    for name in ("bad", "many", "neg"):
        with pytest.raises(ApiException) as exc:
            api.get_namespaced_custom_object(group, "v1", namespace, "widgets", name)
        assert exc.value.status == 404


def test_python_client_patches(cluster: Cluster, namespace: str, api_client, crds: list[str]):
    group = "client.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group))
    api = client.CustomObjectsApi(api_client)
    created = api.create_namespaced_custom_object(group, "v1", namespace, "widgets",
                                                  widget(group, "w", namespace, replicas=1))
    rv = created["metadata"]["resourceVersion"]
    merged = api.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "w",
                                                {"metadata": {"labels": {"tier": "gold"}}})
    assert merged["metadata"]["labels"] == {"tier": "gold"} and merged["metadata"]["generation"] == 1
    status = api.patch_namespaced_custom_object_status(group, "v1", namespace, "widgets", "w",
                                                       {"status": {"replicas": 1}})
    assert status["status"] == {"replicas": 1}
    # JSON patch whose `test` on the resourceVersion fails: 422, nothing changed (kopf relies on this)
    with pytest.raises(ApiException) as exc:
        api.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "w", [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "replace", "path": "/spec/replicas", "value": 5}], _content_type=JSON_PATCH)
    assert exc.value.status == 422, exc.value.body
    current = api.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
    assert current["spec"]["replicas"] == 1
    patched = api.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "w", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": current["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/replicas", "value": 5}], _content_type=JSON_PATCH)
    assert patched["spec"]["replicas"] == 5 and patched["metadata"]["generation"] == 2
    listed = api.list_namespaced_custom_object(group, "v1", namespace, "widgets", label_selector="tier=gold")
    assert listed["kind"] == "WidgetList" and [i["metadata"]["name"] for i in listed["items"]] == ["w"]
    api.delete_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
    assert api.list_namespaced_custom_object(group, "v1", namespace, "widgets")["items"] == []


def test_watching_custom_resources(cluster: Cluster, namespace: str, api_client, crds: list[str]):
    group = "watch.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group))
    api = client.CustomObjectsApi(api_client)
    start = api.list_namespaced_custom_object(group, "v1", namespace, "widgets")["metadata"]["resourceVersion"]
    api.create_namespaced_custom_object(group, "v1", namespace, "widgets", widget(group, "w", namespace, replicas=1))
    api.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "w", {"spec": {"replicas": 2}})
    api.delete_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
    events = []
    stream = watch.Watch().stream(api.list_namespaced_custom_object, group, "v1", namespace, "widgets",
                                  resource_version=start, timeout_seconds=10)
    for event in stream:
        events.append((event["type"], event["object"]["spec"]["replicas"]))
        if event["type"] == "DELETED":
            break
    assert events == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 2)]


def test_invalid_crds_are_refused_and_not_stored(cluster: Cluster, api_client):
    ext = client.ApiextensionsV1Api(api_client)
    group = "refused.crd.pyk8s.test"
    not_structural = widget_crd(group)
    schema = not_structural["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["size"] = {"description": "no type"}
    with pytest.raises(ApiException) as exc:
        ext.create_custom_resource_definition(not_structural)
    status = json.loads(exc.value.body)
    assert exc.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"]
    assert all(c["field"].startswith("spec.versions[0].schema.openAPIV3Schema") for c in status["details"]["causes"])
    bad_rule = widget_crd(group)
    bad_rule["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"] = [{"rule": "self.replicas <"}]
    with pytest.raises(ApiException) as exc:
        ext.create_custom_resource_definition(bad_rule)
    assert exc.value.status == 422
    misnamed = widget_crd(group)
    misnamed["metadata"]["name"] = f"gadgets.{group}"
    misnamed["spec"]["versions"][0]["storage"] = False
    with pytest.raises(ApiException) as exc:
        ext.create_custom_resource_definition(misnamed)
    causes = json.loads(exc.value.body)["details"]["causes"]
    assert {"reason": "FieldValueInvalid", "field": "metadata.name",
            "message": f'Invalid value: "gadgets.{group}": must be spec.names.plural+"."+spec.group'} in causes
    assert any(c["field"] == "spec.versions" and c["message"].endswith(
        "must have exactly one version marked as storage version") for c in causes)
    for name in (f"widgets.{group}", f"gadgets.{group}"):
        with pytest.raises(ApiException) as exc:
            ext.read_custom_resource_definition(name)
        assert exc.value.status == 404


def test_scope_is_immutable_once_established(cluster: Cluster, crds: list[str]):
    group = "immutable.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    crd = install(cluster, widget_crd(group))
    crd["spec"]["scope"] = "Cluster"
    result = cluster.kubectl("replace", "-f", "-", input=json.dumps(crd), check=False)
    assert result.returncode != 0
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in result.stderr


def test_multiple_versions_and_cluster_scope(cluster: Cluster, crds: list[str]):
    group = "versions.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    base = widget_crd(group, scope="Cluster")
    v1 = base["spec"]["versions"][0]
    beta = {**json.loads(json.dumps(v1)), "name": "v1beta1", "storage": False}
    beta.pop("selectableFields")
    beta_spec = beta["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    beta_spec["replicas"]["maximum"] = 5
    beta_spec["legacy"] = {"type": "string"}
    install(cluster, {**base, "spec": {**base["spec"], "versions": [beta, v1]}})
    # each version validates with its own schema
    too_many = {**widget(group, "many", None, replicas=7), "apiVersion": f"{group}/v1beta1"}
    refused = cluster.kubectl("apply", "-f", "-", input=json.dumps(too_many), check=False)
    assert refused.returncode != 0 and "spec.replicas" in refused.stderr
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "many", None, replicas=7)))
    # a field only the served version knows is accepted, but reads (in any version) show what storage keeps
    legacy = {**widget(group, "legacy", None, replicas=1, legacy="x"), "apiVersion": f"{group}/v1beta1"}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(legacy))
    assert "legacy" not in cr_json(cluster, "get", f"widgets.v1beta1.{group}", "legacy")["spec"]
    made = {**widget(group, "old", None, replicas=1), "apiVersion": f"{group}/v1beta1"}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(made))
    as_v1 = cr_json(cluster, "get", f"widgets.v1.{group}", "old")
    assert as_v1["apiVersion"] == f"{group}/v1" and "namespace" not in as_v1["metadata"]
    as_beta = cr_json(cluster, "get", f"widgets.v1beta1.{group}", "old")
    assert as_beta["apiVersion"] == f"{group}/v1beta1"
    assert as_beta["metadata"]["resourceVersion"] == as_v1["metadata"]["resourceVersion"]
    discovered = raw_get(cluster, f"/apis/{group}")
    assert discovered["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in discovered["versions"]] == ["v1", "v1beta1"]
    crd = cluster.kubectl_json("get", "crd", f"widgets.{group}")
    assert crd["status"]["storedVersions"] == ["v1"]
    cluster.kubectl("delete", f"widgets.v1.{group}", "old", "many", "legacy")


def test_discovery_and_openapi_follow_crds(cluster: Cluster, crds: list[str]):
    group = "discovery.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group, short_names=["dwg"], categories=["pyk8stest"]))
    groups = [g["name"] for g in raw_get(cluster, "/apis")["groups"]]
    assert group in groups
    resources = raw_get(cluster, f"/apis/{group}/v1")["resources"]
    by_name = {r["name"]: r for r in resources}
    assert by_name["widgets"]["shortNames"] == ["dwg"] and by_name["widgets"]["categories"] == ["pyk8stest"]
    assert by_name["widgets"]["namespaced"] is True and by_name["widgets"]["kind"] == "Widget"
    assert by_name["widgets/scale"]["kind"] == "Scale" and by_name["widgets/scale"]["group"] == "autoscaling"
    assert "widgets/status" in by_name
    aggregated = raw_get(cluster, "/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    entry = next(i for i in aggregated["items"] if i["metadata"]["name"] == group)
    assert entry["versions"][0]["resources"][0]["resource"] == "widgets"
    index = raw_get(cluster, "/openapi/v3")["paths"]
    assert f"apis/{group}/v1" in index
    doc = raw_get(cluster, "/" + index[f"apis/{group}/v1"]["serverRelativeURL"].lstrip("/"))
    schema = doc["components"]["schemas"]["test.pyk8s.crd.discovery.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": group, "kind": "Widget", "version": "v1"}]
    assert schema["properties"]["spec"]["properties"]["replicas"]["type"] == "integer"
    assert "dwg" in cluster.kubectl("api-resources", "--api-group", group).stdout
    uninstall(cluster, f"widgets.{group}")
    assert group not in [g["name"] for g in raw_get(cluster, "/apis")["groups"]]
    assert f"apis/{group}/v1" not in raw_get(cluster, "/openapi/v3")["paths"]
    assert cluster.kubectl("get", "dwg", check=False).returncode != 0


def test_deleting_a_crd_deletes_its_custom_resources(cluster: Cluster, namespace: str, crds: list[str]):
    group = "cleanup.crd.pyk8s.test"
    name = f"widgets.{group}"
    crds.append(name)
    install(cluster, widget_crd(group))
    held = widget(group, "held", namespace, replicas=1)
    held["metadata"]["finalizers"] = ["pyk8s.test/hold"]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(held))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "free", namespace, replicas=1)))
    cluster.kubectl("delete", "crd", name, "--wait=false")

    def terminating():
        crd = cluster.kubectl_json("get", "crd", name)
        cond = {c["type"]: c for c in crd["status"]["conditions"]}.get("Terminating", {})
        return cond.get("reason") == "InstanceDeletionCheck" and crd

    crd = eventually(terminating, timeout=30)
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    assert crd["metadata"]["deletionTimestamp"]
    remaining = cr_json(cluster, "get", "widgets", "-n", namespace)["items"]
    assert [w["metadata"]["name"] for w in remaining] == ["held"]
    assert remaining[0]["metadata"]["deletionTimestamp"]
    refused = cluster.kubectl("apply", "-f", "-", check=False,
                              input=json.dumps(widget(group, "late", namespace, replicas=1)))
    assert refused.returncode != 0 and "create is not supported" in refused.stderr
    cluster.kubectl("patch", "widget", "held", "-n", namespace, "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    eventually(lambda: cluster.kubectl("get", "crd", name, check=False).returncode != 0, timeout=30)
    assert group not in [g["name"] for g in raw_get(cluster, "/apis")["groups"]]


def test_deleting_a_namespace_deletes_its_custom_resources(cluster: Cluster, crds: list[str]):
    group = "namespaces.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group))
    ns = "crd-ns-deletion"
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": ns}}))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "w", ns, replicas=1)))
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    eventually(lambda: cluster.kubectl("get", "namespace", ns, check=False).returncode != 0, timeout=60)


def test_crds_are_served_after_a_restart(bare_cluster: Cluster):
    group = "restart.crd.pyk8s.test"
    install(bare_cluster, widget_crd(group))
    bare_cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "kept", "default", replicas=3)))
    bare_cluster.restart()
    obj = cr_json(bare_cluster, "get", "widgets", "kept", "-n", "default")
    assert obj["spec"]["replicas"] == 3
    assert "REPLICAS" in bare_cluster.kubectl("get", "widgets", "-n", "default").stdout
    uninstall(bare_cluster, f"widgets.{group}")


def test_unknown_fields_are_pruned_and_reported(cluster: Cluster, namespace: str, crds: list[str]):
    group = "prune.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group))
    body = widget(group, "w", namespace, replicas=1, size="L")
    body["extra"] = True
    strict = cluster.kubectl("create", "-f", "-", input=json.dumps(body), check=False)  # kubectl: Strict
    assert strict.returncode != 0
    assert 'strict decoding error: unknown field "extra", unknown field "spec.size"' in strict.stderr
    warned = cluster.kubectl("create", "--validate=warn", "-f", "-", input=json.dumps(body))
    assert 'unknown field "spec.size"' in warned.stderr
    obj = cr_json(cluster, "get", "widget", "w", "-n", namespace)
    assert obj["spec"] == {"replicas": 1, "color": "blue"} and "extra" not in obj


def test_garbage_collector_follows_owner_references_to_and_from_custom_resources(
        cluster: Cluster, namespace: str, crds: list[str]):
    group = "gc.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    install(cluster, widget_crd(group))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "owner", namespace, replicas=1)))
    owner = cr_json(cluster, "get", "widget", "owner", "-n", namespace)
    owned_cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "owned", "namespace": namespace, "ownerReferences": [{
            "apiVersion": f"{group}/v1", "kind": "Widget", "name": "owner", "uid": owner["metadata"]["uid"]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(owned_cm))
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                                          "metadata": {"name": "parent", "namespace": namespace}}))
    parent = cluster.kubectl_json("get", "configmap", "parent", "-n", namespace)
    child = widget(group, "child", namespace, replicas=1)
    child["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "parent",
                                            "uid": parent["metadata"]["uid"]}]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(child))
    # a custom resource owning a built-in object
    cluster.kubectl("delete", "widget", "owner", "-n", namespace)
    eventually(lambda: cluster.kubectl("get", "configmap", "owned", "-n", namespace, check=False).returncode != 0,
               timeout=60)
    # a built-in object owning a custom resource
    cluster.kubectl("delete", "configmap", "parent", "-n", namespace)
    eventually(lambda: cluster.kubectl("get", "widget", "child", "-n", namespace, check=False).returncode != 0,
               timeout=60)


def test_defaults_apply_when_reading_objects_stored_before_them(cluster: Cluster, namespace: str,
                                                               crds: list[str]):
    group = "readdefaults.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    crd = widget_crd(group)
    spec_props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    del spec_props["color"]["default"]
    install(cluster, crd)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "early", namespace, replicas=1)))
    assert cr_json(cluster, "get", "widget", "early", "-n", namespace)["spec"] == {"replicas": 1}
    spec_props["color"]["default"] = "teal"
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    eventually(lambda: cr_json(cluster, "get", "widget", "early", "-n", namespace)["spec"].get("color") == "teal",
               timeout=30)
    # a field the schema stops knowing is pruned on read, and comes back with it (storage kept it)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "sel", namespace, replicas=1, selector="a=b")))

    def selector() -> str | None:
        return cr_json(cluster, "get", "widget", "sel", "-n", namespace)["spec"].get("selector")

    selector_schema = spec_props.pop("selector")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    eventually(lambda: selector() is None, timeout=30)
    spec_props["selector"] = selector_schema
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    eventually(lambda: selector() == "a=b", timeout=30)


def test_server_side_apply_follows_the_crd_schema(cluster: Cluster, namespace: str, crds: list[str]):
    group = "apply.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    crd = widget_crd(group)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["ports"] = {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "port": {"type": "integer"}}}}
    install(cluster, crd)
    for manager, port in (("team-a", {"name": "http", "port": 80}), ("team-b", {"name": "https", "port": 443})):
        body = widget(group, "w", namespace, replicas=1, ports=[port])
        if manager == "team-b":
            del body["spec"]["replicas"]
        cluster.kubectl("apply", "--server-side", f"--field-manager={manager}", "-f", "-", input=json.dumps(body))
    obj = cr_json(cluster, "get", "widget", "w", "-n", namespace, "--show-managed-fields")
    # list-type=map: each manager owns its own element, nothing is replaced
    assert obj["spec"]["ports"] == [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    owned = {m["manager"]: m["fieldsV1"] for m in obj["metadata"]["managedFields"]}
    assert 'k:{"name":"https"}' in owned["team-b"]["f:spec"]["f:ports"]
    conflict = cluster.kubectl("apply", "--server-side", "--field-manager=team-b", "-f", "-", check=False,
                               input=json.dumps(widget(group, "w", namespace, ports=[{"name": "http", "port": 8080}])))
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()


@pytest.mark.skipif(not kubectl_132_available(), reason="kubectl 1.32 is not on this machine")
def test_kubectl_132_with_custom_resources(cluster: Cluster, namespace: str, crds: list[str]):
    group = "kubectl132.crd.pyk8s.test"
    crds.append(f"widgets.{group}")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget_crd(group)), binary=KUBECTL_132)
    cluster.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s",
                    binary=KUBECTL_132)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(widget(group, "w", namespace, replicas=1)),
                    binary=KUBECTL_132)
    cluster.kubectl("scale", "widget", "w", "-n", namespace, "--replicas=3", binary=KUBECTL_132)
    table = cluster.kubectl("get", f"widgets.{group}", "-n", namespace, binary=KUBECTL_132).stdout.splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "COLOR", "AGE"] and table[1].split()[:3] == ["w", "3", "blue"]
    assert "replicas" in cluster.kubectl("explain", f"widgets.{group}.spec", binary=KUBECTL_132).stdout
