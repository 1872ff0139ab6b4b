"""What configMap, secret, downwardAPI and projected volumes contain: pure payload builders over objects
already fetched (upstream's configmap.MakePayload, secret.MakePayload, downwardapi.CollectData)."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from .atomic_writer import FileProjection
from .downward import DownwardAPIError, container_resource_value, extract_field_path

DEFAULT_MODE = 0o644


class ItemsError(ValueError):
    """The volume's items cannot be projected; the message is upstream's."""


def _mode(item: Mapping, default_mode: int) -> int:
    mode = item.get("mode")
    return default_mode if mode is None else mode


def _key_to_path(items: list[Mapping] | None, data: Mapping[str, bytes], default_mode: int, optional: bool,
                 missing: str) -> dict[str, FileProjection]:
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise ItemsError(f"{missing}: {key}")
        payload[item.get("path", "")] = FileProjection(data[key], _mode(item, default_mode))
    return payload


def configmap_data(configmap: Mapping | None) -> dict[str, bytes]:
    """data (text) and binaryData (base64 on the wire) as bytes; a missing optional ConfigMap is empty."""
    if configmap is None:
        return {}
    data = {key: value.encode() for key, value in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        data[key] = base64.b64decode(value)
    return data


def secret_data(secret: Mapping | None) -> dict[str, bytes]:
    if secret is None:
        return {}
    return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}


def configmap_payload(items: list[Mapping] | None, configmap: Mapping | None, default_mode: int,
                      optional: bool) -> dict[str, FileProjection]:
    return _key_to_path(items, configmap_data(configmap), default_mode, optional,
                        "configmap references non-existent config key")


def secret_payload(items: list[Mapping] | None, secret: Mapping | None, default_mode: int,
                   optional: bool) -> dict[str, FileProjection]:
    return _key_to_path(items, secret_data(secret), default_mode, optional, "references non-existent secret key")


def downward_payload(items: list[Mapping] | None, pod: Mapping, default_mode: int,
                     allocatable: Mapping[str, str]) -> tuple[dict[str, FileProjection], list[str]]:
    """(payload, errors): every item that can be produced is, and each failure is reported."""
    payload: dict[str, FileProjection] = {}
    errors = []
    for item in items or []:
        path = os.path.normpath(item.get("path", ""))
        try:
            if item.get("fieldRef"):
                text = extract_field_path(pod, item["fieldRef"].get("fieldPath", ""))
            elif item.get("resourceFieldRef"):
                text = container_resource_value(item["resourceFieldRef"], pod, None, allocatable)
            else:
                text = ""
        except (DownwardAPIError, ValueError) as exc:
            errors.append(str(exc))
            continue
        payload[path] = FileProjection(text.encode(), _mode(item, default_mode))
    return payload, errors
