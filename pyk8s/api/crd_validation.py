"""Validation of CustomResourceDefinitions with upstream's messages and field paths
(apiextensions-apiserver's ValidateCustomResourceDefinition / ...Update, v1 rules).

The schemas themselves (structural rules, CEL rules that do not compile) are checked by the
schema engine, `pyk8s.api.structural.schema_errors`.
"""

from __future__ import annotations

from .crd import condition_true, storage_version
from .errors import FieldError, forbidden, invalid, not_supported, required
from .validation import is_dns1035_label, is_dns1123_subdomain

PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
MAX_SELECTABLE_FIELDS = 8
# JSON names of the JSONSchemaProps fields allowed at the root when the status subresource is enabled,
# with the Go names upstream's message lists.
_ROOT_FIELDS = {
    "description": "Description", "type": "Type", "format": "Format", "title": "Title", "maximum": "Maximum",
    "exclusiveMaximum": "ExclusiveMaximum", "minimum": "Minimum", "exclusiveMinimum": "ExclusiveMinimum",
    "maxLength": "MaxLength", "minLength": "MinLength", "pattern": "Pattern", "maxItems": "MaxItems",
    "minItems": "MinItems", "uniqueItems": "UniqueItems", "multipleOf": "MultipleOf", "required": "Required",
    "items": "Items", "properties": "Properties", "externalDocs": "ExternalDocs", "example": "Example",
    "x-kubernetes-preserve-unknown-fields": "XPreserveUnknownFields", "x-kubernetes-validations": "XValidations",
}
_SELECTABLE_TYPES = ("string", "boolean", "integer")


def _dns1035(path: str, value: str, lower: bool = False) -> list[FieldError]:
    errs = is_dns1035_label(value.lower() if lower else value)
    if not errs:
        return []
    detail = ",".join(errs)
    if lower:
        detail = "may have mixed case, but should otherwise match: " + detail
    return [invalid(path, value, detail)]


def _names(names: dict, path: str) -> list[FieldError]:
    """ValidateCustomResourceDefinitionNames (spec.names and status.acceptedNames)."""
    errs: list[FieldError] = []
    for key, lower in (("plural", False), ("singular", False), ("kind", True), ("listKind", True)):
        value = names.get(key) or ""
        if value:
            errs += _dns1035(f"{path}.{key}", value, lower)
    for i, short in enumerate(names.get("shortNames") or []):
        errs += _dns1035(f"{path}.shortNames[{i}]", short)
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    for i, category in enumerate(names.get("categories") or []):
        errs += _dns1035(f"{path}.categories[{i}]", category)
    return errs


def _simple_json_path(path: str, value: str) -> list[FieldError]:
    if not value:
        return [invalid(path, value, "must not be empty")]
    if value[0] != ".":
        return [invalid(path, value, "must be a simple json path starting with .")]
    return []


def _status_root(schema: dict, path: str) -> list[FieldError]:
    """Only fields that survive extracting properties["status"] may sit at the root."""
    for key, value in schema.items():
        if value in (None, False, "", 0, [], {}):
            continue
        if key == "type":
            if value != "object":
                return [invalid(f"{path}.type", value,
                                'only "object" is allowed as the type at the root of the schema if the status '
                                "subresource is enabled")]
            continue
        if key not in _ROOT_FIELDS:
            allowed = " ".join(_ROOT_FIELDS.values())
            return [invalid(path, "object", f"only [{allowed}] fields are allowed at the root of the schema if "
                                            "the status subresource is enabled")]
    return []


def _scale(scale: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, prefix in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")):
        value = scale.get(key) or ""
        if not value:
            errs.append(required(f"{path}.{key}"))
            continue
        problems = _simple_json_path(f"{path}.{key}", value)
        if problems:
            errs += problems
        elif not value.startswith(prefix):
            errs.append(invalid(f"{path}.{key}", value, f"should be a json path under {prefix.rstrip('.')}"))
    selector = scale.get("labelSelectorPath") or ""
    if selector:
        problems = _simple_json_path(f"{path}.labelSelectorPath", selector)
        if problems:
            errs += problems
        elif not selector.startswith((".spec.", ".status.")):
            errs.append(invalid(f"{path}.labelSelectorPath", selector,
                                "should be a json path under either .spec or .status"))
    return errs


def _column(column: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not column.get("name"):
        errs.append(required(f"{path}.name"))
    kinds = ",".join(PRINTER_COLUMN_TYPES)
    if not column.get("type"):
        errs.append(required(f"{path}.type", f"must be one of {kinds}"))
    elif column["type"] not in PRINTER_COLUMN_TYPES:
        errs.append(invalid(f"{path}.type", column["type"], f"must be one of {kinds}"))
    if column.get("format") and column["format"] not in PRINTER_COLUMN_FORMATS:
        errs.append(invalid(f"{path}.format", column["format"], f"must be one of {','.join(PRINTER_COLUMN_FORMATS)}"))
    # upstream reports the column's path under its Go field name
    if not column.get("jsonPath"):
        errs.append(required(f"{path}.JSONPath"))
    else:
        errs += _simple_json_path(f"{path}.JSONPath", column["jsonPath"])
    return errs


def _schema_at(schema: dict, parts: list[str]) -> dict | None:
    node = schema
    for part in parts:
        props = node.get("properties") or {}
        if part not in props:
            return None
        node = props[part]
    return node


def _selectable_fields(fields: list, schema: dict | None, path: str) -> list[FieldError]:
    if not schema:
        return [invalid(path, "", "selectableFields may only be set when version.schema.openAPIV3Schema is "
                                  "not included")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, entry in enumerate(fields):
        field_path = f"{path}[{i}].jsonPath"
        value = (entry or {}).get("jsonPath", "") if isinstance(entry, dict) else ""
        if not value:
            errs.append(required(field_path))
            continue
        parts = value.lstrip(".").split(".")
        found = _schema_at(schema, parts) if value.startswith(".") and all(parts) else None
        if found is None:
            errs.append(invalid(field_path, value, "is an invalid path: does not refer to a valid field"))
            continue
        if parts[0] == "metadata":
            errs.append(invalid(field_path, value, "must not point to fields in metadata"))
        if found.get("type") not in _SELECTABLE_TYPES:
            errs.append(invalid(field_path, value, "must point to a field of type string, boolean or integer. Enum "
                                                   "string fields and strings with formats are allowed."))
        if value in seen:
            errs.append(FieldError("Duplicate", field_path, value))
        seen.add(value)
    if len(seen) > MAX_SELECTABLE_FIELDS:
        errs.append(FieldError("TooMany", path, detail=f"{len(seen)}: must have at most {MAX_SELECTABLE_FIELDS} "
                                                       "items"))
    return errs


def _schema_errors(schema: dict, path: str) -> list[FieldError]:
    from .structural import schema_errors  # the schema engine; imported when a CRD is first validated

    return schema_errors(schema, path)


def _deprecation_warning(version: dict, path: str) -> list[FieldError]:
    warning = version.get("deprecationWarning")
    if warning is None:
        return []
    if not version.get("deprecated"):
        return [invalid(path, warning, "can only be set for deprecated versions")]
    problems = []
    if len(warning) > 256:
        problems.append("must be <= 256 characters long")
    if not warning:
        problems.append("must not be an empty string")
    for i, char in enumerate(warning):
        if not char.isprintable():
            problems.append(f"must only contain printable UTF-8 characters; non-printable character found at index "
                            f"{i}")
            break
    return [invalid(path, warning, problem) for problem in problems]


def _version(version: dict, path: str) -> list[FieldError]:
    errs = _deprecation_warning(version, f"{path}.deprecationWarning")
    subresources = version.get("subresources") or {}
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    schema_path = f"{path}.schema.openAPIV3Schema"
    if not isinstance(schema, dict):
        errs.append(required(schema_path, "schemas are required"))
    else:
        if isinstance(subresources.get("status"), dict):
            errs += _status_root(schema, schema_path)
        errs += _schema_errors(schema, schema_path)
    if isinstance(subresources.get("scale"), dict):
        errs += _scale(subresources["scale"], f"{path}.subresources.scale")
    for i, column in enumerate(version.get("additionalPrinterColumns") or []):
        errs += _column(column if isinstance(column, dict) else {}, f"{path}.additionalPrinterColumns[{i}]")
    if version.get("selectableFields"):
        errs += _selectable_fields(version["selectableFields"], schema if isinstance(schema, dict) else None,
                                   f"{path}.selectableFields")
    return errs


def _conversion(conversion: dict, path: str) -> list[FieldError]:
    strategy = conversion.get("strategy") or ""
    if not strategy:
        return [required(f"{path}.strategy")]
    if strategy not in ("None", "Webhook"):
        return [not_supported(f"{path}.strategy", strategy, ["None", "Webhook"])]
    if strategy == "Webhook":
        # Calling conversion webhooks is not implemented; refusing beats serving unconverted objects.
        return [forbidden(f"{path}.strategy", 'Webhook conversion is not supported by this server; use "None" '
                                              "(versions that differ only in apiVersion)")]
    # upstream names the internal fields these v1 ones are converted to
    errs = []
    webhook = conversion.get("webhook") or {}
    if webhook.get("clientConfig") is not None:
        errs.append(forbidden(f"{path}.webhookClientConfig", "should not be set when strategy is not set to Webhook"))
    if webhook.get("conversionReviewVersions"):
        errs.append(forbidden(f"{path}.conversionReviewVersions",
                              "should not be set when strategy is not set to Webhook"))
    return errs


def _spec(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    group = spec.get("group") or ""
    if not group:
        errs.append(required("spec.group"))
    elif problems := is_dns1123_subdomain(group):
        errs.append(invalid("spec.group", group, ",".join(problems)))
    elif len(group.split(".")) < 2:
        errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope") or ""
    if not scope:
        errs.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    versions = spec.get("versions") or []
    names: set[str] = set()
    unique, storage_count = True, 0
    for i, version in enumerate(versions):
        version = version if isinstance(version, dict) else {}
        name = version.get("name") or ""
        storage_count += bool(version.get("storage"))
        if name in names:
            unique = False
        names.add(name)
        errs += [invalid(f"spec.versions[{i}].name", name, ",".join(p))] if (p := is_dns1035_label(name)) else []
        errs += _version(version, f"spec.versions[{i}]")
    summary = [v.get("name", "") for v in versions if isinstance(v, dict)]
    if not unique:
        errs.append(invalid("spec.versions", summary, "must contain unique version names"))
    if storage_count != 1:
        errs.append(invalid("spec.versions", summary, "must have exactly one version marked as storage version"))
    spec_names = spec.get("names") or {}
    for key in ("plural", "singular", "kind", "listKind"):
        if not spec_names.get(key):
            errs.append(required(f"spec.names.{key}"))
    errs += _names(spec_names, "spec.names")
    errs += _conversion(spec.get("conversion") or {"strategy": "None"}, "spec.conversion")
    if spec.get("preserveUnknownFields") is True:
        errs.append(invalid("spec.preserveUnknownFields", True, "cannot set to true, set "
                                                                "x-kubernetes-preserve-unknown-fields to true in "
                                                                "spec.versions[*].schema instead"))
    return errs


def _stored_versions(crd: dict) -> list[FieldError]:
    stored = list((crd.get("status") or {}).get("storedVersions") or [])
    if not stored:
        return [invalid("status.storedVersions", stored, "must have at least one stored version")]
    errs: list[FieldError] = []
    names = {v.get("name") for v in (crd.get("spec") or {}).get("versions") or [] if isinstance(v, dict)}
    storage = storage_version(crd)
    if storage and storage not in stored:
        errs.append(invalid("status.storedVersions", stored, f"must have the storage version {storage}"))
    for i, version in enumerate(stored):
        if version not in names:
            errs.append(invalid(f"status.storedVersions[{i}]", version, "must appear in spec.versions"))
    return errs


def custom_resource_definition(crd: dict) -> list[FieldError]:
    """Create (and every update): metadata, spec, accepted names, stored versions."""
    errs: list[FieldError] = []
    spec = crd.get("spec") or {}
    name = (crd.get("metadata") or {}).get("name") or ""
    wanted = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
    if name and name != wanted:
        errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    errs += _spec(spec)
    errs += _names((crd.get("status") or {}).get("acceptedNames") or {}, "status.acceptedNames")
    errs += _stored_versions(crd)
    return errs


def custom_resource_definition_update(crd: dict, old: dict) -> list[FieldError]:
    """What may not change: group and plural always; scope and kind once established."""
    spec, old_spec = crd.get("spec") or {}, old.get("spec") or {}
    errs: list[FieldError] = []
    if condition_true(old, "Established"):
        if spec.get("scope") != old_spec.get("scope"):
            errs.append(invalid("spec.scope", spec.get("scope"), "field is immutable"))
        if (spec.get("names") or {}).get("kind") != (old_spec.get("names") or {}).get("kind"):
            errs.append(invalid("spec.names.kind", (spec.get("names") or {}).get("kind"), "field is immutable"))
    if spec.get("group") != old_spec.get("group"):
        errs.append(invalid("spec.group", spec.get("group"), "field is immutable"))
    if (spec.get("names") or {}).get("plural") != (old_spec.get("names") or {}).get("plural"):
        errs.append(invalid("spec.names.plural", (spec.get("names") or {}).get("plural"), "field is immutable"))
    return errs

