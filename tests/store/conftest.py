"""Backends under test. The contract suite runs once per entry in BACKENDS; a new backend adds
itself there and teaches `store_factory` to build it.

Options every backend's factory must accept (the contract tests use them):
  watch_buffer: events a watcher may leave unread before it is dropped (WatchOverflowError).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pyk8s.store.base import Store
from pyk8s.store.encryption import AESGCMTransformer, EncryptingStore, PrefixedTransformer, ResourceTransformer
from pyk8s.store.sqlite import SQLiteStore

# "sqlite+aesgcm": the encryption-at-rest wrapper over SQLite, encrypting every key.
BACKENDS = ["sqlite", "sqlite+aesgcm"]


def _encrypt_everything() -> ResourceTransformer:
    return ResourceTransformer([PrefixedTransformer(b"k8s:enc:aesgcm:v1:contract:", AESGCMTransformer(bytes(32)))])

StoreFactory = Callable[..., Awaitable[Store]]


@pytest.fixture(params=BACKENDS)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    stores: list[Store] = []

    async def make(**options: object) -> Store:
        if request.param == "sqlite":
            store: Store = SQLiteStore(str(tmp_path / f"store{len(stores)}.db"), **options)  # type: ignore[arg-type]
        elif request.param == "sqlite+aesgcm":
            inner = SQLiteStore(str(tmp_path / f"store{len(stores)}.db"), **options)  # type: ignore[arg-type]
            transformer = _encrypt_everything()
            store = EncryptingStore(inner, lambda key: transformer)
        else:
            raise AssertionError(f"unknown backend {request.param}")
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()
