"""CRD structural schemas: schema checks, pruning, defaulting and validation with upstream's wording."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.structural import CompiledSchema, ListType, go_float, schema_errors

P = "spec.versions[0].schema.openAPIV3Schema"


def messages(errors) -> list[str]:
    return [e.message() for e in errors]


def obj_schema(**properties) -> dict:
    return {"type": "object", "properties": properties}


# --- schema_errors ---

SCHEMA_CASES = [
    ("missing type on a field",
     obj_schema(spec={"properties": {"a": {"type": "string"}}}),
     [f"{P}.properties[spec].type: Required value: must not be empty for specified object fields"]),
    ("missing type on items",
     obj_schema(l={"type": "array", "items": {"properties": {"a": {"type": "string"}}}}),
     [f"{P}.properties[l].items.type: Required value: must not be empty for specified array items"]),
    ("root must be an object", {"type": "string"},
     [f'{P}.type: Invalid value: "string": must be object at the root']),
    ("root without type", {"properties": {"a": {"type": "string"}}},
     [f"{P}.type: Required value: must not be empty at the root"]),
    ("$ref", obj_schema(a={"$ref": "#/definitions/x", "type": "string"}),
     [f"{P}.properties[a].$ref: Forbidden: $ref is not supported"]),
    ("additionalItems", obj_schema(a={"type": "array", "items": {"type": "string"}, "additionalItems": False}),
     [f"{P}.properties[a].additionalItems: Forbidden: additionalItems is not supported"]),
    ("properties and additionalProperties",
     obj_schema(a={"type": "object", "properties": {"b": {"type": "string"}},
                   "additionalProperties": {"type": "string"}}),
     [f"{P}.properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"]),
    ("additionalProperties at the root", {"type": "object", "additionalProperties": {"type": "string"}},
     [f"{P}.additionalProperties: Forbidden: must not be used at the root"]),
    ("junctors may not specify type or default",
     obj_schema(a={"type": "string",
                   "anyOf": [{"type": "string"}, {"pattern": "x", "default": "y", "nullable": True}]}),
     [f"{P}.properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
      f"{P}.properties[a].anyOf[1].default: Forbidden: must be undefined to be structural",
      f"{P}.properties[a].anyOf[1].nullable: Forbidden: must be false to be structural"]),
    ("junctors may not use x-kubernetes-validations",
     obj_schema(a={"type": "string", "allOf": [{"x-kubernetes-validations": [{"rule": "true"}]}]}),
     [f"{P}.properties[a].allOf[0].x-kubernetes-validations: Forbidden: must be empty to be structural"]),
    ("root metadata may only restrict name",
     obj_schema(metadata={"type": "object", "properties": {"name": {"type": "string"}, "labels": {"type": "object"}}}),
     [f"{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but "
      "metadata is implicitly specified"]),
    ("root metadata restricting name and generateName is fine",
     obj_schema(metadata={"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                                            "generateName": {"type": "string"}}}), []),
    ("defaults are forbidden in top-level metadata", obj_schema(metadata={"type": "object", "default": {"name": "x"}}),
     [f"{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata"]),
    ("list-map keys must be item properties, scalar and unique",
     obj_schema(l={"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["o", "z"],
                   "items": {"type": "object", "required": ["o"], "properties": {"o": {"type": "object"}}}}),
     [f'{P}.properties[l].items.properties[o].type: Invalid value: "object": must be a scalar type if parent '
      "array's x-kubernetes-list-type is map",
      f'{P}.properties[l].x-kubernetes-list-map-keys: Invalid value: []string{{"o", "z"}}: entries must all be '
      "names of item properties"]),
    ("list-map keys must be required or defaulted",
     obj_schema(l={"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "items": {"type": "object", "properties": {"name": {"type": "string"}}}}),
     [f"{P}.properties[l].items.properties[name].default: Required value: this property is in "
      "x-kubernetes-list-map-keys, so it must have a default or be a required property"]),
    ("list-map needs keys", obj_schema(l={"type": "array", "x-kubernetes-list-type": "map",
                                          "items": {"type": "object"}}),
     [f"{P}.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type "
      "is map"]),
    ("list type needs an array", obj_schema(l={"type": "object", "x-kubernetes-list-type": "set"}),
     [f'{P}.properties[l].type: Invalid value: "object": must be array if x-kubernetes-list-type is specified']),
    ("unknown list type", obj_schema(l={"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}),
     [f'{P}.properties[l].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", '
      '"map"']),
    ("set items must not be nullable",
     obj_schema(l={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string", "nullable": True}}),
     [f"{P}.properties[l].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set"]),
    ("uniqueItems", obj_schema(b={"type": "array", "uniqueItems": True, "items": {"type": "string"}}),
     [f"{P}.properties[b].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity "
      "becomes quadratic"]),
    ("array without items", obj_schema(a={"type": "array"}),
     [f"{P}.properties[a].items: Required value: must be specified"]),
    ("preserve-unknown-fields false and nullable root", {"type": "object", "nullable": True,
                                                         "x-kubernetes-preserve-unknown-fields": False},
     [f"{P}.nullable: Forbidden: nullable cannot be true at the root",
      f"{P}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"]),
    ("int-or-string with preserve-unknown-fields",
     obj_schema(b={"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True}),
     [f"{P}.properties[b].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if "
      "x-kubernetes-int-or-string is true"]),
    ("int-or-string anyOf pattern is structural",
     obj_schema(a={"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}), []),
    ("embedded resources are objects with properties",
     obj_schema(f={"type": "string", "x-kubernetes-embedded-resource": True}),
     [f"{P}.properties[f].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true "
      "without x-kubernetes-preserve-unknown-fields",
      f'{P}.properties[f].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true']),
    ("unsupported type", obj_schema(a={"type": "int"}),
     [f'{P}.properties[a].type: Unsupported value: "int": supported values: "array", "boolean", "integer", '
      '"number", "object", "string"']),
    ("null type", obj_schema(b={"type": "null"}),
     [f"{P}.properties[b].type: Forbidden: type cannot be set to null, use nullable as an alternative"]),
    ("defaults must have the right type",
     obj_schema(spec={"type": "object", "properties": {"replicas": {"type": "integer", "default": "x"}}}),
     [f'{P}.properties[spec].properties[replicas].default: Invalid value: "string": '
      f'{P}.properties[spec].properties[replicas].default in body must be of type integer: "string"']),
    ("defaults must be pruned",
     obj_schema(o={"type": "object", "default": {"unknown": 1}, "properties": {"a": {"type": "string"}}}),
     [f'{P}.properties[o].default: Invalid value: map[string]interface {{}}{{"unknown":1}}: must not have unknown '
      "fields"]),
    ("defaults must pass the rules",
     obj_schema(a={"type": "integer", "default": 5, "x-kubernetes-validations": [{"rule": "self < 3",
                                                                                  "message": "small"}]}),
     [f'{P}.properties[a].default: Invalid value: "integer": small']),
    ("rules with line breaks need a message",
     obj_schema(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self >\n 1"}]}),
     [f"{P}.properties[a].x-kubernetes-validations[0].message: Required value: message must be specified if rule "
      "contains line breaks"]),
    ("empty rule and unknown reason",
     obj_schema(a={"type": "integer", "x-kubernetes-validations": [{"rule": " ", "reason": "Bad"}]}),
     [f"{P}.properties[a].x-kubernetes-validations[0].rule: Required value: rule is not specified",
      f'{P}.properties[a].x-kubernetes-validations[0].reason: Unsupported value: "Bad": supported values: '
      '"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"']),
    ("fieldPath must name a field",
     obj_schema(spec={"type": "object", "properties": {"a": {"type": "string"}},
                      "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".b"},
                                                   {"rule": "true", "fieldPath": ".a"}]}),
     [f'{P}.properties[spec].x-kubernetes-validations[0].fieldPath: Invalid value: ".b": must be a valid path']),
    ("patterns use Go's (RE2) syntax", obj_schema(a={"type": "string", "pattern": "^(?=x)"}, b={
        "type": "string", "pattern": "[a"}),
     [f'{P}.properties[a].pattern: Invalid value: "^(?=x)": must be a valid regular expression, but isn\'t: '
      "error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
      f'{P}.properties[b].pattern: Invalid value: "[a": must be a valid regular expression, but isn\'t: '
      "error parsing regexp: missing closing ]: `[a`"]),
    ("a rule that does not return a bool",
     obj_schema(a={"type": "integer", "x-kubernetes-validations": [{"rule": "1 + 1"}]}),
     [f'{P}.properties[a].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{{Rule:"1 + 1"'
      ', Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
      "OptionalOldSelf:(*bool)(nil)}: cel expression must evaluate to a bool"]),
    ("messageExpression must give a string",
     obj_schema(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 1", "messageExpression": "1"}]}),
     [f'{P}.properties[a].x-kubernetes-validations[0].messageExpression: Invalid value: apiextensions.'
      'ValidationRule{Rule:"self > 1", Message:"", MessageExpression:"1", Reason:(*apiextensions.'
      'FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: messageExpression must evaluate '
      "to a string"]),
    ("optionalOldSelf without oldSelf",
     obj_schema(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 1", "optionalOldSelf": True}]}),
     [f"{P}.properties[a].x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may not be set if "
      "oldSelf is not used in rule"]),
    ("oldSelf where values cannot be correlated",
     obj_schema(l={"type": "array", "items": {"type": "string",
                                              "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}),
     [f'{P}.properties[l].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot '
      f"be used on the uncorrelatable portion of the schema within {P}.properties[l]"]),
    ("oldSelf in list-map items is fine",
     obj_schema(l={"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                   "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}},
                             "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}), []),
]


@pytest.mark.parametrize("name,schema,expected", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_errors(name, schema, expected):
    assert messages(schema_errors(schema, P)) == expected


def test_rule_compile_errors_carry_the_compiler_message():
    errors = schema_errors(obj_schema(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self ==="}]}), P)
    assert len(errors) == 1
    assert errors[0].field == f"{P}.properties[a].x-kubernetes-validations[0].rule"
    assert "compilation failed: ERROR: <input>:1:" in errors[0].message()


# --- pruning ---

SPEC = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 1, "default": 1},
                "image": {"type": "string", "maxLength": 10, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["Auto", "Locked"]},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "maxItems": 3,
                          "items": {"type": "object", "required": ["name"],
                                    "properties": {"name": {"type": "string"},
                                                   "port": {"type": "integer", "format": "int32",
                                                            "default": 80}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
                "size": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "when": {"type": "string", "format": "date-time"},
                "note": {"type": "string", "nullable": True},
                "ratio": {"type": "number", "maximum": 1, "exclusiveMaximum": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                          "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                "settings": {"type": "object", "default": {},
                             "properties": {"level": {"type": "string", "default": "info"}}},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def cr(**spec) -> dict:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def test_prune_drops_unknown_fields_and_keeps_resource_meta():
    schema = CompiledSchema(SPEC)
    obj = cr(image="nginx", junk=1, ports=[{"name": "a", "bogus": True}],
             extra={"anything": {"goes": 1}, "known": {"a": "x", "b": "pruned"}},
             template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "spec": {"y": 2}})
    obj["top"] = 1
    obj["status"] = {"whatever": [1, 2]}
    obj["metadata"]["custom"] = 1  # the root's metadata is the apiserver's business
    unknown = schema.prune(obj)
    assert unknown == ["spec.extra.known.b", "spec.junk", "spec.ports[0].bogus", "spec.template.metadata.x", "top"]
    expected = cr(image="nginx", ports=[{"name": "a"}], extra={"anything": {"goes": 1}, "known": {"a": "x"}},
                  template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"y": 2}})
    expected["metadata"]["custom"] = 1
    assert obj == expected | {"status": {"whatever": [1, 2]}}


def test_prune_empties_objects_under_schemaless_additional_properties():
    schema = CompiledSchema(obj_schema(m={"type": "object", "additionalProperties": True}))
    obj = {"m": {"a": 1, "b": {"c": 2}}}
    schema.prune(obj)
    assert obj == {"m": {"a": 1, "b": {}}}


# --- defaulting ---

def test_default_fills_nested_defaults_and_null_fields():
    schema = CompiledSchema(SPEC)
    obj = cr(image="nginx", replicas=None, note=None, mode=None, ports=[{"name": "a"}, {"name": "b", "port": None}])
    schema.default(obj)
    assert obj["spec"] == {"image": "nginx", "replicas": 1, "note": None,
                           "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}],
                           "settings": {"level": "info"}}


def test_default_does_not_touch_present_values():
    schema = CompiledSchema(SPEC)
    obj = cr(image="nginx", replicas=3, settings={"level": "debug"})
    schema.default(obj)
    assert obj["spec"]["replicas"] == 3 and obj["spec"]["settings"] == {"level": "debug"}


# --- validation ---

VALIDATION_CASES = [
    ("valid", cr(image="nginx", replicas=2), []),
    ("wrong type", cr(image="nginx", replicas="3"),
     ['spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"']),
    ("required", cr(replicas=2), ["spec.image: Required value"]),
    ("minimum", cr(image="nginx", replicas=0),
     ["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]),
    ("exclusive maximum", cr(image="nginx", ratio=1.0),
     ["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"]),
    ("enum", cr(image="nginx", mode="x"),
     ['spec.mode: Unsupported value: "x": supported values: "Auto", "Locked"']),
    ("max length", cr(image="abcdefghijkl"), ["spec.image: Too long: may not be more than 10 bytes"]),
    ("pattern", cr(image="ABC"), ["spec.image: Invalid value: \"ABC\": spec.image in body should match '^[a-z]+$'"]),
    ("max items", cr(image="a", ports=[{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]),
     ["spec.ports: Too many: 4: must have at most 3 items"]),
    ("max properties", cr(image="a", labels={"a": "1", "b": "2", "c": "3"}),
     ["spec.labels: Too many: 3: must have at most 2 items"]),
    ("additionalProperties values", cr(image="a", labels={"a": 1}),
     ['spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"']),
    ("format", cr(image="a", when="yesterday"),
     ['spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"']),
    ("valid format", cr(image="a", when="2024-01-02T03:04:05Z"), []),
    ("int32 range", cr(image="a", ports=[{"name": "a", "port": 2**31}]),
     ['<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.ports[0].port']),
    ("null where not nullable", cr(image=None),
     ['spec.image: Invalid value: "null": spec.image in body must be of type string: "null"']),
    ("nullable", cr(image="a", note=None), []),
    ("int-or-string accepts both", cr(image="a", size="10Gi"), []),
    ("int-or-string rejects others", cr(image="a", size=True),
     ['spec.size: Invalid value: "boolean": spec.size in body must be of type integer,string: "boolean"',
      '<nil>: Invalid value: "": "spec.size" must validate at least one schema (anyOf)',
      'spec.size: Invalid value: "boolean": spec.size in body must be of type integer: "boolean"']),
    ("set duplicates", cr(image="a", tags=["a", "b", "a", "a"]), ['spec.tags[2]: Duplicate value: "a"']),
    ("map duplicates", cr(image="a", ports=[{"name": "a"}, {"name": "a", "port": 1}]),
     ['spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a"}']),
    ("embedded resource", cr(image="a", template={"kind": "pod_x", "metadata": {"name": "a/b"}}),
     ["spec.template.apiVersion: Required value",
      'spec.template.kind: Invalid value: "pod_x": may have mixed case, but should otherwise match: a DNS-1035 '
      "label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and "
      "end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
      "'[a-z]([-a-z0-9]*[a-z0-9])?')",
      "spec.template.metadata.name: Invalid value: \"a/b\": may not contain '/'"]),
]


# cases from upstream's pkg/apiserver/validation TestValidateCustomResource (compared as sets there)
FIELD = {"type": "object", "nullable": False}
UPSTREAM_CASES = [
    (FIELD, {"field": "foo"}, ['field: Invalid value: "string": field in body must be of type object: "string"']),
    (FIELD, {"field": 1.2}, ['field: Invalid value: "number": field in body must be of type object: "number"']),
    (FIELD, {"field": None}, ['field: Invalid value: "null": field in body must be of type object: "null"']),
    ({"type": "object", "nullable": True}, {"field": None}, []),
    ({"nullable": True}, {"field": [1]}, []),
    ({"x-kubernetes-int-or-string": True}, {"field": None},
     ['field: Invalid value: "null": field in body must be of type integer,string: "null"']),
    ({"x-kubernetes-int-or-string": True}, {"field": 1.2},
     ['field: Invalid value: "number": field in body must be of type integer,string: "number"']),
    ({"x-kubernetes-int-or-string": True, "nullable": True}, {"field": None}, []),
    ({"x-kubernetes-int-or-string": True, "nullable": True, "allOf": [{"anyOf": [{"type": "integer"},
                                                                                  {"type": "string"}]}]},
     {"field": []},
     ['field: Invalid value: "array": field in body must be of type integer,string: "array"',
      '<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)',
      'field: Invalid value: "array": field in body must be of type integer: "array"',
      '<nil>: Invalid value: "": "field" must validate all the schemas (allOf). None validated']),
    ({"type": "object", "required": ["nested"], "properties": {"nested": {}}}, {"field": {}},
     ["field.nested: Required value"]),
    ({"type": "object", "properties": {"nestedint": {"type": "integer", "enum": [1, 2]},
                                       "nestedstring": {"type": "string", "enum": ["a", "b"]}}},
     {"field": {"nestedint": "x", "nestedstring": True}},
     ['field.nestedint: Invalid value: "string": field.nestedint in body must be of type integer: "string"',
      'field.nestedint: Unsupported value: "x": supported values: "1", "2"',
      'field.nestedstring: Invalid value: "boolean": field.nestedstring in body must be of type string: "boolean"',
      'field.nestedstring: Unsupported value: true: supported values: "a", "b"']),
    ({"type": "object", "maxProperties": 2}, {"field": {"a": True, "b": True, "c": True}},
     ["field: Too many: 3: must have at most 2 items"]),
    ({"type": "array", "maxItems": 1, "items": {"type": "string"}}, {"field": ["a", "b"]},
     ["field: Too many: 2: must have at most 1 items"]),
    ({"type": "string", "maxLength": 2}, {"field": "abc"}, ["field: Too long: may not be more than 2 bytes"]),
]


@pytest.mark.parametrize("field,obj,expected", UPSTREAM_CASES)
def test_upstream_validation_cases(field, obj, expected):
    assert messages(CompiledSchema(obj_schema(field=field)).validate(obj)) == expected


@pytest.mark.parametrize("name,obj,expected", VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES])
def test_validate(name, obj, expected):
    assert messages(CompiledSchema(SPEC).validate(obj)) == expected


def test_validation_errors_have_upstream_reasons():
    errors = CompiledSchema(SPEC).validate(cr(replicas="x", mode="y", image="abcdefghijkl"))
    assert {e.field: e.reason for e in errors} == {
        "spec.replicas": "FieldValueTypeInvalid", "spec.mode": "FieldValueNotSupported",
        "spec.image": "FieldValueTooLong"}


def test_ratcheting_keeps_errors_of_unchanged_values():
    schema = CompiledSchema(SPEC)
    old = cr(image="BAD", replicas=0)
    assert schema.validate(cr(image="BAD", replicas=0, mode="Auto"), old) == []
    assert messages(schema.validate(cr(image="BAD", replicas=-1), old)) == [
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 1"]


def test_ratcheting_tells_json_types_apart():
    schema = CompiledSchema(SPEC)
    assert messages(schema.validate(cr(image="a", replicas=True), cr(image="a", replicas=1))) == [
        'spec.replicas: Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"']


def test_list_uniqueness_is_not_enforced_when_the_old_object_broke_it():
    schema = CompiledSchema(SPEC)
    old = cr(image="a", tags=["x", "x"])
    assert schema.validate(cr(image="a", tags=["x", "x", "y"]), old) == []
    assert messages(schema.validate(cr(image="a", tags=["x", "x"]))) == ['spec.tags[1]: Duplicate value: "x"']


# --- CEL rules ---

RULES = obj_schema(spec={
    "type": "object",
    "properties": {
        "replicas": {"type": "integer"},
        "minReplicas": {"type": "integer"},
        "mode": {"type": "string"},
        "name": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self.startsWith('w-')", "messageExpression": "'name ' + self + ' must start with w-'"}]},
        "items": {"type": "array", "items": {"type": "string"}, "x-kubernetes-validations": [
            {"rule": "self.all(x, x.size() < 5)", "message": "items too long", "reason": "FieldValueForbidden"}]},
        "limits": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True,
                                                                "x-kubernetes-validations": [
            {"rule": "isQuantity(string(self)) && quantity(string(self)).isLessThan(quantity('1Gi'))",
             "message": "limit too large"}]}},
    },
    "x-kubernetes-validations": [
        {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be >= minReplicas",
         "fieldPath": ".replicas"},
        {"rule": "!has(oldSelf.mode) || oldSelf.mode != 'Locked' || self.replicas == oldSelf.replicas",
         "message": "replicas are locked", "reason": "FieldValueForbidden"},
        {"rule": "self.?mode.orValue('') != 'Bad'", "reason": "FieldValueRequired"},
    ],
})


def rules_cr(**spec) -> dict:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"replicas": 2, "minReplicas": 1} | spec}


CEL_CASES = [
    ("passing", rules_cr(name="w-1", items=["a"], limits={"cpu": "500Mi", "n": 3}), None, []),
    ("message and fieldPath", rules_cr(minReplicas=5), None,
     ['spec.replicas: Invalid value: "object": replicas must be >= minReplicas']),
    ("messageExpression on a string", rules_cr(name="x"), None,
     ['spec.name: Invalid value: "string": name x must start with w-']),
    ("reason Forbidden on a list", rules_cr(items=["abcdef"]), None, ["spec.items: Forbidden: items too long"]),
    ("reason Required with the default message", rules_cr(mode="Bad"), None,
     ["spec: Required value: failed rule: self.?mode.orValue('') != 'Bad'"]),
    ("rules on map values", rules_cr(limits={"mem": "2Gi"}), None,
     ['spec.limits[mem]: Invalid value: "": limit too large']),
    ("transition rule on update", rules_cr(mode="Locked", replicas=3), rules_cr(mode="Locked"),
     ["spec: Forbidden: replicas are locked"]),
    ("transition rule skipped on create", rules_cr(mode="Locked", replicas=3), None, []),
    ("runtime error", rules_cr(replicas=None) | {"spec": {"minReplicas": 1}}, None,
     ['spec: Invalid value: "object": no such key: replicas evaluating rule: replicas must be >= minReplicas']),
]


@pytest.mark.parametrize("name,obj,old,expected", CEL_CASES, ids=[c[0] for c in CEL_CASES])
def test_rules(name, obj, old, expected):
    assert messages(CompiledSchema(RULES).validate(obj, old)) == expected


def test_rules_are_blocked_by_type_errors():
    errors = CompiledSchema(RULES).validate(rules_cr(replicas="x", minReplicas=5))
    assert messages(errors) == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation"]


def test_caller_errors_block_rules_too():
    from pyk8s.api.errors import required
    errors = CompiledSchema(RULES).validate(rules_cr(minReplicas=5), prior_errors=[required("metadata.name")])
    assert [e.field for e in errors] == ["<nil>"]


def test_optional_old_self_runs_on_create():
    schema = CompiledSchema(obj_schema(spec={"type": "object", "properties": {"v": {"type": "integer"}},
                                             "x-kubernetes-validations": [{
                                                 "rule": "oldSelf.hasValue() ? self.v >= oldSelf.value().v : "
                                                         "self.v == 1",
                                                 "optionalOldSelf": True, "message": "bad v"}]}))
    assert messages(schema.validate({"spec": {"v": 2}})) == ['spec: Invalid value: "object": bad v']
    assert schema.validate({"spec": {"v": 1}}) == []
    assert messages(schema.validate({"spec": {"v": 1}}, {"spec": {"v": 2}})) == ['spec: Invalid value: "object": bad v']


def test_root_rules_see_only_name_and_generate_name_in_metadata():
    schema = CompiledSchema({"type": "object", "x-kubernetes-validations": [
        {"rule": "self.metadata.name == 'a' && self.kind == 'Widget' && self.metadata.size() == 1"}]})
    assert schema.validate({"kind": "Widget", "metadata": {"name": "a", "labels": {"x": "y"}}}) == []
    errors = schema_errors({"type": "object", "x-kubernetes-validations": [{"rule": "has(self.metadata.labels)"}]}, P)
    assert [e.field for e in errors] == [f"{P}.x-kubernetes-validations[0].rule"]
    assert "undefined field 'labels'" in errors[0].detail


def test_runaway_rule_is_stopped_before_it_runs():
    schema = CompiledSchema(obj_schema(l={"type": "array", "items": {"type": "integer"}, "x-kubernetes-validations": [
        {"rule": "self.all(a, self.all(b, self.all(c, a + b + c >= 0)))"}, {"rule": "false"}]}))
    assert messages(schema.validate({"l": list(range(10))})) == ['l: Invalid value: "array": failed rule: false']
    errors = schema.validate({"l": list(range(1000))})
    assert messages(errors) == [
        "l: Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further validation "
        "rules will be run due to call cost exceeds limit for rule: self.all(a, self.all(b, self.all(c, a + b + c "
        ">= 0)))"]


def test_long_strings_beside_a_loop_do_not_trip_the_guard():
    schema = CompiledSchema(obj_schema(spec={
        "type": "object", "x-kubernetes-validations": [{"rule": "self.ports.all(p, p.name.startsWith('p-'))"}],
        "properties": {"script": {"type": "string"}, "ports": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"}}}}}}))
    obj = {"metadata": {"annotations": {"a": "x" * 200_000}},
           "spec": {"script": "y" * 200_000, "ports": [{"name": f"p-{i}"} for i in range(200)]}}
    assert schema.validate(obj) == []


def test_patterns_match_in_linear_time():
    schema = CompiledSchema(obj_schema(a={"type": "string", "pattern": "^(a+)+$"}, b={
        "type": "string", "x-kubernetes-validations": [{"rule": "self.find('(a+)+b') == ''"}]}))
    evil = "a" * 5000 + "!"
    assert messages(schema.validate({"a": evil, "b": evil})) == [
        f"a: Invalid value: \"{evil}\": a in body should match '^(a+)+$'"]


def test_small_inputs_run_the_same_rule():
    schema = CompiledSchema(obj_schema(l={"type": "array", "items": {"type": "integer"}, "x-kubernetes-validations": [
        {"rule": "self.all(a, self.all(b, a + b >= 0))", "message": "negative"}]}))
    assert schema.validate({"l": [1, 2, 3]}) == []
    assert messages(schema.validate({"l": [1, -5]})) == ['l: Invalid value: "array": negative']


# --- list_type ---

def test_list_type_reports_ssa_metadata():
    schema = CompiledSchema(SPEC | {"properties": SPEC["properties"] | {
        "m": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}}}})
    assert schema.list_type(("spec", "ports")) == ListType("map", ["name"], None)
    assert schema.list_type(("spec", "tags")) == ListType("set", [], None)
    assert schema.list_type(("m",)) == ListType(None, [], "atomic")
    assert schema.list_type(("spec", "image")) is None
    assert schema.list_type(("spec", "nope")) is None


# --- Go number rendering ---

@pytest.mark.parametrize("value,text", [(1.0, "1"), (0.5, "0.5"), (1e6, "1e+06"), (123456.0, "123456"),
                                        (1e21, "1e+21"), (1234567.0, "1.234567e+06"), (1.5e-5, "1.5e-05"),
                                        (-2.25, "-2.25")])
def test_go_float(value, text):
    assert go_float(value) == text


# --- properties ---

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["image", "ports", "name", "x", "spec"]),
                                                    children, max_size=3)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["spec", "status", "metadata", "junk"]), json_values, max_size=4))
def test_pruning_is_idempotent(obj):
    schema = CompiledSchema(SPEC)
    once = copy.deepcopy(obj)
    schema.prune(once)
    twice = copy.deepcopy(once)
    assert schema.prune(twice) == []
    assert twice == once


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={
    "replicas": st.one_of(st.none(), st.integers(1, 5)),
    "ports": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b"])},
                                            optional={"port": st.one_of(st.none(), st.integers(1, 9))}), max_size=2),
    "settings": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"level": st.sampled_from(["x", None])})),
}))
def test_defaulted_fields_are_never_reported_missing(spec):
    properties = SPEC["properties"]["spec"]["properties"] | {
        "settings": {"type": "object", "default": {}, "required": ["level"],
                     "properties": {"level": {"type": "string", "default": "info"}}}}
    schema = CompiledSchema(obj_schema(spec={"type": "object", "required": ["replicas", "settings"],
                                             "properties": properties}))
    obj = {"spec": copy.deepcopy(spec)}
    schema.prune(obj)
    schema.default(obj)
    missing = [e for e in schema.validate(obj) if e.type == "Required" or "null" in e.message()]
    defaulted = ("spec.replicas", "spec.settings", "spec.settings.level", "spec.ports[0].port", "spec.ports[1].port")
    assert [e for e in missing if e.field in defaulted] == []


def test_preserve_unknown_root_keeps_metadata_whole():
    schema = CompiledSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                             "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}}})
    obj = {"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"gone": 1}, "other": 2}
    assert schema.prune(obj) == ["spec.gone"]
    assert obj == {"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {}, "other": 2}


def test_keywords_of_the_wrong_json_type_are_reported_not_crashed_on():
    schema = obj_schema(a={"type": "string", "maxLength": "5", "required": "x", "minimum": True,
                           "properties": {"b": 3}, "x-kubernetes-validations": [{"rule": 1}, "x"],
                           "x-kubernetes-list-map-keys": [{"a": 1}]})
    assert messages(schema_errors(schema, P)) == [
        f'{P}.properties[a].minimum: Invalid value: "bool": must be of type number',
        f'{P}.properties[a].maxLength: Invalid value: "string": must be of type integer',
        f'{P}.properties[a].required: Invalid value: "string": must be of type array of strings',
        f'{P}.properties[a].x-kubernetes-list-map-keys: Invalid value: "[]interface {{}}": must be of type array '
        "of strings",
        f'{P}.properties[a].properties[b]: Invalid value: "int64": must be an object',
        f'{P}.properties[a].x-kubernetes-validations[0].rule: Invalid value: "int64": must be of type string',
        f'{P}.properties[a].x-kubernetes-validations[1]: Invalid value: "string": must be an object']
    assert messages(schema_errors([], P)) == [f'{P}: Invalid value: "[]interface {{}}": must be an object']
    assert CompiledSchema(schema).validate({"a": "long string"}) == []


def test_unchanged_values_still_run_transition_rules():
    schema = CompiledSchema(obj_schema(spec={"type": "object", "properties": {"v": {"type": "integer"}},
                                             "x-kubernetes-validations": [
                                                 {"rule": "self.v > oldSelf.v", "message": "v must grow"},
                                                 {"rule": "self.v < 0", "message": "ratcheted"}]}))
    old = {"spec": {"v": 1}, "other": 1}
    assert messages(schema.validate({"spec": {"v": 1}, "other": 2}, old)) == [
        'spec: Invalid value: "object": v must grow']
    assert messages(schema.validate({"spec": {"v": 2}}, old)) == ['spec: Invalid value: "object": ratcheted']


def _schemas(depth: int = 2):
    leaf = st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])}, optional={
        "maxLength": st.integers(0, 3), "minimum": st.integers(-1, 1), "enum": st.lists(json_scalars, max_size=2),
        "pattern": st.sampled_from(["^a", "[", "(?=x)"]), "format": st.sampled_from(["date-time", "int32", "uuid"]),
        "nullable": st.booleans(), "default": json_scalars,
        "x-kubernetes-validations": st.lists(st.fixed_dictionaries({"rule": st.sampled_from(
            ["self == self", "self.x", "oldSelf == self", "size(self) > 0", ")"])}), max_size=1)})
    if depth == 0:
        return leaf
    child = _schemas(depth - 1)
    return st.one_of(
        leaf,
        st.fixed_dictionaries({"type": st.just("object")}, optional={
            "properties": st.dictionaries(st.sampled_from(["a", "b", "metadata"]), child, max_size=2),
            "required": st.lists(st.sampled_from(["a", "b"]), max_size=2),
            "x-kubernetes-preserve-unknown-fields": st.just(True), "maxProperties": st.integers(0, 2)}),
        st.fixed_dictionaries({"type": st.just("object"), "additionalProperties": child}),
        st.fixed_dictionaries({"type": st.just("array"), "items": child}, optional={
            "x-kubernetes-list-type": st.sampled_from(["atomic", "set", "map"]),
            "x-kubernetes-list-map-keys": st.just(["a"]), "maxItems": st.integers(0, 2)}),
        st.fixed_dictionaries({"x-kubernetes-int-or-string": st.just(True)}),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["spec", "status"]), _schemas(), max_size=2), json_values, json_values)
def test_the_engine_never_crashes(properties, spec, old_spec):
    schema = {"type": "object", "properties": properties}
    if schema_errors(schema, P):
        return
    compiled = CompiledSchema(schema)
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec}
    compiled.prune(obj)
    compiled.default(obj)
    compiled.validate(obj)
    compiled.validate(obj, {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": old_spec})
