"""pods/log, nodes/proxy, pods/proxy and upgraded exec sessions going through the apiserver to a node.

The node side is the real `KubeletServer` (authenticating the apiserver, authorizing callers with
SubjectAccessReviews) over a stand-in runtime whose containers log into CRI log files this test writes, plus
two small fake kubelets for the upgrade tests: a WebSocket echo server and a raw socket that answers any
upgrade with 101 and echoes bytes. Everything listens on loopback.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import subprocess
import threading
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.client import APIClient
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import CRIError, pb
from pyk8s.kubelet.server import KubeletServer
from pyk8s.server.kubeconfig import write_kubeconfig
from pyk8s.server.pki import PKI

from conftest import KUBECTL, Cluster, eventually, free_port

NODE = "log-node"
WS_NODE = "ws-node"
RAW_NODE = "raw-node"


class Background:
    """An event loop in a thread, so servers keep serving while the test blocks on kubectl."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class FakeRuntime:
    """The CRI calls KubeletServer makes for logs and stats, answered from a table the test fills."""

    def __init__(self) -> None:
        self.containers: dict[str, tuple[Path, int]] = {}

    async def container_status(self, container_id: str, verbose: bool = False) -> pb.ContainerStatusResponse:
        if container_id not in self.containers:
            raise CRIError("ContainerStatus", grpc.StatusCode.NOT_FOUND, f"container {container_id} not found")
        path, state = self.containers[container_id]
        return pb.ContainerStatusResponse(status=pb.ContainerStatus(id=container_id, state=state,
                                                                    log_path=str(path)))

    async def list_containers(self, filter=None) -> list:
        return []

    async def list_pod_sandbox(self, filter=None) -> list:
        return []


