"""The REST strategy for custom resources: status handling, generation, prune/default/validate."""

from __future__ import annotations

import copy

from pyk8s.api import crd
from pyk8s.api.structural import CompiledSchema
from pyk8s.apiserver import strategy

SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0},
                                              "color": {"type": "string", "default": "blue"}}},
    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}


def widget_kind(status: bool):
    version = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": SCHEMA}}
    if status:
        version["subresources"] = {"status": {}}
    definition = {"metadata": {"name": "widgets.example.com"},
                  "spec": {"group": "example.com", "scope": "Namespaced", "versions": [version]},
                  "status": {"acceptedNames": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                                               "listKind": "WidgetList"}}}
    [kind] = crd.kinds(definition, CompiledSchema)
    return kind


def created(kind, **fields) -> dict:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, **fields}
    strategy.prepare_for_create(kind, obj, "default")
    strategy.apply_defaults(kind, obj)
    return obj


def test_create_prunes_defaults_and_drops_status_with_a_status_subresource():
    kind = widget_kind(status=True)
    obj = created(kind, spec={"replicas": 1, "unknown": 1}, status={"ready": True})
    assert obj["spec"] == {"replicas": 1, "color": "blue"} and "status" not in obj
    assert obj["metadata"]["generation"] == 1
    assert strategy.validate_create(kind, obj) == []


def test_create_keeps_status_without_a_status_subresource():
    obj = created(widget_kind(status=False), spec={"replicas": 1}, status={"ready": True})
    assert obj["status"] == {"ready": True}


def test_generation_counts_spec_changes_and_with_no_status_subresource_status_changes_too():
    for status, bumps in ((True, 1), (False, 2)):
        kind = widget_kind(status)
        old = created(kind, spec={"replicas": 1})
        new = copy.deepcopy(old)
        new["status"] = {"ready": True}
        strategy.prepare_for_update(kind, new, old)
        new_spec = copy.deepcopy(new)
        new_spec["spec"]["replicas"] = 2
        strategy.prepare_for_update(kind, new_spec, new)
        assert new_spec["metadata"]["generation"] == 1 + bumps, status


def test_status_updates_take_only_the_status():
    kind = widget_kind(status=True)
    old = created(kind, spec={"replicas": 1})
    request = copy.deepcopy(old)
    request["spec"]["replicas"] = 5
    request["metadata"]["labels"] = {"sneaky": "yes"}
    request["status"] = {"ready": True, "extra": 1}
    new = strategy.prepare_for_status_update(kind, request, old)
    assert new["spec"] == old["spec"] and "labels" not in new["metadata"]
    assert new["status"] == {"ready": True}
    del request["status"]
    assert "status" not in strategy.prepare_for_status_update(kind, request, new)


def test_validation_uses_the_schema_and_dns_subdomain_names():
    kind = widget_kind(status=True)
    obj = created(kind, spec={"replicas": -1})
    obj["metadata"]["name"] = "Not_A_Name"
    fields = [e.field for e in strategy.validate_create(kind, obj)]
    assert fields == ["metadata.name", "spec.replicas"]
    old = created(kind, spec={"replicas": 1})
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = -2
    assert [e.field for e in strategy.validate_update(kind, new, old)] == ["spec.replicas"]
