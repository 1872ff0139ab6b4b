"""CustomResourceDefinition validation: upstream's messages and field paths (schema rules are the engine's)."""

from __future__ import annotations

import copy

import pytest

from pyk8s.api import crd, crd_validation


@pytest.fixture(autouse=True)
def _schemas_are_fine(monkeypatch):
    # The schema engine's own rules are tested with the engine; these tests check the CRD rules around it.
    monkeypatch.setattr(crd_validation, "_schema_errors", lambda schema, path: [])


def widget_crd(**spec_changes) -> dict:
    obj = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                              "spec": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                                        "color": {"type": "string"}}},
                              "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}}],
        },
    }
    obj["spec"].update(spec_changes)
    crd.default(obj)
    return obj


def messages(obj: dict) -> list[str]:
    return [e.message() for e in crd_validation.custom_resource_definition(obj)]


def test_a_well_formed_crd_is_valid_and_defaulted():
    obj = widget_crd()
    assert messages(obj) == []
    assert obj["spec"]["conversion"] == {"strategy": "None"}
    assert obj["status"]["storedVersions"] == ["v1"]


def test_names_default_from_the_kind():
    obj = widget_crd(names={"plural": "widgets", "kind": "Widget"})
    assert obj["spec"]["names"]["singular"] == "widget"
    assert obj["spec"]["names"]["listKind"] == "WidgetList"


def test_the_name_must_be_plural_dot_group():
    obj = widget_crd()
    obj["metadata"]["name"] = "gadgets.example.com"
    assert messages(obj) == ['metadata.name: Invalid value: "gadgets.example.com": must be spec.names.plural+"."+'
                             'spec.group']


def test_group_needs_a_dot_and_scope_is_an_enum():
    obj = widget_crd(group="example", scope="Galaxy")
    obj["metadata"]["name"] = "widgets.example"
    assert messages(obj) == [
        'spec.group: Invalid value: "example": should be a domain with at least one dot',
        'spec.scope: Unsupported value: "Galaxy": supported values: "Cluster", "Namespaced"',
    ]


def test_exactly_one_storage_version_and_unique_names():
    obj = widget_crd()
    second = copy.deepcopy(obj["spec"]["versions"][0])
    obj["spec"]["versions"].append(second)
    found = messages(obj)
    assert any(m.startswith("spec.versions: Invalid value: ") and m.endswith("must contain unique version names")
               for m in found)
    assert any(m.endswith("must have exactly one version marked as storage version") for m in found)


def test_every_version_needs_a_schema():
    obj = widget_crd()
    del obj["spec"]["versions"][0]["schema"]
    assert messages(obj) == ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]


def test_names_are_dns_labels_and_kind_differs_from_list_kind():
    obj = widget_crd(names={"plural": "Widgets", "singular": "widget", "kind": "Widget", "listKind": "Widget",
                            "shortNames": ["w_d"]})
    obj["metadata"]["name"] = "Widgets.example.com"
    found = messages(obj)
    assert 'spec.names.plural: Invalid value: "Widgets": a DNS-1035 label must consist of lower case alphanumeric ' \
           "characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. " \
           "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')" in found
    assert any(m.startswith('spec.names.shortNames[0]: Invalid value: "w_d"') for m in found)
    assert 'spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same' in found


def test_status_subresource_allows_only_root_fields_that_survive_extraction():
    obj = widget_crd()
    version = obj["spec"]["versions"][0]
    version["subresources"] = {"status": {}}
    version["schema"]["openAPIV3Schema"]["anyOf"] = [{"required": ["spec"]}]
    [message] = messages(obj)
    assert message.startswith('spec.versions[0].schema.openAPIV3Schema: Invalid value: "object": only [Description '
                              "Type Format Title")
    assert message.endswith("fields are allowed at the root of the schema if the status subresource is enabled")


def test_scale_paths():
    obj = widget_crd()
    obj["spec"]["versions"][0]["subresources"] = {"scale": {"specReplicasPath": ".status.replicas",
                                                            "statusReplicasPath": "status.replicas",
                                                            "labelSelectorPath": ".metadata.labels"}}
    assert messages(obj) == [
        'spec.versions[0].subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json '
        "path under .spec",
        'spec.versions[0].subresources.scale.statusReplicasPath: Invalid value: "status.replicas": must be a simple '
        "json path starting with .",
        'spec.versions[0].subresources.scale.labelSelectorPath: Invalid value: ".metadata.labels": should be a json '
        "path under either .spec or .status",
    ]


