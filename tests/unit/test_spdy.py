"""SPDY/3.1 framing, header compression and sessions (pure asyncio, in-memory transports).

Interop with Go's spdystream (containerd's streaming server) is proven by tests/e2e/test_kubelet_streaming.py.
"""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from pyk8s.kubelet.streaming import spdy
from pyk8s.kubelet.streaming.spdy import (
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    HEADER_DICTIONARY,
    DataFrame,
    FrameDecoder,
    FrameEncoder,
    GoAway,
    HeaderCompressor,
    HeaderDecompressor,
    HeadersFrame,
    Ping,
    RstStatus,
    RstStream,
    Settings,
    SpdyError,
    SpdySession,
    SpdyStream,
    SynReply,
    SynStream,
    WindowUpdate,
)


class PipeEnd:
    """One end of an in-memory byte pipe (what a TCP connection is to a session)."""

    def __init__(self, inbox: asyncio.Queue[bytes], outbox: asyncio.Queue[bytes]) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.written = 0
        self.closed = False

    async def read(self) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.written += len(data)
        await self.outbox.put(data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.outbox.put(b"")


def pipe() -> tuple[PipeEnd, PipeEnd]:
    a_to_b: asyncio.Queue[bytes] = asyncio.Queue()
    b_to_a: asyncio.Queue[bytes] = asyncio.Queue()
    return PipeEnd(b_to_a, a_to_b), PipeEnd(a_to_b, b_to_a)


def test_header_dictionary_is_the_spdy3_one() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post")
    assert b"\x00\x00\x00\x06origin100101201" in HEADER_DICTIONARY
    assert HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2


def test_header_blocks_share_one_compression_context() -> None:
    compressor, decompressor = HeaderCompressor(), HeaderDecompressor()
    headers = [("streamtype", "stdout"), ("port", "8080"), ("requestid", "0")]
    first = compressor.compress(headers)
    # zlib header with FDICT set, naming the SPDY dictionary by its Adler-32.
    assert first[1] & 0x20 and struct.unpack(">I", first[2:6])[0] == zlib.adler32(HEADER_DICTIONARY)
    second = compressor.compress(headers)
    assert len(second) < len(first)  # the second block refers back to the first
    assert decompressor.decompress(first) == headers
    assert decompressor.decompress(second) == headers
    # A fresh decompressor cannot read a block that depends on earlier ones: contexts are per session.
    with pytest.raises(SpdyError):
        HeaderDecompressor().decompress(second)


def test_repeated_header_names_travel_as_nul_separated_values() -> None:
    compressor, decompressor = HeaderCompressor(), HeaderDecompressor()
    block = compressor.compress([("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                                 ("x-stream-protocol-version", "v3.channel.k8s.io")])
    raw = zlib.decompressobj(zdict=HEADER_DICTIONARY).decompress(block)
    assert raw == (struct.pack(">I", 1) + struct.pack(">I", 25) + b"x-stream-protocol-version"
                   + struct.pack(">I", 35) + b"v4.channel.k8s.io\0v3.channel.k8s.io")
    assert decompressor.decompress(block) == [("x-stream-protocol-version", "v4.channel.k8s.io"),
                                              ("x-stream-protocol-version", "v3.channel.k8s.io")]


ALL_FRAMES = [
    SynStream(1, [("streamtype", "error")], FLAG_FIN | FLAG_UNIDIRECTIONAL, associated_id=0, priority=3),
    SynReply(1, [("status", "200")], FLAG_FIN),
    DataFrame(3, b"payload", FLAG_FIN),
    DataFrame(5, b""),
    RstStream(7, RstStatus.REFUSED_STREAM),
    Settings([(0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (1, 4, 100)]),
    Ping(42),
    GoAway(9, 1),
    HeadersFrame(1, [("trailer", "x")], FLAG_FIN),
    WindowUpdate(3, 65536),
]


def test_every_frame_type_round_trips_even_fed_byte_by_byte() -> None:
    encoder, decoder = FrameEncoder(), FrameDecoder()
    wire = b"".join(encoder.encode(frame) for frame in ALL_FRAMES)
    decoded = []
    for index in range(len(wire)):
        decoded += decoder.feed(wire[index:index + 1])
    assert decoded == ALL_FRAMES


def test_control_frame_layout_matches_the_spec() -> None:
    assert FrameEncoder().encode(Ping(7)) == bytes.fromhex("80030006 00000004 00000007")
    assert FrameEncoder().encode(RstStream(1, RstStatus.CANCEL)) == bytes.fromhex("80030003 00000008 00000001 00000005")
    assert FrameEncoder().encode(DataFrame(3, b"ab", FLAG_FIN)) == bytes.fromhex("00000003 01000002 6162")
    assert FrameEncoder().encode(WindowUpdate(3, 100)) == bytes.fromhex("80030009 00000008 00000003 00000064")


def test_unknown_control_frames_are_skipped_and_other_versions_refused() -> None:
    decoder = FrameDecoder()
    unknown = struct.pack(">HHI", 0x8003, 0x00FF, 3) + b"abc"
    assert decoder.feed(unknown + FrameEncoder().encode(Ping(1))) == [Ping(1)]
    with pytest.raises(SpdyError, match="version 2"):
        FrameDecoder().feed(struct.pack(">HHI", 0x8002, 6, 4) + b"\0\0\0\1")


async def _sessions(handler, *, flow_control: bool = False):
    client_end, server_end = pipe()
    server = SpdySession(server_end, server=True, on_stream=handler, flow_control=flow_control)
    client = SpdySession(client_end, server=False, flow_control=flow_control)
    tasks = [asyncio.ensure_future(server.run()), asyncio.ensure_future(client.run())]
    return client, server, client_end, tasks


async def test_streams_open_reply_exchange_data_and_half_close() -> None:
    seen: list[SpdyStream] = []

    async def upper_echo(stream: SpdyStream) -> None:
        seen.append(stream)
        await stream.reply([("x-answer", "yes")])
        data = await stream.read_all()  # until the client's FIN
        await stream.write(data.upper())
        await stream.close_write()

    client, server, _, tasks = await _sessions(upper_echo)
    stream = await client.open_stream([("streamtype", "stdin"), ("port", "80")])
    assert stream.id == 1 and stream.reply_headers == [("x-answer", "yes")]
    await stream.write(b"hello ")
    await stream.write(b"world")
    await stream.close_write()
    with pytest.raises(SpdyError):
        await stream.write(b"after FIN")
    assert await asyncio.wait_for(stream.read_all(), 10) == b"HELLO WORLD"
    assert seen[0].header("streamType") == "stdin" and seen[0].header("PORT") == "80"
    second = await client.open_stream([("streamtype", "stdout")])
    assert second.id == 3  # clients use odd ids, in order
    await client.close()
    for task in tasks:
        task.cancel()


async def test_server_opened_streams_use_even_ids_and_fin_on_syn() -> None:
    received: list[tuple[int, bytes]] = []

    async def collect(stream: SpdyStream) -> None:
        received.append((stream.id, await stream.read_all()))

    client_end, server_end = pipe()
    server = SpdySession(server_end, server=True)
    client = SpdySession(client_end, server=False, on_stream=collect)
    tasks = [asyncio.ensure_future(server.run()), asyncio.ensure_future(client.run())]
    pushed = await server.open_stream([("streamtype", "push")], fin=True, wait_reply=False)
    assert pushed.id == 2
    for _ in range(1000):
        if received:
            break
        await asyncio.sleep(0.01)
    assert received == [(2, b"")]
    for task in tasks:
        task.cancel()


async def test_reset_ends_reads_and_refuses_writes() -> None:
    async def reset_at_once(stream: SpdyStream) -> None:
        await stream.reply()
        await stream.reset(RstStatus.INTERNAL_ERROR)

    client, _, _, tasks = await _sessions(reset_at_once)
    stream = await client.open_stream([("streamtype", "data")])
    assert await asyncio.wait_for(stream.read(), 10) == b""
    assert stream.reset_status == RstStatus.INTERNAL_ERROR
    with pytest.raises(SpdyError):
        await stream.write(b"x")
    for task in tasks:
        task.cancel()


async def test_ping_is_answered_and_goaway_stops_new_streams() -> None:
    async def accept(stream: SpdyStream) -> None:
        await stream.reply()

    client, server, _, tasks = await _sessions(accept)
    await asyncio.wait_for(client.ping(), 10)
    await asyncio.wait_for(server.ping(), 10)
    await server.go_away()
    for _ in range(1000):
        if client.went_away:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(SpdyError, match="going away"):
        await client.open_stream([("streamtype", "late")])
    for task in tasks:
        task.cancel()


async def test_streams_with_the_wrong_parity_are_refused_with_protocol_error() -> None:
    client_end, server_end = pipe()
    server = SpdySession(server_end, server=True, on_stream=lambda stream: None)
    task = asyncio.ensure_future(server.run())
    encoder, decoder = FrameEncoder(), FrameDecoder()
    await client_end.write(encoder.encode(SynStream(2, [("streamtype", "even")])))
    answer = decoder.feed(await asyncio.wait_for(client_end.read(), 10))
    assert answer == [RstStream(2, RstStatus.PROTOCOL_ERROR)]
    task.cancel()


async def test_session_end_releases_readers_and_pending_replies() -> None:
    async def never_reply(stream: SpdyStream) -> None:
        await asyncio.sleep(3600)

    client, server, client_end, tasks = await _sessions(never_reply)
    opening = asyncio.ensure_future(client.open_stream([("streamtype", "error")]))
    await asyncio.sleep(0.05)
    await server.close()
    with pytest.raises(SpdyError):
        await asyncio.wait_for(opening, 10)
    for task in tasks:
        task.cancel()


async def test_flow_control_blocks_the_sender_at_the_window_until_the_reader_consumes() -> None:
    accepted: asyncio.Queue[SpdyStream] = asyncio.Queue()

    async def accept(stream: SpdyStream) -> None:
        await stream.reply()
        await accepted.put(stream)

    client, server, _, tasks = await _sessions(accept, flow_control=True)
    stream = await client.open_stream([("streamtype", "data")])
    incoming = await accepted.get()
    payload = bytes(range(256)) * 4096  # 1 MiB: sixteen default windows
    writer = asyncio.ensure_future(stream.write(payload))
    for _ in range(1000):
        if stream.send_window == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert stream.send_window == 0 and not writer.done()  # exactly one window in flight, nothing more
    received = b""
    while len(received) < len(payload):
        received += await asyncio.wait_for(incoming.read(), 10)
    await asyncio.wait_for(writer, 10)
    assert received == payload
    for task in tasks:
        task.cancel()


async def test_settings_change_the_initial_window_of_open_streams() -> None:
    accepted: asyncio.Queue[SpdyStream] = asyncio.Queue()

    async def accept(stream: SpdyStream) -> None:
        await stream.reply()
        await accepted.put(stream)

    client, server, _, tasks = await _sessions(accept, flow_control=True)
    stream = await client.open_stream([("streamtype", "data")])
    await server.send_settings(1024)
    for _ in range(1000):
        if client.initial_send_window == 1024:
            break
        await asyncio.sleep(0.01)
    assert stream.send_window == 1024
    writer = asyncio.ensure_future(stream.write(b"x" * 3000))
    await asyncio.sleep(0.05)
    assert not writer.done()
    incoming = await accepted.get()
    got = b""
    while len(got) < 3000:
        got += await asyncio.wait_for(incoming.read(), 10)
    # The reader hands the window back (WINDOW_UPDATE) as it consumes, so the writer gets through.
    await asyncio.wait_for(writer, 10)
    assert got == b"x" * 3000
    for task in tasks:
        task.cancel()


async def test_without_flow_control_a_silent_peer_does_not_stall_the_sender() -> None:
    # spdystream (client-go, containerd) never sends WINDOW_UPDATE: senders must not wait for one.
    got: list[bytes] = []

    async def swallow(stream: SpdyStream) -> None:
        await stream.reply()
        got.append(await stream.read_all())

    client, _, _, tasks = await _sessions(swallow)
    stream = await client.open_stream([("streamtype", "stdin")])
    await asyncio.wait_for(stream.write(b"z" * (256 * 1024)), 10)
    await stream.close_write()
    for _ in range(1000):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [b"z" * (256 * 1024)]
    for task in tasks:
        task.cancel()
