"""Framing of the Kubernetes WebSocket channel protocols."""

from __future__ import annotations

import base64

from aiohttp import WSMsgType

from pyk8s.kubelet.streaming.channels import protocol_for


def test_binary_protocols_prefix_the_channel_byte() -> None:
    v5 = protocol_for("v5.channel.k8s.io")
    assert (v5.version, v5.supports_close, v5.status_json, v5.base64) == (5, True, True, False)
    assert v5.encode(1, b"out") == b"\x01out"
    assert v5.decode(WSMsgType.BINARY, b"\x00in") == (0, b"in")
    assert v5.decode(WSMsgType.BINARY, b"\xff\x00") == (255, b"\x00")
    # The Python client sends str data as text frames whose first character is chr(channel).
    assert v5.decode(WSMsgType.TEXT, "\x00typed") == (0, b"typed")
    assert v5.decode(WSMsgType.BINARY, b"") is None


def test_v4_and_v1_differ_in_how_errors_are_reported() -> None:
    v4, v1 = protocol_for("v4.channel.k8s.io"), protocol_for("channel.k8s.io")
    assert (v4.status_json, v4.supports_close) == (True, False)
    assert (v1.status_json, v1.supports_close) == (False, False)
    # No subprotocol asked for: the original binary protocol.
    assert protocol_for(None) == v1


def test_base64_protocols_use_a_digit_and_base64_text() -> None:
    b64 = protocol_for("v4.base64.channel.k8s.io")
    assert b64.base64 and b64.status_json
    assert b64.encode(2, b"\xffbinary") == "2" + base64.b64encode(b"\xffbinary").decode()
    assert b64.decode(WSMsgType.TEXT, "0" + base64.b64encode(b"stdin").decode()) == (0, b"stdin")
    assert b64.decode(WSMsgType.TEXT, "0!!not base64") is None
    assert b64.decode(WSMsgType.BINARY, b"\x00raw") is None
    assert protocol_for("base64.channel.k8s.io").version == 1