def test_printer_columns():
    obj = widget_crd()
    obj["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Replicas", "type": "int", "jsonPath": "spec.replicas"},
        {"name": "Color", "type": "string", "format": "colour", "jsonPath": ".spec.color"},
        {"type": "string"}]
    assert messages(obj) == [
        'spec.versions[0].additionalPrinterColumns[0].type: Invalid value: "int": must be one of '
        "boolean,date,integer,number,string",
        'spec.versions[0].additionalPrinterColumns[0].JSONPath: Invalid value: "spec.replicas": must be a simple json '
        "path starting with .",
        'spec.versions[0].additionalPrinterColumns[1].format: Invalid value: "colour": must be one of '
        "byte,date,date-time,double,float,int32,int64,password",
        "spec.versions[0].additionalPrinterColumns[2].name: Required value",
        "spec.versions[0].additionalPrinterColumns[2].JSONPath: Required value",
    ]


def test_selectable_fields():
    obj = widget_crd()
    obj["spec"]["versions"][0]["selectableFields"] = [
        {"jsonPath": ".spec.color"}, {"jsonPath": ".spec.color"}, {"jsonPath": ".spec.size"}, {"jsonPath": ".spec"}]
    assert messages(obj) == [
        'spec.versions[0].selectableFields[1].jsonPath: Duplicate value: ".spec.color"',
        'spec.versions[0].selectableFields[2].jsonPath: Invalid value: ".spec.size": is an invalid path: does not '
        "refer to a valid field",
        'spec.versions[0].selectableFields[3].jsonPath: Invalid value: ".spec": must point to a field of type string, '
        "boolean or integer. Enum string fields and strings with formats are allowed.",
    ]


def test_webhook_conversion_is_refused_clearly():
    obj = widget_crd(conversion={"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"]}})
    [message] = messages(obj)
    assert message.startswith("spec.conversion.strategy: Forbidden: Webhook conversion is not supported")


def test_stored_versions_must_be_in_spec():
    obj = widget_crd()
    obj["status"]["storedVersions"] = ["v1", "v1alpha1"]
    assert messages(obj) == ['status.storedVersions[1]: Invalid value: "v1alpha1": must appear in spec.versions']


def test_updates_keep_group_and_plural_and_once_established_scope_and_kind():
    old = widget_crd()
    crd.set_condition(old, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
    new = copy.deepcopy(old)
    new["spec"]["scope"] = "Cluster"
    new["spec"]["names"]["kind"] = "Gizmo"
    new["spec"]["group"] = "example.org"
    assert [e.message() for e in crd_validation.custom_resource_definition_update(new, old)] == [
        'spec.scope: Invalid value: "Cluster": field is immutable',
        'spec.names.kind: Invalid value: "Gizmo": field is immutable',
        'spec.group: Invalid value: "example.org": field is immutable',
    ]
    old["status"]["conditions"] = []
    assert [e.field for e in crd_validation.custom_resource_definition_update(new, old)] == ["spec.group"]


def test_preserve_unknown_fields_at_the_top_is_refused():
    obj = widget_crd(preserveUnknownFields=True)
    assert messages(obj) == ["spec.preserveUnknownFields: Invalid value: true: cannot set to true, set "
                             "x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"]


def test_deprecation_warnings_only_on_deprecated_versions():
    obj = widget_crd()
    obj["spec"]["versions"][0]["deprecationWarning"] = "use v2"
    assert messages(obj) == ['spec.versions[0].deprecationWarning: Invalid value: "use v2": can only be set for '
                             "deprecated versions"]
    obj["spec"]["versions"][0]["deprecated"] = True
    assert messages(obj) == []


def test_webhook_settings_need_the_webhook_strategy():
    obj = widget_crd(conversion={"strategy": "None", "webhook": {"conversionReviewVersions": ["v1"],
                                                                 "clientConfig": {"url": "https://x"}}})
    assert messages(obj) == [
        "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
        "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook",
    ]
