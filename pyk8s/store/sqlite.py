"""SQLite backend of the store contract (see base.py), for single-server clusters.

Schema
  kv(key, value, create_revision, mod_revision)
      The live keys only, updated in place, so current reads never touch history.
  changes(revision, key, deleted, prev_value, prev_create_revision, prev_mod_revision,
          live_bytes, history_written)
      One row per write revision holding the version that write replaced (NULL for a create).
      Every superseded version therefore lives in exactly one row, keyed by the revision that
      superseded it; an event's new value is either still in kv or in the row of the write that
      superseded it (changes.prev_mod_revision = the event's revision). The last two columns are
      the byte counters as of that write (see History), so a commit writes no extra page for them.
  meta(revision, compact_revision, live_bytes, history_dropped)
      A single row, written by compactions, so neither counter goes backwards across restarts even
      when the keys that carried the highest revisions were deleted and compacted away. The
      current revision is the larger of meta.revision and the newest change's.

A version is live at revision R when it is in kv with mod_revision <= R, or in changes with
prev_mod_revision <= R < revision. Every version needed to read at R > C was superseded after C,
so compacting at C is one range delete `DELETE FROM changes WHERE revision <= C` from the low end
of a rowid-ordered table: no tombstones to chase, no "latest row per key" queries (kine's hot
spot), and the freed pages are whole pages that later inserts reuse or incremental vacuum returns
to the file system.

History
  The apiserver serves watches from its own watch cache, so the store's history only serves lists
  at a past revision (continue tokens) and watches resuming after a restart. Automatic compaction
  therefore bounds it twice: at most `history_revisions` revisions, and at most `history_ratio`
  bytes of superseded versions per byte of live data (never less than `history_min_bytes`).
  Byte counts are key + value lengths (plus a fixed per-row overhead for history), kept
  incrementally: live bytes (kv) and history bytes ever written in each change row, history bytes
  ever dropped in meta. Compaction runs inside the write transactions, before a batch's writes
  when the batch would push the history past its byte budget, so the new rows reuse the pages the
  oldest ones leave and the file does not grow beyond live data + budget.

Disk use
  8 KiB pages (new databases), WAL checkpoints after large transactions or, for streams of small
  ones, at a hard limit of a quarter of the database size, or in a background thread while the
  writer idles; the WAL is truncated to zero once writes pause. With 1,000 objects of 1 KB under
  100,000 updates (benchmarks/store_sqlite.py), the files stay at about 1.85x the live data:
  live table, key index and small tables 1.2x, history up to 0.25x plus page slack, the WAL
  about one group commit (0.3x at 100 writes in flight), -shm 32 KiB; about 1.5x at rest.

Concurrency
  One writer thread owns the only writing connection. Writes queue up while a transaction
  commits and are committed together in the next one (group commit); results and watch events go
  back to the event loop in one callback per transaction, so watchers are fed on commit with no
  polling. Reads run on a small pool of reader threads with their own connections (WAL readers
  never block the writer). A checkpointer thread with its own connection copies the WAL into the
  database while the writer idles.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import fcntl
import logging
import os
import queue
import sqlite3
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

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

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Page size of new databases (existing ones keep theirs). A page holds whole rows only, so small
# pages waste much of themselves on rows of a few KiB: with 1 KiB objects the live table takes
# 1.31x its data in 4 KiB pages, 1.13x in 8 KiB and 1.06x in 16 KiB pages. But every write logs
# whole pages to the WAL, and 16 KiB pages cost small writes a fifth of their throughput.
_PAGE_SIZE = 8192
# A history row costs about this much beyond its key and value (record header, revisions, cell
# pointer, its changes_by_prev entry); counted so that many tiny versions are bounded as well.
_HISTORY_ROW_BYTES = 40
# Byte-bounded compaction starts when the history would exceed its budget and trims it to this
# share of the budget, so small writes do not each trim a little.
_HISTORY_TRIM = 0.9
# The WAL's soft and hard limits (see _checkpoint_if_due) follow the database size (1/16 and 1/4
# of it) within these bounds: the WAL of a small database stays small, and a big one does not
# checkpoint after every transaction.
_WAL_SOFT_FRACTION, _WAL_SOFT_MIN, _WAL_SOFT_MAX = 16, 128 * 1024, 4 * 1024 * 1024
_WAL_HARD_FRACTION, _WAL_HARD_MIN, _WAL_HARD_MAX = 4, 256 * 1024, 16 * 1024 * 1024
# A transaction that logged this much, or a quarter of the soft limit if more, counts as large.
_LARGE_TX_MIN, _LARGE_TX_SHARE = 64 * 1024, 4
# Past this many times the hard limit the writer truncates the WAL, waiting briefly for readers.
_WAL_RUNAWAY = 4
# The limits are recomputed every this many commits.
_TUNE_WAL_EVERY = 64
# Weight of the newest sample in the moving averages of idle gaps and checkpoint durations.
_EMA_WEIGHT = 0.25
# Offset and length of WalIndexHdr.mxFrame .. aSalt in the -shm file.
_SHM_HEADER = (16, 24)
# After this many idle seconds the writer checkpoints and truncates the WAL to zero bytes.
_IDLE_CHECKPOINT_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    revision INTEGER NOT NULL,
    compact_revision INTEGER NOT NULL,
    live_bytes INTEGER,
    history_dropped INTEGER
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    prev_value BLOB,
    prev_create_revision INTEGER,
    prev_mod_revision INTEGER,
    live_bytes INTEGER,
    history_written INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS changes_by_prev ON changes (prev_mod_revision)
    WHERE prev_mod_revision IS NOT NULL;
"""
# Columns added after the first release; older databases get them on open (NULL: counted once).
_ADDED_COLUMNS = {"meta": ("live_bytes", "history_dropped"), "changes": ("live_bytes", "history_written")}
_INIT_META = (
    "INSERT OR IGNORE INTO meta (id, revision, compact_revision, live_bytes, history_dropped) VALUES (0, 0, 0, 0, 0)"
)
_OPEN_META = "SELECT revision, compact_revision, live_bytes, history_dropped FROM meta"
_LAST_CHANGE = "SELECT revision, live_bytes, history_written FROM changes ORDER BY revision DESC LIMIT 1"
_COUNT_LIVE = "SELECT total(length(key)) + total(length(value)) FROM kv"
# History bytes of the rows at or below a revision (plus _HISTORY_ROW_BYTES each).
_COUNT_HISTORY = (
    f"SELECT total(length(key)) + total(length(prev_value)) + count(*) * {_HISTORY_ROW_BYTES}"
    " FROM changes WHERE revision <= ?"
)
_SIZES_AFTER = (
    "SELECT revision, length(key) + ifnull(length(prev_value), 0) FROM changes"
    " WHERE revision > ? ORDER BY revision LIMIT ?"
)

