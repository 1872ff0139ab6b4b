"""exec and attach: the kubelet's side of `kubectl exec/attach/cp` and the Python client's `stream()`.

The runtime prepares each session (CRI Exec/Attach answer with a one-time URL on its streaming server, which
speaks remotecommand over SPDY). Two front ends:
- SPDY (`POST`, `Upgrade: SPDY/3.1`, kubectl's fallback): the client's protocol offer is passed to the runtime's
  server and the two connections are spliced byte for byte, as upstream's kubelet proxies streaming sessions. SPDY
  is end to end (one header compression context per direction), so stdin FIN, resize and the exit status pass
  through untouched.
- WebSocket channel protocols (kubectl's v5, the Python client's v4, v1 and base64 variants): translated onto a
  SPDY remotecommand v4 session with the runtime: one SPDY stream per channel, the v5 CLOSE of stdin becomes a
  FIN on the stdin stream, the runtime's Status (NonZeroExitCode/ExitCode) goes out on channel 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from pyk8s.kubelet.runtime.cri import CRIClient
from pyk8s.kubelet.streaming import channels, status
from pyk8s.kubelet.streaming.dial import Dialer, UpgradeError, tcp_dialer, upgrade
from pyk8s.kubelet.streaming.spdy import SpdyError, SpdySession, SpdyStream
from pyk8s.kubelet.streaming.transport import hijack, splice

logger = logging.getLogger(__name__)

STREAM_TYPE = "streamtype"
REMOTECOMMAND_V4 = "v4.channel.k8s.io"
# What the SPDY remotecommand servers of CRI runtimes understand (containerd 1.6 vendors v1-v4; v5 is newer).
SPDY_REMOTECOMMAND_PROTOCOLS = [REMOTECOMMAND_V4, "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
_TRUE = {"1", "t", "true"}


@dataclass
class StreamOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamOptions:
        """Parse `stdin/stdout/stderr/tty` as the kubelet receives them (`1` from the apiserver, `true` from a
        client). A TTY merges stderr into stdout. Raises ValueError when no stream is asked for."""
        def flag(name: str) -> bool:
            return str(query.get(name, "")).lower() in _TRUE

        options = cls(stdin=flag("stdin"), stdout=flag("stdout"), stderr=flag("stderr"), tty=flag("tty"))
        if options.tty:
            options.stderr = False
        if not (options.stdin or options.stdout or options.stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return options


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and \
        "upgrade" in request.headers.get("Connection", "").lower()


def is_spdy(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "spdy/3.1"


def offered_stream_protocols(request: web.BaseRequest) -> list[str]:
    offered: list[str] = []
    for value in request.headers.getall("X-Stream-Protocol-Version", []):
        offered += [part.strip() for part in value.split(",") if part.strip()]
    return offered


async def serve_spdy_splice(request: web.BaseRequest, url: str, protocols: list[str],
                            dialer: Dialer) -> web.StreamResponse:
    """Upgrade to the runtime's streaming server with the client's protocol offer, answer the client with the
    runtime's choice, then copy bytes both ways. A refusal is passed back with the runtime's status and body."""
    try:
        backend, chosen = await upgrade(url, protocols, dialer=dialer)
    except UpgradeError as refused:
        return web.Response(status=refused.status, body=refused.body,
                            content_type=refused.headers.get("content-type", "text/plain").split(";")[0])
    except (OSError, ConnectionError) as exc:
        return status.runtime_error_response(exc)
    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    if chosen:
        headers["X-Stream-Protocol-Version"] = chosen
    response, client = await hijack(request, headers)
    await splice(client, backend)
    return response


class RemoteCommandClient:
    """A remotecommand v4 session with a runtime's SPDY streaming server (as client-go's SPDY executor)."""

    def __init__(self, session: SpdySession, reader: asyncio.Task) -> None:
        self.session = session
        self._reader = reader
        self.error: SpdyStream | None = None
        self.stdin: SpdyStream | None = None
        self.stdout: SpdyStream | None = None
        self.stderr: SpdyStream | None = None
        self.resize: SpdyStream | None = None

    @classmethod
    async def connect(cls, url: str, options: StreamOptions, dialer: Dialer = tcp_dialer) -> RemoteCommandClient:
        transport, chosen = await upgrade(url, [REMOTECOMMAND_V4], dialer=dialer)
        if chosen != REMOTECOMMAND_V4:
            await transport.close()
            raise ConnectionError(f"runtime streaming server chose protocol {chosen!r}, need {REMOTECOMMAND_V4}")
        session = SpdySession(transport, server=False)
        client = cls(session, asyncio.ensure_future(session.run()))
        try:
            # The order client-go uses; the server waits for exactly the streams the session was prepared with.
            client.error = await client._open("error")
            if options.stdin:
                client.stdin = await client._open("stdin")
            if options.stdout:
                client.stdout = await client._open("stdout")
            if options.stderr and not options.tty:
                client.stderr = await client._open("stderr")
            if options.tty:
                client.resize = await client._open("resize")
        except BaseException:
            await client.close()
            raise
        return client

    async def _open(self, stream_type: str) -> SpdyStream:
        return await asyncio.wait_for(self.session.open_stream([(STREAM_TYPE, stream_type)]), timeout=30)

    async def status(self) -> bytes:
        """The runtime's final word: a JSON Status once the command has ended (b"" if the session broke)."""
        assert self.error is not None
        return await self.error.read_all()

    async def close(self) -> None:
        await self.session.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def _pump_to_ws(source: SpdyStream, ws: web.WebSocketResponse, protocol: channels.ChannelProtocol,
                      channel: int) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        while data := await source.read():
            await _send(ws, protocol.encode(channel, data))


