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
from pyk8s.store.sqlite import SQLiteStore

BACKENDS = ["sqlite"]

StoreFactory = Callable[..., Awaitable[Store]]


@pytest.fixture(params=BACKENDS)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    stores: list[Store] = []

    async def make(**options: object) -> Store:
        if request.param == "sqlite":
            store: Store = SQLiteStore(str(tmp_path / f"store{len(stores)}.db"), **options)  # type: ignore[arg-type]
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
