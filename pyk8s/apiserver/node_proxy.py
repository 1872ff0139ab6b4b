"""The subresources the apiserver answers by talking to a node: pods/log, pods/exec, pods/attach,
pods/portforward, nodes/proxy and pods/proxy (upstream's pod and node REST "connecters").

The kubelet is reached at the Node's preferred address and `status.daemonEndpoints.kubeletEndpoint.Port` over
TLS with the apiserver's kubelet-client certificate (--kubelet-client-certificate/-key); its serving
certificate is checked against --kubelet-certificate-authority when one is configured and not otherwise, as
upstream. Plain requests are streamed through as they come (`kubectl logs -f`); an HTTP upgrade (WebSocket
for exec/attach/port-forward, SPDY/3.1 for kubectl's fallback) is answered with the kubelet's own 101 and the
two connections are then joined byte for byte, so every channel protocol passes through untouched.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ..api import errors
from ..api.errors import APIError, FieldError
from ..api.kinds import REGISTRY
from ..kubelet.logs import LogOptionsError, options_from_query
from .authn import UserInfo
from .authz import Attributes, forbidden
from .requestinfo import RequestInfo

log = logging.getLogger("pyk8s.apiserver.node_proxy")

DEFAULT_KUBELET_PORT = 10250
# k3s's --kubelet-preferred-address-types: the addresses a node is reachable on without name resolution first.
PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS", "Hostname")
# (resource, subresource) pairs served here.
PROXIED = {("pods", "log"), ("pods", "exec"), ("pods", "attach"), ("pods", "portforward"), ("pods", "proxy"),
           ("nodes", "proxy")}
_STREAMING = ("exec", "attach", "portforward")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "content-length", "host"}
# Credentials the apiserver consumed; they are never passed on (upstream drops them after authentication).
_CREDENTIALS = {"authorization", "impersonate-user", "impersonate-group", "impersonate-uid"}
_MAX_ERROR_BODY = 1 << 20
_MAX_HEAD = 64 * 1024
_TUNNEL_BUFFER = 1 << 20
# How often a quiet proxied stream looks whether its client is still there.
_CLIENT_CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class KubeletClientConfig:
    """How the apiserver talks to kubelets (upstream's --kubelet-* flags)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    # None: the kubelet's serving certificate is not verified (upstream's default without the flag).
    ca_file: Path | None = None
    preferred_address_types: tuple[str, ...] = field(default=PREFERRED_ADDRESS_TYPES)
    timeout: float = 30.0


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # raw (still percent-encoded) path
    query: str
    # Whether this is a kubelet (TLS with the kubelet-client identity) or a pod (no credentials).
    kubelet: bool

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}" + (f"?{self.query}" if self.query else "")


def split_scheme_name_port(value: str) -> tuple[str, str, str] | None:
    """`name`, `name:port` or `scheme:name:port` (upstream's SplitSchemeNamePort); None when malformed."""
    parts = value.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
        if scheme not in ("http", "https"):
            return None
    else:
        return None
    if not name:
        return None
    return scheme, name, port


def _check_proxyable(host: str) -> None:
    """Upstream refuses to proxy to link-local, multicast or unspecified addresses ("address not allowed").
    Loopback is allowed here: a pyk8s cluster may run every node of a test on one machine's loopback."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        raise errors.bad_request("address not allowed")


def _is_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "")
    return bool(request.headers.get("Upgrade")) and "upgrade" in [t.strip().lower() for t in connection.split(",")]


def _forwarded_headers(request: web.Request, upgrade: bool) -> CIMultiDict:
    out: CIMultiDict = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _CREDENTIALS or lower.startswith("impersonate-extra-"):
            continue
        if lower in _HOP_BY_HOP and not (upgrade and lower in ("connection", "upgrade")):
            continue
        out.add(name, value)
    return out


def _response_headers(headers) -> CIMultiDict:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP)


def _kubelet_error(code: int, body: bytes, resource: str, name: str) -> APIError:
    """A kubelet's non-2xx answer as upstream's GenericHttpResponseChecker words it."""
    text = body.decode("utf-8", "replace").strip()
    if code == 500:
        return errors.internal(text)
    if code == 400:
        return errors.bad_request(text)
    reasons = {401: ("Unauthorized", "the server has asked for the client to provide credentials"),
               403: ("Forbidden", "the server does not allow access to the requested resource"),
               404: ("NotFound", "the server could not find the requested resource"),
               405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
               422: ("Invalid", "the server rejected our request due to an error in our request"),
               429: ("TooManyRequests", "the server has received too many requests and has asked us to try "
                                        "again later"),
               503: ("ServiceUnavailable", "the server is currently unable to handle the request")}
    reason, message = reasons.get(code, ("", f"an error on the server ({text}) has prevented the request from "
                                             "succeeding"))
    details = {"name": name, "kind": resource, "causes": [{"reason": "UnexpectedServerResponse", "message": text}]}
    return APIError(code, reason, f"{message} ( {resource} {name})", details)


def _containers(pod: dict) -> tuple[list[str], list[str]]:
    spec = pod.get("spec") or {}
    return ([c.get("name", "") for c in spec.get("containers") or []],
            [c.get("name", "") for c in spec.get("initContainers") or []])


def _pick_container(pod: dict, name: str, requested: str) -> str:
    """The container a request means, with upstream's 400s when it cannot tell (pod registry's LogLocation)."""
    containers, init = _containers(pod)
    ephemeral = [c.get("name", "") for c in (pod.get("spec") or {}).get("ephemeralContainers") or []]
    if not requested:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise errors.bad_request(message)
    if requested not in containers and requested not in init and requested not in ephemeral:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _stream_query(query, with_command: bool) -> str:
    """exec/attach parameters as the kubelet reads them (upstream's streamParams)."""
    params: list[tuple[str, str]] = []
    for key in ("stdin", "stdout", "stderr", "tty"):
        value = query.get(key, "")
        if value in ("1", "t", "T", "true", "TRUE", "True"):
            params.append((key, "1"))
    if with_command:
        params.extend(("command", c) for c in query.getall("command", []))
    return urlencode(params, quote_via=quote)


def _raw_tail(request: web.Request, info: RequestInfo) -> str:
    """What follows `/proxy` in the request's raw path (kept percent-encoded), at least "/"."""
    raw = request.rel_url.raw_path
    marker = f"/{info.name}/proxy" if info.resource == "nodes" else f"/pods/{info.name}/proxy"
    # The name is matched in its encoded form too (a pod name never needs escaping, a node name with ":" may).
    for candidate in (marker, marker.replace(info.name, quote(info.name, safe=""))):
        index = raw.find(candidate)
        if index >= 0:
            return raw[index + len(candidate):] or "/"
    return "/" + "/".join(quote(p, safe="") for p in info.parts)


class NodeProxy:
    def __init__(self, rest, authorizer, config: KubeletClientConfig | None = None):
        self.rest = rest
        self.authorizer = authorizer
        self.config = config or KubeletClientConfig()
        self._session: aiohttp.ClientSession | None = None
        self._kubelet_tls: ssl.SSLContext | None = None
        self._kubelet_tls_unverified: ssl.SSLContext | None = None

    @staticmethod
    def serves(info: RequestInfo) -> bool:
        return info.group == "" and (info.resource, info.subresource) in PROXIED and bool(info.name)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- TLS and connections -------------------------------------------------------------

    def kubelet_tls(self, skip_verify: bool = False) -> ssl.SSLContext:
        if skip_verify or self.config.ca_file is None:
            if self._kubelet_tls_unverified is None:
                self._kubelet_tls_unverified = self._tls(None)
            return self._kubelet_tls_unverified
        if self._kubelet_tls is None:
            self._kubelet_tls = self._tls(self.config.ca_file)
        return self._kubelet_tls

    def _tls(self, ca_file: Path | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if ca_file is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.config.cert_file is not None and self.config.key_file is not None:
            ctx.load_cert_chain(self.config.cert_file, self.config.key_file)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No total timeout: logs -f and proxied streams last as long as the client stays.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.timeout),
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
        return self._session

    # ---- locations -----------------------------------------------------------------------

    async def _object(self, plural: str, namespace: str, name: str) -> dict:
        kind = REGISTRY.lookup("", "v1", plural)
        assert kind is not None
        return (await self.rest.get(kind, namespace, name)).obj

    async def _kubelet(self, node_name: str) -> tuple[str, int]:
        """The node's kubelet address and port (upstream's NodeConnectionInfoGetter)."""
        node = await self._object("nodes", "", node_name)
        status = node.get("status") or {}
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or \
            DEFAULT_KUBELET_PORT
        addresses = status.get("addresses") or []
        for wanted in self.config.preferred_address_types:
            for address in addresses:
                if address.get("type") == wanted and address.get("address"):
                    return address["address"], int(port)
        known = ", ".join(f"{{{a.get('type')} {a.get('address')}}}" for a in addresses)
        raise errors.internal(f"no preferred addresses found; known addresses: [{known}]")

    async def _pod(self, info: RequestInfo, name: str | None = None) -> dict:
        return await self._object("pods", info.namespace, name or info.name)

    @staticmethod
    def _pod_node(pod: dict, name: str) -> str:
        node = (pod.get("spec") or {}).get("nodeName", "")
        if not node:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        return node

    # ---- entry ---------------------------------------------------------------------------

    async def handle(self, request: web.Request, info: RequestInfo, user: UserInfo) -> web.StreamResponse:
        sub = info.subresource
        if info.resource == "pods" and sub in _STREAMING:
            if request.method not in ("GET", "POST"):
                raise errors.method_not_allowed()
            if request.method == "GET":
                # A WebSocket handshake is a GET, but it starts the same session an SPDY POST does: it needs
                # `create` on the subresource too (upstream's AuthorizePodWebsocketUpgradeCreatePermission).
                attrs = Attributes(user, "create", info.namespace, "", "pods", sub, info.name, info.path)
                decision = self.authorizer.authorize(attrs)
                if not decision.allowed:
                    raise forbidden(attrs, decision.reason)
            return await self._streaming(request, info)
        if sub == "log":
            if request.method != "GET":
                raise errors.method_not_allowed()
            return await self._log(request, info)
        return await self._proxy(request, info)

    async def _log(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        try:
            options = options_from_query(request.query)
        except LogOptionsError as exc:
            if exc.decode:
                raise errors.bad_request(exc.message) from None
            error = (FieldError("Forbidden", "", detail=exc.message) if not exc.field
                     else FieldError("Invalid", exc.field, exc.value, exc.message))
            raise errors.invalid_object("PodLogOptions", "", info.name, [error]) from None
        pod = await self._pod(info)
        container = _pick_container(pod, info.name, request.query.get("container", ""))
        node = (pod.get("spec") or {}).get("nodeName", "")
        if not node:
            # Upstream answers an unscheduled pod's log with an empty body.
            return web.Response(body=b"", content_type="text/plain")
        host, port = await self._kubelet(node)
        params: list[tuple[str, str]] = []
        for key, value in (("follow", options.follow), ("previous", options.previous),
                           ("timestamps", options.timestamps)):
            if value:
                params.append((key, "true"))
        for key in ("sinceSeconds", "sinceTime", "tailLines", "limitBytes"):
            if request.query.get(key, ""):
                params.append((key, request.query[key]))
        target = Target("https", host, port, f"/containerLogs/{quote(info.namespace, safe='')}/"
                        f"{quote(info.name, safe='')}/{quote(container, safe='')}", urlencode(params), kubelet=True)
        skip_verify = request.query.get("insecureSkipTLSVerifyBackend", "") in ("1", "t", "T", "true", "TRUE",
                                                                                  "True")
        return await self._forward(request, target, "GET", check=("pods/log", info.name), skip_verify=skip_verify,
                                   content_type="text/plain")

    async def _streaming(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        pod = await self._pod(info)
        sub = info.subresource
        if sub == "portforward":
            node = self._pod_node(pod, info.name)
            ports = request.query.get("ports", "")
            path = f"/portForward/{quote(info.namespace, safe='')}/{quote(info.name, safe='')}"
            query = urlencode([("port", ports)]) if ports else ""
        else:
            container = _pick_container(pod, info.name, request.query.get("container", ""))
            node = self._pod_node(pod, info.name)
            path = (f"/{sub}/{quote(info.namespace, safe='')}/{quote(info.name, safe='')}/"
                    f"{quote(container, safe='')}")
            query = _stream_query(request.query, sub == "exec")
        host, port = await self._kubelet(node)
        target = Target("https", host, port, path, query, kubelet=True)
        if _is_upgrade(request):
            return await self._tunnel(request, target)
        return await self._forward(request, target, request.method, check=(f"pods/{sub}", info.name))

    async def _proxy(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        parsed = split_scheme_name_port(info.name)
        if parsed is None:
            raise errors.bad_request(f"invalid {'node' if info.resource == 'nodes' else 'pod'} request "
                                     f"\"{info.name}\"")
        scheme, name, port = parsed
        tail = _raw_tail(request, info)
        query = request.rel_url.raw_query_string
        if info.resource == "nodes":
            host, kubelet_port = await self._kubelet(name)
            _check_proxyable(host)
            if not port or port == str(kubelet_port):
                target = Target(scheme or "https", host, kubelet_port, tail, query, kubelet=True)
            else:
                # Another port on the node: plain proxying, without the kubelet-client identity.
                target = Target(scheme or "http", host, _port(port), tail, query, kubelet=False)
        else:
            pod = await self._pod(info, name)
            if not port:
                port = next((str(p["containerPort"]) for c in (pod.get("spec") or {}).get("containers") or []
                             for p in c.get("ports") or [] if p.get("containerPort")), "")
            pod_ip = (pod.get("status") or {}).get("podIP", "")
            if not pod_ip:
                raise errors.bad_request("address not allowed")
            _check_proxyable(pod_ip)
            target = Target(scheme or "http", pod_ip, _port(port) if port else 80, tail, query, kubelet=False)
        if _is_upgrade(request):
            return await self._tunnel(request, target)
        return await self._forward(request, target, request.method)

    # ---- plain requests ------------------------------------------------------------------

    def _target_tls(self, target: Target, skip_verify: bool = False) -> ssl.SSLContext | bool:
        if target.scheme != "https":
            return False
        if target.kubelet:
            return self.kubelet_tls(skip_verify)
        # A pod's or a node's other HTTPS port: no client identity and, as upstream, no verification.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _forward(self, request: web.Request, target: Target, method: str, *,
                       check: tuple[str, str] | None = None, skip_verify: bool = False,
                       content_type: str | None = None) -> web.StreamResponse:
        """Send the request on and stream the answer back as it arrives. With `check`, a non-2xx answer
        becomes a Status error (upstream's LocationStreamer with a response checker)."""
        headers = _forwarded_headers(request, upgrade=False)
        body = request.content if request.body_exists else None
        try:
            upstream = await self._client().request(
                method, URL(target.url, encoded=True), headers=headers, data=body,
                ssl=self._target_tls(target, skip_verify), allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if check is not None:
                # What a failed Go client request says (`kubectl logs` on a node that is down).
                raise APIError(500, "", f'{method.capitalize()} "{target.url}": {exc or type(exc).__name__}') \
                    from None
            raise _unreachable(target, exc) from None
        try:
            if check is not None and not 200 <= upstream.status <= 206:
                raise _kubelet_error(upstream.status, await upstream.content.read(_MAX_ERROR_BODY), *check)
            out_headers = _response_headers(upstream.headers)
            if content_type is not None:
                out_headers["Content-Type"] = content_type
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
            await response.prepare(request)
            try:
                while True:
                    try:
                        chunk = await asyncio.wait_for(upstream.content.readany(), _CLIENT_CHECK_SECONDS)
                    except TimeoutError:
                        # A quiet stream (logs -f of an idle container): stop once the client has gone.
                        if request.transport is None or request.transport.is_closing():
                            break
                        continue
                    if not chunk:
                        break
                    await response.write(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                log.debug("proxy %s: upstream ended early: %s", target.url, exc)
            await response.write_eof()
            return response
        finally:
            upstream.release()

    # ---- upgrades ------------------------------------------------------------------------

    async def _tunnel(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Pass an upgrade request on; when the other end switches protocols, join the two connections."""
        tls = self._target_tls(target)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, ssl=tls or None, server_hostname=target.host if tls else None,
                limit=_MAX_HEAD), self.config.timeout)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            raise _unreachable(target, exc) from None
        try:
            head = [f"{request.method} {target.path}{'?' + target.query if target.query else ''} HTTP/1.1",
                    f"Host: {target.authority}"]
            head.extend(f"{k}: {v}" for k, v in _forwarded_headers(request, upgrade=True).items())
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            try:
                raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.config.timeout)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
                raise _unreachable(target, exc) from None
            status, reason, headers = _parse_head(raw_head)
            if status != 101:
                body = await _read_body(reader, headers)
                out = _response_headers(headers)
                return web.Response(status=status, reason=reason, body=body, headers=out)
            response = web.StreamResponse(status=101, reason=reason, headers=headers)
            response.force_close()
            # The client's bytes go to the other side from now on; taken over before the 101 goes out, so
            # nothing the client sends after it can reach aiohttp's HTTP parser (which only knows WebSocket
            # upgrades, not SPDY ones).
            upstream = _Upstream(writer, request.transport)
            request.protocol.set_parser(upstream)  # type: ignore[arg-type] - only feed_data/feed_eof are used
            await response.prepare(request)
            await _join(request.transport, upstream, reader, writer)
            return response
        finally:
            writer.close()


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise errors.bad_request(f'invalid port "{value}"')
    return int(value)


def _unreachable(target: Target, exc: BaseException) -> APIError:
    # Upstream's proxy answers a dial failure as a 502 "error trying to reach service".
    return APIError(502, "", f"error trying to reach service: {exc or type(exc).__name__}",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": str(exc)}]})


def _parse_head(raw: bytes) -> tuple[int, str, CIMultiDict]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise APIError(502, "", f"error trying to reach service: malformed response {lines[0][:80]!r}")
    headers: CIMultiDict = CIMultiDict()
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return int(code), reason, headers


async def _read_body(reader: asyncio.StreamReader, headers: CIMultiDict) -> bytes:
    """A refused upgrade's answer body (bounded), however the other side framed it."""
    try:
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            body = b""
            while len(body) < _MAX_ERROR_BODY:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                body += await reader.readexactly(size)
                await reader.readline()
            return body
        if headers.get("Content-Length", "").isdigit():
            return await reader.readexactly(min(int(headers["Content-Length"]), _MAX_ERROR_BODY))
        return await reader.read(_MAX_ERROR_BODY)
    except (asyncio.IncompleteReadError, ValueError, OSError):
        return b""


class _Upstream:
    """Receives the client's bytes from aiohttp's protocol once the connection is switched (in place of a
    WebSocket reader) and writes them to the other side, pausing the client while that side is slow."""

    def __init__(self, writer: asyncio.StreamWriter, client_transport: asyncio.Transport):
        self.writer = writer
        self.client_transport = client_transport
        self.closed = asyncio.Event()
        self._draining = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.writer.is_closing():
            return True, b""
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > _TUNNEL_BUFFER and not self._draining:
            self._draining = True
            self.client_transport.pause_reading()
            asyncio.get_running_loop().create_task(self._drain())
        return False, b""

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except OSError:
            pass
        finally:
            self._draining = False
            if not self.client_transport.is_closing():
                self.client_transport.resume_reading()

    def feed_eof(self) -> None:
        self.closed.set()
        if not self.writer.is_closing() and self.writer.can_write_eof():
            try:
                self.writer.write_eof()
            except (OSError, RuntimeError):
                self.writer.close()


async def _join(transport: asyncio.Transport, upstream: _Upstream, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Copy the other side's bytes to the client until either side is done."""

    async def downstream() -> None:
        while not transport.is_closing():
            data = await reader.read(65536)
            if not data:
                return
            transport.write(data)
            while transport.get_write_buffer_size() > _TUNNEL_BUFFER and not transport.is_closing():
                await asyncio.sleep(0.005)

    down = asyncio.ensure_future(downstream())
    client_gone = asyncio.ensure_future(upstream.closed.wait())
    try:
        await asyncio.wait({down, client_gone}, return_when=asyncio.FIRST_COMPLETED)
        if client_gone.done() and not down.done():
            # The client half-closed or left: give the other side a moment to finish what it is sending.
            await asyncio.wait({down}, timeout=5)
    finally:
        for task in (down, client_gone):
            task.cancel()
        writer.close()
