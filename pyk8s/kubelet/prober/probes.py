"""One probe attempt: exec, httpGet, tcpSocket or grpc, with upstream's outcomes and messages (pkg/probe/...).

An attempt ends in Success, Failure (with the output that goes into the Unhealthy event) or Warning (an
HTTP redirect to another host, which counts as success and gives a ProbeWarning event). Network probes
connect to the pod IP from the kubelet's network namespace, as upstream's do.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import grpc

from ..runtime.cri import CRIClient, CRIError

USER_AGENT = "kube-probe/1.32"
MAX_BODY = 10 * 1024  # upstream reads at most 10 KiB of a probe's response
MAX_REDIRECTS = 10
GRPC_SERVING = 1


class Result(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    WARNING = "warning"


@dataclass(frozen=True)
class ProbeOutcome:
    result: Result
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.result is not Result.FAILURE


class ProbeError(Exception):
    """The probe could not be run at all (bad spec): its result is thrown away, as upstream does."""


def resolve_port(port: int | str | None, container: Mapping) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        if 0 < port < 65536:
            return port
        raise ProbeError(f"invalid port number: {port}")
    if isinstance(port, str):
        if port.isdigit():
            return resolve_port(int(port), container)
        for candidate in container.get("ports") or ():
            if candidate.get("name") == port:
                return int(candidate["containerPort"])
        raise ProbeError(f"couldn't find port: {port} in {container.get('name')}")
    raise ProbeError("probe port is required")


async def exec_probe(runtime: CRIClient, container_id: str, command: list[str], timeout: int) -> ProbeOutcome:
    try:
        response = await runtime.exec_sync(container_id, command, timeout_seconds=timeout, timeout=timeout + 5)
    except CRIError as exc:
        if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ProbeOutcome(Result.FAILURE, f"command {_go_quote(' '.join(command))} timed out")
        raise ProbeError(str(exc)) from exc
    output = (response.stdout + response.stderr).decode(errors="replace")
    if response.exit_code == 0:
        return ProbeOutcome(Result.SUCCESS, output)
    if not output:
        output = f"command {_go_quote(' '.join(command))} exited with {response.exit_code}"
    return ProbeOutcome(Result.FAILURE, output)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def http_probe(scheme: str, host: str, port: int, path: str, headers: list[Mapping],
                     timeout: float) -> ProbeOutcome:
    scheme = (scheme or "HTTP").lower()
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{_host_port(host, port)}{path}"
    request_headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in headers:
        request_headers[header.get("name", "")] = header.get("value", "")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    connector = aiohttp.TCPConnector(force_close=True, ssl=insecure)
    try:
        async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            return await _follow(session, url, request_headers)
    except TimeoutError:
        return ProbeOutcome(Result.FAILURE, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded '
                                            "while awaiting headers)")
    except aiohttp.ClientError as exc:
        return ProbeOutcome(Result.FAILURE, f'Get "{url}": {_connect_error(exc, host, port)}')


async def _follow(session: aiohttp.ClientSession, url: str, headers: dict) -> ProbeOutcome:
    """Follow redirects within the same host only; a redirect elsewhere ends the probe with a Warning."""
    origin = urlsplit(url).hostname
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            body = (await response.content.read(MAX_BODY)).decode(errors="replace")
            location = response.headers.get("Location")
            if 300 <= response.status < 400 and location:
                target = urljoin(url, location)
                if urlsplit(target).hostname == origin:
                    url = target
                    continue
                return ProbeOutcome(Result.WARNING, f"Probe terminated redirects, Response body: {body}")
            if 200 <= response.status < 400:
                return ProbeOutcome(Result.SUCCESS, body)
            return ProbeOutcome(Result.FAILURE, f"HTTP probe failed with statuscode: {response.status}")
    return ProbeOutcome(Result.FAILURE, "stopped after 10 redirects")


def _connect_error(exc: BaseException, host: str, port: int) -> str:
    cause = exc.__cause__ or getattr(exc, "os_error", None) or exc
    if isinstance(cause, ConnectionRefusedError):
        return f"dial tcp {_host_port(host, port)}: connect: connection refused"
    return str(cause) or type(cause).__name__


async def tcp_probe(host: str, port: int, timeout: float) -> ProbeOutcome:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeOutcome(Result.FAILURE, f"dial tcp {_host_port(host, port)}: i/o timeout")
    except ConnectionRefusedError:
        return ProbeOutcome(Result.FAILURE, f"dial tcp {_host_port(host, port)}: connect: connection refused")
    except OSError as exc:
        return ProbeOutcome(Result.FAILURE, f"dial tcp {_host_port(host, port)}: {exc.strerror or exc}")
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ProbeOutcome(Result.SUCCESS)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def health_check_request(service: str) -> bytes:
    """grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited."""
    data = service.encode()
    return (b"\x0a" + _varint(len(data)) + data) if data else b""


def serving_status(message: bytes) -> int:
    """grpc.health.v1.HealthCheckResponse.status (field 1, varint); 0 (UNKNOWN) when absent."""
    i = 0
    while i < len(message):
        key = message[i]
        i += 1
        value, shift = 0, 0
        while True:
            byte = message[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if key == 0x08:
            return value
        if key & 0x07 == 2:  # another length-delimited field: skip it
            i += value
    return 0


_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


async def grpc_probe(host: str, port: int, service: str, timeout: float) -> ProbeOutcome:
    target = _host_port(host, port)
    async with grpc.aio.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        try:
            response = await check(health_check_request(service), timeout=timeout, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return ProbeOutcome(Result.FAILURE, f"this server does not implement the grpc health protocol "
                                                    f"(grpc.health.v1.Health): {exc.details()}")
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return ProbeOutcome(Result.FAILURE, f"timeout: health rpc did not complete within {timeout:g}s")
            return ProbeOutcome(Result.FAILURE, f"timeout: failed to connect service {_go_quote(target)} within "
                                                f"{timeout:g}s: {exc.details()}")
    status = serving_status(response)
    if status != GRPC_SERVING:
        name = _STATUS_NAMES.get(status, str(status))
        return ProbeOutcome(Result.FAILURE, f"service unhealthy (responded with {_go_quote(name)})")
    return ProbeOutcome(Result.SUCCESS)


async def run_probe(probe: Mapping, container: Mapping, container_id: str, pod_ip: str | None,
                    runtime: CRIClient) -> ProbeOutcome:
    """One attempt of `probe` (a container's livenessProbe/readinessProbe/startupProbe) against the container."""
    timeout = int(probe.get("timeoutSeconds") or 1)
    if "exec" in probe:
        command = list((probe["exec"] or {}).get("command") or [])
        if not command:
            raise ProbeError("exec probe has no command")
        return await exec_probe(runtime, container_id, command, timeout)
    if "httpGet" in probe:
        spec = probe["httpGet"] or {}
        host = spec.get("host") or pod_ip
        if not host:
            raise ProbeError("pod has no IP yet")
        return await http_probe(spec.get("scheme") or "HTTP", host, resolve_port(spec.get("port"), container),
                                spec.get("path") or "/", spec.get("httpHeaders") or [], timeout)
    if "tcpSocket" in probe:
        spec = probe["tcpSocket"] or {}
        host = spec.get("host") or pod_ip
        if not host:
            raise ProbeError("pod has no IP yet")
        return await tcp_probe(host, resolve_port(spec.get("port"), container), timeout)
    if "grpc" in probe:
        spec = probe["grpc"] or {}
        if not pod_ip:
            raise ProbeError("pod has no IP yet")
        return await grpc_probe(pod_ip, resolve_port(spec.get("port"), container), spec.get("service") or "",
                                timeout)
    raise ProbeError("missing probe handler")
