"""The /openapi/v3 index and documents, checked the way kubectl reads them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from pyk8s.api.kinds import REGISTRY
from pyk8s.apiserver.openapi import OpenAPIDocs

DOCS = OpenAPIDocs(REGISTRY)
SCHEMAS = "#/components/schemas/"


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


GV_PATHS = sorted({gv_path(k.group, k.version) for k in REGISTRY.kinds})


def load(path: str) -> dict:
    body = DOCS.document(path)
    assert body is not None, path
    return json.loads(body)


def walk(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield path, method, op


def test_index_lists_every_served_group_version():
    index = json.loads(DOCS.index())["paths"]
    for path in GV_PATHS:
        assert index[path] == {"serverRelativeURL": f"/openapi/v3/{path}?hash={DOCS.hash(path)}"}
    assert {"api", "apis", "apis/apps", "apis/rbac.authorization.k8s.io", "version"} <= index.keys()
    assert set(index) == set(DOCS.paths())


def test_hashes_are_the_content_hash():
    body = DOCS.document("apis/apps/v1")
    assert DOCS.hash("apis/apps/v1") == hashlib.sha512(body).hexdigest().upper()
    assert OpenAPIDocs(REGISTRY).hash("apis/apps/v1") == DOCS.hash("apis/apps/v1")  # stable across restarts


def test_unknown_documents():
    assert DOCS.document("apis/example.com/v1") is None
    assert DOCS.document("apis/apps/v9") is None
    with pytest.raises(KeyError):
        DOCS.hash("apis/example.com/v1")


def test_documents_are_built_once():
    assert DOCS.document("api/v1") is DOCS.document("api/v1")


@pytest.mark.parametrize("path", sorted(DOCS.paths()))
def test_every_document_is_openapi_3_with_resolvable_refs(path):
    doc = load(path)
    assert doc["openapi"] == "3.0.0" and doc["info"] == {"title": "Kubernetes", "version": "v1.32.0"}
    components = doc["components"]["schemas"]
    # JSONSchemaProps (CRDs) has a property named "$ref": only string values are references.
    refs = {n["$ref"] for n in walk(doc) if isinstance(n.get("$ref"), str)}
    assert refs and all(r.startswith(SCHEMAS) for r in refs)
    missing = {r for r in refs if r[len(SCHEMAS):] not in components}
    assert not missing


@pytest.mark.parametrize("path", GV_PATHS)
def test_every_kind_has_a_patch_operation_that_takes_field_validation(path):
    """kubectl's query-param verifier: a PATCH with the kind's GVK listing fieldValidation."""
    doc = load(path)
    for kind in [k for k in REGISTRY.kinds if gv_path(k.group, k.version) == path and "patch" in k.verbs]:
        gvk = {"group": kind.group, "kind": kind.kind, "version": kind.version}
        patches = [op for _, method, op in operations(doc)
                   if method == "patch" and op["x-kubernetes-group-version-kind"] == gvk]
        assert patches, kind
        for op in patches:
            assert "fieldValidation" in {p["name"] for p in op["parameters"]}
            assert set(op["requestBody"]["content"]) == {
                "application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
        schema = next(s for s in doc["components"]["schemas"].values()
                      if gvk in s.get("x-kubernetes-group-version-kind", []))
        assert "metadata" in schema["properties"]


@pytest.mark.parametrize("path", GV_PATHS)
def test_operations_are_described_like_upstream(path):
    doc = load(path)
    write_params = {"dryRun", "fieldManager", "fieldValidation"}
    for route, method, op in operations(doc):
        if route.endswith("/"):
            continue  # the group version's resource list
        action = op["x-kubernetes-action"]
        assert isinstance(op["x-kubernetes-group-version-kind"], dict)
        assert op["tags"] and op["operationId"] and op["description"]
        assert op["responses"]["401"] == {"description": "Unauthorized"}
        if action == "connect":  # pods/exec, nodes/proxy...: passed on to a node, under any method
            assert op["responses"]["200"]["content"]["*/*"]["schema"] == {"type": "string"}
            continue
        expected = {"get": {"get", "list", "watch", "watchlist"}, "post": {"post"}, "put": {"put"},
                    "patch": {"patch"}, "delete": {"delete", "deletecollection"}}[method]
        assert action in expected
        if method in ("post", "put", "patch"):
            assert write_params <= {p["name"] for p in op["parameters"]}
            assert op["requestBody"]["required"] is True
        if action in ("list", "watchlist"):
            assert "application/json;stream=watch" in op["responses"]["200"]["content"]


def test_node_proxied_subresources_are_connect_operations():
    paths = load("api/v1")["paths"]
    exec_ops = paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert {m: op["operationId"] for m, op in exec_ops.items() if m != "parameters"} == {
        "get": "connectCoreV1GetNamespacedPodExec", "post": "connectCoreV1PostNamespacedPodExec"}
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]["operationId"] == \
        "readCoreV1NamespacedPodLog"
    assert set(paths["/api/v1/nodes/{name}/proxy"]) == {"delete", "get", "patch", "post", "put", "parameters"}


def test_deployment_paths_and_operation_ids():
    doc = load("apis/apps/v1")
    paths = doc["paths"]
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {m: op["operationId"] for m, op in item.items() if m != "parameters"} == {
        "get": "readAppsV1NamespacedDeployment", "put": "replaceAppsV1NamespacedDeployment",
        "patch": "patchAppsV1NamespacedDeployment", "delete": "deleteAppsV1NamespacedDeployment"}
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    collection = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert collection["get"]["operationId"] == "listAppsV1NamespacedDeployment"
    assert collection["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    assert collection["delete"]["operationId"] == "deleteAppsV1CollectionNamespacedDeployment"
    assert paths["/apis/apps/v1/deployments"]["get"]["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    assert paths["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"]["x-kubernetes-action"] \
        == "watch"
    assert item["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": SCHEMAS + "io.k8s.api.apps.v1.Deployment"}
    assert item["delete"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(".Status")
    assert paths["/apis/apps/v1/"]["get"]["operationId"] == "getAppsV1APIResources"


def test_subresources_reference_their_own_kinds():
    apps = load("apis/apps/v1")
    scale = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["operationId"] == "replaceAppsV1NamespacedDeploymentScale"
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale",
                                                                 "version": "v1"}
    assert scale["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": SCHEMAS + "io.k8s.api.autoscaling.v1.Scale"}
    assert "io.k8s.api.autoscaling.v1.Scale" in apps["components"]["schemas"]
    status = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["get"]["description"] == "read status of the specified Deployment"
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"

    core = load("api/v1")
    binding = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/binding"]
    assert set(binding) == {"post", "parameters"}
    assert binding["post"]["operationId"] == "createCoreV1NamespacedPodBinding"
    assert binding["post"]["description"] == "create binding of a Pod"
    assert binding["post"]["requestBody"]["content"]["*/*"]["schema"] == {"$ref": SCHEMAS + "io.k8s.api.core.v1.Binding"}  # noqa: E501
    finalize = core["paths"]["/api/v1/namespaces/{name}/finalize"]
    assert set(finalize) == {"put", "parameters"}
    assert finalize["put"]["operationId"] == "replaceCoreV1NamespaceFinalize"
    node = core["paths"]["/api/v1/nodes/{name}"]
    assert node["get"]["operationId"] == "readCoreV1Node"
    assert "/api/v1/namespaces/{namespace}/nodes" not in core["paths"]
    # Pods answer DELETE with the pod, most kinds with a Status.
    pod = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert pod["delete"]["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(".v1.Pod")


def test_group_names_in_operation_ids_and_tags():
    rbac = load("apis/rbac.authorization.k8s.io/v1")
    op = rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["patch"]
    assert op["operationId"] == "patchRbacAuthorizationV1ClusterRole" and op["tags"] == ["rbacAuthorization_v1"]
    ingress = load("apis/networking.k8s.io/v1")
    post = ingress["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"]["post"]
    assert post["description"] == "create an Ingress"
    core = load("api/v1")
    assert core["paths"]["/api/v1/namespaces/{namespace}/endpoints"]["post"]["description"] == "create Endpoints"
    assert core["paths"]["/api/v1/pods"]["get"]["tags"] == ["core_v1"]


def test_schemas_are_converted_to_openapi_3():
    doc = load("apis/apps/v1")
    schemas = doc["components"]["schemas"]
    for node in walk(schemas):
        assert not isinstance(node.get("type"), list)
        assert node.get("additionalProperties") is not False
        assert not node.get("$ref", SCHEMAS).startswith("#/$defs")
        if "$ref" in node:
            assert len(node) == 1  # siblings of a $ref go next to an allOf, as upstream renders them
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert "enum" not in deployment["properties"]["apiVersion"] and "enum" not in deployment["properties"]["kind"]
    assert deployment["properties"]["spec"] == {
        "allOf": [{"$ref": SCHEMAS + "io.k8s.api.apps.v1.DeploymentSpec"}],
        "description": "Specification of the desired behavior of the Deployment."}
    ports = schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["items"] == {"$ref": SCHEMAS + "io.k8s.api.core.v1.ContainerPort"}
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort" and ports["x-kubernetes-list-type"] == "map"
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["required"] == ["selector", "template"]
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"] == {
        "additionalProperties": {"type": "string"}, "type": "object",
        "description": schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]["description"]}  # noqa: E501
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"] == [{"type": "integer"},
                                                                                   {"type": "string"}]
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [{"type": "string"},
                                                                                {"type": "number"}]
    for meta in ("ObjectMeta", "Status", "DeleteOptions", "WatchEvent", "Patch", "APIResourceList"):
        assert "io.k8s.apimachinery.pkg.apis.meta.v1." + meta in schemas


def test_discovery_documents():
    version = load("version")
    assert version["paths"]["/version/"]["get"]["operationId"] == "getCodeVersion"
    assert "io.k8s.apimachinery.pkg.version.Info" in version["components"]["schemas"]
    assert load("apis")["paths"]["/apis/"]["get"]["operationId"] == "getAPIVersions"
    assert load("api")["paths"]["/api/"]["get"]["operationId"] == "getCoreAPIVersions"
    group = load("apis/rbac.authorization.k8s.io")
    assert group["paths"]["/apis/rbac.authorization.k8s.io/"]["get"]["operationId"] == \
        "getRbacAuthorizationAPIGroup"
