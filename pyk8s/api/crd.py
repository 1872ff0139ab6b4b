"""CustomResourceDefinitions as the rest of pyk8s sees them: their defaults, their conditions,
and the `Kind`s (with schema, printer columns and scale paths) that serve their custom resources.

The CRD object itself is a plain dict in the apiextensions.k8s.io/v1 shape; validation lives in
`pyk8s.api.crd_validation`, the controllers that act on CRDs in `pyk8s.apiserver.crds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from . import jsonpath, managed_fields, printers
from .kinds import SCALE, STATUS, Kind
from .meta import now_rfc3339

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
# Upstream's printer column for custom resources whose version declares none.
DEFAULT_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


# ---------------------------------------------------------------------------------------------
# Reading a CRD


def spec(crd: dict) -> dict:
    return crd.get("spec") or {}


def versions(crd: dict) -> list[dict]:
    return [v for v in spec(crd).get("versions") or [] if isinstance(v, dict)]


def storage_version(crd: dict) -> str:
    return next((v.get("name", "") for v in versions(crd) if v.get("storage")), "")


def condition(crd: dict, type_: str) -> dict | None:
    return next((c for c in (crd.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def condition_true(crd: dict, type_: str) -> bool:
    cond = condition(crd, type_)
    return cond is not None and cond.get("status") == "True"


def set_condition(crd: dict, type_: str, status: str, reason: str, message: str) -> None:
    """Add or replace a condition; lastTransitionTime changes only when the status does."""
    conditions = crd.setdefault("status", {}).setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = now_rfc3339()
            cond.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": type_, "status": status, "lastTransitionTime": now_rfc3339(), "reason": reason,
                       "message": message})


# ---------------------------------------------------------------------------------------------
# Defaults (the CustomResourceDefinition kind's defaulting, called by the REST strategy)


def default(crd: dict) -> None:
    """Upstream's v1 defaults plus the storage version recorded in status.storedVersions."""
    crd_spec = crd.setdefault("spec", {})
    names = crd_spec.setdefault("names", {})
    if not names.get("singular") and names.get("kind"):
        names["singular"] = str(names["kind"]).lower()
    if not names.get("listKind") and names.get("kind"):
        names["listKind"] = f"{names['kind']}List"
    if not crd_spec.get("conversion"):
        crd_spec["conversion"] = {"strategy": "None"}
    elif crd_spec["conversion"].get("strategy") == "Webhook":
        webhook = crd_spec["conversion"].get("webhook") or {}
        client = webhook.get("clientConfig") or {}
        if isinstance(client.get("service"), dict):
            client["service"].setdefault("port", 443)
    status = crd.setdefault("status", {})
    status.setdefault("acceptedNames", {"plural": "", "kind": ""})
    stored = status.setdefault("storedVersions", [])
    storage = storage_version(crd)
    if storage and storage not in stored:
        stored.append(storage)


# ---------------------------------------------------------------------------------------------
# Serving custom resources


@dataclass
class CustomResource:
    """What one served version of a CRD adds to its Kind."""

    schema: Any  # pyk8s.api.structural.CompiledSchema, or None when the version has no schema
    printer: printers.Printer
    openapi_schema: dict
    field_types: managed_fields.TypeInfo  # how managedFields and server-side apply see the schema
    terminating: bool = False  # the CRD is being deleted: no new instances
    # specReplicasPath, statusReplicasPath, labelSelectorPath of the scale subresource, parsed
    scale_steps: dict[str, tuple] = field(default_factory=dict)


def _column_definition(column: dict) -> dict:
    return {"name": column.get("name", ""), "type": column.get("type", "string"),
            "format": column.get("format", ""), "description": column.get("description", ""),
            "priority": int(column.get("priority") or 0)}


def _cell(column_type: str, value: Any, now: datetime) -> Any:
    """upstream's cellForJSONValue: a typed cell, or None when the value does not fit the type."""
    if value is None:
        return None
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None
    if column_type == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "<invalid>"
        return printers.age(value, now)
    return None


