"""Reading container logs from CRI log files, with every PodLogOptions option (upstream kuberuntime/logs).

The runtime writes one record per line: `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>`. A `P`
(partial) record is a piece of a long line the runtime split; the pieces up to the next `F` (full) record form
one log line. What a reader sees is the container's output: the text of each line (pieces joined) with a
newline, optionally prefixed by the line's timestamp.

Rotation (log_rotation.py): the kubelet renames `N.log` to `N.log.<timestamp>` and the runtime reopens a fresh
`N.log`; a follower finishes the renamed file (still open, even once it is compressed and removed) and carries
on at the start of the new one, as upstream's does. Like upstream's ReadLogs, a read covers the live file only,
never the rotated or gzipped ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# How often a follower looks for new lines; upstream uses inotify, polling keeps this portable and cheap.
FOLLOW_POLL_SECONDS = 0.1
# A follower asks whether the container still runs at most this often (a CRI call).
RUNNING_CHECK_SECONDS = 1.0
_READ_BLOCK = 64 * 1024


class LogFormatError(ValueError):
    """A line that is not in the CRI log format."""


class LogOptionsError(ValueError):
    """Bad PodLogOptions query parameters; `field` names the parameter (for a 422's causes)."""

    def __init__(self, field: str, value: object, message: str, decode: bool = False):
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message
        # True when the value did not even parse (a 400 rather than a validation failure).
        self.decode = decode


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    since_time: datetime | None = None  # sinceSeconds is turned into a time when the request arrives
    limit_bytes: int | None = None
    previous: bool = False


def _parse_bool(field: str, value: str) -> bool:
    # Go's strconv.ParseBool, which the query parameter codec uses.
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise LogOptionsError(field, value, f'strconv.ParseBool: parsing "{value}": invalid syntax', decode=True)


def _parse_int(field: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise LogOptionsError(field, value, f'strconv.ParseInt: parsing "{value}": invalid syntax',
                              decode=True) from None


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 time with any number of fractional digits (Python keeps microseconds)."""
    text = value.strip()
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
        text = f"{head}.{(fraction + '000000')[:6]}{zone}"
    parsed = datetime.fromisoformat(text.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return parsed


def options_from_query(query: Mapping[str, str], now: datetime | None = None) -> LogOptions:
    """PodLogOptions from query parameters, validated as upstream's ValidatePodLogOptions does."""
    follow = _parse_bool("follow", query.get("follow", ""))
    previous = _parse_bool("previous", query.get("previous", ""))
    timestamps = _parse_bool("timestamps", query.get("timestamps", ""))
    tail = _parse_int("tailLines", query["tailLines"]) if query.get("tailLines", "") != "" else None
    limit = _parse_int("limitBytes", query["limitBytes"]) if query.get("limitBytes", "") != "" else None
    since_seconds = (_parse_int("sinceSeconds", query["sinceSeconds"])
                     if query.get("sinceSeconds", "") != "" else None)
    since_time = None
    if query.get("sinceTime", ""):
        try:
            since_time = parse_rfc3339(query["sinceTime"])
        except ValueError:
            raise LogOptionsError("sinceTime", query["sinceTime"],
                                  f'parsing time "{query["sinceTime"]}" as "2006-01-02T15:04:05Z07:00": cannot '
                                  "parse", decode=True) from None
    if tail is not None and tail < 0:
        raise LogOptionsError("tailLines", tail, "must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise LogOptionsError("limitBytes", limit, "must be greater than 0")
    if since_seconds is not None and since_time is not None:
        raise LogOptionsError("", None, "at most one of `sinceTime` or `sinceSeconds` may be specified")
    if since_seconds is not None:
        if since_seconds < 1:
            raise LogOptionsError("sinceSeconds", since_seconds, "must be greater than 0")
        since_time = (now or datetime.now(UTC)) - timedelta(seconds=since_seconds)
    return LogOptions(follow=follow, tail_lines=tail, timestamps=timestamps, since_time=since_time,
                      limit_bytes=limit, previous=previous)


@dataclass(frozen=True)
class LogRecord:
    timestamp: str  # as the runtime wrote it (RFC3339Nano)
    stream: str  # "stdout" or "stderr"
    partial: bool
    text: bytes

    @property
    def time(self) -> datetime:
        return parse_rfc3339(self.timestamp)


def parse_record(line: bytes) -> LogRecord:
    """One CRI log line, without its trailing newline."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise LogFormatError(f"unexpected CRI log line {line[:80]!r}")
    timestamp, stream, tag = parts[0], parts[1], parts[2]
    if stream not in (b"stdout", b"stderr"):
        raise LogFormatError(f"unexpected stream type {stream[:20]!r}")
    # Tags may carry more flags after ':' in future runtimes; the first one is the line's completeness.
    first_tag = tag.split(b":", 1)[0]
    if first_tag not in (b"F", b"P"):
        raise LogFormatError(f"unexpected log tag {tag[:20]!r}")
    return LogRecord(timestamp.decode("ascii", "replace"), stream.decode(), first_tag == b"P",
                     parts[3] if len(parts) > 3 else b"")


class _LineAssembler:
    """Joins partial records into lines and applies sinceTime, timestamps and limitBytes to what goes out."""

    def __init__(self, options: LogOptions, write: Callable[[bytes], Awaitable[None]]):
        self.options = options
        self.write = write
        self.pending: list[bytes] = []
        self.pending_timestamp = ""
        self.remaining = options.limit_bytes
        self.since = options.since_time

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    async def add(self, record: LogRecord) -> None:
        if not self.pending:
            self.pending_timestamp = record.timestamp
        self.pending.append(record.text)
        if not record.partial:
            await self._emit(newline=True)

    async def flush_partial(self) -> None:
        """The text of an unfinished line, when the reader stops before its end arrives."""
        if self.pending:
            await self._emit(newline=False)

    async def _emit(self, newline: bool) -> None:
        text = b"".join(self.pending)
        timestamp = self.pending_timestamp
        self.pending = []
        if self.since is not None and parse_rfc3339(timestamp) < self.since:
            return
        out = (timestamp.encode() + b" " if self.options.timestamps else b"") + text + (b"\n" if newline else b"")
        if self.remaining is not None:
            out = out[:self.remaining]
            self.remaining -= len(out)
        if out:
            await self.write(out)


def tail_start_offset(path: Path, lines: int) -> int:
    """Where the last `lines` log lines start: just after the full record that ends the line before them."""
    if lines <= 0:
        return path.stat().st_size
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        position = end
        carry = b""
        full_seen = 0
        while position > 0:
            step = min(_READ_BLOCK, position)
            position -= step
            f.seek(position)
            block = f.read(step) + carry
            records = block.split(b"\n")
            # records[0] may be the end of a record that starts in an earlier block.
            carry = records[0]
            offset = position + len(records[0]) + 1
            starts = []
            for record in records[1:]:
                starts.append((offset, record))
                offset += len(record) + 1
            for start, record in reversed(starts):
                if _is_full(record) and start + len(record) < end:
                    full_seen += 1
                    if full_seen > lines:
                        return start + len(record) + 1
        if carry and _is_full(carry):
            full_seen += 1
            if full_seen > lines:
                return len(carry) + 1
    return 0


def _is_full(record: bytes) -> bool:
    parts = record.split(b" ", 3)
    return len(parts) >= 3 and parts[2].split(b":", 1)[0] == b"F"


async def _never_running() -> bool:
    return False


async def read_log(path: Path, options: LogOptions, write: Callable[[bytes], Awaitable[None]],
                   is_running: Callable[[], Awaitable[bool]] = _never_running) -> None:
    """Write the log at `path` as `options` ask; with follow, keep going until the container stops
    (`is_running` says so) and everything it wrote has been sent, or until cancelled."""
    assembler = _LineAssembler(options, write)
    f = path.open("rb")
    try:
        if options.tail_lines is not None:
            f.seek(tail_start_offset(path, options.tail_lines))
        buffer = b""
        last_running_check = 0.0
        loop = asyncio.get_running_loop()
        while not assembler.exhausted:
            chunk = f.read(_READ_BLOCK)
            if chunk:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    if line:
                        await assembler.add(parse_record(line))
                    if assembler.exhausted:
                        return
                continue
            if not options.follow:
                break
            # At the end of what is written so far: a rotated file is finished, so move on to the new one.
            if _rotated(f, path):
                f.close()
                f = path.open("rb")
                buffer = b""
                continue
            now = loop.time()
            if now - last_running_check >= RUNNING_CHECK_SECONDS:
                last_running_check = now
                if not await is_running():
                    # One last read: the container may have written its final lines after ours.
                    tail = f.read()
                    if tail:
                        f.seek(-len(tail), os.SEEK_CUR)
                        continue
                    break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        await assembler.flush_partial()
    finally:
        f.close()


def _rotated(f, path: Path) -> bool:
    try:
        current = path.stat()
    except FileNotFoundError:
        return False  # renamed and not reopened yet
    return current.st_ino != os.fstat(f.fileno()).st_ino
