"""The client side of `Upgrade: SPDY/3.1` and the network-namespace dialer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyk8s.kubelet.streaming.dial import UpgradeError, netns_dialer, upgrade


async def _server(answer: bytes) -> tuple[asyncio.Server, int, list[bytes]]:
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        await reader.read()  # keep the connection until the client closes it
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], requests


async def test_upgrade_offers_protocols_and_keeps_bytes_that_came_with_the_101() -> None:
    server, port, requests = await _server(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                           b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                                           b"\r\nFIRST-FRAME")
    async with server:
        transport, chosen = await upgrade(f"http://127.0.0.1:{port}/exec/tok?x=1",
                                          ["v5.channel.k8s.io", "v4.channel.k8s.io"])
        assert chosen == "v4.channel.k8s.io"
        assert await transport.read() == b"FIRST-FRAME"
        await transport.close()
    head = requests[0].decode()
    assert head.startswith("POST /exec/tok?x=1 HTTP/1.1\r\n")
    assert "Upgrade: SPDY/3.1\r\n" in head and "Connection: Upgrade\r\n" in head
    assert head.index("X-Stream-Protocol-Version: v5.channel.k8s.io") < \
        head.index("X-Stream-Protocol-Version: v4.channel.k8s.io")


async def test_a_refusal_carries_status_and_body() -> None:
    server, port, _ = await _server(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n"
                                    b"\r\nprotocol not supported")
    async with server:
        with pytest.raises(UpgradeError) as refused:
            await upgrade(f"http://127.0.0.1:{port}/portforward/tok", ["portforward.k8s.io"])
    assert (refused.value.status, refused.value.body) == (403, b"protocol not supported")
    assert refused.value.headers["content-type"] == "text/plain"


async def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="plain-http"):
        await upgrade("https://127.0.0.1:1/exec/tok", ["v4.channel.k8s.io"])


async def test_netns_dialer_reports_a_missing_namespace(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await netns_dialer(str(tmp_path / "no-such-netns"))("127.0.0.1", 1)
