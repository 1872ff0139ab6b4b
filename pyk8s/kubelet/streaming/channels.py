"""The Kubernetes WebSocket channel protocols (`channel.k8s.io`, `base64.channel.k8s.io`, `v4.…`, `v5.…`).

Every message carries one channel: binary protocols put the channel number in the first byte, base64 protocols
send text whose first character is the channel digit followed by the base64 payload. v5 adds the CLOSE signal:
channel 255 with a one-byte body naming the channel the sender half-closes (kubectl sends [255, 0] at stdin EOF).
v4 and v5 report the end of a command as a JSON Status on the error channel; v1 as the error text (if any).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import WSMsgType

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255

V5_BINARY = "v5.channel.k8s.io"
V4_BINARY = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1_BINARY = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
# Preference when a client offers several (aiohttp picks the first of the client's list that we support).
EXEC_PROTOCOLS = [V5_BINARY, V4_BINARY, V4_BASE64, V1_BINARY, V1_BASE64]
PORT_FORWARD_PROTOCOLS = [V4_BINARY, V4_BASE64, V1_BINARY, V1_BASE64]


@dataclass(frozen=True)
class ChannelProtocol:
    name: str

    @property
    def base64(self) -> bool:
        return "base64" in self.name

    @property
    def version(self) -> int:
        return 5 if self.name.startswith("v5.") else 4 if self.name.startswith("v4.") else 1

    @property
    def status_json(self) -> bool:
        """v4 and later put a metav1.Status (JSON) on the error channel; v1 puts plain error text."""
        return self.version >= 4

    @property
    def supports_close(self) -> bool:
        return self.version >= 5

    def encode(self, channel: int, data: bytes) -> bytes | str:
        if self.base64:
            return str(channel) + base64.b64encode(data).decode()
        return bytes([channel]) + data

    def decode(self, message_type: WSMsgType, payload: bytes | str) -> tuple[int, bytes] | None:
        """(channel, data) of one received message, None for an empty or malformed one (ignored, as upstream)."""
        if self.base64:
            if message_type != WSMsgType.TEXT or not payload or not str(payload)[0].isdigit():
                return None
            text = str(payload)
            try:
                return int(text[0]), base64.b64decode(text[1:], validate=True)
            except binascii.Error:
                return None
        # Binary protocols take text frames too (the Python client sends str stdin as text, channel as chr(n)),
        # like upstream's server, which reads every frame's payload as bytes.
        if message_type not in (WSMsgType.BINARY, WSMsgType.TEXT) or not payload:
            return None
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        return raw[0], raw[1:]


def protocol_for(name: str | None) -> ChannelProtocol:
    # A client that asks for no subprotocol gets the original binary protocol, as with upstream's kubelet.
    return ChannelProtocol(name or V1_BINARY)
