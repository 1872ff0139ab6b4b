"""Connecting to the runtime's streaming server: dialers and the HTTP `Upgrade: SPDY/3.1` handshake.

containerd's streaming server listens on loopback in the node's network namespace. The kubelet runs there too, so
production dials normally (`tcp_dialer`). Tests keep containerd in a namespace of their own while the test process
stays in the host's; `netns_dialer` creates the socket on a short-lived thread that entered that namespace
(a socket keeps the namespace it was created in).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pyk8s.kubelet.streaming.transport import StreamTransport

Dialer = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

CLONE_NEWNET = 0x40000000
MAX_RESPONSE_HEAD = 64 * 1024


class UpgradeError(Exception):
    """The streaming server refused the upgrade; `status` and `body` are its HTTP answer."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"upgrade refused: {status} {reason}: {body[:200]!r}")
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


async def tcp_dialer(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


def netns_dialer(netns_path: str) -> Dialer:
    """A dialer whose sockets live in the network namespace at `netns_path` (e.g. /var/run/netns/NAME)."""

    def connect_inside(host: str, port: int, timeout: float) -> socket.socket:
        result: dict[str, object] = {}

        def worker() -> None:
            try:
                fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        error = ctypes.get_errno()
                        raise OSError(error, f"setns({netns_path}): {os.strerror(error)}")
                finally:
                    os.close(fd)
                result["socket"] = socket.create_connection((host, port), timeout=timeout)
            except BaseException as exc:  # handed to the caller's thread
                result["error"] = exc

        # A fresh thread per dial: it ends right after, so no pooled thread is left inside the namespace.
        thread = threading.Thread(target=worker, name="netns-dial", daemon=True)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        sock = result["socket"]
        assert isinstance(sock, socket.socket)
        sock.settimeout(None)
        return sock

    async def dial(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = await asyncio.to_thread(connect_inside, host, port, 30.0)
        return await asyncio.open_connection(sock=sock)

    return dial


def _parse_head(head: bytes) -> tuple[int, str, dict[str, list[str]]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status_text, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not status_text.isdigit():
        raise ConnectionError(f"not an HTTP response: {lines[0]!r}")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_text), reason, headers


async def upgrade(url: str, protocols: list[str], *, dialer: Dialer = tcp_dialer, method: str = "POST",
                  extra_headers: dict[str, str] | None = None) -> tuple[StreamTransport, str]:
    """Open `url` with `Upgrade: SPDY/3.1`, offering `protocols` in X-Stream-Protocol-Version (first = preferred).

    Returns the upgraded connection and the protocol the server chose ("" if it named none)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only plain-http streaming URLs are supported, not {url!r}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await dialer(host, port)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: Upgrade", "Upgrade: SPDY/3.1",
             *(f"X-Stream-Protocol-Version: {protocol}" for protocol in protocols), "Content-Length: 0"]
    lines += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        await writer.drain()
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_RESPONSE_HEAD:
                raise ConnectionError("streaming server sent an oversized response head")
            chunk = await reader.read(4096)
            if not chunk:
                raise ConnectionError("streaming server closed the connection during the upgrade")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status, reason, headers = _parse_head(head)
        if status != 101:
            length = int(headers.get("content-length", ["0"])[0] or 0)
            while len(rest) < length and (chunk := await reader.read(length - len(rest))):
                rest += chunk
            raise UpgradeError(status, reason, {name: values[0] for name, values in headers.items()}, rest)
    except BaseException:
        writer.close()
        raise
    protocol = headers.get("x-stream-protocol-version", [""])[0]
    return StreamTransport(reader, writer, preread=rest), protocol
