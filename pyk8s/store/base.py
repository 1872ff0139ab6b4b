"""The store contract every backend (SQLite today, etcd later) implements.

Semantics follow etcd v3: one global revision counter that every successful write
increments by one; each key remembers the revision that created it and the revision
that last modified it. The apiserver uses the modification revision as the object's
resourceVersion.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the revision the list was read at
    more: bool  # True when `limit` cut the result short


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change. For DELETED, `kv.value` is the last value before deletion
    and `kv.mod_revision` is the revision of the deletion itself."""

    type: Literal["ADDED", "MODIFIED", "DELETED"]
    kv: KeyValue
    prev: KeyValue | None  # the state before this change (None for ADDED)

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StoreError(Exception):
    pass


class KeyExistsError(StoreError):
    def __init__(self, key: str):
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatchError(StoreError):
    """A guarded write found the key at a different revision (or missing)."""

    def __init__(self, key: str, current: KeyValue | None):
        super().__init__(f"revision mismatch: {key}")
        self.key = key
        self.current = current


class CompactedError(StoreError):
    """The requested revision is older than the oldest retained one."""

    def __init__(self, requested: int, compact_revision: int, current_revision: int):
        super().__init__(f"required revision {requested} has been compacted (compacted at {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision
        self.current_revision = current_revision


class FutureRevisionError(StoreError):
    def __init__(self, requested: int, current_revision: int):
        super().__init__(f"required revision {requested} is a future revision (current {current_revision})")
        self.requested = requested
        self.current_revision = current_revision


class WatchOverflowError(StoreError):
    """Raised by a watch iterator whose consumer fell so far behind that the backend dropped it
    (buffers are bounded so one slow watcher cannot stall writers or other watchers). Watch again
    from the last revision received, or relist if that revision was compacted meanwhile."""

    def __init__(self, prefix: str, buffered: int):
        super().__init__(f"watch on {prefix!r} fell more than {buffered} events behind and was dropped")
        self.prefix = prefix
        self.buffered = buffered


class Store(abc.ABC):
    """Async revisioned key-value store. Keys are '/'-separated strings; values are bytes."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the backend; after this, current_revision is valid."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close; pending watches end (their iterators finish)."""

    @property
    @abc.abstractmethod
    def current_revision(self) -> int:
        """The revision of the last committed write (0 for an empty store)."""

    @property
    @abc.abstractmethod
    def compact_revision(self) -> int:
        """Revisions at or below this are no longer readable (0 when never compacted)."""

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        """Live keys under `prefix` in key order as they were at `revision` (0 = current).

        `limit` > 0 caps the count and sets `more`; `start_after` resumes after that key
        (for continue tokens). Raises CompactedError / FutureRevisionError for a revision
        outside the retained window."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Raises KeyExistsError when the key is live."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Replace the value if the key's mod_revision equals `expected_revision`;
        otherwise raise RevisionMismatchError (with the current KeyValue or None)."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Delete the key (guarded when `expected_revision` > 0). Returns the deleted value
        with mod_revision set to the deletion's revision. Raises KeyNotFoundError or
        RevisionMismatchError."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        """Every change under `prefix` with revision > `from_revision`, in revision order,
        first the retained history, then live changes as they commit. Raises
        CompactedError (on first iteration) when history older than needed is gone."""

    def needs_rewrite(self, key: str) -> bool:
        """True when the value last read for `key` is stored in an outdated form (encrypted with a key
        that is no longer the first one), so an update must write it even when the object is
        unchanged (upstream's "stale" read). Plain backends store values as they are."""
        return False

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Drop history at or below `revision` (live values are kept)."""