def _serving_cert(tls_dir: Path, out: Path) -> tuple[Path, Path]:
    """A kubelet serving certificate for 127.0.0.1 from the cluster CA."""
    ca_cert = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{NODE}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out.mkdir(parents=True, exist_ok=True)
    (out / "kubelet.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "kubelet.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return out / "kubelet.crt", out / "kubelet.key"


def _server_tls(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _peer_cn(transport) -> str:
    peer = transport.get_extra_info("peercert") or {}
    return next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "")


class Fakes:
    """The upgrade endpoints: what they saw, to check what the apiserver sent on."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.tls = tls
        self.seen: list[dict] = []
        self.ws_port = 0
        self.raw_port = 0
        self.pod_port = 0
        self._runners: list[web.AppRunner] = []
        self._raw: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        ws_app = web.Application()
        ws_app.router.add_get("/exec/{namespace}/{pod}/{container}", self._ws_exec)
        ws_app.router.add_get("/portForward/{namespace}/{pod}", self._ws_exec)
        self.ws_port = await self._serve(ws_app, self.tls)
        pod_app = web.Application()
        pod_app.router.add_route("*", "/{tail:.*}", self._pod_http)
        self.pod_port = await self._serve(pod_app, None)
        self._raw = await asyncio.start_server(self._raw_upgrade, "127.0.0.1", 0, ssl=self.tls)
        self.raw_port = self._raw.sockets[0].getsockname()[1]

    async def _serve(self, app: web.Application, tls: ssl.SSLContext | None) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        self._runners.append(runner)
        return site._server.sockets[0].getsockname()[1]  # noqa: SLF001

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._raw is not None:
            self._raw.close()

    async def _ws_exec(self, request: web.Request) -> web.WebSocketResponse:
        self.seen.append({"path": request.path, "query": request.rel_url.raw_query_string,
                          "cn": _peer_cn(request.transport), "authorization": request.headers.get("Authorization")})
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(b"\x01" + message.data[1:])  # stdin channel in, stdout channel out
                if message.data[1:] == b"exit":
                    break
        await ws.close()
        return ws

    async def _pod_http(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.raw_path, "body": body.decode(),
                                  "authorization": request.headers.get("Authorization")})

    async def _raw_upgrade(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        self.seen.append({"head": head, "cn": _peer_cn(writer.transport)})
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
        # Echo every byte back, reversed per read, until the other side closes.
        while data := await reader.read(65536):
            writer.write(data[::-1])
            await writer.drain()
        writer.close()


def _ts(second: int) -> str:
    return f"2026-11-26T10:00:{second:02d}.000000001Z"


@pytest.fixture(scope="module")
def node_env(cluster: Cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kubelet")
    tls_dir = cluster.data_dir / "tls"
    pki = PKI.at(tls_dir)
    cert, key = _serving_cert(tls_dir, tmp / "pki")
    # The kubelet's own identity towards the apiserver, as TLS bootstrap would give it.
    node_cert, node_key = pki.issue_client_cert(f"system:node:{NODE}", ["system:nodes"])
    write_kubeconfig(tmp / "kubelet.kubeconfig", cluster.url, pki.ca_pem(), node_cert, node_key)
    paths = KubeletPaths(tmp / "data")
    runtime = FakeRuntime()
    background = Background()
    state: dict = {}

    async def start() -> None:
        state["client"] = APIClient.from_kubeconfig(str(tmp / "kubelet.kubeconfig"), qps=0)
        server = KubeletServer(state["client"], runtime, paths, NODE, cert, key, pki.ca_cert)
        await server.start("127.0.0.1", 0)
        state["server"] = server
        fakes = Fakes(_server_tls(cert, key, pki.ca_cert))
        await fakes.start()
        state["fakes"] = fakes

    background.run(start())
    server: KubeletServer = state["server"]
    fakes: Fakes = state["fakes"]
    for name, port in ((NODE, server.port), (WS_NODE, fakes.ws_port), (RAW_NODE, fakes.raw_port)):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
        cluster.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"addresses": [{"type": "Hostname", "address": name},
                                      {"type": "InternalIP", "address": "127.0.0.1"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    yield {"runtime": runtime, "paths": paths, "server": server, "fakes": fakes, "tmp": tmp, "pki": pki}

    async def stop() -> None:
        await server.stop()
        await fakes.stop()
        await state["client"].close()

    background.run(stop())
    background.stop()
    for name in (NODE, WS_NODE, RAW_NODE):
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def _make_pod(cluster: Cluster, namespace: str, name: str, containers: list[str], node: str = NODE,
              ports: list[int] | None = None) -> dict:
    spec: dict = {"nodeName": node, "containers": [{"name": c, "image": "busybox"} for c in containers]}
    if ports:
        spec["containers"][0]["ports"] = [{"containerPort": p} for p in ports]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}))
    return cluster.kubectl_json("get", "pod", name, "-n", namespace)


def _set_status(cluster: Cluster, namespace: str, name: str, status: dict) -> None:
    cluster.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": status}))


def _log_file(env, namespace: str, pod: dict, container: str, attempt: int, lines: list[str]) -> Path:
    meta = pod["metadata"]
    directory = env["paths"].pod_log_dir(namespace, meta["name"], meta["uid"]) / container
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{attempt}.log"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _running(cid: str, restarts: int = 0, last_cid: str = "") -> dict:
    status = {"name": "app", "ready": True, "restartCount": restarts, "image": "busybox", "imageID": "",
              "containerID": f"containerd://{cid}", "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}
    if last_cid:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "containerID": f"containerd://{last_cid}",
                                              "startedAt": "2026-11-26T09:00:00Z",
                                              "finishedAt": "2026-11-26T09:59:00Z"}}
    return status


def test_kubectl_logs_tail_previous_and_errors(cluster, namespace, node_env):
    env = node_env
    pod = _make_pod(cluster, namespace, "web", ["app"])
    current = _log_file(env, namespace, pod, "app", 1, [
        f"{_ts(1)} stdout F hello", f"{_ts(2)} stderr P to", f"{_ts(3)} stderr F gether", f"{_ts(4)} stdout F bye"])
    previous = _log_file(env, namespace, pod, "app", 0, [f"{_ts(0)} stdout F from the crashed one"])
    env["runtime"].containers["cid-web-1"] = (current, pb.CONTAINER_RUNNING)
    env["runtime"].containers["cid-web-0"] = (previous, pb.CONTAINER_EXITED)

    # Before the container started: the kubelet's words for why there are no logs.
    _set_status(cluster, namespace, "web", {"phase": "Pending", "containerStatuses": [
        {"name": "app", "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
         "state": {"waiting": {"reason": "ContainerCreating"}}}]})
    waiting = cluster.kubectl("logs", "web", "-n", namespace, check=False)
    assert waiting.returncode != 0
    assert 'container "app" in pod "web" is waiting to start: ContainerCreating' in waiting.stderr
    no_previous = cluster.kubectl("logs", "web", "-n", namespace, "--previous", check=False)
    assert 'previous terminated container "app" in pod "web" not found' in no_previous.stderr

    _set_status(cluster, namespace, "web", {"phase": "Running",
                                           "containerStatuses": [_running("cid-web-1", 1, "cid-web-0")]})
    assert cluster.kubectl("logs", "web", "-n", namespace).stdout == "hello\ntogether\nbye\n"
    assert cluster.kubectl("logs", "web", "-n", namespace, "--tail=2").stdout == "together\nbye\n"
    assert cluster.kubectl("logs", "web", "-n", namespace, "--previous").stdout == "from the crashed one\n"
    assert cluster.kubectl("logs", "web", "-n", namespace, "--timestamps", "--tail=1").stdout == f"{_ts(4)} bye\n"
    assert cluster.kubectl("logs", "web", "-n", namespace, "--limit-bytes=8").stdout == "hello\nto"
    since = cluster.kubectl("logs", "web", "-n", namespace, "--since-time=2026-11-26T10:00:03Z").stdout
    assert since == "bye\n"  # a joined line carries its first piece's time (10:00:02)
    # The container's log file is gone (removed container, rotated away): the kubelet's error comes through.
    env["runtime"].containers.pop("cid-web-0")
    previous.unlink()
    gone = cluster.kubectl("logs", "web", "-n", namespace, "--previous", check=False)
    assert gone.returncode != 0 and "no such file or directory" in gone.stderr


def test_python_client_reads_logs_and_gets_upstream_errors(cluster, namespace, node_env, api_client):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    env = node_env
    pod = _make_pod(cluster, namespace, "two", ["app", "sidecar"])
    path = _log_file(env, namespace, pod, "app", 0, [f"{_ts(1)} stdout F one", f"{_ts(2)} stdout F two"])
    env["runtime"].containers["cid-two"] = (path, pb.CONTAINER_RUNNING)
    _set_status(cluster, namespace, "two", {"phase": "Running", "containerStatuses": [_running("cid-two")]})
    core = client.CoreV1Api(api_client)
    assert core.read_namespaced_pod_log("two", namespace, container="app") == "one\ntwo\n"
    assert core.read_namespaced_pod_log("two", namespace, container="app", tail_lines=1,
                                        timestamps=True) == f"{_ts(2)} two\n"

    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod_log("two", namespace)
    assert info.value.status == 400
    assert json.loads(info.value.body)["message"] == (
        "a container name must be specified for pod two, choose one of: [app sidecar]")
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod_log("two", namespace, container="nope")
    assert json.loads(info.value.body)["message"] == "container nope is not valid for pod two"
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod_log("two", namespace, container="app", tail_lines=-1)
    body = json.loads(info.value.body)
    assert (info.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == 'PodLogOptions "two" is invalid: tailLines: Invalid value: -1: must be greater than ' \
                              "or equal to 0"
    both = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/two/log?container=app"
                                          "&sinceSeconds=5&sinceTime=2026-11-26T10:00:00Z", check=False)
    assert "at most one of `sinceTime` or `sinceSeconds` may be specified" in both.stderr
    unparsable = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/two/log?tailLines=x",
                                 check=False)
    assert 'Error from server (BadRequest): strconv.ParseInt: parsing "x": invalid syntax' in unparsable.stderr


def test_kubectl_logs_follow_streams_until_the_container_stops(cluster, namespace, node_env):
    env = node_env
    pod = _make_pod(cluster, namespace, "follow", ["app"])
    path = _log_file(env, namespace, pod, "app", 0, [f"{_ts(1)} stdout F first"])
    env["runtime"].containers["cid-follow"] = (path, pb.CONTAINER_RUNNING)
    _set_status(cluster, namespace, "follow", {"phase": "Running", "containerStatuses": [_running("cid-follow")]})
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "logs", "-f", "follow", "-n",
                             namespace], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first\n"
        with path.open("a") as f:
            f.write(f"{_ts(2)} stdout F second\n")
        assert proc.stdout.readline() == "second\n"
        assert proc.poll() is None
        env["runtime"].containers["cid-follow"] = (path, pb.CONTAINER_EXITED)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_nodes_proxy_reaches_the_kubelet_api(cluster, node_env):
    assert cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz").stdout == "ok"
    pods = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/pods").stdout)
    assert pods["kind"] == "PodList"
    summary = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/stats/summary").stdout)
    assert summary["node"]["nodeName"] == NODE
    assert summary["node"]["cpu"]["usageCoreNanoSeconds"] > 0
    assert summary["node"]["memory"]["workingSetBytes"] > 0
    metrics = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/metrics/resource").stdout
    assert "\nnode_cpu_usage_seconds_total " in metrics and "resource_scrape_error 0" in metrics
    missing = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/no-such-path", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    gone = cluster.kubectl("get", "--raw", "/api/v1/nodes/no-such-node/proxy/healthz", check=False)
    assert 'nodes "no-such-node" not found' in gone.stderr


def test_kubelet_authenticates_and_authorizes_its_callers(cluster, namespace, node_env):
    server: KubeletServer = node_env["server"]
    pki: PKI = node_env["pki"]
    url = f"https://127.0.0.1:{server.port}/healthz"
    ca = ssl.create_default_context(cafile=str(pki.ca_cert))
    ca.check_hostname = False
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    token = cluster.kubectl("create", "token", "viewer", "-n", namespace).stdout.strip()
    admin = ssl.create_default_context(cafile=str(pki.ca_cert))
    admin.check_hostname = False
    admin.load_cert_chain(pki.admin_cert, pki.admin_key)

    async def call(ctx: ssl.SSLContext, headers: dict | None = None) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=ctx, headers=headers) as resp:
            return resp.status, await resp.text()

    assert asyncio.run(call(ca)) == (401, "Unauthorized")
    assert asyncio.run(call(ca, {"Authorization": "Bearer not-a-token"})) == (401, "Unauthorized")
    assert asyncio.run(call(ca, {"Authorization": f"Bearer {token}"})) == (
        403, f"Forbidden (user=system:serviceaccount:{namespace}:viewer, verb=get, resource=nodes, "
             "subresource=proxy)")
    assert asyncio.run(call(admin)) == (200, "ok")
    # A grant of nodes/stats lets the same token read /stats (a subresource the kubelet has no cached answer for).
    cluster.kubectl("create", "clusterrole", f"{namespace}-stats", "--verb=get", "--resource=nodes/stats")
    cluster.kubectl("create", "clusterrolebinding", f"{namespace}-stats", f"--clusterrole={namespace}-stats",
                    f"--serviceaccount={namespace}:viewer")
    try:
        url = f"https://127.0.0.1:{server.port}/stats/summary"
        status, body = asyncio.run(call(ca, {"Authorization": f"Bearer {token}"}))
        assert status == 200 and json.loads(body)["node"]["nodeName"] == NODE
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"{namespace}-stats", check=False)
        cluster.kubectl("delete", "clusterrole", f"{namespace}-stats", check=False)


def _admin_tls(cluster: Cluster) -> ssl.SSLContext:
    tls_dir = cluster.data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    ctx.load_cert_chain(tls_dir / "admin.crt", tls_dir / "admin.key")
    return ctx


def test_websocket_exec_is_proxied_byte_for_byte(cluster, namespace, node_env):
    fakes: Fakes = node_env["fakes"]
    _make_pod(cluster, namespace, "shell", ["app"], node=WS_NODE)
    url = (f"{cluster.url}/api/v1/namespaces/{namespace}/pods/shell/exec?command=sh&command=-c&command=echo+hi"
           "&stdin=true&stdout=true&tty=false")

    async def session() -> tuple[str | None, list[bytes]]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, ssl=_admin_tls(cluster), protocols=("v5.channel.k8s.io",)) as ws:
                received = []
                for payload in (b"\x00hello", b"\x00" + bytes(range(256)) * 64, b"\x00exit"):
                    await ws.send_bytes(payload)
                    message = await asyncio.wait_for(ws.receive(), 30)
                    received.append(message.data)
                return ws.protocol, received

    protocol, received = asyncio.run(session())
    assert protocol == "v5.channel.k8s.io"
    assert received == [b"\x01hello", b"\x01" + bytes(range(256)) * 64, b"\x01exit"]
    seen = fakes.seen[-1]
    assert seen["path"] == f"/exec/{namespace}/shell/app"
    assert seen["query"] == "stdin=1&stdout=1&command=sh&command=-c&command=echo%20hi"
    assert seen["cn"] == "kube-apiserver-kubelet-client"
    assert seen["authorization"] is None


def test_spdy_upgrade_is_proxied_byte_for_byte(cluster, namespace, node_env):
    fakes: Fakes = node_env["fakes"]
    _make_pod(cluster, namespace, "forward", ["app"], node=RAW_NODE)

    async def session() -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", cluster.port, ssl=_admin_tls(cluster),
                                                       server_hostname="127.0.0.1")
        writer.write(f"POST /api/v1/namespaces/{namespace}/pods/forward/portforward?ports=8080 HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{cluster.port}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     "X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        payload = bytes(range(256)) * 16
        writer.write(payload)
        await writer.drain()
        echoed = b""
        while len(echoed) < len(payload):
            echoed += await asyncio.wait_for(reader.read(65536), 30)
        writer.close()
        return head, echoed

    head, echoed = asyncio.run(session())
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"X-Stream-Protocol-Version: portforward.k8s.io" in head
    assert sorted(echoed) == sorted(bytes(range(256)) * 16)  # reversed per read by the fake, nothing lost
    seen = fakes.seen[-1]
    assert seen["head"].startswith(f"POST /portForward/{namespace}/forward?port=8080 HTTP/1.1\r\n")
    assert seen["cn"] == "kube-apiserver-kubelet-client"
    assert "authorization" not in seen["head"].lower()


def test_exec_needs_create_permission_even_over_a_websocket_get(cluster, namespace, node_env):
    _make_pod(cluster, namespace, "guarded", ["app"], node=WS_NODE)
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "exec-get", "-n", namespace, "--verb=get", "--resource=pods,pods/exec")
    cluster.kubectl("create", "rolebinding", "exec-get", "-n", namespace, "--role=exec-get",
                    f"--serviceaccount={namespace}:reader")
    token = cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    url = f"{cluster.url}/api/v1/namespaces/{namespace}/pods/guarded/exec?command=true&stdout=true"
    ca = ssl.create_default_context(cafile=str(cluster.data_dir / "tls" / "ca.crt"))

    async def attempt() -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(url, ssl=ca, headers={"Authorization": f"Bearer {token}"}):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(attempt()) == 403
    cluster.kubectl("create", "role", "exec-create", "-n", namespace, "--verb=create", "--resource=pods/exec")
    cluster.kubectl("create", "rolebinding", "exec-create", "-n", namespace, "--role=exec-create",
                    f"--serviceaccount={namespace}:reader")
    eventually(lambda: asyncio.run(attempt()) == 101, timeout=30)


def test_pods_proxy_reaches_the_pod(cluster, namespace, node_env):
    fakes: Fakes = node_env["fakes"]
    _make_pod(cluster, namespace, "server", ["app"], ports=[fakes.pod_port])
    _set_status(cluster, namespace, "server", {"phase": "Running", "podIP": "127.0.0.1",
                                               "podIPs": [{"ip": "127.0.0.1"}]})
    answer = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/server/proxy/a/b%20c"
                                                        "?x=1").stdout)
    assert answer == {"method": "GET", "path": "/a/b%20c?x=1", "body": "", "authorization": None}
    explicit = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/"
                                                          f"server:{fakes.pod_port}/proxy/").stdout)
    assert explicit["path"] == "/"
    posted = cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/server/proxy/submit",
                             "-f", "-", input='{"a": 1}')
    assert json.loads(posted.stdout)["method"] == "POST"
    assert json.loads(json.loads(posted.stdout)["body"]) == {"a": 1}


def test_logs_from_a_node_whose_kubelet_is_down(cluster, namespace, node_env):
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                          "metadata": {"name": "down-node"}}))
    port = free_port()  # nothing listens there
    cluster.kubectl("patch", "node", "down-node", "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    try:
        _make_pod(cluster, namespace, "stranded", ["app"], node="down-node")
        result = cluster.kubectl("logs", "stranded", "-n", namespace, check=False)
        assert result.returncode != 0
        assert (f'Error from server: Get "https://127.0.0.1:{port}/containerLogs/{namespace}/stranded/app": '
                in result.stderr)
        proxied = cluster.kubectl("get", "--raw", "/api/v1/nodes/down-node/proxy/healthz", check=False)
        assert "error trying to reach service" in proxied.stderr
    finally:
        cluster.kubectl("delete", "node", "down-node", "--wait=false", check=False)


def test_discovery_lists_the_proxied_subresources(cluster):
    resources = {r["name"]: r for r in json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]}
    assert resources["pods/log"]["verbs"] == ["get"]
    assert resources["pods/exec"]["verbs"] == ["create", "get"]
    assert resources["pods/portforward"]["kind"] == "PodPortForwardOptions"
    assert resources["nodes/proxy"]["verbs"] == ["create", "delete", "get", "patch", "update"]


def test_logs_of_an_unscheduled_pod_are_empty(cluster, namespace):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere", "namespace": namespace},
         "spec": {"containers": [{"name": "app", "image": "busybox"}]}}))
    assert cluster.kubectl("logs", "nowhere", "-n", namespace).stdout == ""
