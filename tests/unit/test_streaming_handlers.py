"""The exec/attach/port-forward handlers against an in-process fake of a runtime's streaming server.

The fake speaks what containerd's server speaks (SPDY remotecommand v1-v4 and portforward.k8s.io, built on our
own SPDY session in server mode), so every front end of the handlers is exercised without containers: the
WebSocket channel protocols (v5, v4, v1, base64), the SPDY splice, port-forward channels and tunnel, and errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from aiohttp import WSMsgType, web

from pyk8s.kubelet.runtime.cri import CRIError
from pyk8s.kubelet.streaming import StreamOptions, ports_from_query, serve_attach, serve_exec, serve_port_forward
from pyk8s.kubelet.streaming.dial import UpgradeError, upgrade
from pyk8s.kubelet.streaming.spdy import SpdyError, SpdySession, SpdyStream
from pyk8s.kubelet.streaming.transport import StreamTransport, WebSocketTransport

REMOTECOMMAND = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]


@dataclass
class Session:
    kind: str  # exec | attach | portforward
    cmd: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    resizes: list[bytes] = field(default_factory=list)
    stdin_eof: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class FakeRuntime:
    """CRI Exec/Attach/PortForward plus the streaming server their URLs point at."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.history: list[Session] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    def _url(self, session: Session) -> str:
        token = secrets.token_hex(4)
        self.sessions[token] = session
        self.history.append(session)
        return f"http://127.0.0.1:{self.port}/{session.kind}/{token}"

    async def exec(self, container_id: str, cmd: list[str], **options: bool) -> str:
        if container_id != "c1":
            raise CRIError("Exec", grpc.StatusCode.NOT_FOUND, f'container "{container_id}" not found')
        return self._url(Session("exec", cmd, options))

    async def attach(self, container_id: str, **options: bool) -> str:
        return self._url(Session("attach", ["cat"], options))

    async def port_forward(self, sandbox_id: str, ports: list[int]) -> str:
        return self._url(Session("portforward", options={"ports": ports}))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *header_lines = head.split("\r\n")
        token = request_line.split()[1].rsplit("/", 1)[1]
        session = self.sessions.pop(token)
        offered = [line.split(":", 1)[1].strip() for line in header_lines
                   if line.lower().startswith("x-stream-protocol-version:")]
        supported = ["portforward.k8s.io"] if session.kind == "portforward" else REMOTECOMMAND
        chosen = next((protocol for protocol in offered if protocol in supported), None)
        if chosen is None:
            body = b"protocol not supported"
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()
            writer.close()
            return
        writer.write(f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     f"X-Stream-Protocol-Version: {chosen}\r\n\r\n".encode())
        streams: dict[str, SpdyStream] = {}
        pairs: dict[str, dict[str, SpdyStream]] = {}
        complete = asyncio.Event()
        handlers: set[asyncio.Task] = set()

        async def on_stream(stream: SpdyStream) -> None:
            await stream.reply()
            if session.kind == "portforward":
                pair = pairs.setdefault(stream.header("requestID") or "", {})
                pair[stream.header("streamType") or ""] = stream
                if len(pair) == 2:
                    handlers.add(asyncio.ensure_future(self._forward(int(stream.header("port") or 0), pair)))
                return
            streams[stream.header("streamType") or ""] = stream
            expected = {"error"} | {name for name in ("stdin", "stdout", "stderr") if session.options.get(name)}
            if session.options.get("tty"):
                expected = (expected - {"stderr"}) | {"resize"}
            if set(streams) == expected:
                complete.set()

        spdy = SpdySession(StreamTransport(reader, writer), server=True, on_stream=on_stream)
        reading = asyncio.ensure_future(spdy.run())
        try:
            if session.kind != "portforward":
                await asyncio.wait_for(complete.wait(), 10)
                with contextlib.suppress(ConnectionError, SpdyError):  # a client may leave before the status
                    await self._run(session, streams, chosen)
                await spdy.close()  # like upstream: the connection ends once the status is written
            await reading
        finally:
            await spdy.close()
            session.ended.set()

    async def _run(self, session: Session, streams: dict[str, SpdyStream], protocol: str) -> None:
        """A tiny "container": `upper` echoes stdin in upper case; `exit N` writes to stderr and exits N."""
        code = 0
        if "resize" in streams:
            session.resizes.append(await streams["resize"].read())
            await streams["stdout"].write(b"resized")
        elif session.cmd[0] in ("upper", "cat"):
            data = await streams["stdin"].read_all()
            session.stdin_eof = True
            await streams["stdout"].write(data.upper() if session.cmd[0] == "upper" else data)
        elif session.cmd[0] == "big":  # N bytes of output, written as fast as the connection takes them
            payload = bytes(range(256)) * (int(session.cmd[1]) // 256)
            await streams["stdout"].write(payload)
        elif session.cmd[0] == "exit":
            code = int(session.cmd[1])
            await streams["stderr"].write(b"bye\n")
        if protocol != "v4.channel.k8s.io":
            if code:
                await streams["error"].write(f"command terminated with exit code {code}".encode())
            return
        status = {"metadata": {}, "status": "Success"} if code == 0 else {
            "metadata": {}, "status": "Failure", "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await streams["error"].write(json.dumps(status).encode())

    @staticmethod
    async def _forward(port: int, pair: dict[str, SpdyStream]) -> None:
        if port != 80:
            await pair["error"].write(f"error forwarding port {port}: connection refused".encode())
            await pair["data"].close_write()
            await pair["error"].close_write()
            return
        # An "HTTP server" answering one request (up to a blank line) and closing.
        request = b""
        while b"\r\n\r\n" not in request and (chunk := await pair["data"].read()):
            request += chunk
        await pair["data"].write(b"HTTP/1.0 200 OK\r\n\r\nyou asked: " + request.split(b"\r\n")[0])
        await pair["data"].close_write()
        await pair["error"].close_write()


@pytest.fixture
async def runtime() -> AsyncIterator[FakeRuntime]:
    fake = FakeRuntime()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def kubelet(runtime: FakeRuntime) -> AsyncIterator[str]:
    async def exec_handler(request: web.Request) -> web.StreamResponse:
        try:
            options = StreamOptions.from_query(request.query)
        except ValueError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return await serve_exec(request, runtime, request.match_info["container"],  # type: ignore[arg-type]
                                request.query.getall("command", []), options)

    async def attach_handler(request: web.Request) -> web.StreamResponse:
        return await serve_attach(request, runtime, request.match_info["container"],  # type: ignore[arg-type]
                                  StreamOptions.from_query(request.query))

    async def port_forward_handler(request: web.Request) -> web.StreamResponse:
        ports = ports_from_query(request.query) if {"port", "ports"} & set(request.query) else []
        return await serve_port_forward(request, runtime, "sandbox", ports)  # type: ignore[arg-type]

    app = web.Application()
    app.router.add_route("*", "/exec/{container}", exec_handler)
    app.router.add_route("*", "/attach/{container}", attach_handler)
    app.router.add_route("*", "/portForward/{sandbox}", port_forward_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # noqa: SLF001
    await runner.cleanup()


async def _collect(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[int, bytes]]:
    messages = []
    async with asyncio.timeout(30):
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                messages.append((message.data[0], message.data[1:]))
            elif message.type == WSMsgType.TEXT:
                messages.append((int(message.data[0]), base64.b64decode(message.data[1:])))
    return messages


def _joined(messages: list[tuple[int, bytes]], channel: int) -> bytes:
    return b"".join(data for number, data in messages if number == channel)


def test_stream_options_parse_like_the_kubelet() -> None:
    assert StreamOptions.from_query({"stdin": "1", "stdout": "true", "stderr": "True", "tty": "false"}) == \
        StreamOptions(stdin=True, stdout=True, stderr=True, tty=False)
    # A TTY merges stderr into stdout.
    assert StreamOptions.from_query({"stdout": "true", "stderr": "true", "tty": "1"}) == \
        StreamOptions(stdin=False, stdout=True, stderr=False, tty=True)
    with pytest.raises(ValueError, match="you must specify at least 1 of stdin, stdout, stderr"):
        StreamOptions.from_query({"tty": "true", "stderr": "true"})


def test_ports_from_query() -> None:
    from multidict import MultiDict
    assert ports_from_query(MultiDict([("ports", "80,443")])) == [80, 443]
    assert ports_from_query(MultiDict([("port", "80"), ("port", "8080")])) == [80, 8080]
    assert ports_from_query({"ports": "5432"}) == [5432]
    for query, message in (([], 'query parameter "port" is required'), ([("port", "")], "cannot be empty"),
                           ([("ports", "80,http")], 'unable to parse "80,http" as a port'),
                           ([("port", "0")], 'port "0" must be > 0'), ([("port", "70000")], "unable to parse")):
        with pytest.raises(ValueError, match=message):
            ports_from_query(MultiDict(query))


async def test_exec_v5_stdin_close_signal_and_exit_status(kubelet: str, runtime: FakeRuntime) -> None:
    async with aiohttp.ClientSession() as client:
        params = [("command", "upper"), ("stdin", "true"), ("stdout", "true"), ("stderr", "true")]
        async with client.ws_connect(f"{kubelet}/exec/c1", params=params, protocols=["v5.channel.k8s.io"]) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00abc")
            await ws.send_bytes(b"\x00def")
            await ws.send_bytes(b"\xff\x00")
            messages = await _collect(ws)
    assert _joined(messages, 1) == b"ABCDEF"
    assert json.loads(_joined(messages, 3)) == {"metadata": {}, "status": "Success"}
    assert messages[-1][0] == 3  # the status is the last word


async def test_exec_v4_non_zero_exit_code(kubelet: str) -> None:
    async with aiohttp.ClientSession() as client:
        params = [("command", "exit"), ("command", "7"), ("stdout", "true"), ("stderr", "true")]
        async with client.ws_connect(f"{kubelet}/exec/c1", params=params, protocols=["v4.channel.k8s.io"]) as ws:
            messages = await _collect(ws)
    assert _joined(messages, 2) == b"bye\n"
    status = json.loads(_joined(messages, 3))
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


async def test_exec_v1_reports_errors_as_text_and_success_as_nothing(kubelet: str) -> None:
    async with aiohttp.ClientSession() as client:
        for command, expected in ((["exit", "4"], b"command terminated with non-zero exit code: 4"),
                                  (["exit", "0"], b"")):
            params = [*(("command", part) for part in command), ("stdout", "1"), ("stderr", "1")]
            async with client.ws_connect(f"{kubelet}/exec/c1", params=params, protocols=["channel.k8s.io"]) as ws:
                assert ws.protocol == "channel.k8s.io"
                messages = await _collect(ws)
            assert _joined(messages, 3) == expected


async def test_exec_base64_protocol_uses_text_frames(kubelet: str) -> None:
    async with aiohttp.ClientSession() as client:
        params = [("command", "exit"), ("command", "5"), ("stdout", "true"), ("stderr", "true")]
        async with client.ws_connect(f"{kubelet}/exec/c1", params=params,
                                     protocols=["v4.base64.channel.k8s.io"]) as ws:
            frames = []
            async with asyncio.timeout(30):
                async for message in ws:
                    frames.append(message)
    assert {frame.type for frame in frames} == {WSMsgType.TEXT}
    assert frames[0].data == "2" + base64.b64encode(b"bye\n").decode()
    assert json.loads(base64.b64decode(frames[-1].data[1:]))["reason"] == "NonZeroExitCode"


async def test_client_leaving_ends_stdin_and_the_runtime_session(kubelet: str, runtime: FakeRuntime) -> None:
    async with aiohttp.ClientSession() as client:
        params = [("command", "upper"), ("stdin", "true"), ("stdout", "true")]
        async with client.ws_connect(f"{kubelet}/exec/c1", params=params, protocols=["v4.channel.k8s.io"]) as ws:
            await ws.send_bytes(b"\x00bye")
            await ws.close()  # v4 has no CLOSE signal: the WebSocket's end is stdin's end
    session = runtime.history[-1]
    await asyncio.wait_for(session.ended.wait(), 30)
    assert session.stdin_eof


async def test_attach_with_tty_passes_resize_events(kubelet: str, runtime: FakeRuntime) -> None:
    async with aiohttp.ClientSession() as client:
        params = [("stdin", "true"), ("stdout", "true"), ("stderr", "true"), ("tty", "true")]
        async with client.ws_connect(f"{kubelet}/attach/c1", params=params, protocols=["v5.channel.k8s.io"]) as ws:
            await ws.send_bytes(b'\x04{"Width":80,"Height":24}')
            messages = await _collect(ws)
    session = runtime.history[-1]
    assert session.kind == "attach"
    assert session.options == {"stdin": True, "stdout": True, "stderr": False, "tty": True}
    assert session.resizes == [b'{"Width":80,"Height":24}']
    assert _joined(messages, 1) == b"resized"


async def test_exec_over_spdy_is_spliced_with_the_runtimes_protocol_choice(kubelet: str) -> None:
    transport, chosen = await upgrade(f"{kubelet}/exec/c1?command=upper&stdin=1&stdout=1",
                                      ["v5.channel.k8s.io", "v4.channel.k8s.io"])
    assert chosen == "v4.channel.k8s.io"
    session = SpdySession(transport, server=False)
    reader = asyncio.ensure_future(session.run())
    error = await session.open_stream([("streamtype", "error")])
    stdin = await session.open_stream([("streamtype", "stdin")])
    stdout = await session.open_stream([("streamtype", "stdout")])
    await stdin.write(b"spliced")
    await stdin.close_write()
    async with asyncio.timeout(30):
        assert await stdout.read_all() == b"SPLICED"
        assert json.loads(await error.read_all())["status"] == "Success"
    await session.close()
    reader.cancel()


async def test_spdy_refusal_by_the_runtime_reaches_the_client(kubelet: str) -> None:
    with pytest.raises(UpgradeError) as refused:
        await upgrade(f"{kubelet}/exec/c1?command=upper&stdin=1", ["v5.channel.k8s.io"])
    assert refused.value.status == 403 and refused.value.body == b"protocol not supported"


async def test_runtime_errors_and_bad_requests_are_statuses(kubelet: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{kubelet}/exec/c1?command=upper&stdout=1") as plain:
            assert plain.status == 400
            assert "Upgrade" in (await plain.json())["message"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
            await client.ws_connect(f"{kubelet}/exec/nope?command=x&stdout=1", protocols=["v5.channel.k8s.io"])
        assert missing.value.status == 404
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_command:
            await client.ws_connect(f"{kubelet}/exec/c1?stdout=1", protocols=["v5.channel.k8s.io"])
        assert no_command.value.status == 400
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_ports:
            await client.ws_connect(f"{kubelet}/portForward/sandbox", protocols=["v4.channel.k8s.io"])
        assert no_ports.value.status == 400


async def test_port_forward_websocket_channels(kubelet: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"{kubelet}/portForward/sandbox", params={"ports": "80,81"},
                                     protocols=["v4.channel.k8s.io"]) as ws:
            first = [await ws.receive_bytes(timeout=10) for _ in range(4)]
            assert first == [b"\x00" + struct.pack("<H", 80), b"\x01" + struct.pack("<H", 80),
                             b"\x02" + struct.pack("<H", 81), b"\x03" + struct.pack("<H", 81)]
            await ws.send_bytes(b"\x00GET /x HTTP/1.0\r\n\r\n")
            messages = await _collect(ws)
    assert _joined(messages, 0) == b"HTTP/1.0 200 OK\r\n\r\nyou asked: GET /x HTTP/1.0"
    assert _joined(messages, 1) == b""
    assert _joined(messages, 3) == b"error forwarding port 81: connection refused"


async def test_port_forward_spdy_tunnel_and_native_spdy(kubelet: str) -> None:
    async def get(session: SpdySession, request_id: str) -> bytes:
        base = [("port", "80"), ("requestid", request_id)]
        error = await session.open_stream([("streamtype", "error"), *base])
        await error.close_write()
        data = await session.open_stream([("streamtype", "data"), *base])
        await data.write(b"GET /tunnel HTTP/1.0\r\n\r\n")
        async with asyncio.timeout(30):
            return await data.read_all()

    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"{kubelet}/portForward/sandbox",
                                     protocols=["SPDY/3.1+portforward.k8s.io"]) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            session = SpdySession(WebSocketTransport(ws), server=False)
            reader = asyncio.ensure_future(session.run())
            assert (await get(session, "0")).endswith(b"GET /tunnel HTTP/1.0")
            assert (await get(session, "1")).endswith(b"GET /tunnel HTTP/1.0")
            await session.close()
            reader.cancel()

    transport, chosen = await upgrade(f"{kubelet}/portForward/sandbox", ["portforward.k8s.io"])
    assert chosen == "portforward.k8s.io"
    session = SpdySession(transport, server=False)
    reader = asyncio.ensure_future(session.run())
    assert (await get(session, "0")).startswith(b"HTTP/1.0 200 OK")
    await session.close()
    reader.cancel()


async def test_large_output_survives_a_slow_client(kubelet: str) -> None:
    # More than the per-stream receive buffer: the session must pause reading rather than drop or hoard data.
    size = 3 * 1024 * 1024
    async with aiohttp.ClientSession() as client:
        params = [("command", "big"), ("command", str(size)), ("stdout", "true")]
        async with client.ws_connect(f"{kubelet}/exec/c1", params=params, protocols=["v5.channel.k8s.io"],
                                     max_msg_size=0) as ws:
            received = bytearray()
            status = b""
            async with asyncio.timeout(60):
                async for message in ws:
                    if message.data[0] == 1:
                        received += message.data[1:]
                        await asyncio.sleep(0.001)  # a slow reader
                    elif message.data[0] == 3:
                        status = message.data[1:]
    assert bytes(received) == bytes(range(256)) * (size // 256)
    assert json.loads(status)["status"] == "Success"
