"""How a CRD becomes served kinds: accepted names, printer columns, JSONPath, multi-version kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyk8s.api import crd, jsonpath
from pyk8s.api.kinds import Registry
from pyk8s.apiserver.crds import accepted_names

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def definition(plural: str, kind: str, short: list[str] | None = None, group: str = "example.com",
               accepted: bool = False, versions: list[dict] | None = None) -> dict:
    names = {"plural": plural, "singular": plural[:-1], "kind": kind, "listKind": kind + "List",
             "shortNames": short or []}
    obj = {"metadata": {"name": f"{plural}.{group}"},
           "spec": {"group": group, "scope": "Namespaced", "names": names,
                    "versions": versions or [{"name": "v1", "served": True, "storage": True}]},
           "status": {"acceptedNames": dict(names) if accepted else {"plural": "", "kind": ""}}}
    return obj


def test_names_are_accepted_without_conflicts():
    names, reason, message = accepted_names(definition("widgets", "Widget", ["wd"]), [])
    assert (reason, message) == ("", "")
    assert names == {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                     "shortNames": ["wd"]}


def test_a_name_used_in_the_same_group_conflicts():
    other = definition("gadgets", "Gadget", ["wd"], accepted=True)
    names, reason, message = accepted_names(definition("widgets", "Widget", ["wd"]), [other])
    assert (reason, message) == ("ShortNamesConflict", '"wd" is already in use')
    assert "shortNames" not in names and names["plural"] == "widgets"
    clash = definition("gadgets", "Gizmo")
    clash["spec"]["names"]["singular"] = "gizmo"
    names, reason, message = accepted_names(clash, [other])
    assert (reason, message) == ("PluralConflict", '"gadgets" is already in use')
    assert names["plural"] == "" and names["kind"] == "Gizmo"


def test_names_in_another_group_do_not_conflict():
    other = definition("widgets", "Widget", ["wd"], group="example.org", accepted=True)
    assert accepted_names(definition("widgets", "Widget", ["wd"]), [other])[1] == ""


def test_json_paths():
    obj = {"metadata": {"labels": {"app.kubernetes.io/name": "x"}},
           "spec": {"ports": [{"port": 80}, {"port": 443}]},
           "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}}
    assert jsonpath.find(obj, jsonpath.parse(".spec.ports[1].port")) == [443]
    assert jsonpath.find(obj, jsonpath.parse(".spec.ports[*].port")) == [80, 443]
    assert jsonpath.find(obj, jsonpath.parse('.status.conditions[?(@.type=="Ready")].status')) == ["True"]
    assert jsonpath.find(obj, jsonpath.parse("{.metadata.labels['app\\.kubernetes\\.io/name']}")) == ["x"]
    assert jsonpath.find(obj, jsonpath.parse(".metadata.labels.app\\.kubernetes\\.io/name")) == ["x"]
    assert jsonpath.find(obj, jsonpath.parse(".spec.missing.field")) == []
    assert jsonpath.is_simple(jsonpath.parse(".spec.replicas"))
    assert not jsonpath.is_simple(jsonpath.parse(".spec.ports[0]"))
    with pytest.raises(jsonpath.JSONPathError):
        jsonpath.parse("spec.replicas")


def test_printer_columns_render_typed_cells():
    printer = crd.column_printer([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing", "priority": 1},
    ])
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {"metadata": {"name": "w1", "creationTimestamp": created},
           "spec": {"replicas": 3, "enabled": "yes"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert [c["name"] for c in printer.columns] == ["Name", "Replicas", "Ready", "Enabled", "Age", "Missing"]
    assert printer.columns[0]["format"] == "name" and printer.columns[5]["priority"] == 1
    assert printer.cells(obj, NOW) == ["w1", 3, "True", None, "5m", None]


def test_without_columns_custom_resources_show_their_age():
    printer = crd.column_printer([])
    assert [c["name"] for c in printer.columns] == ["Name", "Age"]


def test_versions_become_kinds_stored_in_the_storage_version():
    obj = definition("widgets", "Widget", accepted=True, versions=[
        {"name": "v1beta1", "served": True, "storage": False},
        {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}, "scale": {
            "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
        {"name": "v1alpha1", "served": False, "storage": False}])
    kinds = crd.kinds(obj, lambda schema: None)
    beta, v1, alpha = kinds
    assert v1.storage_of is None and beta.storage_of == ("example.com", "v1")
    assert [s.name for s in v1.subresources] == ["status", "scale"] and beta.subresources == ()
    assert beta.to_storage({"apiVersion": "example.com/v1beta1"})["apiVersion"] == "example.com/v1"
    assert v1.from_storage({"apiVersion": "example.com/v1"})["apiVersion"] == "example.com/v1"
    registry = Registry(())
    registry.add(kinds)
    assert registry.lookup("example.com", "v1alpha1", "widgets") is None  # not served
    assert registry.storage_kind(beta) is v1
    assert registry.group_versions() == {"example.com": ["v1", "v1beta1"]}
    registry.remove("example.com", "widgets")
    assert registry.lookup("example.com", "v1", "widgets") is None and registry.stored_kinds() == []
