"""Small helpers over object dicts in the Kubernetes JSON shape (no I/O)."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphabet: no vowels or lookalikes


def now_rfc3339() -> str:
    """Second precision UTC timestamp, as metav1.Time serialises."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(base: str) -> str:
    """generateName + 5 random characters, the base cut so the result fits 63 characters."""
    base = base[: 63 - 5]
    return base + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))


def metadata(obj: dict) -> dict:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta

