"""exec, attach and port-forward through the kubelet's streaming handlers against a real containerd.

containerd (and with it the pod) runs inside the test's own network namespace; the handlers are served by an
aiohttp server on 127.0.0.1 in the host namespace and reach containerd's streaming server through a dialer that
creates its sockets inside that namespace. Clients frame requests exactly as kubectl 1.32 (WebSocket v5 for
exec/cp, SPDY-in-WebSocket and native SPDY for port-forward) and the Python client (WebSocket v4) do.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import json
import os
import pty
import secrets
import struct
import subprocess
import sys
import tarfile
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image
from pyk8s.kubelet.streaming import (
    StreamOptions,
    netns_dialer,
    ports_from_query,
    serve_attach,
    serve_exec,
    serve_port_forward,
)
from pyk8s.kubelet.streaming.dial import upgrade
from pyk8s.kubelet.streaming.spdy import SpdySession
from pyk8s.kubelet.streaming.transport import WebSocketTransport

from conftest import Node, eventually_async

HTTP_PORT = 8080
PAGE = "hello from the pod"


POD_NAME = "stream"


@dataclass
class Pod:
    server: str  # base URL of the handlers (and of the stand-in apiserver kubectl talks to)
    sandbox_id: str
    main_id: str  # `sleep`, with httpd on HTTP_PORT
    echo_id: str  # reads its stdin (for attach)
    upgrades: list[tuple[str, str]]  # (subresource, Upgrade header) of every streaming request kubectl made


def _app(node: Node, sandbox_id: str, containers: dict[str, str], upgrades: list[tuple[str, str]]) -> web.Application:
    dialer = netns_dialer(f"/var/run/netns/{node.netns}")

    async def exec_handler(request: web.Request) -> web.StreamResponse:
        options = StreamOptions.from_query(request.query)
        return await serve_exec(request, node.cri, request.match_info["container"], request.query.getall("command"),
                                options, dialer=dialer)

    async def attach_handler(request: web.Request) -> web.StreamResponse:
        options = StreamOptions.from_query(request.query)
        return await serve_attach(request, node.cri, request.match_info["container"], options, dialer=dialer)

    async def port_forward_handler(request: web.Request) -> web.StreamResponse:
        ports = ports_from_query(request.query) if "ports" in request.query or "port" in request.query else []
        return await serve_port_forward(request, node.cri, request.match_info["sandbox"], ports, dialer=dialer)

    # Just enough of an apiserver for kubectl exec/cp/port-forward: discovery, GET pod, and the streaming
    # subresources handed to the handlers untouched (the real apiserver proxies these upgrades byte for byte).
    async def api_versions(request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})

    async def api_groups(request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def core_resources(request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
             "shortNames": ["po"]},
            {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
             "verbs": ["create", "get"]},
            {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions",
             "verbs": ["create", "get"]}]})

    async def get_pod(request: web.Request) -> web.Response:
        if request.match_info["name"] != POD_NAME:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                      "reason": "NotFound", "message": "pods not found"}, status=404)
        return web.json_response({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": POD_NAME, "namespace": "default", "uid": "u1", "resourceVersion": "1"},
            "spec": {"containers": [{"name": name, "image": "busybox", "stdin": name == "echo"}
                                    for name in containers]},
            "status": {"phase": "Running"}})

    async def pod_stream(request: web.Request) -> web.StreamResponse:
        subresource = request.match_info["subresource"]
        upgrades.append((subresource, request.headers.get("Upgrade", "")))
        if subresource == "portforward":
            ports = ports_from_query(request.query) if {"ports", "port"} & set(request.query) else []
            return await serve_port_forward(request, node.cri, sandbox_id, ports, dialer=dialer)
        container_id = containers[request.query.get("container", "main")]
        options = StreamOptions.from_query(request.query)
        if subresource == "attach":
            return await serve_attach(request, node.cri, container_id, options, dialer=dialer)
        return await serve_exec(request, node.cri, container_id, request.query.getall("command"), options,
                                dialer=dialer)

    app = web.Application()
    app.router.add_route("*", "/exec/{container}", exec_handler)
    app.router.add_route("*", "/attach/{container}", attach_handler)
    app.router.add_route("*", "/portForward/{sandbox}", port_forward_handler)
    app.router.add_get("/api", api_versions)
    app.router.add_get("/apis", api_groups)
    app.router.add_get("/api/v1", core_resources)
    app.router.add_get("/api/v1/namespaces/default/pods/{name}", get_pod)
    app.router.add_route("*", "/api/v1/namespaces/default/pods/{name}/{subresource:exec|attach|portforward}",
                         pod_stream)
    return app


@pytest.fixture
async def pod(containerd_node: Node, tmp_path: Path) -> AsyncIterator[Pod]:
    cri = containerd_node.cri
    image = busybox_image("pyk8s.local/busybox-stream:1.35")
    # kubectl cp runs `tar` in the container; busybox answers to whatever name it is started as.
    image.files["bin/tar"] = image.files["bin/busybox"]
    busybox = build_oci_archive(image, tmp_path / "busybox.tar")
    imported = subprocess.run([sys.executable, "-c", "from pyk8s.cli import main; main()", "images", "import",
                               str(tmp_path / "busybox.tar"), "--data-dir", str(containerd_node.config.data_dir)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    uid = secrets.token_hex(8)
    (tmp_path / "logs").mkdir()
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=POD_NAME, uid=uid, namespace="default"), hostname=POD_NAME,
        log_directory=str(tmp_path / "logs"),
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{containerd_node.cgroup_parent}/pod{uid}"))
    sandbox_id = await cri.run_pod_sandbox(sandbox_config)

    async def start(name: str, command: list[str], stdin: bool = False) -> str:
        config = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=busybox.name),
                                    command=command, log_path=f"{name}.log", stdin=stdin)
        container_id = await cri.create_container(sandbox_id, config, sandbox_config)
        await cri.start_container(container_id)
        return container_id

    main_id = await start("main", ["sh", "-c", f"mkdir /www && echo '{PAGE}' > /www/index.html && "
                                               f"httpd -p {HTTP_PORT} -h /www && exec sleep 3600"])
    echo_id = await start("echo", ["sh", "-c", "while read line; do echo echo:$line; done"], stdin=True)

    async def serving() -> bool:
        probe = await cri.exec_sync(main_id, ["wget", "-q", "-O", "-", f"http://127.0.0.1:{HTTP_PORT}/"], 10)
        return probe.exit_code == 0

    await eventually_async(serving, timeout=60)
    upgrades: list[tuple[str, str]] = []
    runner = web.AppRunner(_app(containerd_node, sandbox_id, {"main": main_id, "echo": echo_id}, upgrades))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port the OS picked
    try:
        yield Pod(f"http://127.0.0.1:{port}", sandbox_id, main_id, echo_id, upgrades)
    finally:
        await runner.cleanup()


async def _collect(ws: aiohttp.ClientWebSocketResponse, timeout: float = 60) -> dict[int, bytes]:
    """Every channel's bytes until the server closes the WebSocket."""
    received: dict[int, bytearray] = {}
    async with asyncio.timeout(timeout):
        async for message in ws:
            if message.type == WSMsgType.BINARY and message.data:
                received.setdefault(message.data[0], bytearray()).extend(message.data[1:])
    return {channel: bytes(data) for channel, data in received.items()}


