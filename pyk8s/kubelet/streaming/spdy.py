"""SPDY/3.1 framing and sessions in pure asyncio, as Kubernetes uses them for exec, attach and port-forward.

Kubernetes speaks SPDY through moby/spdystream: streams are opened with SYN_STREAM (client odd ids, server even
ids) and must be answered with SYN_REPLY before the opener sends data; DATA frames with FLAG_FIN half-close a
direction; header blocks are zlib streams primed with the SPDY/3 dictionary, one compression context per
direction for the whole session.

Flow control: spdystream ignores WINDOW_UPDATE and never sends one, so SPDY/3.1 windows are used only with
`flow_control=True` (both sides of a session that honours them: the sender blocks on the window, the reader hands
consumed bytes back). Towards spdystream nothing is sent that it would not read anyway: its server closes the
connection right after the exit status, and unread bytes (such as a late WINDOW_UPDATE) in its socket turn that
close into a TCP reset that destroys output still in flight to us. Backpressure then comes from the transport: a
stream with a full receive buffer pauses the session's read loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

SPDY_VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_FRAME_PAYLOAD = 0xFFFFFF
# DATA frames we send are cut at 32 KiB (spdystream reads whole frames into memory).
MAX_DATA_CHUNK = 32 * 1024
# Bytes a stream may buffer unread before the session stops reading its transport.
RECEIVE_BUFFER_LIMIT = 1024 * 1024


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class SpdyError(Exception):
    """A protocol violation or a stream that was reset / a session that ended."""


# ---- the header compression dictionary of SPDY/3 (draft-mbelshe-httpbis-spdy-00 section 2.6.10.1) ----

# Each of these words is preceded by its 32-bit big-endian length in the dictionary.
_DICTIONARY_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
    "allow authorization cache-control connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
# ...followed by this text without length prefixes.
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
HEADER_DICTIONARY = b"".join(struct.pack(">I", len(word)) + word.encode() for word in _DICTIONARY_WORDS) + \
    _DICTIONARY_TAIL.encode()

Headers = list[tuple[str, str]]


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of `name` (case-insensitive; Go peers send canonical case, SPDY says lowercase)."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


class HeaderCompressor:
    """One zlib context for every header block this side sends (the peer inflates them as one stream)."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, zlib.MAX_WBITS,
                                      zdict=HEADER_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        # Repeated names become one entry with NUL-separated values, as SPDY/3 requires.
        merged: dict[str, list[str]] = {}
        for name, value in headers:
            merged.setdefault(name.lower(), []).append(value)
        block = [struct.pack(">I", len(merged))]
        for name, values in merged.items():
            raw_name, raw_value = name.encode(), "\0".join(values).encode()
            block += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
        return self._zlib.compress(b"".join(block)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS, zdict=HEADER_DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            raw = self._zlib.decompress(data)
        except zlib.error as exc:
            raise SpdyError(f"header block: {exc}") from None
        try:
            (count,), offset = struct.unpack_from(">I", raw), 4
            headers: Headers = []
            for _ in range(count):
                (name_length,) = struct.unpack_from(">I", raw, offset)
                name = raw[offset + 4:offset + 4 + name_length].decode()
                offset += 4 + name_length
                (value_length,) = struct.unpack_from(">I", raw, offset)
                value = raw[offset + 4:offset + 4 + value_length].decode()
                offset += 4 + value_length
                headers += [(name, part) for part in value.split("\0")]
        except (struct.error, UnicodeDecodeError) as exc:
            raise SpdyError(f"malformed header block: {exc}") from None
        if offset != len(raw):
            raise SpdyError("header block has trailing bytes")
        return headers


# ---- frames ----

@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    flags: int = 0


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=list)
    flags: int = 0
    associated_id: int = 0
    priority: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=list)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int = RstStatus.CANCEL


@dataclass
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    ping_id: int


@dataclass
class GoAway:
    last_good_stream_id: int = 0
    status: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=list)
    flags: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate


