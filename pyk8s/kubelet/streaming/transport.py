"""Byte pipes under the SPDY sessions and splices: TCP streams, hijacked HTTP upgrades, WebSocket tunnels.

aiohttp's server only hands WebSocket upgrades over to the application; for `Upgrade: SPDY/3.1` we take the
connection over the same way aiohttp's own WebSocketResponse does (a payload parser that receives every byte
after the request, the 101 written through the normal response path, keep-alive off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web
from aiohttp.client_ws import ClientWebSocketResponse

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024


class StreamTransport:
    """An asyncio (reader, writer) pair; `preread` holds bytes that arrived with the HTTP response head."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, preread: bytes = b"") -> None:
        self._reader = reader
        self._writer = writer
        self._preread = preread

    async def read(self) -> bytes:
        if self._preread:
            data, self._preread = self._preread, b""
            return data
        try:
            return await self._reader.read(READ_SIZE)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class _UpgradedPayload:
    """Receives the raw bytes of a hijacked aiohttp server connection (aiohttp's payload-parser interface)."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self._queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(b"")


class HijackedTransport:
    """The client connection of an aiohttp request after we answered it with 101 Switching Protocols."""

    def __init__(self, request: web.BaseRequest, queue: asyncio.Queue[bytes]) -> None:
        self._request = request
        self._queue = queue
        self._eof = False

    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self._queue.get()
        self._eof = not data
        return data

    async def write(self, data: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client connection closed")
        transport.write(data)
        # Wait while the socket's send buffer is over aiohttp's high-water mark (the protocol pauses writing).
        protocol = self._request.protocol
        await protocol._drain_helper()  # noqa: SLF001 - aiohttp's own writers use this for backpressure

    async def close(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()


async def hijack(request: web.BaseRequest, headers: dict[str, str]) -> tuple[web.StreamResponse, HijackedTransport]:
    """Answer `request` with 101 (plus `headers`) and take over its connection as a byte pipe."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    # Install the byte sink before the 101 goes out, so the client's first frames cannot reach aiohttp's parser.
    request.protocol.set_parser(_UpgradedPayload(queue))
    response = web.StreamResponse(status=101, reason="Switching Protocols", headers=headers)
    response.force_close()
    await response.prepare(request)
    return response, HijackedTransport(request, queue)


class WebSocketTransport:
    """A byte pipe over WebSocket binary messages (client-go's tunnelling: one message per write)."""

    def __init__(self, ws: web.WebSocketResponse | ClientWebSocketResponse) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        while True:
            message = await self._ws.receive()
            if message.type == WSMsgType.BINARY:
                if message.data:
                    return message.data
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return b""
            logger.debug("ignoring WebSocket message of type %s in a byte tunnel", message.type)

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.close()


async def splice(client, backend) -> None:
    """Copy bytes both ways until either side ends, then close both. SPDY carries its own half-closes (FIN
    frames), and a client's EOF on an upgraded connection means it is gone (aiohttp and WebSockets have no TCP
    half-close), so neither direction outlives the other; buffered bytes are still flushed by the close."""

    async def pump(source, sink) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read():
                await sink.write(data)

    directions = [asyncio.ensure_future(pump(client, backend)), asyncio.ensure_future(pump(backend, client))]
    try:
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in directions:
            task.cancel()
        for transport in (client, backend):
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                await transport.close()
