"""The kubelet core on real containers: an apiserver child process on loopback, the `Kubelet` in the test process,
containerd inside the test's own network namespace (`containerd_node`).

Volumes and env are other modules' jobs: the kubelet gets stand-ins with their interfaces here (no mounts, env
from plain `value`s only).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyk8s.client import APIClient, APIStatusError
from pyk8s.kubelet.config import KubeletConfig
from pyk8s.kubelet.kubelet import Kubelet
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image
from pyk8s.kubelet.runtime_state import POD_UID_LABEL

from conftest import Node, eventually_async

BUSYBOX = "pyk8s.local/busybox-kubelet:1.35"
NODE_IP = "10.88.0.1"


# ---- an apiserver child process (the lines of tests/integration/conftest.py's Cluster this needs) -----------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class APIServer:
    data_dir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def start(self) -> None:
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child writes to it until stopped
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(self.data_dir), "--https-port",
             str(self.port), "--bind-address", "127.0.0.1", "--disable-agent", "--disable-scheduler",
             "--disable-controller-manager"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.data_dir / "server.log").read_text()[-3000:]
            if self.kubeconfig.exists() and self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError("pyk8s server not ready in time")

    def _ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.crt"))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory) -> Iterator[APIServer]:
    server = APIServer(tmp_path_factory.mktemp("apiserver"))
    server.start()
    yield server
    server.stop()


# ---- stand-ins for the volume manager and env resolver (their interfaces, none of their work) ---------------


class StandInVolumes:
    """Mounts nothing; `shared` (a host dir) is bind-mounted at /shared into every container when set."""

    def __init__(self, shared: Path | None = None) -> None:
        self.mounted: set[str] = set()
        self.unmounted: set[str] = set()
        self.shared = shared

    async def mount_pod_volumes(self, pod: dict) -> None:
        self.mounted.add(pod["metadata"]["uid"])

    def container_mounts(self, pod: dict, container: dict, *, env=None) -> list[pb.Mount]:
        return [pb.Mount(container_path="/shared", host_path=str(self.shared))] if self.shared else []

    async def unmount_pod_volumes(self, pod_uid: str) -> None:
        self.unmounted.add(pod_uid)

    async def run(self) -> None:
        await asyncio.Event().wait()


class EnvVarError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StandInEnv:
    errors = (EnvVarError,)

    async def __call__(self, client: APIClient, pod: dict, container: dict, *, pod_ips: list[str],
                       host_ips: list[str] | None) -> list[tuple[str, str]]:
        env = []
        for var in container.get("env") or []:
            if "valueFrom" in var:
                raise EnvVarError(f"couldn't find key for {var['name']}")
            env.append((var["name"], var.get("value", "")))
        return env


# ---- the node under test ---------------------------------------------------------------------------------


@dataclass
class KubeletNode:
    node: Node
    client: APIClient
    config: KubeletConfig
    namespace: str
    volumes: StandInVolumes
    kubelet: Kubelet | None = None
    task: asyncio.Task | None = None

    def start_kubelet(self, probes: object | None = None) -> Kubelet:
        extra = {"probes": probes} if probes is not None else {}
        self.kubelet = Kubelet(self.client, self.node.cri, self.config, self.volumes, env=StandInEnv(), **extra)
        self.task = asyncio.create_task(self.kubelet.run())
        return self.kubelet

    async def stop_kubelet(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def create_pod(self, name: str, containers: list[dict], **spec) -> dict:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": self.namespace},
               "spec": {"nodeName": self.config.node_name, "containers": containers, **spec}}
        return await self.client.create(pod)

    async def pod(self, name: str) -> dict:
        return await self.client.get("pods", name, self.namespace)

    async def wait_pod(self, name: str, check, timeout: float = 60) -> dict:
        last: dict = {}

        async def current():
            last["pod"] = await self.pod(name)
            return last["pod"] if check(last["pod"]) else None
        try:
            return await eventually_async(current, timeout=timeout, interval=0.3)
        except AssertionError:
            events = [(e["reason"], e["message"]) for e in await self.events(name)]
            raise AssertionError(f"pod {name}: condition not met; status {last['pod'].get('status')}; "
                                 f"events {events}") from None

    async def events(self, name: str) -> list[dict]:
        listed = await self.client.list("events", self.namespace,
                                        field_selector=f"involvedObject.name={name}")
        return listed["items"]

    async def gone(self, name: str, timeout: float = 60) -> None:
        async def deleted():
            try:
                await self.pod(name)
            except APIStatusError as exc:
                return exc.status.get("code") == 404
            return False
        await eventually_async(deleted, timeout=timeout, interval=0.3)

    async def sandboxes(self, uid: str) -> list[pb.PodSandbox]:
        return await self.node.cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={POD_UID_LABEL: uid}))


def sh(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            **extra}


def phase(value: str):
    return lambda pod: (pod.get("status") or {}).get("phase") == value


def condition(pod: dict, type_: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"]
    return None


def statuses(pod: dict, kind: str = "containerStatuses") -> dict[str, dict]:
    return {s["name"]: s for s in (pod.get("status") or {}).get(kind) or []}


@pytest.fixture
async def kubelet_node(apiserver: APIServer, containerd_node: Node, tmp_path: Path,
                       request) -> AsyncIterator[KubeletNode]:
    busybox = build_oci_archive(busybox_image(BUSYBOX), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", containerd_node.config.socket, containerd_node.config.snapshotter)
    assert busybox.name.endswith(BUSYBOX)
    node_name = f"kubelet-{containerd_node.netns.rsplit('-', 1)[-1]}"
    namespace = "t-" + request.node.name.lower().replace("_", "-")[5:40].strip("-")
    async with APIClient.from_kubeconfig(str(apiserver.kubeconfig), qps=0) as client:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name}})
        await client.patch_status("nodes", node_name, {"status": {"addresses": [
            {"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": node_name}]}})
        config = KubeletConfig(node_name=node_name, paths=KubeletPaths(tmp_path / "kubelet"),
                               cgroup_parent=containerd_node.cgroup_parent, sync_frequency=10.0)
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        env = KubeletNode(containerd_node, client, config, namespace, StandInVolumes(shared))
        env.start_kubelet()
        try:
            yield env
        finally:
            await env.stop_kubelet()
            with contextlib.suppress(APIStatusError):
                await client.delete_collection("pods", namespace, grace_period_seconds=0)
            with contextlib.suppress(APIStatusError):
                await client.delete("nodes", node_name)
            with contextlib.suppress(APIStatusError):
                await client.delete("namespaces", namespace)


# ---- tests -------------------------------------------------------------------------------------------------


async def test_pod_runs_with_init_containers_and_sidecar_in_order(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    cri = env.node.cri
    await env.create_pod("web", [sh("app", "echo $(GREETING) > /tmp/greeting; exec sleep 3600",
                                    env=[{"name": "GREETING", "value": "hello"}],
                                    lifecycle={"postStart": {"exec": {"command": ["sh", "-c",
                                                                                  "echo ran > /tmp/post-start"]}}},
                                    resources={"limits": {"cpu": "250m", "memory": "64Mi"}})],
                         initContainers=[sh("init-1", "echo one"), sh("init-2", "echo two"),
                                         sh("sidecar", "trap 'exit 0' TERM; sleep 3600 & wait",
                                            restartPolicy="Always")],
                         terminationGracePeriodSeconds=3)
    pod = await env.wait_pod("web", lambda p: condition(p, "Ready") == "True", timeout=90)
    status = pod["status"]
    assert status["phase"] == "Running"
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(env.node.config.pod_cidr)
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == NODE_IP and status["hostIPs"] == [{"ip": NODE_IP}]
    assert status["qosClass"] == "Burstable" and status["startTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True", "ContainersReady": "True",
        "PodScheduled": "True"}
    init = statuses(pod, "initContainerStatuses")
    assert init["init-1"]["state"]["terminated"]["reason"] == "Completed"
    assert init["init-2"]["state"]["terminated"]["exitCode"] == 0
    assert "running" in init["sidecar"]["state"] and init["sidecar"]["ready"] and init["sidecar"]["started"]
    app = statuses(pod)["app"]
    assert app["ready"] and app["started"] and app["restartCount"] == 0
    assert app["containerID"].startswith("containerd://") and app["imageID"]
    container_id = app["containerID"].removeprefix("containerd://")

    # Started in order: each init container after the previous one ended, the sidecar before the app.
    times = {}
    for s in list(init.values()) + [app]:
        cri_status = (await cri.container_status(s["containerID"].removeprefix("containerd://"))).status
        times[s["name"]] = (cri_status.started_at, cri_status.finished_at)
    assert times["init-1"][1] <= times["init-2"][0]
    assert times["init-2"][1] <= times["sidecar"][0] <= times["app"][0]

    # Inside the pod: $(VAR) expansion, the postStart hook, cluster DNS, the managed /etc/hosts, the cgroup limit.
    async def run(*command: str) -> str:
        answer = await cri.exec_sync(container_id, list(command), timeout_seconds=30)
        assert answer.exit_code == 0, answer.stderr
        return answer.stdout.decode()

    assert await run("cat", "/tmp/greeting") == "hello\n"
    assert await run("cat", "/tmp/post-start") == "ran\n"
    resolv = await run("cat", "/etc/resolv.conf")
    assert "nameserver 10.43.0.10" in resolv
    assert f"search {env.namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "ndots:5" in resolv
    hosts = await run("cat", "/etc/hosts")
    assert f"{status['podIP']}\tweb" in hosts and "# Kubernetes-managed hosts file." in hosts
    assert await run("hostname") == "web\n"
    cgroup = Path("/sys/fs/cgroup/memory") / env.config.cgroup_parent.lstrip("/") / f"pod{pod['metadata']['uid']}"
    limits = [int(p.read_text()) for p in cgroup.glob("*/memory.limit_in_bytes")]
    assert 64 * 1024 * 1024 in limits

    reasons = [(e["reason"], e["message"]) for e in await env.events("web")]
    assert ("Created", "Created container: app") in reasons and ("Started", "Started container app") in reasons
    assert ("Pulled", f'Container image "{BUSYBOX}" already present on machine') in reasons

    # Graceful deletion: TERM reaches both, the kubelet finishes the deletion, and nothing is left in the runtime.
    uid = pod["metadata"]["uid"]
    await env.client.delete("pods", "web", env.namespace)
    await env.gone("web")
    assert ("Killing", "Stopping container app") in [(e["reason"], e["message"]) for e in await env.events("web")]

    async def cleaned_up():
        return not await env.sandboxes(uid) and not cgroup.exists()
    await eventually_async(cleaned_up, timeout=30)


async def test_exits_restart_policies_termination_messages_and_oom(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.create_pod("crasher", [sh("main", "echo crashing; exit 1")])
    await env.create_pod("job", [sh("main", "echo done")], restartPolicy="Never")
    await env.create_pod("failed", [sh("main", "printf 'bad input' > /dev/termination-log; exit 2")],
                         restartPolicy="Never")
    await env.create_pod("from-logs", [sh("main", "echo last words; exit 3",
                                          terminationMessagePolicy="FallbackToLogsOnError")],
                         restartPolicy="OnFailure")
    probe = ('printf "$(id -u):$(id -g):$(touch /x 2>/dev/null && echo rw || echo ro):'
             '$(grep CapEff /proc/self/status | tr -d "\t"):$(grep NoNewPrivs /proc/self/status | tr -d "\t")"'
             ' > /dev/termination-log')
    await env.create_pod("secure", [sh("main", probe, securityContext={
        "runAsUser": 1001, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}})], restartPolicy="Never",
        securityContext={"runAsUser": 1000, "runAsGroup": 3000})
    await env.create_pod("hog", [sh("main", 'a=$(dd if=/dev/zero bs=1M count=200 2>/dev/null | tr "\\0" x); '
                                            'echo survived ${#a}',
                                    resources={"limits": {"memory": "32Mi"}})], restartPolicy="Never")

    job = await env.wait_pod("job", phase("Succeeded"))
    terminated = statuses(job)["main"]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert condition(job, "Ready") == "False" and condition(job, "PodReadyToStartContainers") == "False"
    assert job["status"]["podIP"]  # kept from the sandbox it ran in
    # Deleting a finished pod: the kubelet (whose worker is done with it) still completes the deletion.
    await env.client.delete("pods", "job", env.namespace)
    await env.gone("job")

    failed = await env.wait_pod("failed", phase("Failed"))
    terminated = statuses(failed)["main"]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (2, "Error", "bad input")

    secure = await env.wait_pod("secure", phase("Succeeded"))
    assert statuses(secure)["main"]["state"]["terminated"]["message"] == (
        "1001:3000:ro:CapEff:0000000000000000:NoNewPrivs:1")

    hog = await env.wait_pod("hog", phase("Failed"))
    terminated = statuses(hog)["main"]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")

    def crash_looping(pod: dict) -> bool:
        main = statuses(pod).get("main") or {}
        waiting = (main.get("state") or {}).get("waiting") or {}
        return main.get("restartCount", 0) >= 1 and waiting.get("reason") == "CrashLoopBackOff"

    crasher = await env.wait_pod("crasher", crash_looping)
    main = statuses(crasher)["main"]
    assert crasher["status"]["phase"] == "Running"
    assert main["lastState"]["terminated"]["exitCode"] == 1 and not main["ready"]
    assert main["state"]["waiting"]["message"].startswith("back-off 10s restarting failed container=main pod=crasher_")
    assert any(e["reason"] == "BackOff" for e in await env.events("crasher"))

    def restarted_with_message(pod: dict) -> bool:
        main = statuses(pod).get("main") or {}
        return main.get("restartCount", 0) >= 1 and "terminated" in (main.get("lastState") or {})

    from_logs = await env.wait_pod("from-logs", restarted_with_message)
    assert statuses(from_logs)["main"]["lastState"]["terminated"]["message"] == "last words\n"


async def test_missing_image_backs_off(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.create_pod("ghost", [{"name": "main", "image": "pyk8s.local/not-there:1",
                                    "imagePullPolicy": "IfNotPresent"}])
    seen: set[str] = set()

    def waiting_reasons(pod: dict) -> bool:
        reason = (statuses(pod).get("main", {}).get("state", {}).get("waiting") or {}).get("reason")
        seen.add(reason)
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    pod = await env.wait_pod("ghost", waiting_reasons, timeout=60)
    assert pod["status"]["phase"] == "Pending"
    reasons = {(e["reason"], e["type"]) for e in await env.events("ghost")}
    assert {("Pulling", "Normal"), ("Failed", "Warning"), ("BackOff", "Normal")} <= reasons

    # Bad config: an env var the resolver cannot fill, a sandbox the runtime refuses.
    await env.create_pod("misconfigured", [sh("main", "true", env=[{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "missing", "key": "x"}}}])])
    await env.create_pod("no-sandbox", [sh("main", "true")], securityContext={"runAsGroup": 3000})
    await env.create_pod("never", [{"name": "main", "image": "pyk8s.local/not-there:1", "imagePullPolicy": "Never"}])
    pod = await env.wait_pod("never", lambda p: (statuses(p).get("main", {}).get("state", {}).get("waiting") or {})
                             .get("reason") == "ErrImageNeverPull")
    assert statuses(pod)["main"]["state"]["waiting"]["message"] == (
        'Container image "pyk8s.local/not-there:1" is not present with pull policy of Never')
    pod = await env.wait_pod("misconfigured", lambda p: (statuses(p).get("main", {}).get("state", {})
                                                         .get("waiting") or {}).get("reason")
                             == "CreateContainerConfigError")
    assert statuses(pod)["main"]["state"]["waiting"]["message"] == "couldn't find key for X"

    async def sandbox_refused():
        return [e["message"] for e in await env.events("no-sandbox") if e["reason"] == "FailedCreatePodSandBox"]
    [message] = await eventually_async(sandbox_refused, timeout=30)
    assert message.startswith("Failed to create pod sandbox: ")
    assert (await env.pod("no-sandbox"))["status"]["phase"] == "Pending"


async def test_grace_period_kills_a_container_that_ignores_term(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.create_pod("stubborn", [sh("main", "exec sleep 3600")], terminationGracePeriodSeconds=2)
    pre_stop = {"preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /shared/pre-stop"]}}}
    await env.create_pod("polite", [sh("main", "trap 'exit 0' TERM; sleep 3600 & wait", lifecycle=pre_stop)],
                         terminationGracePeriodSeconds=60)
    for name in ("stubborn", "polite"):
        await env.wait_pod(name, phase("Running"))
    final: dict[str, dict] = {}

    async def watch() -> None:
        async with env.client.watch("pods", env.namespace) as stream:
            async for type_, obj in stream:
                if type_ == "MODIFIED":
                    final[obj["metadata"]["name"]] = obj

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    try:
        for name in ("stubborn", "polite"):
            await env.client.delete("pods", name, env.namespace)
        for name in ("stubborn", "polite"):
            await env.gone(name)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    # sleep as PID 1 ignores SIGTERM: SIGKILL after the 2 s grace period; the trap exits 0 at once.
    assert statuses(final["stubborn"])["main"]["state"]["terminated"]["exitCode"] == 137
    assert statuses(final["polite"])["main"]["state"]["terminated"]["exitCode"] == 0
    assert final["polite"]["status"]["phase"] == "Succeeded"
    assert (env.volumes.shared / "pre-stop").read_text() == "stopping\n"
    assert ("Killing", "Stopping container main") in [(e["reason"], e["message"]) for e in await env.events("polite")]


async def test_restarted_kubelet_adopts_running_pod(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.create_pod("survivor", [sh("main", "exec sleep 3600")], terminationGracePeriodSeconds=1)
    pod = await env.wait_pod("survivor", lambda p: condition(p, "Ready") == "True")
    before = statuses(pod)["main"]
    uid = pod["metadata"]["uid"]

    await env.stop_kubelet()
    kubelet = env.start_kubelet()

    async def synced():
        worker = kubelet.pod_workers.get(uid)
        return worker is not None and worker.syncs >= 1 and kubelet.pleg.last_relist is not None
    await eventually_async(synced, timeout=30)
    await asyncio.sleep(1.5)  # another relist and whatever sync it triggers
    after = statuses(await env.pod("survivor"))["main"]
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0 and "running" in after["state"]
    assert len(await env.sandboxes(uid)) == 1

    # Gone from the API without the kubelet's help (force deletion): housekeeping removes it from the runtime.
    await env.client.delete("pods", "survivor", env.namespace, grace_period_seconds=0)

    async def removed():
        return not await env.sandboxes(uid)
    await eventually_async(removed, timeout=30)


async def test_lost_sandbox_is_recreated(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.create_pod("phoenix", [sh("main", "trap 'exit 0' TERM; sleep 3600 & wait")],
                         terminationGracePeriodSeconds=2)
    pod = await env.wait_pod("phoenix", lambda p: condition(p, "Ready") == "True")
    uid = pod["metadata"]["uid"]
    [first] = await env.sandboxes(uid)
    await env.node.cri.stop_pod_sandbox(first.id)  # as if the node rebooted under the pod

    async def replaced():
        ready = [s for s in await env.sandboxes(uid) if s.state == pb.SANDBOX_READY]
        return ready and ready[0].id != first.id and ready[0]
    second = await eventually_async(replaced, timeout=60)
    assert second.metadata.attempt == 1
    pod = await env.wait_pod("phoenix", lambda p: condition(p, "Ready") == "True"
                             and statuses(p)["main"]["restartCount"] == 1)
    assert ("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.") in [
        (e["reason"], e["message"]) for e in await env.events("phoenix")]


async def test_host_port_reaches_the_pod(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    server = sh("web", "mkdir -p /www && echo hello-hostport > /www/index.html && exec httpd -f -p 8080 -h /www",
                ports=[{"containerPort": 8080, "hostPort": 18080}])
    await env.create_pod("published", [server], terminationGracePeriodSeconds=1)
    await env.wait_pod("published", lambda p: condition(p, "Ready") == "True")
    # The node's address inside its own network namespace (the bridge); portmap DNATs local traffic to the pod.
    url = f"http://{NODE_IP}:18080/"

    async def fetch():
        result = await asyncio.to_thread(subprocess.run, ["ip", "netns", "exec", env.node.netns, "timeout", "5",
                                                          "busybox", "wget", "-q", "-O", "-", url],
                                         capture_output=True, text=True, timeout=30)
        return result.stdout
    assert await eventually_async(fetch, timeout=30, interval=0.5) == "hello-hostport\n"

    # A host-network pod: the node's addresses (here: the node's network namespace) and the node's DNS settings.
    await env.create_pod("on-host", [sh("main", "exec sleep 3600")], hostNetwork=True,
                         terminationGracePeriodSeconds=1)
    pod = await env.wait_pod("on-host", lambda p: condition(p, "Ready") == "True")
    assert pod["status"]["podIP"] == NODE_IP and pod["status"]["podIPs"] == [{"ip": NODE_IP}]
    container_id = statuses(pod)["main"]["containerID"].removeprefix("containerd://")
    links = await env.node.cri.exec_sync(container_id, ["cat", "/proc/net/dev"], timeout_seconds=30)
    assert b"cni0" in links.stdout  # the node's bridge is visible: no pod network namespace
    resolv = (await env.node.cri.exec_sync(container_id, ["cat", "/etc/resolv.conf"], timeout_seconds=30)).stdout
    assert b"10.43.0.10" not in resolv


class ScriptedProbes:
    """A stand-in prober: readiness and liveness results set by the test."""

    def __init__(self) -> None:
        self.ready: dict[str, bool] = {}
        self.dead: set[str] = set()
        self.pods: set[str] = set()

    def add_pod(self, pod: dict) -> None:
        self.pods.add(pod["metadata"]["uid"])

    def remove_pod(self, pod_uid: str) -> None:
        self.pods.discard(pod_uid)

    def is_ready(self, pod_uid: str, container_name: str, container_id: str) -> bool | None:
        return self.ready.get(container_name)

    def started(self, pod_uid: str, container_name: str, container_id: str) -> bool | None:
        return None

    def liveness_failed(self, pod_uid: str, container_name: str, container_id: str) -> bool:
        if container_name in self.dead:
            self.dead.discard(container_name)  # one failure: the restarted container is healthy
            return True
        return False


async def test_probe_results_gate_readiness_and_restart_containers(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.stop_kubelet()
    probes = ScriptedProbes()
    probes.ready["main"] = False
    kubelet = env.start_kubelet(probes)
    pod = await env.create_pod("probed", [sh("main", "trap 'exit 0' TERM; sleep 3600 & wait")],
                               terminationGracePeriodSeconds=2)
    uid = pod["metadata"]["uid"]
    pod = await env.wait_pod("probed", phase("Running"))
    assert condition(pod, "Ready") == "False" and not statuses(pod)["main"]["ready"]
    assert uid in probes.pods

    probes.ready["main"] = True
    kubelet.probe_result_changed(uid)
    await env.wait_pod("probed", lambda p: condition(p, "Ready") == "True")

    probes.dead.add("main")
    kubelet.probe_result_changed(uid)
    pod = await env.wait_pod("probed", lambda p: statuses(p)["main"]["restartCount"] == 1
                             and "running" in statuses(p)["main"]["state"])
    assert statuses(pod)["main"]["lastState"]["terminated"]["exitCode"] == 0
    assert ("Killing", "Container main failed liveness probe, will be restarted") in [
        (e["reason"], e["message"]) for e in await env.events("probed")]


async def test_killed_containerd_leaves_pods_running(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    await env.create_pod("steady", [sh("main", "exec sleep 3600")], terminationGracePeriodSeconds=1)
    pod = await env.wait_pod("steady", lambda p: condition(p, "Ready") == "True")
    before = statuses(pod)["main"]["containerID"]
    containerd = env.node.containerd
    first_pid = containerd.pid
    os.kill(first_pid, signal.SIGKILL)

    async def back():
        return containerd.restarts >= 1 and containerd.pid not in (None, first_pid)
    await eventually_async(back, timeout=60)
    # The kubelet rides out the outage; a pod created meanwhile runs too, and the old one was not restarted.
    await env.create_pod("after", [sh("main", "exec sleep 3600")], terminationGracePeriodSeconds=1)
    await env.wait_pod("after", lambda p: condition(p, "Ready") == "True")
    after = statuses(await env.pod("steady"))["main"]
    assert after["containerID"] == before and after["restartCount"] == 0 and "running" in after["state"]


async def test_real_exec_probes_gate_readiness_and_restart_a_failing_container(kubelet_node: KubeletNode) -> None:
    env = kubelet_node
    main = sh("main", "trap 'exit 0' TERM; sleep 3600 & wait",
              readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
              livenessProbe={"exec": {"command": ["sh", "-c", "test ! -e /tmp/die"]}, "periodSeconds": 1,
                             "failureThreshold": 2})
    await env.create_pod("exec-probed", [main], terminationGracePeriodSeconds=2)
    pod = await env.wait_pod("exec-probed", phase("Running"))
    assert condition(pod, "Ready") == "False"
    container_id = statuses(pod)["main"]["containerID"].split("://", 1)[1]
    await env.node.cri.exec_sync(container_id, ["touch", "/tmp/ready"], timeout_seconds=5)
    await env.wait_pod("exec-probed", lambda p: condition(p, "Ready") == "True" and statuses(p)["main"]["ready"])

    await env.node.cri.exec_sync(container_id, ["touch", "/tmp/die"], timeout_seconds=5)
    # Two failed liveness probes: the container is killed and restarted (a fresh one, not ready yet).
    pod = await env.wait_pod("exec-probed", lambda p: statuses(p)["main"]["restartCount"] == 1
                             and "running" in statuses(p)["main"]["state"], timeout=60)
    assert statuses(pod)["main"]["containerID"].split("://", 1)[1] != container_id
    events = [(e["reason"], e["message"]) for e in await env.events("exec-probed")]
    assert ("Killing", "Container main failed liveness probe, will be restarted") in events
    assert any(reason == "Unhealthy" and message.startswith("Liveness probe failed:") for reason, message in events)
    await env.wait_pod("exec-probed", lambda p: condition(p, "Ready") == "False")
