"""Revisioned key-value stores with etcd semantics. Only the apiserver uses them."""

from .base import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    Store,
    StoreError,
    WatchOverflowError,
)

__all__ = [
    "CompactedError",
    "Event",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "RevisionMismatchError",
    "Store",
    "StoreError",
    "WatchOverflowError",
]