_GET = "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?"
_INSERT_KV = "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)"
_UPDATE_KV = "UPDATE kv SET value = ?, mod_revision = ? WHERE key = ?"
_DELETE_KV = "DELETE FROM kv WHERE key = ?"
_INSERT_CHANGE = (
    "INSERT INTO changes (revision, key, deleted, prev_value, prev_create_revision, prev_mod_revision,"
    " live_bytes, history_written) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# meta.revision is only written by compactions (a write's own row carries its revision), so the
# current revision is the larger of it and the newest change.
_META = "SELECT max(revision, ifnull((SELECT max(revision) FROM changes), 0)), compact_revision FROM meta"
_UPDATE_META = "UPDATE meta SET revision = ?, compact_revision = ?, live_bytes = ?, history_dropped = ?"
# The new value of a non-delete change is in kv while it is current, else in the change that replaced it.
_CHANGES_AFTER = """
SELECT c.revision, c.key, c.deleted, c.prev_value, c.prev_create_revision, c.prev_mod_revision,
       COALESCE(k.value, n.prev_value)
FROM changes AS c
LEFT JOIN kv AS k ON k.key = c.key AND k.mod_revision = c.revision
LEFT JOIN changes AS n ON n.prev_mod_revision = c.revision
WHERE c.revision > ? AND {range}
ORDER BY c.revision LIMIT ?
"""
_LIST_CURRENT = "SELECT key, value, create_revision, mod_revision FROM kv WHERE {range} ORDER BY key LIMIT ?"
# Versions live at a past revision R: current ones created by R, and superseded ones that were
# created by R and replaced after it. Of the retained changes, `revision > R` selects
# current - R rows and `prev_mod_revision <= R` about R - compact_revision rows; the caller picks
# the smaller side ({newer} / {older} disable the other index with a unary +).
_LIST_AT = """
SELECT key, value, create_revision, mod_revision FROM kv WHERE {range} AND mod_revision <= ?
UNION ALL
SELECT key, prev_value, prev_create_revision, prev_mod_revision FROM changes
WHERE {newer}revision > ? AND {older}prev_mod_revision <= ? AND {range}
ORDER BY 1 LIMIT ?
"""


class _Closed:
    """Sentinel that asks the writer thread to finish."""


_STOP = _Closed()


@dataclass(slots=True)
class _Write:
    op: Literal["create", "update", "delete"]
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[KeyValue]


@dataclass(slots=True)
class _Compact:
    revision: int
    future: asyncio.Future[None]


class _Watcher:
    """A live watch's bounded buffer; the dispatcher fills it, the watch generator drains it."""

    __slots__ = ("after", "buffer", "closed", "limit", "overflowed", "waiter")

    def __init__(self, after: int, limit: int):
        self.after = after  # events at or below this were already delivered from history
        self.limit = limit
        self.buffer: collections.deque[Event] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False

    def push(self, events: list[Event]) -> bool:
        """Queue events; False when the buffer overflowed and the watcher must be dropped."""
        if events[0].revision <= self.after:
            events = [e for e in events if e.revision > self.after]
            if not events:
                return True
        if len(self.buffer) + len(events) > self.limit:
            # Free the memory now; the consumer learns about it on its next read.
            self.buffer.clear()
            self.overflowed = True
            self.wake()
            return False
        self.buffer.extend(events)
        self.wake()
        return True

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _Checkpointer:
    """A thread with its own connection that runs PASSIVE checkpoints on request, so their fsyncs
    overlap the writer's idle time instead of stalling a commit."""

    def __init__(self, path: str, synchronous: str):
        self._path = path
        self._synchronous = synchronous
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._dead = False
        self.duration = 0.0  # moving average of a checkpoint's seconds
        self._thread = threading.Thread(target=self._main, name=f"sqlite-checkpointer:{path}", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def request(self) -> None:
        if self._idle.is_set() and not self._dead:
            self._idle.clear()
            self._wake.set()
            if self._dead:  # the thread ended meanwhile: nobody would set it again
                self._idle.set()

    def wait(self) -> None:
        self._idle.wait()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _main(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                start = time.monotonic()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.duration += (time.monotonic() - start - self.duration) * _EMA_WEIGHT
                except sqlite3.Error:
                    log.exception("sqlite store %s: checkpoint failed", self._path)
                finally:
                    self._idle.set()
        except sqlite3.Error:
            log.exception("sqlite store %s: checkpointer failed", self._path)
        finally:
            self._dead = True
            self._idle.set()
            if conn is not None:
                conn.close()


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1 if not 0xD800 <= last + 1 <= 0xDFFF else 0xE000  # surrogates are not UTF-8
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def _key_range(prefix: str, start_after: str = "", column: str = "key") -> tuple[str, list[Any]]:
    if start_after and start_after >= prefix:
        conditions, params = [f"{column} > ?"], [start_after]
    else:
        conditions, params = [f"{column} >= ?"], [prefix]
    end = _prefix_end(prefix)
    if end is not None:
        conditions.append(f"{column} < ?")
        params.append(end)
    return " AND ".join(conditions), params


def _event_from_row(row: tuple[Any, ...]) -> Event:
    revision, key, deleted, prev_value, prev_create, prev_mod, value = row
    prev = KeyValue(key, prev_value, prev_create, prev_mod) if prev_mod is not None else None
    if deleted:
        assert prev is not None
        return Event("DELETED", KeyValue(key, prev_value, prev_create, revision), prev)
    if prev is None:
        return Event("ADDED", KeyValue(key, value, revision, revision), None)
    return Event("MODIFIED", KeyValue(key, value, prev_create, revision), prev)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # the caller gave up (cancelled); the write itself stands
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class SQLiteStore(Store):
    """Revisioned key-value store in one SQLite file (WAL mode, single writer, group commit).

    Options (automatic compaction enforces both history bounds; with both off, only compact()
    drops history):
      history_revisions: keep at most this many revisions of history (0: no count bound).
      history_ratio: keep at most this many bytes of superseded versions per byte of live data
          (key + value bytes; each version counts _HISTORY_ROW_BYTES more), 0: no byte bound.
          With 0.25, 1,000 objects of 1 KB under churn stay below 2x on disk even with a 100-write
          group commit in the WAL; 0.5 would take them to about 2.1x.
      history_min_bytes: the byte bound never trims the history below this, so small stores keep
          a useful window (256 KiB: a few hundred versions of typical objects). It equals the
          ratio's share at 1 MiB of live data; smaller stores thus sit above 2x.
      watch_buffer: events a watcher may have unread before it is dropped with WatchOverflowError.
      synchronous: "NORMAL" survives process crashes (kill -9); "FULL" also survives power loss
          at the cost of an fsync per transaction.
      max_batch: most writes committed in one transaction.
      compaction_batch: most revisions one compaction transaction drops, so compaction never
          holds the writer for long.
      read_threads: reader threads (each with its own connection).
      replay_chunk: history events a replaying watch reads per query.

    `path` must be a file (reader connections open it too). A write whose caller is cancelled
    may still commit, as with etcd.
    """

    def __init__(
        self,
        path: str,
        *,
        history_revisions: int = 10_000,
        history_ratio: float = 0.25,
        history_min_bytes: int = 256 * 1024,
        watch_buffer: int = 10_000,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        max_batch: int = 1_000,
        compaction_batch: int = 1_000,
        read_threads: int = 2,
        replay_chunk: int = 1_000,
    ):
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        if history_revisions < 0 or watch_buffer < 1 or max_batch < 1 or compaction_batch < 1:
            raise ValueError("history_revisions must be >= 0; watch_buffer, max_batch, compaction_batch >= 1")
        if not history_ratio >= 0 or history_min_bytes < 0:
            raise ValueError("history_ratio and history_min_bytes must be >= 0")
        self._path = path
        self._history = history_revisions
        self._history_ratio = history_ratio
        self._history_min_bytes = history_min_bytes
        # Compact in steps of ~10% of the history so compaction runs now and then, not per write.
        self._compaction_slack = max(1, min(compaction_batch, history_revisions // 10))
        self._watch_buffer = watch_buffer
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._compaction_batch = compaction_batch
        self._read_threads = read_threads
        self._replay_chunk = replay_chunk

        # Event-loop side. _revision is the last revision whose events were dispatched to watchers.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._revision = 0
        self._compact_revision = 0
        self._started = False
        self._closed = False
        self._watchers: dict[str, set[_Watcher]] = {}
        self._lock_fd: int | None = None
        self._queue: queue.SimpleQueue[_Write | _Compact | _Closed] = queue.SimpleQueue()
        self._writer_done: asyncio.Future[None] | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()

        # Writer-thread side.
        self._wconn: sqlite3.Connection | None = None
        self._w_revision = 0
        self._w_compact = 0
        self._compact_target = 0
        self._compact_waiters: list[_Compact] = []
        # Key + value bytes of the live keys; history bytes (key + replaced value +
        # _HISTORY_ROW_BYTES per change) ever written, and dropped by compaction. Each change row
        # records the first two as of its write and meta the last as of the latest compaction, so
        # they are restored at open without a scan and without an extra page write per commit.
        self._w_live_bytes = 0
        self._w_history_written = 0
        self._w_history_dropped = 0
        self._wal_soft = self._wal_hard = 0
        self._page_bytes = _PAGE_SIZE
        self._checkpointer: _Checkpointer | None = None
        self._idle_gap = 0.0  # moving average of the writer's seconds between transactions
        self._wal_salt = b""  # changes whenever the WAL restarts
        self._wal_frames = 0  # frames in the WAL after the last commit
        self._wal_retry_at = 0  # frames before the writer checkpoints again
        self._shm_fd: int | None = None
        self._wal_dirty = False  # frames may be in the WAL since the last truncating checkpoint
        self._commits = 0

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._started:
            raise StoreError("store already started")
        self._loop = asyncio.get_running_loop()
        self._lock_fd = self._take_lock()
        started: asyncio.Future[tuple[int, int]] = self._loop.create_future()
        self._writer_done = self._loop.create_future()
        threading.Thread(
            target=self._writer_main, args=(started,), name=f"sqlite-writer:{self._path}", daemon=True
        ).start()
        try:
            revision, compact_revision = await started
            # A compaction due at open may have reported in already (its callback can run before
            # this coroutine resumes).
            self._revision = max(self._revision, revision)
            self._compact_revision = max(self._compact_revision, compact_revision)
        except BaseException:
            self._release_lock()
            raise
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._read_threads, thread_name_prefix="sqlite-reader"
        )
        self._started = True
        log.info("sqlite store %s opened at revision %d", self._path, self._revision)

    async def close(self) -> None:
        if not self._started or self._closed:
            return
        self._closed = True
        for group in self._watchers.values():
            for watcher in group:
                watcher.closed = True
                watcher.wake()
        self._watchers.clear()
        assert self._readers is not None and self._writer_done is not None
        await asyncio.to_thread(self._readers.shutdown, True)
        with self._reader_conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        # Readers first: the last connection to close checkpoints and removes the WAL.
        self._queue.put(_STOP)
        await self._writer_done
        self._release_lock()
        log.info("sqlite store %s closed at revision %d", self._path, self._revision)

    def _take_lock(self) -> int:
        # A second process writing the same file would fork the revision sequence and its watchers
        # would never see this one's events.
        fd = os.open(self._path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self._path} is in use by another store") from None
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_open(self) -> None:
        if not self._started:
            raise StoreError("store not started")
        if self._closed:
            raise StoreError("store is closed")

    @property
    def current_revision(self) -> int:
        return self._revision

    @property
    def compact_revision(self) -> int:
        return self._compact_revision

    # ----------------------------------------------------------------- writes

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, value, 0)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        return await self._submit("update", key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return await self._submit("delete", key, b"", expected_revision)

    async def compact(self, revision: int) -> None:
        """Drop history at or below `revision`; returns once it is gone. Compacting at or below
        the current compact revision does nothing; above the current revision raises
        FutureRevisionError."""
        self._check_open()
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Compact(revision, future))
        await future

    def _submit(
        self, op: Literal["create", "update", "delete"], key: str, value: bytes, expected: int
    ) -> asyncio.Future[KeyValue]:
        if not isinstance(key, str) or not isinstance(value, bytes):
            raise TypeError("keys are str and values are bytes")
        self._check_open()
        assert self._loop is not None
        future: asyncio.Future[KeyValue] = self._loop.create_future()
        self._queue.put(_Write(op, key, value, expected, future))
        return future

    def _on_commit(
        self,
        writes: list[_Write],
        results: list[KeyValue | StoreError],
        events: list[Event],
        revision: int,
        compact_revision: int,
    ) -> None:
        """Runs on the event loop, in commit order: publish, then acknowledge."""
        self._revision = revision
        self._compact_revision = max(self._compact_revision, compact_revision)  # compacted in the same commit
        if events:
            self._dispatch(events)
        for write, result in zip(writes, results, strict=True):
            _resolve(write.future, result)

    def _on_compacted(self, compact_revision: int, done: list[_Compact], error: StoreError | None) -> None:
        self._compact_revision = max(self._compact_revision, compact_revision)
        for request in done:
            _resolve(request.future, error)

    # ----------------------------------------------------------------- writer thread

    def _call_loop(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed without close(); nobody is waiting any more
            log.warning("sqlite store %s: event loop closed under the writer", self._path)

    def _writer_main(self, started: asyncio.Future[tuple[int, int]]) -> None:
        try:
            self._open_writer()
        except Exception as exc:  # noqa: BLE001 - re-raised by start(), which would otherwise hang
            self._call_loop(_resolve, started, exc)
            self._call_loop(_resolve, self._writer_done, None)
            return
        self._call_loop(_resolve, started, (self._w_revision, self._w_compact))
        try:
            self._checkpointer = _Checkpointer(self._path, self._synchronous)
            self._writer_loop()
        finally:
            if self._checkpointer is not None:
                self._checkpointer.stop()  # before the writer's close, which checkpoints and removes the WAL
            if self._shm_fd is not None:
                os.close(self._shm_fd)
            assert self._wconn is not None
            self._wconn.close()
            self._call_loop(_resolve, self._writer_done, None)

    def _open_writer(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            # The .lock file keeps other writers out, so only a forced WAL checkpoint ever waits here
            # (for readers); keep that wait short so it never stalls writes for long.
            conn.execute("PRAGMA busy_timeout = 250")
            # These two only take effect while the file is still empty, i.e. when we create it.
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self._path}: cannot switch to WAL mode (got {mode})")
            # WAL + NORMAL: a commit is appended to the -wal file with write() before COMMIT returns;
            # the bytes sit in the OS page cache, which survives the death of this process, and the
            # next open replays every WAL frame up to the last commit record. Only the fsync is
            # deferred to checkpoints, so an OS crash or power loss (not a process crash) can lose
            # the last commits. FULL closes that gap too.
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            # Zero deleted content only where that costs no extra page writes (compaction would
            # otherwise rewrite every page it frees).
            conn.execute("PRAGMA secure_delete = FAST")
            conn.executescript(_SCHEMA)
            self._open_meta(conn)
        except BaseException:
            conn.close()
            raise
        self._wconn = conn
        self._page_bytes = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint_if_due
        self._wal_dirty = True
        self._schedule_auto_compaction()
        self._tune_wal()

    def _open_meta(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, added in _ADDED_COLUMNS.items():
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column in added:
                    if column not in columns:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
            conn.execute(_INIT_META)
            revision, compact, live, dropped = conn.execute(_OPEN_META).fetchone()
            last = conn.execute(_LAST_CHANGE).fetchone()
            if last is not None:
                revision = max(revision, last[0])
                live, written = last[1], last[2]
            else:
                written = dropped
            if live is None or written is None or dropped is None:
                # A database from before the counters: count once, store them where they belong.
                live = int(conn.execute(_COUNT_LIVE).fetchone()[0])
                written, dropped = int(conn.execute(_COUNT_HISTORY, (revision,)).fetchone()[0]), 0
                conn.execute(_UPDATE_META, (revision, compact, live, dropped))
                if last is not None:
                    conn.execute(
                        "UPDATE changes SET live_bytes = ?, history_written = ? WHERE revision = ?",
                        (live, written, last[0]),
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._w_revision, self._w_compact = revision, compact
        self._w_live_bytes, self._w_history_written, self._w_history_dropped = live, written, dropped

    def _writer_loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            compaction_pending = self._compact_target > self._w_compact
            try:
                if compaction_pending:
                    first = self._queue.get_nowait()
                else:
                    first = self._queue.get(timeout=_IDLE_CHECKPOINT_S if self._wal_dirty else None)
            except queue.Empty:
                if compaction_pending:
                    self._compact_step()
                else:
                    self._idle_checkpoint()
                idle_since = time.monotonic()
                continue
            # How long the writer waits for work between transactions (see _checkpoint_if_due).
            self._idle_gap += (time.monotonic() - idle_since - self._idle_gap) * _EMA_WEIGHT
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [item for item in batch if isinstance(item, _Write)]
            if writes:
                self._commit(writes)
            for item in batch:
                if isinstance(item, _Compact):
                    self._request_compaction(item)
            if self._compact_target > self._w_compact:
                self._compact_step()
            idle_since = time.monotonic()
            if any(item is _STOP for item in batch):
                if self._compact_waiters:
                    self._call_loop(
                        self._on_compacted,
                        self._w_compact,
                        self._compact_waiters,
                        StoreError("store closed before compaction finished"),
                    )
                    self._compact_waiters = []
                return

    def _commit(self, writes: list[_Write]) -> None:
        conn = self._wconn
        assert conn is not None
        revision = self._w_revision
        live_bytes, written = self._w_live_bytes, self._w_history_written
        compact, dropped = self._w_compact, self._w_history_dropped
        # Automatic compaction rides along in the write transaction (unless an explicit compact()
        # is under way): no transaction of its own to log, and the history stays within its bounds
        # at every commit.
        auto_compact = self._compact_target <= self._w_compact
        results: list[KeyValue | StoreError] = []
        events: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if auto_compact and (target := self._byte_trim(writes)) > compact:
                    dropped += self._drop_history(target)
                    compact = target
                for write in writes:
                    row = conn.execute(_GET, (write.key,)).fetchone()
                    current = KeyValue(write.key, *row) if row is not None else None
                    if write.op == "create":
                        if current is not None:
                            results.append(KeyExistsError(write.key))
                            continue
                        revision += 1
                        kv = KeyValue(write.key, write.value, revision, revision)
                        conn.execute(_INSERT_KV, (write.key, write.value, revision, revision))
                        live_bytes += len(write.key) + len(write.value)
                        written += len(write.key) + _HISTORY_ROW_BYTES
                        conn.execute(_INSERT_CHANGE, (revision, write.key, 0, None, None, None, live_bytes, written))
                        events.append(Event("ADDED", kv, None))
                    elif current is None:
                        if write.op == "update":
                            results.append(RevisionMismatchError(write.key, None))
                        else:
                            results.append(KeyNotFoundError(write.key))
                        continue
                    elif (write.op == "update" or write.expected) and current.mod_revision != write.expected:
                        results.append(RevisionMismatchError(write.key, current))
                        continue
                    else:
                        revision += 1
                        deleted = write.op == "delete"
                        if deleted:
                            kv = KeyValue(write.key, current.value, current.create_revision, revision)
                            conn.execute(_DELETE_KV, (write.key,))
                            live_bytes -= len(write.key) + len(current.value)
                        else:
                            kv = KeyValue(write.key, write.value, current.create_revision, revision)
                            conn.execute(_UPDATE_KV, (write.value, revision, write.key))
                            live_bytes += len(write.value) - len(current.value)
                        written += len(write.key) + len(current.value) + _HISTORY_ROW_BYTES
                        conn.execute(
                            _INSERT_CHANGE,
                            (
                                revision,
                                write.key,
                                int(deleted),
                                current.value,
                                current.create_revision,
                                current.mod_revision,
                                live_bytes,
                                written,
                            ),
                        )
                        events.append(Event("DELETED" if deleted else "MODIFIED", kv, current))
                    results.append(kv)
                if auto_compact and self._history and revision - compact > self._history + self._compaction_slack:
                    target = min(revision - self._history, compact + self._compaction_batch)
                    dropped += self._drop_history(target)
                    compact = target
                if compact != self._w_compact:
                    conn.execute(_UPDATE_META, (revision, compact, live_bytes, dropped))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # the writer thread must survive anything one batch does
            log.exception("sqlite store %s: write transaction failed", self._path)
            error = StoreError(f"write failed: {exc}")
            self._call_loop(self._on_commit, writes, [error] * len(writes), [], self._w_revision, self._w_compact)
            return
        self._w_revision = revision
        self._w_live_bytes, self._w_history_written = live_bytes, written
        self._wal_dirty = True
        self._call_loop(self._on_commit, writes, results, events, revision, compact)
        self._commits += 1
        if compact != self._w_compact:
            self._compacted(compact, dropped)
        self._checkpoint_if_due()
        if self._commits % _TUNE_WAL_EVERY == 0:
            try:
                self._tune_wal()
            except sqlite3.Error:
                log.exception("sqlite store %s: tuning the WAL failed", self._path)
        self._schedule_auto_compaction()

    def _history_budget(self) -> float:
        return max(self._history_ratio * self._w_live_bytes, self._history_min_bytes)

    def _byte_trim(self, writes: list[_Write]) -> int:
        """Where to compact, within the write transaction and before its writes, so that the
        history the batch adds does not push it over the byte budget: its new rows then reuse the
        pages the oldest ones leave, and the history never outgrows the budget on disk."""
        if not self._history_ratio:
            return self._w_compact
        # The batch's history growth, taking a replaced value to be as large as its replacement.
        growth = sum(len(w.key) + _HISTORY_ROW_BYTES + (len(w.value) if w.op == "update" else 0) for w in writes)
        budget = self._history_budget()
        history = self._w_history_written - self._w_history_dropped
        if history + growth <= budget:
            return self._w_compact
        return self._byte_target(history + growth - int(budget * _HISTORY_TRIM))

    def _drop_history(self, upto: int) -> int:
        """Deletes the changes at or below `upto`; returns their history bytes."""
        conn = self._wconn
        assert conn is not None
        dropped = int(conn.execute(_COUNT_HISTORY, (upto,)).fetchone()[0])
        conn.execute("DELETE FROM changes WHERE revision <= ?", (upto,))
        return dropped

    def _schedule_auto_compaction(self) -> None:
        if self._history and self._w_revision - self._w_compact > self._history + self._compaction_slack:
            self._compact_target = max(self._compact_target, self._w_revision - self._history)
        if not self._history_ratio or self._compact_target > self._w_compact:
            return  # a byte target is computed once the pending compaction has run
        budget = self._history_budget()
        history = self._w_history_written - self._w_history_dropped
        if history > budget:
            try:
                target = self._byte_target(history - int(budget * _HISTORY_TRIM))
            except sqlite3.Error:
                log.exception("sqlite store %s: sizing the history failed", self._path)
                return
            self._compact_target = max(self._compact_target, target)

    def _byte_target(self, excess: int) -> int:
        """The newest of the oldest revisions whose changes add up to at least `excess` history
        bytes (at most compaction_batch of them)."""
        conn = self._wconn
        assert conn is not None
        rows = conn.execute(_SIZES_AFTER, (self._w_compact, self._compaction_batch)).fetchall()
        target, dropped = self._w_compact, 0
        for revision, size in rows:
            if dropped >= excess:
                break
            dropped += size + _HISTORY_ROW_BYTES
            target = revision
        return target

    def _request_compaction(self, request: _Compact) -> None:
        if request.revision > self._w_revision:
            self._call_loop(
                self._on_compacted,
                self._w_compact,
                [request],
                FutureRevisionError(request.revision, self._w_revision),
            )
        elif request.revision <= self._w_compact:
            self._call_loop(self._on_compacted, self._w_compact, [request], None)
        else:
            self._compact_target = max(self._compact_target, request.revision)
            self._compact_waiters.append(request)

    def _compact_step(self) -> None:
        conn = self._wconn
        assert conn is not None
        upto = min(self._compact_target, self._w_compact + self._compaction_batch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._w_history_dropped + self._drop_history(upto)
                conn.execute(_UPDATE_META, (self._w_revision, upto, self._w_live_bytes, dropped))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            # Give up on this target rather than retrying in a tight loop; the next trigger retries.
            log.exception("sqlite store %s: compaction to %d failed", self._path, upto)
            self._compact_target = self._w_compact
            waiters, self._compact_waiters = self._compact_waiters, []
            self._call_loop(self._on_compacted, self._w_compact, waiters, StoreError(f"compaction failed: {exc}"))
            return
        self._wal_dirty = True
        self._commits += 1
        self._compacted(upto, dropped)
        self._checkpoint_if_due()
        if self._compact_target <= self._w_compact:
            self._schedule_auto_compaction()

    def _compacted(self, upto: int, dropped: int) -> None:
        """After a committed compaction to `upto`: `dropped` history bytes are gone in all."""
        self._w_compact = upto
        self._w_history_dropped = dropped
        self._compact_target = max(self._compact_target, upto)
        done = [w for w in self._compact_waiters if w.revision <= upto]
        self._compact_waiters = [w for w in self._compact_waiters if w.revision > upto]
        self._call_loop(self._on_compacted, upto, done, None)
        log.debug("sqlite store %s compacted to %d", self._path, upto)
        self._reclaim_space()

    def _reclaim_space(self) -> None:
        conn = self._wconn
        assert conn is not None
        try:
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            # Inserts reuse free pages, so only give them back when a large share of the file is free
            # (after mass deletions), not after every compaction step.
            if free * 4 > pages:
                # executescript steps the pragma to completion; execute() would free a single page.
                conn.executescript("PRAGMA incremental_vacuum")
            self._tune_wal()
        except sqlite3.Error:
            log.exception("sqlite store %s: reclaiming space failed", self._path)

    def _tune_wal(self) -> None:
        conn = self._wconn
        assert conn is not None
        size = conn.execute("PRAGMA page_count").fetchone()[0] * self._page_bytes
        soft = min(max(size // _WAL_SOFT_FRACTION, _WAL_SOFT_MIN), _WAL_SOFT_MAX)
        self._wal_hard = min(max(size // _WAL_HARD_FRACTION, _WAL_HARD_MIN), _WAL_HARD_MAX)
        if soft != self._wal_soft:
            self._wal_soft = soft
            # When a checkpoint lets the WAL restart, SQLite cuts the file back to this size (or to
            # the restarting transaction's frames, if more); a WAL file beyond it thus holds that
            # many bytes of frames. Not to zero: re-growing a file makes every fsync of it slower.
            conn.execute(f"PRAGMA journal_size_limit = {soft}").fetchall()

    def _checkpoint_if_due(self) -> None:
        """After a commit, once the WAL holds more than its soft limit: copy it into the database,
        so that the next transaction restarts the WAL from its beginning (and journal_size_limit
        cuts the file back to the soft limit). A checkpoint costs two fsyncs whatever its size, so:
          - after a large transaction, checkpoint right away: the cost is spread over its writes;
          - when the writer usually idles longer than a checkpoint takes (paced writes), let the
            checkpointer thread do it meanwhile, so no commit waits for the fsyncs;
          - otherwise (a stream of small transactions) wait for the hard limit, then checkpoint."""
        frames, salt = self._read_wal_index()
        if salt != self._wal_salt:  # this commit restarted the WAL
            self._wal_salt, self._wal_frames, self._wal_retry_at = salt, 0, 0
        added, self._wal_frames = frames - self._wal_frames, frames
        page = self._page_bytes
        size = frames * page
        if size <= self._wal_soft:
            return
        checkpointer = self._checkpointer
        if size < self._wal_hard and added * page < max(_LARGE_TX_MIN, self._wal_soft // _LARGE_TX_SHARE):
            if checkpointer is not None and not checkpointer.busy and self._idle_gap > checkpointer.duration:
                checkpointer.request()
            return
        runaway = size >= _WAL_RUNAWAY * self._wal_hard
        if frames < self._wal_retry_at and not runaway:
            return  # the last checkpoint could not let the WAL restart (readers); not on every commit
        self._wal_retry_at = frames + self._wal_hard // 4 // page
        if checkpointer is not None:
            checkpointer.wait()
        conn = self._wconn
        assert conn is not None
        try:
            if not runaway:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            else:
                # A checkpoint cannot finish while readers hold old snapshots (kine #582); once the
                # WAL has run away anyway, force it back to zero, waiting briefly for readers.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            log.exception("sqlite store %s: checkpoint failed", self._path)

    def _read_wal_index(self) -> tuple[int, bytes]:
        """The WAL's frame count and salt from the WAL-index header at the start of the -shm file
        (https://www.sqlite.org/walformat.html): mxFrame counts the frames since the WAL last
        restarted (the WAL file's size does not tell: a restarted WAL reuses the file from its
        beginning), and each restart changes the salt."""
        try:
            if self._shm_fd is None:
                self._shm_fd = os.open(self._path + "-shm", os.O_RDONLY)
            header = os.pread(self._shm_fd, _SHM_HEADER[1], _SHM_HEADER[0])
            return struct.unpack_from("=I", header)[0], header[-8:]
        except (OSError, struct.error):
            return self._wal_size() // (self._page_bytes + 24), b""

    def _idle_checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it to zero bytes once writes pause, so an
        idle store's files are just the database. Readers are not waited for (the writer must stay
        responsive); while one holds an old snapshot, the next idle period tries again."""
        conn = self._wconn
        assert conn is not None
        if self._checkpointer is not None:
            self._checkpointer.wait()
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                conn.execute("PRAGMA busy_timeout = 250")
        except sqlite3.Error:
            log.exception("sqlite store %s: idle checkpoint failed", self._path)
            busy = 1
        self._wal_dirty = bool(busy)

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self._path + "-wal")
        except FileNotFoundError:
            return 0

    # ----------------------------------------------------------------- reads

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        self._check_open()
        assert self._readers is not None
        return await asyncio.wrap_future(self._readers.submit(self._run_read, fn, *args))

    def _run_read(self, fn: Callable[..., _T], *args: Any) -> _T:
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            self._reader_local.conn = conn
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
        try:
            return fn(conn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    async def get(self, key: str) -> KeyValue | None:
        return await self._read(_read_get, key)

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        if revision < 0 or limit < 0:
            raise ValueError("revision and limit must not be negative")
        return await self._read(_read_list, prefix, revision, limit, start_after)

    # ----------------------------------------------------------------- watch

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        """See Store.watch. A watcher that falls `watch_buffer` events behind is dropped: its
        iteration raises WatchOverflowError, and the consumer may watch again from the last
        revision it saw."""
        self._check_open()
        if from_revision < self._compact_revision:
            raise CompactedError(from_revision, self._compact_revision, self._revision)
        after = from_revision
        # Events up to self._revision were already dispatched and must come from the database.
        # Registration happens, without an await, only once everything up to the dispatched
        # revision was read: later events are then all dispatched to this watcher, and the ones
        # the database snapshot already covered are filtered by revision.
        while True:
            if self._closed:
                return
            if self._revision <= after:
                break
            events, snapshot = await self._read(_read_changes, prefix, after, self._replay_chunk)
            for event in events:
                yield event
                after = event.revision
            if len(events) < self._replay_chunk:
                after = max(after, snapshot)
        watcher = _Watcher(after, self._watch_buffer)
        self._watchers.setdefault(prefix, set()).add(watcher)
        try:
            while True:
                if watcher.buffer:
                    yield watcher.buffer.popleft()
                    continue
                if watcher.overflowed:
                    raise WatchOverflowError(prefix, self._watch_buffer)
                if watcher.closed:
                    return
                assert self._loop is not None
                watcher.waiter = self._loop.create_future()
                await watcher.waiter
                watcher.waiter = None
        finally:
            self._unregister(prefix, watcher)

    def _unregister(self, prefix: str, watcher: _Watcher) -> None:
        group = self._watchers.get(prefix)
        if group is not None:
            group.discard(watcher)
            if not group:
                del self._watchers[prefix]

    def _dispatch(self, events: list[Event]) -> None:
        for prefix, group in list(self._watchers.items()):
            matching = [e for e in events if e.kv.key.startswith(prefix)] if prefix else events
            if not matching:
                continue
            for watcher in list(group):
                if not watcher.push(matching):
                    log.warning(
                        "sqlite store %s: dropping watcher on %r: %d unread events",
                        self._path,
                        prefix,
                        self._watch_buffer,
                    )
                    self._unregister(prefix, watcher)


# Reader-thread functions: each runs in one read transaction, so every statement sees one snapshot.


def _end_read(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("COMMIT")


def _read_get(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(_GET, (key,)).fetchone()
    return KeyValue(key, *row) if row is not None else None


def _read_list(conn: sqlite3.Connection, prefix: str, revision: int, limit: int, start_after: str) -> ListResult:
    conn.execute("BEGIN")
    try:
        current, compact = conn.execute(_META).fetchone()
        if revision > current:
            raise FutureRevisionError(revision, current)
        if compact and revision and revision <= compact:
            raise CompactedError(revision, compact, current)
        key_range, params = _key_range(prefix, start_after)
        sql_limit = limit + 1 if limit else -1
        if revision in (0, current):
            rows = conn.execute(_LIST_CURRENT.format(range=key_range), (*params, sql_limit)).fetchall()
        else:
            near_compact = revision - compact < current - revision
            sql = _LIST_AT.format(range=key_range, newer="+" if near_compact else "", older="" if near_compact else "+")
            rows = conn.execute(sql, (*params, revision, revision, revision, *params, sql_limit)).fetchall()
    finally:
        _end_read(conn)
    more = bool(limit) and len(rows) > limit
    items = [KeyValue(*row) for row in (rows[:limit] if more else rows)]
    return ListResult(items, revision or current, more)


def _read_changes(conn: sqlite3.Connection, prefix: str, after: int, limit: int) -> tuple[list[Event], int]:
    """Changes under `prefix` after revision `after`, and the revision of the snapshot read."""
    conn.execute("BEGIN")
    try:
        current, compact = conn.execute(_META).fetchone()
        if after < compact:
            raise CompactedError(after, compact, current)
        key_range, params = _key_range(prefix, column="c.key")
        rows = conn.execute(_CHANGES_AFTER.format(range=key_range), (after, *params, limit)).fetchall()
    finally:
        _end_read(conn)
    return [_event_from_row(row) for row in rows], current