def _exec_query(command: list[str], **flags: bool) -> list[tuple[str, str]]:
    return [*(("command", part) for part in command), *((name, "true") for name, on in flags.items() if on)]


async def test_exec_over_websocket_v5_with_stdin_eof_and_exit_code(pod: Pod) -> None:
    async with aiohttp.ClientSession() as session:
        query = _exec_query(["sh", "-c", "cat; echo done >&2; exit 3"], stdin=True, stdout=True, stderr=True)
        async with session.ws_connect(f"{pod.server}/exec/{pod.main_id}", params=query,
                                      protocols=["v5.channel.k8s.io"]) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00hello\n")
            await ws.send_bytes(b"\x00world\n")
            await ws.send_bytes(b"\xff\x00")  # v5 CLOSE of stdin: cat sees EOF
            received = await _collect(ws)
    assert received[1] == b"hello\nworld\n"
    assert received[2] == b"done\n"
    status = json.loads(received[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    # kubectl prints "command terminated with exit code 3" from the cause; the message is the runtime's.
    assert status["message"] == ("command terminated with non-zero exit code: error executing command "
                                 "[sh -c cat; echo done >&2; exit 3], exit code 3")


async def test_exec_over_websocket_v4_like_the_python_client(pod: Pod) -> None:
    async with aiohttp.ClientSession() as session:
        query = _exec_query(["sh", "-c", "echo out; echo err >&2"], stdout=True, stderr=True)
        async with session.ws_connect(f"{pod.server}/exec/{pod.main_id}", params=query,
                                      protocols=["v4.channel.k8s.io"]) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            received = await _collect(ws)
    assert (received[1], received[2]) == (b"out\n", b"err\n")
    assert json.loads(received[3]) == {"metadata": {}, "status": "Success"}


async def test_exec_with_tty_and_resize(pod: Pod) -> None:
    async with aiohttp.ClientSession() as session:
        # The runtime applies a resize asynchronously, so the command waits until it sees the new size.
        script = ('i=0; while [ $i -lt 300 ]; do s=$(busybox stty size 2>/dev/null); [ "$s" = "33 101" ] && break; '
                  'sleep 0.1; i=$((i+1)); done; echo "size:$s"; echo to-stderr >&2')
        query = _exec_query(["sh", "-c", script], stdin=True, stdout=True, stderr=True, tty=True)
        async with session.ws_connect(f"{pod.server}/exec/{pod.main_id}", params=query,
                                      protocols=["v5.channel.k8s.io"]) as ws:
            await ws.send_bytes(b"\x04" + json.dumps({"Width": 101, "Height": 33}).encode())
            received = await _collect(ws)
    assert 2 not in received  # a TTY merges stderr into stdout
    assert b"size:33 101\r\n" in received[1] and b"to-stderr" in received[1]
    assert json.loads(received[3])["status"] == "Success"


async def test_cp_upload_like_kubectl(pod: Pod, containerd_node: Node) -> None:
    # `kubectl cp` is `tar xmf - -C DIR` with the archive on stdin; larger than one SPDY window and frame.
    payload = secrets.token_bytes(300 * 1024)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    data = archive.getvalue()
    async with aiohttp.ClientSession() as session:
        query = _exec_query(["tar", "xmf", "-", "-C", "/tmp"], stdin=True, stdout=True, stderr=True)
        async with session.ws_connect(f"{pod.server}/exec/{pod.main_id}", params=query,
                                      protocols=["v5.channel.k8s.io"]) as ws:
            for offset in range(0, len(data), 32 * 1024):
                await ws.send_bytes(b"\x00" + data[offset:offset + 32 * 1024])
            await ws.send_bytes(b"\xff\x00")
            received = await _collect(ws)
    assert json.loads(received[3])["status"] == "Success", received
    check = await containerd_node.cri.exec_sync(pod.main_id, ["busybox", "md5sum", "/tmp/blob.bin"], 30)
    assert check.stdout.split()[0].decode() == hashlib.md5(payload).hexdigest()

    # ...and the download direction (`kubectl cp POD:FILE .` = `tar cf - FILE` on stdout), many SPDY windows long.
    async with aiohttp.ClientSession() as session:
        query = _exec_query(["tar", "cf", "-", "-C", "/tmp", "blob.bin"], stdout=True, stderr=True)
        async with session.ws_connect(f"{pod.server}/exec/{pod.main_id}", params=query,
                                      protocols=["v5.channel.k8s.io"]) as ws:
            received = await _collect(ws)
    assert json.loads(received[3])["status"] == "Success"
    with tarfile.open(fileobj=io.BytesIO(received[1])) as tar:
        assert tar.extractfile("blob.bin").read() == payload


async def test_exec_over_native_spdy_negotiates_v4_and_half_closes_stdin(pod: Pod) -> None:
    # kubectl's fallback offers v5 first; containerd's server only knows up to v4, and the kubelet passes that on.
    query = "command=cat&stdin=true&stdout=true&stderr=true"
    transport, chosen = await upgrade(f"{pod.server}/exec/{pod.main_id}?{query}",
                                      ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"])
    assert chosen == "v4.channel.k8s.io"
    session = SpdySession(transport, server=False)
    reader = asyncio.ensure_future(session.run())
    try:
        error = await session.open_stream([("streamtype", "error")])
        stdin = await session.open_stream([("streamtype", "stdin")])
        stdout = await session.open_stream([("streamtype", "stdout")])
        await session.open_stream([("streamtype", "stderr")])
        await stdin.write(b"over spdy\n")
        await stdin.close_write()
        async with asyncio.timeout(60):
            assert await stdout.read_all() == b"over spdy\n"
            assert json.loads(await error.read_all()) == {"metadata": {}, "status": "Success"}
    finally:
        await session.close()
        reader.cancel()


async def test_attach_over_websocket(pod: Pod) -> None:
    async with aiohttp.ClientSession() as session:
        query = _exec_query([], stdin=True, stdout=True, stderr=True)
        async with session.ws_connect(f"{pod.server}/attach/{pod.echo_id}", params=query,
                                      protocols=["v5.channel.k8s.io"]) as ws:
            await ws.send_bytes(b"\x00ping\n")
            seen = b""
            async with asyncio.timeout(60):
                async for message in ws:
                    if message.type == WSMsgType.BINARY and message.data[:1] == b"\x01":
                        seen += message.data[1:]
                        if b"echo:ping\n" in seen:
                            break
    assert b"echo:ping\n" in seen


async def _http_get_over_spdy(session: SpdySession, port: int, request_id: str) -> tuple[bytes, bytes]:
    base = [("port", str(port)), ("requestid", request_id)]
    error = await session.open_stream([("streamtype", "error"), *base])
    await error.close_write()
    data = await session.open_stream([("streamtype", "data"), *base])
    await data.write(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
    async with asyncio.timeout(60):
        body = await data.read_all()
        return body, await error.read_all()


async def test_port_forward_spdy_tunnelled_in_websocket_like_kubectl(pod: Pod) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"{pod.server}/portForward/{pod.sandbox_id}",
                                     protocols=["SPDY/3.1+portforward.k8s.io"]) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            session = SpdySession(WebSocketTransport(ws), server=False)
            reader = asyncio.ensure_future(session.run())
            try:
                # Two connections on one session, as kubectl makes for two local connections.
                for request_id in ("0", "1"):
                    body, errors = await _http_get_over_spdy(session, HTTP_PORT, request_id)
                    assert body.startswith(b"HTTP/1.") and PAGE.encode() in body
                    assert errors == b""
                await asyncio.wait_for(session.ping(), timeout=30)
            finally:
                await session.close()
                reader.cancel()


async def test_port_forward_native_spdy_and_refused_port(pod: Pod) -> None:
    transport, chosen = await upgrade(f"{pod.server}/portForward/{pod.sandbox_id}", ["portforward.k8s.io"])
    assert chosen == "portforward.k8s.io"
    session = SpdySession(transport, server=False)
    reader = asyncio.ensure_future(session.run())
    try:
        body, errors = await _http_get_over_spdy(session, HTTP_PORT, "0")
        assert PAGE.encode() in body and errors == b""
        body, errors = await _http_get_over_spdy(session, HTTP_PORT + 1, "1")
        assert body == b""
        assert f"{HTTP_PORT + 1}".encode() in errors and b"refused" in errors
    finally:
        await session.close()
        reader.cancel()


async def test_port_forward_websocket_channels_like_the_python_client(pod: Pod) -> None:
    refused = HTTP_PORT + 1
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"{pod.server}/portForward/{pod.sandbox_id}",
                                     params={"ports": f"{HTTP_PORT},{refused}"},
                                     protocols=["v4.channel.k8s.io"]) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            first = [await ws.receive_bytes(timeout=30) for _ in range(4)]
            assert first == [bytes([channel]) + struct.pack("<H", port)
                             for channel, port in ((0, HTTP_PORT), (1, HTTP_PORT), (2, refused), (3, refused))]
            await ws.send_bytes(b"\x00GET / HTTP/1.0\r\n\r\n")
            received = await _collect(ws)
    assert PAGE.encode() in received[0]
    assert 1 not in received
    assert str(refused).encode() in received[3]


async def test_runtime_refusal_is_an_http_error(pod: Pod) -> None:
    async with aiohttp.ClientSession() as session:
        query = _exec_query(["true"], stdout=True)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{pod.server}/exec/{'0' * 64}", params=query, protocols=["v5.channel.k8s.io"])
        assert refused.value.status in (404, 500)


# ---- real kubectl ----

KUBECTL = "/work/main/.venv/bin/kubectl"
# kubectl's switches back to its SPDY fallbacks.
SPDY_EXEC = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
SPDY_PORT_FORWARD = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}


def _kubeconfig(pod: Pod, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": pod.server}}],
        "users": [{"name": "e2e", "user": {}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e", "namespace": "default"}}]}))
    return path


async def _kubectl(pod: Pod, tmp_path: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
                   timeout: float = 60) -> tuple[int, bytes, bytes]:
    # Async, because the handlers kubectl talks to run on this test's event loop.
    process = await asyncio.create_subprocess_exec(
        KUBECTL, f"--kubeconfig={_kubeconfig(pod, tmp_path)}", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout, stderr


@pytest.mark.parametrize(("env", "upgrade_header"), [({}, "websocket"), (SPDY_EXEC, "SPDY/3.1")],
                         ids=["websocket", "spdy"])
async def test_kubectl_exec_exit_code_and_stdin(pod: Pod, tmp_path: Path, env: dict[str, str],
                                                upgrade_header: str) -> None:
    code, out, err = await _kubectl(pod, tmp_path, "exec", POD_NAME, "-c", "main", "--",
                                    "sh", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert (code, out) == (3, b"out\n"), err
    assert b"err\n" in err and b"command terminated with exit code 3" in err
    code, out, err = await _kubectl(pod, tmp_path, "exec", "-i", POD_NAME, "-c", "main", "--", "cat",
                                    stdin=b"piped through\n", env=env)
    assert (code, out) == (0, b"piped through\n"), err
    assert [upgrade for kind, upgrade in pod.upgrades if kind == "exec"] == [upgrade_header] * 2


async def test_kubectl_exec_with_a_terminal(pod: Pod, tmp_path: Path) -> None:
    # `kubectl exec -it` needs a terminal: give it a pseudo-terminal of 37 rows x 111 columns; kubectl sends that
    # size on the resize channel and the command in the container sees it on its own TTY.
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 37, 111, 0, 0))
    script = ('i=0; while [ $i -lt 300 ]; do s=$(busybox stty size); [ "$s" = "37 111" ] && break; '
              'sleep 0.1; i=$((i+1)); done; echo "size:$s"; [ -t 0 ] && echo "stdin is a tty"')
    process = await asyncio.create_subprocess_exec(
        KUBECTL, f"--kubeconfig={_kubeconfig(pod, tmp_path)}", "exec", "-it", POD_NAME, "-c", "main", "--",
        "sh", "-c", script, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    chunk = await asyncio.to_thread(os.read, controller, 4096)
                except OSError:  # EIO: kubectl exited and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
        assert await process.wait() == 0, output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(controller)
    assert b"size:37 111" in output and b"stdin is a tty" in output, output


async def test_kubectl_attach(pod: Pod, tmp_path: Path) -> None:
    # kubectl sends the line, then its stdin EOF (v5 CLOSE), which ends the attach session at once; whether the
    # answer is still streamed back races with that end (as upstream), so the container's log is the witness.
    code, _, err = await _kubectl(pod, tmp_path, "attach", "-i", POD_NAME, "-c", "echo", stdin=b"hello\n")
    assert code == 0, err
    assert [upgrade for kind, upgrade in pod.upgrades if kind == "attach"] == ["websocket"]
    log = tmp_path / "logs" / "echo.log"

    async def answered() -> bool:
        return log.exists() and " stdout F echo:hello" in log.read_text()

    await eventually_async(answered, timeout=30)


async def test_kubectl_cp_both_ways(pod: Pod, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(secrets.token_bytes(200 * 1024))
    code, _, err = await _kubectl(pod, tmp_path, "cp", "-c", "main", str(source), f"{POD_NAME}:/tmp/upload.bin")
    assert code == 0, err
    back = tmp_path / "download.bin"
    code, _, err = await _kubectl(pod, tmp_path, "cp", "-c", "main", f"{POD_NAME}:/tmp/upload.bin", str(back))
    assert code == 0, err
    assert back.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(("env", "upgrade_header"), [({}, "websocket"), (SPDY_PORT_FORWARD, "SPDY/3.1")],
                         ids=["spdy-in-websocket", "spdy"])
async def test_kubectl_port_forward(pod: Pod, tmp_path: Path, env: dict[str, str], upgrade_header: str) -> None:
    process = await asyncio.create_subprocess_exec(
        KUBECTL, f"--kubeconfig={_kubeconfig(pod, tmp_path)}", "port-forward", POD_NAME, f":{HTTP_PORT}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **env})
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"Forwarding from 127.0.0.1:") and line.endswith(f" -> {HTTP_PORT}\n".encode()), line
        local_port = int(line.split(b":")[1].split()[0])
        async with aiohttp.ClientSession() as client:
            for _ in range(3):  # each request is a new local connection: a new stream pair in the same session
                async with client.get(f"http://127.0.0.1:{local_port}/", timeout=aiohttp.ClientTimeout(30)) as answer:
                    assert answer.status == 200 and PAGE in await answer.text()
    finally:
        process.kill()
        await process.wait()
    assert [upgrade for kind, upgrade in pod.upgrades if kind == "portforward"] == [upgrade_header]


# ---- the kubernetes Python client (synchronous: it runs on a worker thread while the handlers serve) ----

def _python_client(pod: Pod):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = pod.server
    return client.CoreV1Api(client.ApiClient(configuration))


async def test_python_client_exec_stdin_close_and_exit_code(pod: Pod) -> None:
    from kubernetes.stream import stream

    def run() -> tuple[str, int]:
        api = _python_client(pod)
        response = stream(api.connect_get_namespaced_pod_exec, POD_NAME, "default", container="main",
                          command=["sh", "-c", "cat; exit 5"], stdin=True, stdout=True, stderr=True, tty=False,
                          _preload_content=False)
        response.write_stdin("from python\n")  # a str: sent as a text frame
        response.close_channel(0)  # v5 CLOSE of stdin (the client offers v5 first)
        response.run_forever(timeout=60)
        return response.read_stdout(timeout=1), response.returncode

    assert await asyncio.to_thread(run) == ("from python\n", 5)


async def test_python_client_port_forward(pod: Pod) -> None:
    from kubernetes.stream import portforward

    def run() -> bytes:
        api = _python_client(pod)
        forward = portforward(api.connect_get_namespaced_pod_portforward, POD_NAME, "default",
                              ports=str(HTTP_PORT))
        connection = forward.socket(HTTP_PORT)
        connection.settimeout(30)
        connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        connection.close()
        assert forward.error(HTTP_PORT) is None
        return answer

    answer = await asyncio.to_thread(run)
    assert answer.startswith(b"HTTP/1.") and PAGE.encode() in answer


# ---- the other CRI calls this change adds (status, stats, log reopening, resource updates) ----

async def test_runtime_status_stats_log_reopen_and_resource_update(pod: Pod, containerd_node: Node) -> None:
    cri = containerd_node.cri
    conditions = {condition.type: condition.status for condition in (await cri.status()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}

    stats = await cri.container_stats(pod.main_id)
    assert stats.attributes.id == pod.main_id and stats.attributes.metadata.name == "main"
    assert stats.cpu.timestamp > 0 and stats.memory.working_set_bytes.value > 0
    listed = await cri.list_container_stats(pb.ContainerStatsFilter(pod_sandbox_id=pod.sandbox_id))
    assert {item.attributes.id for item in listed} == {pod.main_id, pod.echo_id}

    await cri.reopen_container_log(pod.main_id)
    await cri.update_container_resources(pod.main_id, pb.LinuxContainerResources(
        cpu_shares=512, memory_limit_in_bytes=256 * 1024 * 1024))
    shares = await cri.exec_sync(pod.main_id, ["cat", "/sys/fs/cgroup/cpu/cpu.shares",
                                               "/sys/fs/cgroup/memory/memory.limit_in_bytes"], 30)
    assert shares.stdout.split() == [b"512", str(256 * 1024 * 1024).encode()], shares.stderr
