"""The store contract (pyk8s.store.base), run against every backend in conftest.BACKENDS.

Tests never assume the first revision is 1: they measure from `current_revision` at their start.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from pyk8s.store.base import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
    StoreError,
    WatchOverflowError,
)

from .conftest import StoreFactory

pytestmark = pytest.mark.timeout(60)


async def take(events: AsyncIterator[Event], count: int, timeout: float = 10) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            got.append(await anext(events))
    return got


async def take_until(events: AsyncIterator[Event], revision: int, timeout: float = 10) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1].revision < revision:
            got.append(await anext(events))
    return got


def keys(items: list[KeyValue]) -> list[str]:
    return [kv.key for kv in items]


# --------------------------------------------------------------------- single-key writes


async def test_create_then_get(store: Store) -> None:
    base = store.current_revision
    kv = await store.create("/c/a", b"one")
    assert kv == KeyValue("/c/a", b"one", base + 1, base + 1)
    assert store.current_revision == base + 1
    assert await store.get("/c/a") == kv
    assert await store.get("/c/missing") is None


async def test_create_on_live_key_fails_and_consumes_no_revision(store: Store) -> None:
    first = await store.create("/c/a", b"one")
    with pytest.raises(KeyExistsError) as info:
        await store.create("/c/a", b"two")
    assert info.value.key == "/c/a"
    assert store.current_revision == first.mod_revision
    assert await store.get("/c/a") == first


async def test_update_is_guarded_by_mod_revision(store: Store) -> None:
    created = await store.create("/u/a", b"v1")
    updated = await store.update("/u/a", b"v2", created.mod_revision)
    assert updated == KeyValue("/u/a", b"v2", created.create_revision, created.mod_revision + 1)

    with pytest.raises(RevisionMismatchError) as info:
        await store.update("/u/a", b"v3", created.mod_revision)  # stale
    assert info.value.current == updated
    assert store.current_revision == updated.mod_revision
    assert await store.get("/u/a") == updated


async def test_update_of_missing_key_is_a_mismatch_with_no_current(store: Store) -> None:
    with pytest.raises(RevisionMismatchError) as info:
        await store.update("/u/missing", b"v", 1)
    assert info.value.current is None


async def test_delete_returns_last_value_at_the_deletion_revision(store: Store) -> None:
    created = await store.create("/d/a", b"v1")
    deleted = await store.delete("/d/a")
    assert deleted == KeyValue("/d/a", b"v1", created.create_revision, created.mod_revision + 1)
    assert store.current_revision == deleted.mod_revision
    assert await store.get("/d/a") is None


async def test_guarded_delete(store: Store) -> None:
    created = await store.create("/d/a", b"v1")
    updated = await store.update("/d/a", b"v2", created.mod_revision)
    with pytest.raises(RevisionMismatchError) as info:
        await store.delete("/d/a", expected_revision=created.mod_revision)
    assert info.value.current == updated
    assert await store.get("/d/a") == updated
    deleted = await store.delete("/d/a", expected_revision=updated.mod_revision)
    assert deleted.value == b"v2"
    assert await store.get("/d/a") is None


@pytest.mark.parametrize("expected", [0, 5])
async def test_delete_of_missing_key_is_not_found(store: Store, expected: int) -> None:
    before = store.current_revision
    with pytest.raises(KeyNotFoundError):
        await store.delete("/d/missing", expected_revision=expected)
    assert store.current_revision == before


async def test_deleted_key_can_be_recreated_with_a_new_create_revision(store: Store) -> None:
    first = await store.create("/d/a", b"v1")
    await store.delete("/d/a")
    again = await store.create("/d/a", b"v2")
    assert again.create_revision == again.mod_revision == first.create_revision + 2


async def test_every_successful_write_adds_exactly_one_revision(store: Store) -> None:
    base = store.current_revision
    a = await store.create("/r/a", b"")
    with pytest.raises(KeyExistsError):
        await store.create("/r/a", b"")
    b = await store.create("/r/b", b"")
    a2 = await store.update("/r/a", b"x", a.mod_revision)
    with pytest.raises(RevisionMismatchError):
        await store.update("/r/b", b"x", a.mod_revision)
    d = await store.delete("/r/b", b.mod_revision)
    assert [a.mod_revision, b.mod_revision, a2.mod_revision, d.mod_revision] == [base + i for i in (1, 2, 3, 4)]
    assert store.current_revision == base + 4


async def test_concurrent_creates_of_one_key_have_exactly_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create("/race/x", str(i).encode()) for i in range(50)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, KeyValue)]
    assert len(winners) == 1
    assert all(isinstance(r, KeyExistsError) for r in results if not isinstance(r, KeyValue))
    assert await store.get("/race/x") == winners[0]


async def test_compare_and_swap_loses_no_increment(store: Store) -> None:
    await store.create("/cas/counter", b"0")

    async def increment(times: int) -> None:
        for _ in range(times):
            while True:
                current = await store.get("/cas/counter")
                assert current is not None
                try:
                    await store.update("/cas/counter", str(int(current.value) + 1).encode(), current.mod_revision)
                    break
                except RevisionMismatchError:
                    continue

    await asyncio.gather(*(increment(10) for _ in range(20)))
    final = await store.get("/cas/counter")
    assert final is not None and final.value == b"200"


async def test_values_are_bytes_exactly(store: Store) -> None:
    payload = bytes(range(256)) * 40 + b"\x00"
    await store.create("/bin/a", payload)
    got = await store.get("/bin/a")
    assert got is not None and got.value == payload


# --------------------------------------------------------------------- list


async def test_list_returns_live_keys_under_prefix_in_key_order(store: Store) -> None:
    for key in ["/p/b", "/p/a", "/pa/x", "/p/b/c", "/p", "/q/a", "/p/\u00e9", "/p/z", "/o/z"]:
        await store.create(key, key.encode())
    await store.delete("/p/z")
    result = await store.list("/p/")
    assert keys(result.items) == ["/p/a", "/p/b", "/p/b/c", "/p/\u00e9"]
    assert [kv.value for kv in result.items] == [k.encode() for k in keys(result.items)]
    assert result.revision == store.current_revision
    assert result.more is False
    everything = await store.list("")
    assert keys(everything.items) == sorted(["/p/b", "/p/a", "/pa/x", "/p/b/c", "/p", "/q/a", "/p/\u00e9", "/o/z"])


async def test_list_pages_with_limit_and_start_after(store: Store) -> None:
    names = [f"/page/{i:03d}" for i in range(10)]
    for name in names:
        await store.create(name, b"")
    first = await store.list("/page/", limit=4)
    assert keys(first.items) == names[:4] and first.more
    second = await store.list("/page/", revision=first.revision, limit=4, start_after=names[3])
    assert keys(second.items) == names[4:8] and second.more
    third = await store.list("/page/", revision=first.revision, limit=4, start_after=names[7])
    assert keys(third.items) == names[8:] and not third.more
    exact = await store.list("/page/", limit=10)
    assert len(exact.items) == 10 and not exact.more
    assert (await store.list("/page/", start_after="/page/zzz")).items == []


async def test_list_at_a_past_revision_sees_the_state_then(store: Store) -> None:
    a1 = await store.create("/h/a", b"a1")
    b1 = await store.create("/h/b", b"b1")
    a2 = await store.update("/h/a", b"a2", a1.mod_revision)
    await store.delete("/h/b")
    c1 = await store.create("/h/c", b"c1")
    b2 = await store.create("/h/b", b"b2")

    assert (await store.list("/h/", revision=a1.mod_revision)).items == [a1]
    assert (await store.list("/h/", revision=b1.mod_revision)).items == [a1, b1]
    assert (await store.list("/h/", revision=a2.mod_revision)).items == [a2, b1]
    assert (await store.list("/h/", revision=a2.mod_revision + 1)).items == [a2]
    assert (await store.list("/h/", revision=c1.mod_revision)).items == [a2, c1]
    now = await store.list("/h/", revision=b2.mod_revision)
    assert now.items == [a2, b2, c1] and now.revision == b2.mod_revision
    past = await store.list("/h/", revision=b1.mod_revision, limit=1)
    assert past.items == [a1] and past.more and past.revision == b1.mod_revision


async def test_list_at_a_future_revision_raises(store: Store) -> None:
    await store.create("/f/a", b"")
    with pytest.raises(FutureRevisionError):
        await store.list("/f/", revision=store.current_revision + 1)


async def test_paging_at_a_fixed_revision_is_a_snapshot_while_writes_continue(store: Store) -> None:
    names = [f"/snap/{i:03d}" for i in range(40)]
    for name in names:
        await store.create(name, b"old")
    snapshot = await store.list("/snap/")
    rng = random.Random(7)
    pages: list[KeyValue] = []
    start_after = ""
    while True:
        page = await store.list("/snap/", revision=snapshot.revision, limit=6, start_after=start_after)
        pages.extend(page.items)
        if not page.more:
            break
        start_after = page.items[-1].key
        # Change keys on both sides of the cursor between pages.
        for name in rng.sample(names, 3):
            current = await store.get(name)
            if current is None:
                await store.create(name, b"recreated")
            elif rng.random() < 0.5:
                await store.delete(name)
            else:
                await store.update(name, b"new", current.mod_revision)
        await store.create(start_after + "-inserted", b"new")
    assert pages == snapshot.items
    assert store.current_revision > snapshot.revision


# --------------------------------------------------------------------- compaction


async def test_compact_drops_history_but_keeps_live_values(store: Store) -> None:
    a1 = await store.create("/k/a", b"a1")
    a2 = await store.update("/k/a", b"a2", a1.mod_revision)
    b1 = await store.create("/k/b", b"b1")
    await store.delete("/k/b")
    c1 = await store.create("/k/c", b"c1")

    await store.compact(b1.mod_revision)
    assert store.compact_revision == b1.mod_revision
    for revision in (a1.mod_revision, a2.mod_revision, b1.mod_revision):
        with pytest.raises(CompactedError) as info:
            await store.list("/k/", revision=revision)
        assert info.value.compact_revision == b1.mod_revision
    assert (await store.list("/k/", revision=b1.mod_revision + 1)).items == [a2]
    assert (await store.list("/k/")).items == [a2, c1]
    assert await store.get("/k/a") == a2

    await store.compact(a1.mod_revision)  # at or below the compact revision: nothing to do
    assert store.compact_revision == b1.mod_revision
    with pytest.raises(FutureRevisionError):
        await store.compact(store.current_revision + 1)
    await store.compact(store.current_revision)
    assert (await store.list("/k/")).items == [a2, c1]


async def test_compaction_keeps_updates_and_deletes_correct(store: Store) -> None:
    a1 = await store.create("/k2/a", b"a1")
    b1 = await store.create("/k2/b", b"b1")
    await store.compact(b1.mod_revision)
    a2 = await store.update("/k2/a", b"a2", a1.mod_revision)
    await store.delete("/k2/b", b1.mod_revision)
    # The versions that were live at the compaction point are still readable after it.
    assert (await store.list("/k2/", revision=a2.mod_revision)).items == [a2, b1]
    events = await take(store.watch("/k2/", b1.mod_revision), 2)
    assert [(e.type, e.prev) for e in events] == [("MODIFIED", a1), ("DELETED", b1)]


# --------------------------------------------------------------------- watch


async def test_watch_from_current_revision_sees_only_future_events(store: Store) -> None:
    await store.create("/w/old", b"")
    watch = store.watch("/w/", store.current_revision)
    first = asyncio.ensure_future(anext(watch))
    new = await store.create("/w/new", b"n")
    event = await asyncio.wait_for(first, 10)
    assert event == Event("ADDED", new, None)


async def test_watch_events_carry_type_value_and_previous_state(store: Store) -> None:
    base = store.current_revision
    a1 = await store.create("/w/a", b"1")
    a2 = await store.update("/w/a", b"2", a1.mod_revision)
    gone = await store.delete("/w/a")
    a3 = await store.create("/w/a", b"3")
    events = await take(store.watch("/w/", base), 4)
    assert events == [
        Event("ADDED", a1, None),
        Event("MODIFIED", a2, a1),
        Event("DELETED", KeyValue("/w/a", b"2", a1.create_revision, gone.mod_revision), a2),
        Event("ADDED", a3, None),
    ]
    assert [e.revision for e in events] == [base + 1, base + 2, base + 3, base + 4]


async def test_watch_only_sees_its_prefix(store: Store) -> None:
    base = store.current_revision
    watch = store.watch("/w/a/", base)
    await store.create("/w/ab", b"")
    await store.create("/w/b/x", b"")
    wanted = await store.create("/w/a/x", b"")
    assert [e.kv for e in await take(watch, 1)] == [wanted]


async def test_watch_from_a_past_revision_replays_then_follows_live_writes(store: Store) -> None:
    base = store.current_revision
    for i in range(30):
        await store.create(f"/w/{i:02d}", b"")
    watch = store.watch("/w/", base + 10)
    replayed = await take(watch, 20)
    assert [e.revision for e in replayed] == list(range(base + 11, base + 31))
    live = asyncio.ensure_future(take(watch, 2))
    a = await store.create("/w/live1", b"")
    b = await store.create("/w/live2", b"")
    assert [e.kv for e in await asyncio.wait_for(live, 10)] == [a, b]


async def test_watch_handoff_from_history_to_live_has_no_gap_or_duplicate(store: Store) -> None:
    base = store.current_revision
    total = 600

    rng = random.Random(3)
    watches = []
    batch = 20
    for start in range(0, total, batch):
        writes = asyncio.gather(*(store.create(f"/hand/{i:04d}", b"x") for i in range(start, start + batch)))
        # Each watcher starts from a past point while a batch of writes is in flight.
        since = rng.randint(base, store.current_revision)
        watches.append((since, asyncio.create_task(take_until(store.watch("/hand/", since), base + total, 30))))
        await writes
    for since, task in watches:
        events = await task
        assert [e.revision for e in events] == list(range(since + 1, base + total + 1)), since


async def test_watch_from_before_the_compact_revision_raises(store: Store) -> None:
    base = store.current_revision
    for i in range(5):
        await store.create(f"/wc/{i}", b"")
    await store.compact(base + 3)
    with pytest.raises(CompactedError):
        await anext(store.watch("/wc/", base + 2))
    events = await take(store.watch("/wc/", base + 3), 2)
    assert [e.revision for e in events] == [base + 4, base + 5]


async def test_many_watchers_each_see_every_event(store: Store) -> None:
    start = store.current_revision
    count = 300
    tasks = [asyncio.create_task(take(store.watch("/many/", start), 20, 30)) for _ in range(count)]
    written = [await store.create(f"/many/{i:02d}", b"") for i in range(20)]
    for task in tasks:
        assert [e.kv for e in await task] == written


async def test_a_watcher_that_stops_reading_is_dropped_without_blocking_others(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory(watch_buffer=50)
    start = store.current_revision
    stalled = store.watch("/slow/", start)
    healthy = store.watch("/slow/", start)
    healthy_events = asyncio.create_task(take(healthy, 300, 30))
    # Both watchers are following live writes (not replaying) when the writes start.
    stalled_first = asyncio.create_task(take(stalled, 1))
    first = await store.create("/slow/0", b"")
    assert (await stalled_first)[0].kv == first

    async with asyncio.timeout(30):  # writers must not wait for the stalled watcher
        for i in range(1, 300):
            await store.create(f"/slow/{i}", b"")
    assert [e.revision for e in await healthy_events] == list(range(start + 1, start + 301))
    with pytest.raises(WatchOverflowError):
        await take(stalled, 300)


async def test_close_ends_watch_iterators(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.create("/close/a", b"")

    async def drain(since: int) -> list[Event]:
        return [event async for event in store.watch("/close/", since)]

    live = asyncio.create_task(drain(store.current_revision))
    replaying = asyncio.create_task(drain(0))
    await asyncio.sleep(0)  # let both start iterating
    await store.create("/close/b", b"")
    await store.close()
    async with asyncio.timeout(10):
        live_events, replay_events = await asyncio.gather(live, replaying)
    assert all(e.kv.key.startswith("/close/") for e in live_events + replay_events)
    with pytest.raises(StoreError):
        await store.create("/close/c", b"")


# --------------------------------------------------------------------- model check


async def test_random_operations_match_a_model(store: Store) -> None:
    """Random writes checked against a dict model: every result, list at every revision
    (whole and paged), and the full watch replay."""
    rng = random.Random(20240501)
    base = store.current_revision
    live: dict[str, KeyValue] = {}
    states: dict[int, dict[str, KeyValue]] = {base: {}}
    expected_events: list[Event] = []
    names = [f"/model/{c}" for c in "abcdefgh"]
    revision = base

    for step in range(400):
        name = rng.choice(names)
        value = f"{name}@{step}".encode()
        current = live.get(name)
        action = rng.choice(["create", "update", "update-stale", "delete", "delete-guarded", "delete-stale"])
        if action == "create":
            if current is not None:
                with pytest.raises(KeyExistsError):
                    await store.create(name, value)
                continue
            revision += 1
            kv = KeyValue(name, value, revision, revision)
            assert await store.create(name, value) == kv
            expected_events.append(Event("ADDED", kv, None))
            live[name] = kv
        elif action.endswith("stale") or current is None:
            stale = rng.randint(1, revision + 1)
            if current is not None and stale == current.mod_revision:
                stale = 0 if action == "update-stale" else stale + 1
            if action.startswith("update"):
                with pytest.raises(RevisionMismatchError) as mismatch:
                    await store.update(name, value, stale)
                assert mismatch.value.current == current
            elif current is None:
                with pytest.raises(KeyNotFoundError):
                    await store.delete(name, stale)
            else:
                with pytest.raises(RevisionMismatchError) as mismatch:
                    await store.delete(name, stale)
                assert mismatch.value.current == current
            continue
        elif action == "update":
            revision += 1
            kv = KeyValue(name, value, current.create_revision, revision)
            assert await store.update(name, value, current.mod_revision) == kv
            expected_events.append(Event("MODIFIED", kv, current))
            live[name] = kv
        else:
            revision += 1
            kv = KeyValue(name, current.value, current.create_revision, revision)
            guard = current.mod_revision if action == "delete-guarded" else 0
            assert await store.delete(name, guard) == kv
            expected_events.append(Event("DELETED", kv, current))
            del live[name]
        states[revision] = dict(live)

    assert store.current_revision == revision
    for at in range(base + 1, revision + 1):
        expected = sorted(states[at].values(), key=lambda kv: kv.key)
        result = await store.list("/model/", revision=at)
        assert result.items == expected, at
        paged: list[KeyValue] = []
        cursor = ""
        while True:
            page = await store.list("/model/", revision=at, limit=3, start_after=cursor)
            paged.extend(page.items)
            if not page.more:
                break
            cursor = page.items[-1].key
        assert paged == expected, at
    assert await take(store.watch("/model/", base), len(expected_events)) == expected_events