def _control(frame_type: FrameType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise SpdyError(f"{frame_type.name} frame too large")
    return struct.pack(">HHI", 0x8000 | SPDY_VERSION, frame_type, (flags << 24) | len(payload)) + payload


class FrameEncoder:
    """Serialises frames; owns this direction's header compression context."""

    def __init__(self) -> None:
        self._headers = HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        match frame:
            case DataFrame(stream_id, data, flags):
                if len(data) > MAX_FRAME_PAYLOAD:
                    raise SpdyError("DATA frame too large")
                return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data
            case SynStream(stream_id, headers, flags, associated_id, priority):
                payload = struct.pack(">IIBB", stream_id, associated_id, (priority & 0x7) << 5, 0)
                return _control(FrameType.SYN_STREAM, flags, payload + self._headers.compress(headers))
            case SynReply(stream_id, headers, flags):
                return _control(FrameType.SYN_REPLY, flags,
                                struct.pack(">I", stream_id) + self._headers.compress(headers))
            case RstStream(stream_id, status):
                return _control(FrameType.RST_STREAM, 0, struct.pack(">II", stream_id, status))
            case Settings(entries, flags):
                payload = struct.pack(">I", len(entries)) + b"".join(
                    struct.pack(">II", (entry_flags << 24) | entry_id, value)
                    for entry_flags, entry_id, value in entries)
                return _control(FrameType.SETTINGS, flags, payload)
            case Ping(ping_id):
                return _control(FrameType.PING, 0, struct.pack(">I", ping_id))
            case GoAway(last_good, status):
                return _control(FrameType.GOAWAY, 0, struct.pack(">II", last_good, status))
            case HeadersFrame(stream_id, headers, flags):
                return _control(FrameType.HEADERS, flags,
                                struct.pack(">I", stream_id) + self._headers.compress(headers))
            case WindowUpdate(stream_id, delta):
                return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta & 0x7FFFFFFF))
        raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameDecoder:
    """Turns received bytes into frames; owns the peer direction's header decompression context."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._headers = HeaderDecompressor()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            word, flags_length = struct.unpack_from(">II", self._buffer)
            length = flags_length & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = flags_length >> 24
            if word & 0x80000000:
                frame = self._control((word >> 16) & 0x7FFF, word & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(DataFrame(word & 0x7FFFFFFF, payload, flags))
        return frames

    def _control(self, version: int, frame_type: int, flags: int, payload: bytes) -> Frame | None:
        if version != SPDY_VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        try:
            match frame_type:
                case FrameType.SYN_STREAM:
                    stream_id, associated, priority, _slot = struct.unpack_from(">IIBB", payload)
                    return SynStream(stream_id & 0x7FFFFFFF, self._headers.decompress(payload[10:]), flags,
                                     associated & 0x7FFFFFFF, priority >> 5)
                case FrameType.SYN_REPLY:
                    (stream_id,) = struct.unpack_from(">I", payload)
                    return SynReply(stream_id & 0x7FFFFFFF, self._headers.decompress(payload[4:]), flags)
                case FrameType.RST_STREAM:
                    stream_id, status = struct.unpack_from(">II", payload)
                    return RstStream(stream_id & 0x7FFFFFFF, status)
                case FrameType.SETTINGS:
                    (count,) = struct.unpack_from(">I", payload)
                    entries = []
                    for index in range(count):
                        flags_id, value = struct.unpack_from(">II", payload, 4 + 8 * index)
                        entries.append((flags_id >> 24, flags_id & 0xFFFFFF, value))
                    return Settings(entries, flags)
                case FrameType.PING:
                    return Ping(struct.unpack_from(">I", payload)[0])
                case FrameType.GOAWAY:
                    last_good, status = struct.unpack_from(">II", payload)
                    return GoAway(last_good & 0x7FFFFFFF, status)
                case FrameType.HEADERS:
                    (stream_id,) = struct.unpack_from(">I", payload)
                    return HeadersFrame(stream_id & 0x7FFFFFFF, self._headers.decompress(payload[4:]), flags)
                case FrameType.WINDOW_UPDATE:
                    stream_id, delta = struct.unpack_from(">II", payload)
                    return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error:
            raise SpdyError(f"truncated control frame of type {frame_type}") from None
        return None  # unknown control frames are ignored, as the spec asks


# ---- sessions ----

class ByteTransport(Protocol):
    """A reliable byte pipe: TCP, an upgraded HTTP connection, or WebSocket binary messages."""

    async def read(self) -> bytes: ...  # b"" at end of stream

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SpdyStream:
    def __init__(self, session: SpdySession, stream_id: int, headers: Headers, *, local_fin: bool = False,
                 remote_fin: bool = False) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reply_headers: Headers | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._replied = asyncio.Event()
        self.remote_closed = remote_fin
        self.local_closed = local_fin
        self.reset_status: int | None = None
        self.send_window = session.initial_send_window
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._unacknowledged = 0

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    async def wait_reply(self) -> Headers:
        await self._replied.wait()
        if self.reply_headers is None:
            raise SpdyError(f"stream {self.id} reset before its reply ({self.reset_status})")
        return self.reply_headers

    async def reply(self, headers: Headers | None = None, fin: bool = False) -> None:
        await self.session.send(SynReply(self.id, headers or [], FLAG_FIN if fin else 0))
        self.local_closed = self.local_closed or fin

    async def read(self) -> bytes:
        """The next chunk of data; b"" once the peer half-closed (or reset) the stream."""
        while not self._chunks:
            if self.remote_closed or self.reset_status is not None:
                self.session._forget_if_done(self)
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < RECEIVE_BUFFER_LIMIT:
            self._drained.set()
        if self.session.flow_control:
            await self._acknowledge(len(chunk))
        return chunk

    async def _acknowledge(self, consumed: int) -> None:
        self._unacknowledged += consumed
        # Give the window back once half of it is consumed, like SPDY/3.1 implementations do.
        if self._unacknowledged >= max(1, self.session.receive_window // 2) and not self.remote_closed:
            delta, self._unacknowledged = self._unacknowledged, 0
            with contextlib.suppress(SpdyError, ConnectionError):
                await self.session.send(WindowUpdate(self.id, delta))

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.local_closed or self.reset_status is not None:
                raise SpdyError(f"write on closed stream {self.id}")
            size = min(len(view), MAX_DATA_CHUNK)
            if self.session.flow_control:
                while self.send_window <= 0:
                    self._window_open.clear()
                    await self._window_open.wait()
                    if self.reset_status is not None:
                        raise SpdyError(f"stream {self.id} reset ({self.reset_status})")
                size = min(size, self.send_window)
            self.send_window -= size
            await self.session.send(DataFrame(self.id, bytes(view[:size])))
            view = view[size:]

    async def close_write(self) -> None:
        """Half-close: FIN on an empty DATA frame. The peer sees EOF; we can still read."""
        if self.local_closed or self.reset_status is not None:
            return
        self.local_closed = True
        await self.session.send(DataFrame(self.id, b"", FLAG_FIN))
        self.session._forget_if_done(self)

    async def reset(self, status: int = RstStatus.CANCEL) -> None:
        if self.reset_status is not None:
            return
        self._on_reset(status)
        with contextlib.suppress(ConnectionError, SpdyError):
            await self.session.send(RstStream(self.id, status))

    # -- called by the session's read loop --

    async def _on_data(self, data: bytes, fin: bool) -> None:
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered >= RECEIVE_BUFFER_LIMIT:
                self._drained.clear()
        if fin:
            self.remote_closed = True
        self._readable.set()
        await self._drained.wait()

    def _on_reply(self, headers: Headers, fin: bool) -> None:
        self.reply_headers = headers
        self.remote_closed = self.remote_closed or fin
        self._replied.set()
        self._readable.set()

    def _on_reset(self, status: int) -> None:
        self.reset_status = status
        self.remote_closed = True
        for event in (self._replied, self._readable, self._window_open, self._drained):
            event.set()

    def _on_window_update(self, delta: int) -> None:
        self.send_window += delta
        if self.send_window > 0:
            self._window_open.set()


StreamHandler = Callable[[SpdyStream], Awaitable[None] | None]


class SpdySession:
    """One SPDY/3.1 connection. `run()` reads frames until the transport ends; streams are opened with
    `open_stream` and, on the other side, handed to `on_stream` (which must `reply()` before data flows)."""

    def __init__(self, transport: ByteTransport, *, server: bool, on_stream: StreamHandler | None = None,
                 flow_control: bool = False) -> None:
        self.transport = transport
        self.server = server
        self.flow_control = flow_control
        self.initial_send_window = DEFAULT_WINDOW
        self.receive_window = DEFAULT_WINDOW
        self._on_stream = on_stream
        self._encoder = FrameEncoder()
        self._decoder = FrameDecoder()
        self._write_lock = asyncio.Lock()
        self._streams: dict[int, SpdyStream] = {}
        self._next_stream_id = 2 if server else 1
        self._next_ping_id = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._handler_tasks: set[asyncio.Task] = set()
        self.closed = asyncio.Event()
        self.went_away = False
        self.last_remote_stream_id = 0

    async def send(self, frame: Frame) -> None:
        if self.closed.is_set():
            raise ConnectionError("SPDY session closed")
        async with self._write_lock:
            # Encode under the lock: header blocks share one compression context and must go out in order.
            await self.transport.write(self._encoder.encode(frame))

    async def open_stream(self, headers: Headers, *, fin: bool = False, wait_reply: bool = True) -> SpdyStream:
        if self.went_away:
            raise SpdyError("session is going away")
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        stream = SpdyStream(self, stream_id, headers, local_fin=fin)
        self._streams[stream_id] = stream
        await self.send(SynStream(stream_id, headers, FLAG_FIN if fin else 0))
        if wait_reply:
            await stream.wait_reply()
        return stream

    async def ping(self) -> None:
        ping_id = self._next_ping_id
        self._next_ping_id += 2
        answer = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = answer
        try:
            await self.send(Ping(ping_id))
            await answer
        finally:
            self._pings.pop(ping_id, None)

    async def send_settings(self, initial_window: int) -> None:
        """Tell the peer how many bytes each stream may have in flight towards us."""
        self.receive_window = initial_window
        await self.send(Settings([(0, SETTINGS_INITIAL_WINDOW_SIZE, initial_window)]))

    async def go_away(self, status: int = 0) -> None:
        with contextlib.suppress(ConnectionError):
            await self.send(GoAway(self.last_remote_stream_id, status))

    async def close(self) -> None:
        if not self.closed.is_set():
            self._finish()
            await self.transport.close()
        for task in list(self._handler_tasks):
            task.cancel()

    async def run(self) -> None:
        try:
            while data := await self.transport.read():
                for frame in self._decoder.feed(data):
                    await self._dispatch(frame)
        except SpdyError as exc:
            logger.debug("SPDY session ended: %s", exc)
            await self.go_away(1)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._finish()

    def _finish(self) -> None:
        self.closed.set()
        for stream in self._streams.values():
            if not stream.remote_closed or not stream._replied.is_set():
                stream._on_reset(RstStatus.CANCEL)
        for answer in self._pings.values():
            if not answer.done():
                answer.set_exception(ConnectionError("SPDY session closed"))

    def _forget_if_done(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed and not stream._chunks:
            self._streams.pop(stream.id, None)

    async def _dispatch(self, frame: Frame) -> None:
        match frame:
            case DataFrame(stream_id, data, flags):
                stream = self._streams.get(stream_id)
                if stream is None:
                    await self.send(RstStream(stream_id, RstStatus.INVALID_STREAM))
                    return
                await stream._on_data(data, bool(flags & FLAG_FIN))
                self._forget_if_done(stream)
            case SynStream(stream_id, headers, flags):
                await self._accept(stream_id, headers, flags)
            case SynReply(stream_id, headers, flags):
                if (stream := self._streams.get(stream_id)) is not None:
                    stream._on_reply(headers, bool(flags & FLAG_FIN))
            case HeadersFrame(stream_id, headers, flags):
                if (stream := self._streams.get(stream_id)) is not None:
                    stream.headers = stream.headers + headers
                    if flags & FLAG_FIN:
                        await stream._on_data(b"", True)
            case RstStream(stream_id, status):
                if (stream := self._streams.pop(stream_id, None)) is not None:
                    stream._on_reset(status)
            case Settings(entries):
                for _flags, setting, value in entries:
                    if setting == SETTINGS_INITIAL_WINDOW_SIZE:
                        # The change applies to every open stream's window too (SPDY/3.1 section 2.6.8).
                        for stream in self._streams.values():
                            stream._on_window_update(value - self.initial_send_window)
                        self.initial_send_window = value
            case Ping(ping_id):
                if ping_id % 2 == self._next_ping_id % 2:
                    if (answer := self._pings.get(ping_id)) is not None and not answer.done():
                        answer.set_result(None)
                else:
                    await self.send(frame)
            case GoAway():
                self.went_away = True
            case WindowUpdate(stream_id, delta):
                if stream_id == 0:
                    return  # session-level window: we never block on it (see module docstring)
                if (stream := self._streams.get(stream_id)) is not None:
                    stream._on_window_update(delta)

    async def _accept(self, stream_id: int, headers: Headers, flags: int) -> None:
        expected_parity = 1 if self.server else 0
        if stream_id % 2 != expected_parity or stream_id <= self.last_remote_stream_id:
            await self.send(RstStream(stream_id, RstStatus.PROTOCOL_ERROR))
            return
        self.last_remote_stream_id = stream_id
        if self.went_away or self._on_stream is None:
            await self.send(RstStream(stream_id, RstStatus.REFUSED_STREAM))
            return
        stream = SpdyStream(self, stream_id, headers, remote_fin=bool(flags & FLAG_FIN),
                            local_fin=bool(flags & FLAG_UNIDIRECTIONAL))
        stream._replied.set()
        self._streams[stream_id] = stream
        result = self._on_stream(stream)
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)
