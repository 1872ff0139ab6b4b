"""Watch cache semantics: selector enter/leave translation, encode-once frames, slow watchers, history bounds."""

import orjson
import pytest

from pyk8s.api.kinds import REGISTRY
from pyk8s.apiserver.watchcache import HISTORY_FRESH_SECONDS, HISTORY_MIN, WATCHER_QUEUE, ResourceCache, Watcher
from pyk8s.store import CompactedError, Event, KeyValue

PODS = REGISTRY.lookup("", "v1", "pods")


def _kv(name: str, labels: dict, rev: int, create: int = 1) -> KeyValue:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "labels": labels}}
    return KeyValue(f"/registry/core/pods/ns/{name}", orjson.dumps(obj), create, rev)


def _event(type_, kv, prev=None):
    return Event(type_, kv, prev)


def _drain(watcher):
    out = []
    while not watcher.queue.empty():
        item = watcher.queue.get_nowait()
        if item is None:
            out.append(None)
        else:
            type_, event = item
            out.append((type_, orjson.loads(event.frame(type_))))
    return out


def _app_selector(obj):
    return (obj["metadata"].get("labels") or {}).get("app") == "web"


def test_update_entering_and_leaving_a_selector():
    cache = ResourceCache(PODS)
    watcher = Watcher(matches=_app_selector)
    cache.watchers.add(watcher)
    cache.apply(_event("ADDED", _kv("p", {"app": "db"}, 2, 2)))
    cache.apply(_event("MODIFIED", _kv("p", {"app": "web"}, 3, 2)))
    cache.apply(_event("MODIFIED", _kv("p", {"app": "web", "x": "y"}, 4, 2)))
    cache.apply(_event("MODIFIED", _kv("p", {"app": "db"}, 5, 2)))
    events = _drain(watcher)
    assert [(t, e["object"]["metadata"]["resourceVersion"]) for t, e in events] == [
        ("ADDED", "3"), ("MODIFIED", "4"), ("DELETED", "5")]
    # Leaving the selector shows the last matching state, stamped with the new resourceVersion.
    assert events[-1][1]["object"]["metadata"]["labels"] == {"app": "web", "x": "y"}


def test_delete_event_and_cache_contents():
    cache = ResourceCache(PODS)
    watcher = Watcher(matches=lambda obj: True)
    cache.watchers.add(watcher)
    cache.apply(_event("ADDED", _kv("a", {}, 2, 2)))
    cache.apply(_event("ADDED", _kv("b", {}, 3, 3)))
    cache.apply(_event("DELETED", _kv("a", {}, 4, 2)))
    assert [c.obj["metadata"]["name"] for c in cache.items("/registry/core/pods/")] == ["b"]
    assert [t for t, _ in _drain(watcher)] == ["ADDED", "ADDED", "DELETED"]
    assert [e.rv for e in cache.events_since(2)] == [3, 4]


def test_frames_are_encoded_once_for_all_watchers():
    cache = ResourceCache(PODS)
    watchers = [Watcher(matches=lambda obj: True) for _ in range(3)]
    cache.watchers.update(watchers)
    cache.apply(_event("ADDED", _kv("a", {}, 2, 2)))
    frames = [w.queue.get_nowait()[1].frame("ADDED") for w in watchers]
    assert frames[0] is frames[1] is frames[2]
    assert frames[0].endswith(b"\n")


def test_namespace_scoped_watcher_ignores_other_namespaces():
    cache = ResourceCache(PODS)
    watcher = Watcher(matches=lambda obj: True, namespace="other")
    cache.watchers.add(watcher)
    cache.apply(_event("ADDED", _kv("a", {}, 2, 2)))
    assert watcher.queue.empty()


def test_slow_watcher_is_dropped_without_blocking_others():
    cache = ResourceCache(PODS)
    slow, fast = Watcher(matches=lambda obj: True), Watcher(matches=lambda obj: True)
    cache.watchers.update([slow, fast])
    for i in range(WATCHER_QUEUE + 5):
        cache.apply(_event("MODIFIED", _kv("a", {}, i + 2, 2)))
        while not fast.queue.empty():
            fast.queue.get_nowait()
    assert slow.closed and slow not in cache.watchers
    assert not fast.closed and fast in cache.watchers
    items = _drain(slow)
    assert items[-1] is None  # the reader is woken and ends its stream


def test_history_keeps_75_seconds_and_at_least_the_100_newest_events():
    cache = ResourceCache(PODS)
    for rv in range(2, 2 + HISTORY_MIN + 50):
        cache.apply(_event("MODIFIED", _kv("a", {}, rv, 2)))
    assert len(cache.history) == HISTORY_MIN + 50 and cache.oldest_rv == 0
    # The 60 oldest events are made stale; the next event drops them, but only down to HISTORY_MIN events.
    for event in list(cache.history)[:60]:
        event.received -= HISTORY_FRESH_SECONDS + 1
    cache.apply(_event("MODIFIED", _kv("a", {}, 2 + HISTORY_MIN + 50, 2)))
    assert len(cache.history) == HISTORY_MIN
    assert cache.oldest_rv == 52 and cache.history[0].rv == 53
    assert [e.rv for e in cache.events_since(52)] == list(range(53, 3 + HISTORY_MIN + 50))
    with pytest.raises(CompactedError):
        cache.events_since(51)  # a watch from there gets 410 Gone


def test_history_keeps_fresh_events_beyond_the_minimum():
    cache = ResourceCache(PODS)
    for rv in range(2, 2 + 3 * HISTORY_MIN):
        cache.apply(_event("MODIFIED", _kv("a", {}, rv, 2)))
    assert len(cache.history) == 3 * HISTORY_MIN and cache.events_since(1)[0].rv == 2
