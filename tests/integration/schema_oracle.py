"""Validate what the server returns against the strict v1.32 schemas shipped by kubernetes-validate."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

import jsonschema
from referencing import Registry, Resource

_SCHEMA_DIR = resources.files("kubernetes_validate") / "kubernetes-json-schema" / "v1.32.0-local-strict"


@functools.cache
def _registry() -> Registry:
    definitions = json.loads((_SCHEMA_DIR / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _validator(kind: str, api_version: str) -> jsonschema.Validator:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = json.loads((_SCHEMA_DIR / f"{kind.lower()}-{group_version}.json").read_text())
    registry = Resource.from_contents(schema) @ _registry()
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def assert_valid(obj: dict) -> None:
    """Raise AssertionError with every violation if `obj` does not match its strict v1.32 schema."""
    validator = _validator(obj["kind"], obj["apiVersion"])
    problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    assert not problems, f"{obj['kind']} {obj.get('metadata', {}).get('name')} violates the v1.32 schema: {problems}"