def _string_cell(value: Any) -> str:
    """How JSONPath prints a value into a string column."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def column_printer(columns: list[dict]) -> printers.Printer:
    """The Table printer of a version: Name, then its additionalPrinterColumns (or Age)."""
    compiled = []
    for column in columns or DEFAULT_COLUMNS:
        try:
            steps = jsonpath.parse(column.get("jsonPath", ""))
        except jsonpath.JSONPathError:
            steps = None
        compiled.append((column.get("type", "string"), steps))
    definitions = (printers.DEFAULT.columns[0], *(_column_definition(c) for c in columns or DEFAULT_COLUMNS))

    def cells(obj: dict, now: datetime) -> list:
        row: list = [(obj.get("metadata") or {}).get("name", "")]
        for column_type, steps in compiled:
            found = jsonpath.find(obj, steps) if steps is not None else []
            if not found:
                row.append(None)
            elif column_type == "string":
                row.append(_string_cell(found[0]))
            else:
                row.append(_cell(column_type, found[0], now))
        return row

    return printers.Printer(definitions, cells)


def _definition_name(group: str, version: str, kind: str) -> str:
    """Upstream's OpenAPI name for a custom kind: the reversed group, version, kind."""
    return ".".join([*reversed(group.split(".")), version, kind])


def openapi_schema(group: str, version: str, kind: str, schema: dict | None) -> dict:
    """The OpenAPI v3 component schema of a custom kind, with the standard fields filled in."""
    out = dict(schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    props = dict(out.get("properties") or {})
    props["apiVersion"] = {"description": "APIVersion defines the versioned schema of this representation of an "
                                          "object.", "type": "string"}
    props["kind"] = {"description": "Kind is a string value representing the REST resource this object "
                                    "represents.", "type": "string"}
    props["metadata"] = {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1."
                                            "ObjectMeta"}],
                         "description": "Standard object's metadata."}
    out["properties"] = props
    out.setdefault("type", "object")
    out["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return out


def list_schema(group: str, version: str, kind: str, list_kind: str) -> dict:
    return {
        "description": f"{list_kind} is a list of {kind}",
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"description": f"List of {kind.lower()}s.",
                      "items": {"$ref": f"#/components/schemas/{_definition_name(group, version, kind)}"},
                      "type": "array"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]},
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": group, "kind": list_kind, "version": version}],
    }


def definition_names(kind: Kind) -> tuple[str, str]:
    return (_definition_name(kind.group, kind.version, kind.kind),
            _definition_name(kind.group, kind.version, kind.kind + "List"))


def _rewrite_api_version(api_version: str):
    def rewrite(obj: dict) -> dict:
        obj = dict(obj)
        obj["apiVersion"] = api_version
        return obj

    return rewrite


def kinds(crd: dict, compile_schema) -> list[Kind]:
    """The Kinds serving a CRD's versions (under its accepted names); `compile_schema(schema)` gives the
    CompiledSchema of a version's openAPIV3Schema. Conversion is None: only apiVersion changes."""
    crd_spec, status = spec(crd), crd.get("status") or {}
    names = status.get("acceptedNames") or {}
    group = crd_spec.get("group", "")
    storage = storage_version(crd)
    all_versions = versions(crd)
    terminating = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
    out = []
    for version in all_versions:
        name = version.get("name", "")
        subresources = version.get("subresources") or {}
        status_enabled = isinstance(subresources.get("status"), dict)
        scale = subresources.get("scale") if isinstance(subresources.get("scale"), dict) else None
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        custom = CustomResource(
            schema=compile_schema(schema) if schema else None,
            printer=column_printer(version.get("additionalPrinterColumns") or []),
            openapi_schema=openapi_schema(group, name, names.get("kind", ""), schema),
            field_types=managed_fields.type_info_from_schema(f"{group}/{name}", names.get("kind", ""), schema,
                                                             status_subresource=status_enabled),
            terminating=terminating)
        for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath"):
            if scale and scale.get(key):
                try:
                    steps = jsonpath.parse(scale[key])
                except jsonpath.JSONPathError:
                    continue  # validation only asks for a leading "."; such a path reads as absent
                if jsonpath.is_simple(steps):
                    custom.scale_steps[key] = steps
        subs = tuple(s for s, on in ((STATUS, status_enabled), (SCALE, scale is not None)) if on)
        selectable = tuple(str(f.get("jsonPath", "")).lstrip(".") for f in version.get("selectableFields") or []
                           if isinstance(f, dict))
        multi = len(all_versions) > 1
        out.append(Kind(
            group, name, names.get("kind", ""), names.get("plural", ""), names.get("singular", ""),
            namespaced=crd_spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()), subresources=subs, tracks_generation=True,
            selectable_fields=selectable,
            storage_of=None if name == storage else (group, storage),
            to_storage=_rewrite_api_version(f"{group}/{storage}") if multi else None,
            from_storage=_rewrite_api_version(f"{group}/{name}") if multi else None,
            served=bool(version.get("served")), custom=custom))
    return out
