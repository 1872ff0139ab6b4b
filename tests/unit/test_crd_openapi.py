"""OpenAPI v3 documents of custom resources: built from the CRD schema, refreshed when CRDs change."""

from __future__ import annotations

import json

from pyk8s.api import crd
from pyk8s.api.kinds import KINDS, Registry
from pyk8s.apiserver.openapi import OpenAPIDocs

SCHEMAS = "#/components/schemas/"
WIDGETS = {
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                    "statusReplicasPath": ".status.replicas"}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "description": "what the widget should be",
                                        "properties": {"replicas": {"type": "integer"}}}}}}}]},
    "status": {"acceptedNames": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                                 "listKind": "WidgetList"}},
}


def refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_a_crd_version_gets_a_document_that_appears_and_disappears_with_it():
    registry = Registry(KINDS)
    docs = OpenAPIDocs(registry)
    assert "apis/example.com/v1" not in json.loads(docs.index())["paths"]
    registry.add(crd.kinds(WIDGETS, lambda schema: None))
    docs.refresh("example.com")
    assert "apis/example.com/v1" in json.loads(docs.index())["paths"]
    doc = json.loads(docs.document("apis/example.com/v1"))
    components = doc["components"]["schemas"]
    widget = components["com.example.v1.Widget"]
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "kind": "Widget", "version": "v1"}]
    assert widget["properties"]["spec"]["description"] == "what the widget should be"
    assert widget["properties"]["metadata"]["allOf"] == [{"$ref": SCHEMAS + "io.k8s.apimachinery.pkg.apis.meta.v1."
                                                                            "ObjectMeta"}]
    assert components["com.example.v1.WidgetList"]["properties"]["items"]["items"] == {
        "$ref": SCHEMAS + "com.example.v1.Widget"}
    assert all(r[len(SCHEMAS):] in components for r in refs(doc))
    paths = doc["paths"]
    item = "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"
    assert paths[item]["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Widget"
    assert "fieldValidation" in {p["name"] for p in paths[item]["patch"]["parameters"]}
    assert paths[item + "/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": SCHEMAS + "com.example.v1.Widget"}
    assert paths[item + "/scale"]["put"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "kind": "Scale", "version": "v1"}
    registry.remove("example.com", "widgets")
    docs.refresh("example.com")
    assert docs.document("apis/example.com/v1") is None
    assert "apis/example.com/v1" not in json.loads(docs.index())["paths"]
