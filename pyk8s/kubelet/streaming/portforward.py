"""port-forward: the kubelet's side of `kubectl port-forward` and the Python client's `portforward()`.

The runtime prepares the session (CRI PortForward answers with a one-time URL; its streaming server speaks
`portforward.k8s.io` over SPDY: per connection an error stream and a data stream, paired by `requestID`, with the
target `port` in their headers). Three front ends:
- WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` (kubectl >= 1.30): SPDY frames tunnelled in binary
  WebSocket messages; the tunnel is spliced onto the runtime's SPDY connection.
- native SPDY (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`, kubectl's fallback):
  spliced byte for byte.
- WebSocket channel protocol (Python client, `?ports=` or `?port=`): for the i-th port channel 2i carries data and
  2i+1 errors, and the first message on each is the port (little-endian uint16); translated onto one SPDY stream
  pair per port with the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Mapping

from aiohttp import WSMsgType, web

from pyk8s.kubelet.runtime.cri import CRIClient
from pyk8s.kubelet.streaming import channels, status
from pyk8s.kubelet.streaming.dial import Dialer, UpgradeError, tcp_dialer, upgrade
from pyk8s.kubelet.streaming.remotecommand import is_spdy, is_websocket, offered_stream_protocols, serve_spdy_splice
from pyk8s.kubelet.streaming.spdy import SpdyError, SpdySession, SpdyStream
from pyk8s.kubelet.streaming.transport import WebSocketTransport, splice

logger = logging.getLogger(__name__)

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


def ports_from_query(query: Mapping[str, str]) -> list[int]:
    """The ports of a WebSocket port-forward: `port` (the kubelet's name) or `ports` (what clients send to the
    apiserver), repeated (a multidict such as aiohttp's `request.query`) or comma-separated. Raises ValueError with
    upstream's messages."""
    values: list[str] = []
    getall = getattr(query, "getall", None)
    for name in ("port", "ports"):
        if getall is not None:
            values += getall(name, [])
        elif name in query:
            values.append(query[name])
    if not values:
        raise ValueError('query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError('query parameter "port" cannot be empty')
        for part in value.split(","):
            if not part.isdigit() or int(part) > 65535:
                raise ValueError(f'unable to parse "{value}" as a port')
            if int(part) < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(int(part))
    return ports


class PortForwardClient:
    """A `portforward.k8s.io` session with a runtime's SPDY streaming server (as client-go's port forwarder)."""

    def __init__(self, session: SpdySession, reader: asyncio.Task) -> None:
        self.session = session
        self._reader = reader
        self._next_request = 0

    @classmethod
    async def connect(cls, url: str, dialer: Dialer = tcp_dialer) -> PortForwardClient:
        transport, chosen = await upgrade(url, [PORT_FORWARD_PROTOCOL], dialer=dialer)
        if chosen != PORT_FORWARD_PROTOCOL:
            await transport.close()
            raise ConnectionError(f"runtime streaming server chose protocol {chosen!r}, need {PORT_FORWARD_PROTOCOL}")
        session = SpdySession(transport, server=False)
        return cls(session, asyncio.ensure_future(session.run()))

    async def open(self, port: int) -> tuple[SpdyStream, SpdyStream]:
        """(data, error) streams for one connection to `port` inside the pod."""
        request_id = str(self._next_request)
        self._next_request += 1
        base = [("port", str(port)), ("requestid", request_id)]
        error = await self.session.open_stream([("streamtype", "error"), *base])
        # Nothing is ever sent on the error stream, so its write side closes at once (as client-go does).
        await error.close_write()
        data = await self.session.open_stream([("streamtype", "data"), *base])
        return data, error

    async def close(self) -> None:
        await self.session.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def _send(ws: web.WebSocketResponse, message: bytes | str) -> None:
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_bytes(message)


async def _forward_port(ws: web.WebSocketResponse, protocol: channels.ChannelProtocol, index: int,
                        data: SpdyStream, error: SpdyStream) -> None:
    async def pump(source: SpdyStream, channel: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while chunk := await source.read():
                await _send(ws, protocol.encode(channel, chunk))

    reporter = asyncio.ensure_future(pump(error, 2 * index + 1))
    await pump(data, 2 * index)
    # The runtime writes any error before it ends the data stream and closes the error stream right after.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(reporter, timeout=5)


async def serve_channels(request: web.Request, url: str, ports: list[int], dialer: Dialer) -> web.StreamResponse:
    try:
        backend = await PortForwardClient.connect(url, dialer)
        pairs = [await backend.open(port) for port in ports]
    except (TimeoutError, OSError, ConnectionError, UpgradeError, SpdyError) as exc:
        return status.runtime_error_response(exc)
    ws = web.WebSocketResponse(protocols=channels.PORT_FORWARD_PROTOCOLS, autoping=True, max_msg_size=0)
    try:
        await ws.prepare(request)
        protocol = channels.protocol_for(ws.ws_protocol)
        for index, port in enumerate(ports):
            prefix = struct.pack("<H", port)
            await _send(ws, protocol.encode(2 * index, prefix))
            await _send(ws, protocol.encode(2 * index + 1, prefix))
        forwards = [asyncio.ensure_future(_forward_port(ws, protocol, index, data, error))
                    for index, (data, error) in enumerate(pairs)]

        async def from_client() -> None:
            async for message in ws:
                if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    continue
                decoded = protocol.decode(message.type, message.data)
                if decoded is None:
                    continue
                channel, payload = decoded
                if channel % 2 == 0 and channel // 2 < len(pairs) and payload:
                    # A port whose connection already ended drops what is still sent to it; the others go on.
                    with contextlib.suppress(SpdyError):
                        await pairs[channel // 2][0].write(payload)

        inbound = asyncio.ensure_future(from_client())
        all_forwarded = asyncio.ensure_future(asyncio.gather(*forwards))
        # Upstream closes the WebSocket once every port's connection has ended; a client leaving ends it too.
        await asyncio.wait([inbound, all_forwarded], return_when=asyncio.FIRST_COMPLETED)
        for task in (inbound, all_forwarded, *forwards):
            task.cancel()
    except (ConnectionError, RuntimeError, SpdyError) as exc:
        logger.debug("port-forward WebSocket ended early: %s", exc)
    finally:
        await backend.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


async def serve_tunnel(request: web.Request, url: str, dialer: Dialer) -> web.StreamResponse:
    try:
        backend, chosen = await upgrade(url, [PORT_FORWARD_PROTOCOL], dialer=dialer)
    except (OSError, ConnectionError, UpgradeError) as exc:
        return status.runtime_error_response(exc)
    if chosen != PORT_FORWARD_PROTOCOL:
        await backend.close()
        return status.error_response(500, "InternalError", f"runtime chose stream protocol {chosen!r}")
    ws = web.WebSocketResponse(protocols=[TUNNEL_PROTOCOL], autoping=True, max_msg_size=0)
    await ws.prepare(request)
    await splice(WebSocketTransport(ws), backend)
    return ws


def _wants_tunnel(request: web.BaseRequest) -> bool:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    return TUNNEL_PROTOCOL in [part.strip() for part in offered.split(",")]


async def serve_port_forward(request: web.Request, runtime: CRIClient, sandbox_id: str, ports: list[int], *,
                             dialer: Dialer = tcp_dialer) -> web.StreamResponse:
    """Forward connections to `ports` inside the pod sandbox (ports matter only to the WebSocket channel
    protocol; SPDY clients name the port in each stream's headers)."""
    if not (is_websocket(request) or is_spdy(request)):
        return status.bad_request("port-forward needs an Upgrade to WebSocket or SPDY/3.1")
    websocket_channels = is_websocket(request) and not _wants_tunnel(request)
    if websocket_channels and not ports:
        return status.bad_request('query parameter "port" is required')
    try:
        url = await runtime.port_forward(sandbox_id, ports)
    except Exception as exc:  # any runtime refusal becomes the HTTP error the client prints
        return status.runtime_error_response(exc)
    if is_spdy(request):
        return await serve_spdy_splice(request, url, offered_stream_protocols(request) or [PORT_FORWARD_PROTOCOL],
                                       dialer)
    if not websocket_channels:
        return await serve_tunnel(request, url, dialer)
    return await serve_channels(request, url, ports, dialer)