async def _send(ws: web.WebSocketResponse, message: bytes | str) -> None:
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_bytes(message)


async def _pump_from_ws(ws: web.WebSocketResponse, protocol: channels.ChannelProtocol,
                        backend: RemoteCommandClient) -> None:
    """Client → runtime: stdin data, resize events, the v5 CLOSE of stdin; the WebSocket's end closes stdin."""
    try:
        async for message in ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            decoded = protocol.decode(message.type, message.data)
            if decoded is None:
                continue
            channel, data = decoded
            if channel == channels.STDIN and backend.stdin is not None and data:
                await backend.stdin.write(data)
            elif channel == channels.RESIZE and backend.resize is not None and data:
                await backend.resize.write(data)
            elif channel == channels.CLOSE_SIGNAL and protocol.supports_close and data[:1] == bytes([channels.STDIN]):
                if backend.stdin is not None:
                    await backend.stdin.close_write()
    except (ConnectionError, RuntimeError, SpdyError) as exc:
        logger.debug("remotecommand client stream ended: %s", exc)
    finally:
        if backend.stdin is not None:
            with contextlib.suppress(ConnectionError, SpdyError):
                await backend.stdin.close_write()


async def serve_websocket(request: web.Request, connect: Callable[[], Awaitable[RemoteCommandClient]],
                          ) -> web.StreamResponse:
    try:
        backend = await connect()
    except UpgradeError as refused:
        return status.error_response(500, "InternalError", f"Internal error occurred: {refused}")
    except (TimeoutError, OSError, ConnectionError, SpdyError) as exc:
        return status.runtime_error_response(exc)
    ws = web.WebSocketResponse(protocols=channels.EXEC_PROTOCOLS, autoping=True, max_msg_size=0)
    try:
        await ws.prepare(request)
        protocol = channels.protocol_for(ws.ws_protocol)
        outputs = [asyncio.ensure_future(_pump_to_ws(stream, ws, protocol, channel))
                   for stream, channel in ((backend.stdout, channels.STDOUT), (backend.stderr, channels.STDERR))
                   if stream is not None]
        inputs = asyncio.ensure_future(_pump_from_ws(ws, protocol, backend))
        final = asyncio.ensure_future(backend.status())
        # The command ends when the runtime writes its status; a client that goes away ends it too.
        await asyncio.wait([final, inputs], return_when=asyncio.FIRST_COMPLETED)
        if final.done():
            # All output frames precede the status on the runtime's connection: let the pumps flush them.
            if outputs:
                await asyncio.wait(outputs, timeout=30)
            raw = final.result() or json.dumps(status.internal_error_status(
                "the container runtime closed the stream without a status")).encode()
            if protocol.status_json:
                await _send(ws, protocol.encode(channels.ERROR, raw))
            elif text := status.status_text(raw):
                await _send(ws, protocol.encode(channels.ERROR, text.encode()))
        for task in (*outputs, inputs, final):
            task.cancel()
    except (ConnectionError, RuntimeError) as exc:
        logger.debug("exec/attach WebSocket ended early: %s", exc)
    finally:
        await backend.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


async def _serve(request: web.Request, prepare: Callable[[], Awaitable[str]], options: StreamOptions,
                 dialer: Dialer) -> web.StreamResponse:
    if not (is_websocket(request) or is_spdy(request)):
        return status.bad_request("exec and attach need an Upgrade to WebSocket or SPDY/3.1")
    try:
        url = await prepare()
    except Exception as exc:  # any runtime refusal becomes the HTTP error the client prints
        return status.runtime_error_response(exc)
    if is_spdy(request):
        return await serve_spdy_splice(request, url, offered_stream_protocols(request) or SPDY_REMOTECOMMAND_PROTOCOLS,
                                       dialer)
    return await serve_websocket(request, lambda: RemoteCommandClient.connect(url, options, dialer))


async def serve_exec(request: web.Request, runtime: CRIClient, container_id: str, command: list[str],
                     options: StreamOptions, *, dialer: Dialer = tcp_dialer) -> web.StreamResponse:
    """Run `command` in the container, streaming over whichever protocol the client's request upgrades to."""
    if not command:
        return status.bad_request("you must specify at least one command for the container")
    return await _serve(request, lambda: runtime.exec(container_id, command, stdin=options.stdin,
                                                      stdout=options.stdout, stderr=options.stderr, tty=options.tty),
                        options, dialer)


async def serve_attach(request: web.Request, runtime: CRIClient, container_id: str, options: StreamOptions, *,
                       dialer: Dialer = tcp_dialer) -> web.StreamResponse:
    """Attach to the container's main process."""
    return await _serve(request, lambda: runtime.attach(container_id, stdin=options.stdin, stdout=options.stdout,
                                                        stderr=options.stderr, tty=options.tty), options, dialer)
