"""Event recorder: core/v1 Events with upstream's correlation (client-go tools/record).

Three steps run on every event before it is written, in upstream's order:
1. aggregate: events that share source, involved object, type and reason but differ in message
   are collapsed once 10 distinct messages arrive within 10 minutes of each other into one
   event whose message reads "(combined from similar events): <latest message>";
2. de-duplicate: an event identical to one already written bumps that Event's `count` and
   `lastTimestamp` with a patch instead of creating a new object;
3. spam filter: a token bucket per source and involved object (burst 25, one token per 5
   minutes) drops the rest, so a crash-looping object cannot flood the store.

Recording never blocks the caller: events go into a bounded queue (dropped with a log line when
full) and one task writes them, retrying transport failures up to 12 times.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .api import APIClient, APIConnectionError, APIStatusError, is_not_found
from .workqueue import REAL_CLOCK, Clock, TokenBucket

log = logging.getLogger("pyk8s.client.events")

NORMAL = "Normal"
WARNING = "Warning"
MAX_LRU_ENTRIES = 4096
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0  # seconds
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0  # one event per 5 minutes once the burst is spent
MAX_QUEUED_EVENTS = 1000
MAX_TRIES = 12
RETRY_SLEEP = 10.0
MAX_MESSAGE_LENGTH = 1024
COMBINED_PREFIX = "(combined from similar events): "


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_touch(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def _source(event: Mapping) -> tuple[str, str]:
    source = event.get("source") or {}
    return source.get("component", ""), source.get("host", "")


def _involved(event: Mapping) -> tuple[str, ...]:
    ref = event.get("involvedObject") or {}
    return (ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""), ref.get("uid", ""),
            ref.get("apiVersion", ""))


def event_key(event: Mapping) -> tuple:
    """Identity of an event for de-duplication: everything but timestamps, count and name."""
    ref = event.get("involvedObject") or {}
    return (*_source(event), *_involved(event), ref.get("fieldPath", ""), event.get("type", ""),
            event.get("reason", ""), event.get("message", ""))


def aggregate_key(event: Mapping) -> tuple:
    """Identity of 'similar' events: event_key without the message (and without fieldPath)."""
    return (*_source(event), *_involved(event), event.get("type", ""), event.get("reason", ""),
            event.get("reportingComponent", ""), event.get("reportingInstance", ""))


def spam_key(event: Mapping) -> tuple:
    return (*_source(event), *_involved(event))


@dataclass
class _AggregateRecord:
    messages: set[str] = field(default_factory=set)
    last_seen: float = float("-inf")


@dataclass
class _Observation:
    count: int
    first_timestamp: str
    name: str
    resource_version: str


@dataclass
class Correlation:
    event: dict
    patch: dict | None = None  # merge patch for an existing Event, None to create `event`
    skip: bool = False  # dropped by the spam filter


class EventCorrelator:
    """The pure decision part of the recorder: aggregate, de-duplicate, filter. No I/O."""

    def __init__(self, clock: Clock = REAL_CLOCK, *, wall_ns: Callable[[], int] = time.time_ns,
                 max_events: int = AGGREGATE_MAX_EVENTS, max_interval: float = AGGREGATE_INTERVAL,
                 spam_burst: int = SPAM_BURST, spam_qps: float = SPAM_QPS,
                 spam_key_func: Callable[[Mapping], tuple] = spam_key, lru_size: int = MAX_LRU_ENTRIES):
        self.clock = clock
        self.wall_ns = wall_ns
        self.max_events = max_events
        self.max_interval = max_interval
        self.spam_burst = spam_burst
        self.spam_qps = spam_qps
        self.spam_key_func = spam_key_func
        self._aggregates: _LRU = _LRU(lru_size)
        self._observations: _LRU = _LRU(lru_size)
        self._spam: _LRU = _LRU(lru_size)

    def correlate(self, event: dict) -> Correlation:
        aggregated, key = self._aggregate(event)
        observed, patch = self._observe(aggregated, key)
        if self._filtered(observed):
            return Correlation(observed, None, skip=True)
        return Correlation(observed, patch)

    def _aggregate(self, event: dict) -> tuple[dict, tuple]:
        now = self.clock.now()
        agg_key = aggregate_key(event)
        record = self._aggregates.get_touch(agg_key) or _AggregateRecord()
        if now - record.last_seen > self.max_interval:
            record = _AggregateRecord()  # the last similar event is too old: start counting again
        record.messages.add(event.get("message", ""))
        record.last_seen = now
        self._aggregates.put(agg_key, record)
        if len(record.messages) < self.max_events:
            return event, event_key(event)
        record.messages.pop()  # keep the set bounded at the threshold
        # From here on all similar events share one key, so they land on one combined Event.
        ref = event.get("involvedObject") or {}
        timestamp = _rfc3339(self.wall_ns())
        combined = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', '')}.{self.wall_ns():x}",
                         "namespace": (event.get("metadata") or {}).get("namespace", "")},
            "involvedObject": ref, "reason": event.get("reason", ""),
            "message": (COMBINED_PREFIX + event.get("message", ""))[:MAX_MESSAGE_LENGTH],
            "type": event.get("type", ""), "source": event.get("source") or {},
            "firstTimestamp": timestamp, "lastTimestamp": timestamp, "count": 1,
            "reportingComponent": event.get("reportingComponent", ""),
            "reportingInstance": event.get("reportingInstance", ""),
        }
        return combined, agg_key

    def _observe(self, event: dict, key: tuple) -> tuple[dict, dict | None]:
        last: _Observation | None = self._observations.get_touch(key)
        patch = None
        if last is not None and last.count > 0:
            event = {**event, "metadata": {**event["metadata"], "name": last.name,
                                           "resourceVersion": last.resource_version},
                     "firstTimestamp": last.first_timestamp, "count": last.count + 1}
            patch = {"count": event["count"], "lastTimestamp": event["lastTimestamp"], "message": event["message"]}
        meta = event["metadata"]
        self._observations.put(key, _Observation(event.get("count", 1), event.get("firstTimestamp", ""),
                                                 meta["name"], meta.get("resourceVersion", "")))
        return event, patch

    def _filtered(self, event: dict) -> bool:
        key = self.spam_key_func(event)
        bucket = self._spam.get_touch(key)
        if bucket is None:
            bucket = TokenBucket(self.spam_qps, self.spam_burst, self.clock)
            self._spam.put(key, bucket)
        return not bucket.try_accept()

    def update_state(self, written: dict) -> None:
        """Remember what the server stored (name, resourceVersion, count) for the next patch."""
        # A combined event lives under the aggregate key, like every similar event after it.
        combined = written.get("message", "").startswith(COMBINED_PREFIX)
        key = aggregate_key(written) if combined else event_key(written)
        meta = written.get("metadata") or {}
        self._observations.put(key, _Observation(written.get("count", 1), written.get("firstTimestamp", ""),
                                                 meta.get("name", ""), meta.get("resourceVersion", "")))


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Mapping, field_path: str | None = None) -> dict:
    """involvedObject from an object, or from something already shaped as an ObjectReference."""
    if "metadata" in obj:
        meta = obj.get("metadata") or {}
        ref = {"kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
               "uid": meta.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
               "resourceVersion": meta.get("resourceVersion", "")}
    else:
        ref = {k: obj[k] for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
               if obj.get(k)}
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """`recorder.event(obj, "Warning", "FailedScheduling", "0/3 nodes are available")` from anywhere."""

    def __init__(self, client: APIClient, component: str, host: str | None = None, *,
                 queue_size: int = MAX_QUEUED_EVENTS, correlator: EventCorrelator | None = None,
                 wall_ns: Callable[[], int] = time.time_ns):
        self.client = client
        self.component = component
        self.host = host if host is not None else socket.gethostname()
        self.wall_ns = wall_ns
        self.correlator = correlator or EventCorrelator(wall_ns=wall_ns)
        self._queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task | None = None
        self.dropped = 0

    def event(self, obj: Mapping, type: str, reason: str, message: str, *, field_path: str | None = None) -> None:
        """Record an event about `obj`; returns at once (the write happens in the background)."""
        if type not in (NORMAL, WARNING):
            log.error("unsupported event type %r (reason %s)", type, reason)
            return
        event = self.make_event(obj, type, reason, message, field_path)
        log.debug("event %s/%s %s %s: %s", event["involvedObject"].get("kind"), event["involvedObject"].get("name"),
                  type, reason, message)
        self._ensure_worker()
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event queue full (%d): dropping %s event %s for %s", self._queue.maxsize, type, reason,
                        event["involvedObject"].get("name"))

    def make_event(self, obj: Mapping, type: str, reason: str, message: str, field_path: str | None = None) -> dict:
        ref = object_reference(obj, field_path)
        ns = self.wall_ns()
        timestamp = _rfc3339(ns)
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', '')}.{ns:x}", "namespace": ref.get("namespace") or "default"},
            "involvedObject": ref, "reason": reason, "message": message[:MAX_MESSAGE_LENGTH], "type": type,
            "source": source, "firstTimestamp": timestamp, "lastTimestamp": timestamp, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"events-{self.component}")

    async def flush(self) -> None:
        """Wait until every event recorded so far has been written (or given up on)."""
        if self._worker is not None and not self._worker.done():
            await self._queue.join()

    async def close(self, timeout: float = 5.0) -> None:
        """Flush for at most `timeout` seconds, then stop the writer."""
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            log.warning("event recorder %s: %d events not written at close", self.component, self._queue.qsize())
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._record(event)
            except Exception:
                log.exception("event recorder %s: writing event failed", self.component)
            finally:
                self._queue.task_done()

    async def _record(self, event: dict) -> None:
        result = self.correlator.correlate(event)
        if result.skip:
            log.debug("event %s for %s dropped by the spam filter", event["reason"],
                      event["involvedObject"].get("name"))
            return
        for attempt in range(1, MAX_TRIES + 1):
            if await self._write(result.event, result.patch):
                return
            if attempt == MAX_TRIES:
                break
            # Randomize the first wait so many clients don't retry in lockstep after an outage.
            await asyncio.sleep(random.random() * RETRY_SLEEP if attempt == 1 else RETRY_SLEEP)
        log.error("event recorder %s: giving up on event %s after %d tries", self.component,
                  result.event["metadata"]["name"], MAX_TRIES)

    async def _write(self, event: dict, patch: dict | None) -> bool:
        """True when done (written, or rejected for good); False to retry later."""
        meta = event["metadata"]
        try:
            written = None
            if patch is not None:
                try:
                    written = await self.client.patch("events", meta["name"], patch, meta["namespace"],
                                                      patch_type="merge")
                except APIStatusError as exc:
                    if not is_not_found(exc):
                        raise
                    # The Event expired or was deleted: create it again under the same name.
            if written is None:
                body = {**event, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
                written = await self.client.create(body)
        except APIStatusError as exc:
            level = logging.DEBUG if exc.reason == "AlreadyExists" else logging.ERROR
            log.log(level, "server rejected event %s (will not retry): %s", meta["name"], exc)
            return True
        except APIConnectionError as exc:
            log.warning("unable to write event %s: %s", meta["name"], exc)
            return False
        self.correlator.update_state(written)
        return True
