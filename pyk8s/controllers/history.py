"""Hashes and ControllerRevisions shared by the Deployment, DaemonSet and StatefulSet controllers
(upstream pkg/controller/history and controller_utils.ComputeHash).

Hashes are 32-bit FNV-1a over a canonical JSON encoding (sorted keys) of the hashed object, with the
collision count mixed in as 4 little-endian bytes when the owner has one, then written as decimal and
mapped onto upstream's "safe" alphabet (no vowels, no 0/1/3) so a hash never spells a word.

A DaemonSet or StatefulSet records each template it ran as a ControllerRevision whose data is the
strategic-merge patch `{"spec": {"template": {..., "$patch": "replace"}}}`; `kubectl rollout undo`
applies that patch to go back, and `kubectl rollout history --revision=N` prints its template.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping

import orjson

from ..client import APIClient, APIStatusError, is_already_exists
from .ownership import owner_reference

log = logging.getLogger("pyk8s.controllers.history")

CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream rand.SafeEncodeString's alphabet
MAX_NAME_PREFIX = 223  # revision names are <prefix>-<hash>; 253 minus room for the hash
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def canonical_json(obj: object) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def compute_hash(obj: object, collision_count: int | None = None) -> str:
    """The pod-template-hash / controller-revision-hash of a template (or revision data)."""
    data = canonical_json(obj)
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(fnv32a(data)))


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:MAX_NAME_PREFIX]}-{hash_}"


def template_patch(template: Mapping) -> dict:
    """The revision data for a pod template: a strategic-merge patch replacing spec.template."""
    return {"spec": {"template": {**copy.deepcopy(dict(template)), "$patch": "replace"}}}


def template_from_patch(data: Mapping) -> dict:
    """The pod template a revision's data holds (the inverse of template_patch)."""
    template = copy.deepcopy(((data or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: Mapping) -> int:
    return int(revision.get("revision") or 0)


def sort_revisions(revisions: Iterable[dict]) -> list[dict]:
    """Oldest first: by revision number, then creation time, then name (upstream byRevision)."""
    return sorted(revisions, key=lambda r: (revision_number(r), (r.get("metadata") or {}).get(
        "creationTimestamp") or "", (r.get("metadata") or {}).get("name") or ""))


def max_revision(revisions: Iterable[Mapping]) -> int:
    return max((revision_number(r) for r in revisions), default=0)


def equal_revisions(a: Mapping, b: Mapping) -> bool:
    """Same data (upstream EqualRevision compares the hash label first, then the data)."""
    hash_a = ((a.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
    hash_b = ((b.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
    if hash_a and hash_b and hash_a != hash_b:
        return False
    return canonical_json(a.get("data")) == canonical_json(b.get("data"))


def new_revision(owner: Mapping, api_version: str, kind: str, data: dict, revision: int, *,
                 hash_: str, labels: Mapping[str, str] | None = None,
                 annotations: Mapping[str, str] | None = None) -> dict:
    meta = owner["metadata"]
    revision_meta: dict = {"name": revision_name(meta["name"], hash_), "namespace": meta.get("namespace"),
                           "labels": {**(labels or {}), CONTROLLER_REVISION_HASH_LABEL: hash_},
                           "ownerReferences": [owner_reference(owner, api_version, kind)]}
    if annotations:
        revision_meta["annotations"] = dict(annotations)
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": revision_meta, "data": data,
            "revision": revision}


async def create_revision(client: APIClient, revision: dict, owner: Mapping, *, hash_of, collision_count: int,
                          max_collisions: int = 20) -> tuple[dict, int]:
    """Create `revision`; on a name collision with different data, bump the collision count and rehash.
    `hash_of(count)` gives the hash for a collision count. Returns (the revision, the final count)."""
    count = collision_count
    for _ in range(max_collisions):
        try:
            return await client.create(revision), count
        except APIStatusError as exc:
            if not is_already_exists(exc):
                raise
        meta = revision["metadata"]
        existing = await client.get("controllerrevisions", meta["name"], meta.get("namespace"))
        owned = any(r.get("uid") == owner["metadata"]["uid"]
                    for r in (existing.get("metadata") or {}).get("ownerReferences") or ())
        if owned and equal_revisions(existing, revision):
            return existing, count
        count += 1
        new_hash = hash_of(count)
        revision = copy.deepcopy(revision)
        revision["metadata"]["name"] = revision_name(owner["metadata"]["name"], new_hash)
        revision["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL] = new_hash
        log.info("controllerrevision %s collided; trying collision count %d", meta["name"], count)
    raise RuntimeError(f"too many ControllerRevision name collisions for {owner['metadata']['name']}")
