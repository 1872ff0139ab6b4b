"""API errors shaped exactly like upstream's `Status` objects (metav1.Status).

Every failure a client sees is raised as an `APIError` and rendered by the apiserver
with `APIError.status()`; the HTTP code always equals `status()["code"]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

# field.ErrorType -> (StatusCause.reason, message prefix) as in apimachinery's field errors.
_FIELD_ERROR_TYPES = {
    "NotFound": ("FieldValueNotFound", "Not found"),
    "Required": ("FieldValueRequired", "Required value"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "TooLong": ("FieldValueTooLong", "Too long"),
    "TooMany": ("FieldValueTooMany", "Too many"),
    "Internal": ("InternalError", "Internal error"),
    "TypeInvalid": ("FieldValueTypeInvalid", "Invalid value"),
}

_OMIT = object()


def _go_value(value: Any) -> str:
    """Render a value the way field.Error's %#v does for the shapes validation reports."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return "map[string]string{" + ", ".join(
            f"{_go_value(k)}:{_go_value(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(_go_value(v) for v in value) + "}"
    return orjson.dumps(value).decode()


@dataclass
class FieldError:
    """One validation failure at a field path (apimachinery's field.Error)."""

    type: str  # a key of _FIELD_ERROR_TYPES
    field: str  # e.g. "spec.template.spec.containers[0].image"
    value: Any = _OMIT
    detail: str = ""

    @property
    def reason(self) -> str:
        return _FIELD_ERROR_TYPES[self.type][0]

    def body(self) -> str:
        """The message without the field path: `Invalid value: -1: must be ...`."""
        prefix = _FIELD_ERROR_TYPES[self.type][1]
        parts = [prefix]
        if self.type in ("Invalid", "NotSupported", "Duplicate", "NotFound", "TypeInvalid") and self.value is not _OMIT:
            parts.append(_go_value(self.value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def message(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def cause(self) -> dict:
        return {"reason": self.reason, "message": self.body(), "field": self.field}


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("Required", path, detail=detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid", path, value, detail)


def not_supported(path: str, value: Any, allowed: list[str]) -> FieldError:
    return FieldError("NotSupported", path, value, "supported values: " + ", ".join(f'"{a}"' for a in allowed))


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("Forbidden", path, detail=detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("Duplicate", path, value)


@dataclass
class APIError(Exception):
    """A failure answered to the client as a metav1.Status."""

    code: int
    reason: str
    message: str
    details: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # upstream leaves reason out of generic server errors
            out["reason"] = self.reason
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def qualified_resource(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str, **extra: Any) -> dict:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update({k: v for k, v in extra.items() if v})
    return details


def not_found(resource: str, group: str, name: str) -> APIError:
    return APIError(404, "NotFound", f'{qualified_resource(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> APIError:
    return APIError(409, "AlreadyExists", f'{qualified_resource(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(resource: str, group: str, name: str, why: str) -> APIError:
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified_resource(resource, group)} "{name}": {why}',
                    _details(name, group, resource))


OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> APIError:
    qualified_kind = f"{kind}.{group}" if group else kind
    messages = [e.message() for e in errors]
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return APIError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}',
                    _details(name, group, kind, causes=[e.cause() for e in errors]))


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def forbidden_error(resource: str, group: str, name: str, why: str) -> APIError:
    subject = f'{qualified_resource(resource, group)} "{name}"' if name else qualified_resource(resource, group)
    return APIError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(name, group, resource))


def method_not_allowed() -> APIError:
    return APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def not_acceptable(message: str) -> APIError:
    return APIError(406, "NotAcceptable", message)


def unsupported_media_type(accepted: list[str]) -> APIError:
    return APIError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(accepted))


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def too_large(message: str = "the request is too large") -> APIError:
    return APIError(413, "RequestEntityTooLarge", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})
