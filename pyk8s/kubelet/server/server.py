"""The kubelet's HTTPS API (port 10250): logs, exec/attach/port-forward, stats, health and the node's pods.

Every request is authenticated and authorized first (see auth.py), like upstream's kubelet with webhook
authentication and authorization. The apiserver reaches this server with its kubelet-client certificate to
serve pods/log, pods/exec, pods/attach, pods/portforward and nodes/proxy.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import orjson
from aiohttp import web

from ...client import APIClient
from ...client.api import APIConnectionError, APIStatusError, is_not_found
from ..logs import LogOptions, LogOptionsError, options_from_query, read_log
from ..paths import KubeletPaths
from ..runtime.cri import CRIClient, CRIError, pb
from .auth import KubeletAuth
from .stats import CONTAINER_NAME, POD_NAME, POD_NAMESPACE, StatsProvider

log = logging.getLogger("pyk8s.kubelet.server")

KUBELET_PORT = 10250


def _text_error(status: int, message: str) -> web.Response:
    # Upstream's kubelet answers errors as plain text (go-restful WriteError); the apiserver turns the
    # text into the Status message a client sees.
    return web.Response(status=status, text=message, content_type="text/plain")


def _runtime_id(container_id: str) -> str:
    """`containerd://abc` (a pod status's containerID) -> `abc` (the runtime's id)."""
    return container_id.partition("://")[2] or container_id


def _named(items: list[dict] | None, name: str) -> dict | None:
    return next((c for c in items or [] if c.get("name") == name), None)


def _container_status(pod: dict, name: str) -> dict | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        found = _named(status.get(key), name)
        if found is not None:
            return found
    return None


def log_container_id(pod: dict, container: str, previous: bool) -> str:
    """Which container instance's log to read, with upstream's messages when there is none (a 400)."""
    pod_name = pod["metadata"]["name"]
    status = _container_status(pod, container)
    if status is None:
        raise ValueError(f'container "{container}" in pod "{pod_name}" is not available')
    state, last = status.get("state") or {}, (status.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise ValueError(f'previous terminated container "{container}" in pod "{pod_name}" not found')
        return last["containerID"]
    if "running" in state:
        return status.get("containerID", "")
    if "terminated" in state:
        if state["terminated"].get("containerID"):
            return state["terminated"]["containerID"]
        if last and last.get("containerID"):
            return last["containerID"]
        raise ValueError(f'container "{container}" in pod "{pod_name}" is terminated')
    if last:
        if not last.get("containerID"):
            raise ValueError(f'container "{container}" in pod "{pod_name}" is terminated')
        return last["containerID"]
    if "waiting" in state:
        reason = state["waiting"].get("reason", "")
        if reason == "ErrImagePull":
            reason = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            reason = "trying and failing to pull image"
        raise ValueError(f'container "{container}" in pod "{pod_name}" is waiting to start: {reason}')
    raise ValueError(f'container "{container}" in pod "{pod_name}" is waiting to start - no logs yet')


class KubeletServer:
    def __init__(self, client: APIClient, runtime: CRIClient, paths: KubeletPaths, node_name: str,
                 cert_file: Path, key_file: Path, client_ca_file: Path):
        self.client = client
        self.runtime = runtime
        self.paths = paths
        self.node_name = node_name
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.auth = KubeletAuth(client, node_name)
        self.stats = StatsProvider(runtime, paths, node_name)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """The node's serving certificate; client certificates are asked for, verified against the cluster CA
        when given, and optional so bearer-token callers share the port."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.load_verify_locations(cafile=self.client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticated])
        routes = [
            ("GET", "/healthz", self._healthz),
            ("GET", "/pods", self._pods),
            ("GET", "/containerLogs/{namespace}/{pod}/{container}", self._container_logs),
            ("GET", "/stats/summary", self._stats_summary),
            ("GET", "/metrics/resource", self._resource_metrics),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        for method in ("GET", "POST"):
            for path in ("/exec/{namespace}/{pod}/{container}", "/exec/{namespace}/{pod}/{uid}/{container}"):
                app.router.add_route(method, path, self._exec)
            for path in ("/attach/{namespace}/{pod}/{container}", "/attach/{namespace}/{pod}/{uid}/{container}"):
                app.router.add_route(method, path, self._attach)
            for path in ("/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"):
                app.router.add_route(method, path, self._port_forward)
        return app

    async def start(self, host: str, port: int = KUBELET_PORT) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.ssl_context(), reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # noqa: SLF001 - the bound port for port 0
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("kubelet server for node %s serving on %s:%d", self.node_name, host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- request pipeline ----------------------------------------------------------------

    @web.middleware
    async def _authenticated(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            await self.auth.check(request)
        except web.HTTPException as exc:
            return _text_error(exc.status, exc.text or exc.reason)
        except (APIStatusError, APIConnectionError) as exc:
            log.warning("kubelet server: cannot check %s %s with the apiserver: %s", request.method,
                        request.path, exc)
            return _text_error(500, "Internal Server Error: authorization check failed")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _text_error(404, "404 page not found")

    # ---- pods ----------------------------------------------------------------------------

    async def _pod(self, namespace: str, name: str) -> dict | None:
        """A pod bound to this node, as the API has it now."""
        try:
            pod = await self.client.get("pods", name, namespace)
        except APIStatusError as exc:
            if is_not_found(exc):
                return None
            raise
        return pod if (pod.get("spec") or {}).get("nodeName") == self.node_name else None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def _pods(self, request: web.Request) -> web.Response:
        pods = await self.client.list("pods", field_selector=f"spec.nodeName={self.node_name}")
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods.get("items") or []}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    # ---- logs ----------------------------------------------------------------------------

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        namespace, pod_name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            options = options_from_query(request.query)
        except LogOptionsError as exc:
            if exc.decode:
                return _text_error(400, f"Unable to decode query: {exc.message}")
            where = f"{exc.field}: Invalid value: {exc.value}: " if exc.field else ": Forbidden: "
            return _text_error(422, f"invalid request: {where}{exc.message}")
        pod = await self._pod(namespace, pod_name)
        if pod is None:
            return _text_error(404, f'pod "{pod_name}" does not exist')
        spec = pod.get("spec") or {}
        if not any(_named(spec.get(key), container) for key in ("containers", "initContainers",
                                                                 "ephemeralContainers")):
            return _text_error(404, f'container "{container}" not found in pod "{pod_name}"')
        try:
            container_id = _runtime_id(log_container_id(pod, container, options.previous))
        except ValueError as exc:
            return _text_error(400, str(exc))
        path = await self._log_path(pod, container, container_id, options)
        if path is None:
            return _text_error(400, f'previous terminated container "{container}" in pod "{pod_name}" not found')
        if not path.exists():
            return _text_error(400, f'failed to try resolving symlinks in path "{path}": lstat {path}: no such '
                                    "file or directory")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def running() -> bool:
            # A follower also ends when its client has gone, even if the container writes nothing more.
            if request.transport is None or request.transport.is_closing():
                return False
            try:
                status = await self.runtime.container_status(container_id)
            except CRIError:
                return False
            return status.status.state == pb.CONTAINER_RUNNING

        try:
            await read_log(path, options, response.write, running)
            await response.write_eof()
        except ConnectionResetError:
            log.debug("logs of %s/%s/%s: the client went away", namespace, pod_name, container)
        return response

    async def _log_path(self, pod: dict, container: str, container_id: str, options: LogOptions) -> Path | None:
        """The runtime knows each container's log file; when it has forgotten the container (removed), the file
        is where contract 2 puts it: `<pod log dir>/<container>/<restartCount>.log`."""
        if container_id:
            try:
                status = await self.runtime.container_status(container_id)
                if status.status.log_path:
                    return Path(status.status.log_path)
            except CRIError as exc:
                if not exc.not_found:
                    raise
        restarts = int((_container_status(pod, container) or {}).get("restartCount", 0))
        attempt = restarts - 1 if options.previous else restarts
        if attempt < 0:
            return None
        meta = pod["metadata"]
        return (self.paths.pod_log_dir(meta["namespace"], meta["name"], meta.get("uid", ""))
                / self.paths.container_log_path(container, attempt))

    # ---- stats ---------------------------------------------------------------------------

    async def _stats_summary(self, request: web.Request) -> web.Response:
        summary = await self.stats.summary()
        return web.Response(body=orjson.dumps(summary), content_type="application/json")

    async def _resource_metrics(self, request: web.Request) -> web.Response:
        text = await self.stats.resource_metrics()
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    # ---- streaming -----------------------------------------------------------------------

    async def _find_container(self, namespace: str, pod: str, container: str) -> str | None:
        """The running container through CRI labels alone (contract 1), the newest attempt first."""
        labels = {POD_NAMESPACE: namespace, POD_NAME: pod, CONTAINER_NAME: container}
        found = await self.runtime.list_containers(pb.ContainerFilter(
            state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING), label_selector=labels))
        if not found:
            return None
        return max(found, key=lambda c: (c.metadata.attempt, c.created_at)).id

    async def _find_sandbox(self, namespace: str, pod: str) -> str | None:
        found = await self.runtime.list_pod_sandbox(pb.PodSandboxFilter(
            state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY),
            label_selector={POD_NAMESPACE: namespace, POD_NAME: pod}))
        if not found:
            return None
        return max(found, key=lambda s: s.created_at).id

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        from ..streaming import StreamOptions, serve_exec

        match = request.match_info
        container_id = await self._find_container(match["namespace"], match["pod"], match["container"])
        if container_id is None:
            return _text_error(404, f'container "{match["container"]}" not found in pod "{match["pod"]}"')
        try:
            options = StreamOptions.from_query(request.query)
        except ValueError as exc:
            return _text_error(400, str(exc))
        return await serve_exec(request, self.runtime, container_id, request.query.getall("command", []), options)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        from ..streaming import StreamOptions, serve_attach

        match = request.match_info
        container_id = await self._find_container(match["namespace"], match["pod"], match["container"])
        if container_id is None:
            return _text_error(404, f'container "{match["container"]}" not found in pod "{match["pod"]}"')
        try:
            options = StreamOptions.from_query(request.query)
        except ValueError as exc:
            return _text_error(400, str(exc))
        return await serve_attach(request, self.runtime, container_id, options)

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        from ..streaming import serve_port_forward

        match = request.match_info
        sandbox_id = await self._find_sandbox(match["namespace"], match["pod"])
        if sandbox_id is None:
            return _text_error(404, f'pod "{match["pod"]}" does not exist')
        ports: list[int] = []
        # The apiserver passes PodPortForwardOptions.ports on as `port` (upstream's api.PortHeader).
        for value in ",".join(request.query.getall("port", []) or request.query.getall("ports", [])).split(","):
            if not value.strip():
                continue
            if not value.strip().isdigit() or not 0 < int(value) < 65536:
                return _text_error(400, f'invalid port "{value}"')
            ports.append(int(value))
        return await serve_port_forward(request, self.runtime, sandbox_id, ports)
