"""Container probes: the worker's rules (upstream worker.go) and each probe handler against real servers on loopback."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from aiohttp import web

from pyk8s.kubelet.prober import ProbeManager
from pyk8s.kubelet.prober.probes import (
    USER_AGENT,
    ProbeError,
    ProbeOutcome,
    Result,
    exec_probe,
    grpc_probe,
    health_check_request,
    http_probe,
    resolve_port,
    serving_status,
    tcp_probe,
)
from pyk8s.kubelet.prober.worker import Kind, ProbeWorker, State
from pyk8s.kubelet.runtime import cri_pb2 as pb
from pyk8s.kubelet.runtime.cri import CRIError

STARTED = "2026-11-26T10:00:00Z"
STARTED_EPOCH = 1795687200.0  # STARTED as epoch seconds


def pod(restart_policy: str = "Always", deleting: bool = False, **probes) -> dict:
    meta = {"name": "p", "namespace": "ns", "uid": "u1"}
    if deleting:
        meta["deletionTimestamp"] = STARTED
    return {"metadata": meta, "spec": {"restartPolicy": restart_policy,
                                       "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}],
                                                       **probes}]}}


def status(cid: str = "containerd://a", running: bool = True, started: bool = True, terminated: bool = False,
           phase: str = "Running") -> dict:
    state = {"running": {"startedAt": STARTED}} if running else (
        {"terminated": {"exitCode": 1}} if terminated else {"waiting": {"reason": "CrashLoopBackOff"}})
    return {"phase": phase, "podIP": "127.0.0.1",
            "containerStatuses": [{"name": "c", "containerID": cid, "state": state, "started": started}]}


class Scripted:
    """A prober answering from a list of outcomes, counting calls."""

    def __init__(self, *results: Result):
        self.results = list(results)
        self.calls = 0

    async def __call__(self, pod, container, container_id, spec) -> ProbeOutcome:
        self.calls += 1
        return ProbeOutcome(self.results.pop(0) if self.results else Result.SUCCESS, "out")


def worker(kind: Kind, prober, the_pod: dict | None = None, now: float = STARTED_EPOCH + 100, **spec):
    field = kind.field
    the_pod = the_pod or pod(**{field: {"exec": {"command": ["true"]}, **spec}})
    changes = []
    w = ProbeWorker(kind, the_pod, the_pod["spec"]["containers"][0], prober, lambda: changes.append(1),
                    wall=lambda: now)
    return w, changes


async def test_readiness_starts_failed_and_needs_success_threshold():
    prober = Scripted(Result.SUCCESS, Result.SUCCESS, Result.FAILURE, Result.FAILURE, Result.FAILURE)
    w, _ = worker(Kind.READINESS, prober, successThreshold=2, failureThreshold=3)
    assert w.state is State.FAILURE
    await w.step(status())
    assert w.state is State.FAILURE  # one success of two
    await w.step(status())
    assert w.state is State.SUCCESS
    await w.step(status())
    await w.step(status())
    assert w.state is State.SUCCESS  # two failures of three
    await w.step(status())
    assert w.state is State.FAILURE and prober.calls == 5


async def test_liveness_failure_holds_until_a_new_container():
    prober = Scripted(Result.FAILURE)
    w, changes = worker(Kind.LIVENESS, prober, failureThreshold=1)
    assert w.state is State.SUCCESS
    await w.step(status())
    assert w.state is State.FAILURE and w.on_hold and changes
    await w.step(status())
    assert prober.calls == 1  # on hold: no probing of the doomed container
    await w.step(status(cid="containerd://b"))
    assert w.state is State.SUCCESS and not w.on_hold and prober.calls == 2


async def test_probes_wait_for_startup_and_initial_delay():
    prober = Scripted()
    w, _ = worker(Kind.LIVENESS, prober)
    await w.step(status(started=False))
    assert prober.calls == 0  # liveness waits until the container has started
    delayed, _ = worker(Kind.READINESS, prober, now=STARTED_EPOCH + 5, initialDelaySeconds=10)
    await delayed.step(status())
    assert prober.calls == 0 and delayed.state is State.FAILURE
    startup, _ = worker(Kind.STARTUP, prober)
    assert startup.state is State.UNKNOWN
    await startup.step(status(started=False))
    assert prober.calls == 1 and startup.state is State.SUCCESS
    await startup.step(status(started=True))
    assert prober.calls == 1  # started: startup probing stops


async def test_worker_stops_for_finished_pods_and_dead_containers():
    prober = Scripted()
    w, _ = worker(Kind.READINESS, prober)
    assert await w.step(status(phase="Succeeded")) is False
    w, _ = worker(Kind.READINESS, prober, pod(restart_policy="Never",
                                               readinessProbe={"exec": {"command": ["true"]}}))
    assert await w.step(status(running=False, terminated=True)) is False
    assert w.state is State.FAILURE
    w, _ = worker(Kind.READINESS, prober)
    assert await w.step(status(running=False)) is True  # waiting to restart: keep the worker
    live, _ = worker(Kind.LIVENESS, prober, pod(deleting=True, livenessProbe={"exec": {"command": ["true"]}}))
    assert await live.step(status()) is False
    assert prober.calls == 0


def test_named_and_bad_ports():
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(80, container) == 80
    assert resolve_port("81", container) == 81
    with pytest.raises(ProbeError, match="couldn't find port: grpc in c"):
        resolve_port("grpc", container)
    with pytest.raises(ProbeError):
        resolve_port(0, container)


@pytest.fixture
async def http_server():
    seen = {}

    async def ok(request):
        seen["user-agent"] = request.headers.get("User-Agent")
        seen["x-probe"] = request.headers.get("X-Probe")
        return web.Response(text="fine")

    async def broken(request):
        return web.Response(status=500, text="no")

    async def local_redirect(request):
        raise web.HTTPFound("/ok")

    async def away(request):
        raise web.HTTPFound("http://example.invalid/elsewhere")

    async def slow(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.add_routes([web.get("/ok", ok), web.get("/broken", broken), web.get("/redirect", local_redirect),
                    web.get("/away", away), web.get("/slow", slow)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield port, seen
    await runner.cleanup()


async def test_http_probe_outcomes(http_server):
    port, seen = http_server
    outcome = await http_probe("HTTP", "127.0.0.1", port, "/ok", [{"name": "X-Probe", "value": "1"}], 5)
    assert outcome == ProbeOutcome(Result.SUCCESS, "fine")
    assert seen == {"user-agent": USER_AGENT, "x-probe": "1"}
    assert await http_probe("HTTP", "127.0.0.1", port, "/broken", [], 5) == \
        ProbeOutcome(Result.FAILURE, "HTTP probe failed with statuscode: 500")
    assert (await http_probe("HTTP", "127.0.0.1", port, "redirect", [], 5)).result is Result.SUCCESS
    away = await http_probe("HTTP", "127.0.0.1", port, "/away", [], 5)
    assert away.result is Result.WARNING and away.output.startswith("Probe terminated redirects")
    slow = await http_probe("HTTP", "127.0.0.1", port, "/slow", [], 1)
    assert slow.result is Result.FAILURE and "context deadline exceeded" in slow.output


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_and_tcp_probes_of_a_closed_port():
    port = closed_port()
    refused = await http_probe("HTTP", "127.0.0.1", port, "/", [], 2)
    assert refused.result is Result.FAILURE
    assert refused.output == f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    assert await tcp_probe("127.0.0.1", port, 2) == \
        ProbeOutcome(Result.FAILURE, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_tcp_probe_of_a_listening_port():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await tcp_probe("127.0.0.1", port, 2)).result is Result.SUCCESS
    finally:
        server.close()
        await server.wait_closed()


def test_health_check_wire_format():
    assert health_check_request("") == b""
    assert health_check_request("db") == b"\x0a\x02db"
    assert serving_status(b"\x08\x01") == 1
    assert serving_status(b"") == 0


async def test_grpc_probe_against_a_health_server():
    statuses = {"": 1, "db": 2}

    async def check(request: bytes, context) -> bytes:
        service = request[2:].decode() if request else ""
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + bytes([statuses[service]])

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                     response_serializer=lambda b: b)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert (await grpc_probe("127.0.0.1", port, "", 5)).result is Result.SUCCESS
        assert await grpc_probe("127.0.0.1", port, "db", 5) == \
            ProbeOutcome(Result.FAILURE, 'service unhealthy (responded with "NOT_SERVING")')
    finally:
        await server.stop(None)


class FakeRuntime:
    def __init__(self, response: pb.ExecSyncResponse | None = None, error: CRIError | None = None):
        self.response, self.error = response, error

    async def exec_sync(self, container_id, cmd, timeout_seconds=0, timeout=None):
        if self.error:
            raise self.error
        return self.response


async def test_exec_probe_outcomes():
    ok = FakeRuntime(pb.ExecSyncResponse(stdout=b"fine\n", exit_code=0))
    assert await exec_probe(ok, "c1", ["cat", "/tmp/healthy"], 1) == ProbeOutcome(Result.SUCCESS, "fine\n")
    failed = FakeRuntime(pb.ExecSyncResponse(stderr=b"cat: can't open '/tmp/healthy'\n", exit_code=1))
    assert await exec_probe(failed, "c1", ["cat", "/tmp/healthy"], 1) == \
        ProbeOutcome(Result.FAILURE, "cat: can't open '/tmp/healthy'\n")
    timed_out = FakeRuntime(error=CRIError("ExecSync", grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"))
    assert await exec_probe(timed_out, "c1", ["sleep", "9"], 1) == \
        ProbeOutcome(Result.FAILURE, 'command "sleep 9" timed out')


async def test_manager_runs_workers_and_reports_changes():
    runtime = FakeRuntime(pb.ExecSyncResponse(exit_code=0))
    changed: list[str] = []
    statuses = {"u1": status()}
    manager = ProbeManager(runtime, changed.append, statuses.get)
    manager.created_at -= 3600  # not a fresh kubelet: no random initial spread
    the_pod = pod(readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})
    manager.add_pod(the_pod)
    manager.add_pod(the_pod)  # every sync adds it again: still one worker
    assert manager.is_ready("u1", "c", "a") is False  # readiness starts failed
    assert manager.started("u1", "c", "a") is None and manager.liveness_failed("u1", "c", "a") is False
    for _ in range(100):
        if manager.is_ready("u1", "c", "a"):
            break
        await asyncio.sleep(0.05)
    assert manager.is_ready("u1", "c", "a") is True and changed == ["u1"]
    # A restarted container (a new ID) has no result of its own yet.
    assert manager.is_ready("u1", "c", "b") is False
    manager.remove_pod("u1")
    assert manager.is_ready("u1", "c", "a") is None
    await manager.stop()
