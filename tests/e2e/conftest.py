"""Fixtures for end-to-end tests on real containers.

Network safety: everything that runs containers or makes interfaces lives in a network namespace that the
fixture creates (`ip netns add pyk8s-e2e-<random>`, loopback up, no route out) and deletes afterwards.
containerd is started inside it, so its shims, containers, CNI plugins and pod namespaces never touch the
host's network namespace. Processes are stopped by PID.

Tests skip only when this machine cannot run containers at all (not root, or no network namespaces);
missing packages are a failure that says which install step is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import yaml

from pyk8s.client import APIClient
from pyk8s.kubelet.runtime.containerd import Containerd, ContainerdConfig
from pyk8s.kubelet.runtime.cri import CRIClient, CRIError

CGROUP_ROOT = Path("/sys/fs/cgroup")


async def eventually_async(check, timeout: float = 30, interval: float = 0.1):
    """Await `check` until it returns something truthy (and return it) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last result: {last!r}")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@contextlib.contextmanager
def _fresh_netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("real containers need root")
    name = f"pyk8s-e2e-{secrets.token_hex(4)}"
    created = _ip("netns", "add", name, check=False)
    if created.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {created.stderr.strip()}")
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        routes = _ip("netns", "exec", name, "ip", "-4", "route", "show", "table", "main").stdout
        assert "default" not in routes, f"new netns {name} has a route out: {routes}"
        yield name
    finally:
        _ip("netns", "delete", name, check=False)


@pytest.fixture
def node_netns() -> Iterator[str]:
    """A fresh network namespace with only loopback (up) and no routes out; deleted afterwards."""
    with _fresh_netns() as name:
        yield name


@pytest.fixture
def peer_netns() -> Iterator[str]:
    """A second fresh namespace like `node_netns`, for a second node (link the two with a veth pair made with
    `ip -n <node_netns> link add ... type veth peer name ... netns <peer_netns>`)."""
    with _fresh_netns() as name:
        yield name


@dataclass
class Node:
    containerd: Containerd
    cri: CRIClient
    netns: str
    cgroup_parent: str

    @property
    def config(self) -> ContainerdConfig:
        return self.containerd.config


def _remove_cgroup_tree(relative: str) -> None:
    """rmdir the pod cgroups runc leaves behind (leaves first); v1 has one tree per controller."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / relative.lstrip("/")
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            directory.rmdir()
        top.rmdir()


@pytest.fixture
async def containerd_node(node_netns: str, tmp_path: Path) -> AsyncIterator[Node]:
    """containerd with the CRI plugin running inside `node_netns`, its data under tmp_path; pods on a bridge there."""
    suffix = node_netns.rsplit("-", 1)[-1]
    config = ContainerdConfig(data_dir=tmp_path / "node", netns=node_netns,
                              sandbox_image=f"pyk8s.local/pause-e2e-{suffix}:1.0")
    containerd = Containerd(config)
    await containerd.start(timeout=60)
    cri = CRIClient(config.endpoint)
    node = Node(containerd=containerd, cri=cri, netns=node_netns, cgroup_parent=f"/pyk8s-e2e-{suffix}")
    try:
        yield node
    finally:
        try:
            await remove_all_sandboxes(cri)  # whatever a failed test left behind
        finally:
            await cri.close()
            await containerd.stop()
            _remove_cgroup_tree(node.cgroup_parent)


async def remove_all_sandboxes(cri: CRIClient) -> None:
    """Stop and remove every sandbox the runtime has: their containers and pod network namespaces go with them. A
    sandbox that fails to stop is still removed (that stops it too), and one that fails both does not keep the
    others; a runtime that no longer answers is left as it is."""
    try:
        sandboxes = await cri.list_pod_sandbox()
    except CRIError:
        return
    for sandbox in sandboxes:
        for call in (cri.stop_pod_sandbox, cri.remove_pod_sandbox):
            try:
                await call(sandbox.id)
            except CRIError as exc:
                if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return


async def freeze_and_remove_sandboxes(agent_pid: int | None, cri: CRIClient) -> None:
    """Freeze the agent (SIGSTOP), remove every sandbox of its runtime, then SIGKILL the frozen agent: a live
    kubelet would only start the removed sandboxes again while its pods still exist."""
    if agent_pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(agent_pid, signal.SIGSTOP)
    try:
        await remove_all_sandboxes(cri)
    finally:
        if agent_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent_pid, signal.SIGKILL)


# ---- a whole cluster inside the test's network namespace ------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
CLONE_NEWNET = 0x40000000
# The node's own address inside the namespace (a veth pair, both ends in the namespace, no route out).
NODE_IP = "10.254.0.2"
APISERVER_PORT = 6443


def _enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into `netns`: sockets it creates then live there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetnsForwarder:
    """A TCP forwarder from 127.0.0.1:<port> on the host to an address inside a network namespace.

    Each upstream connection is created by one worker thread that entered the namespace with setns, so
    the host's network is never touched beyond its loopback; byte pumps run in plain threads."""

    def __init__(self, netns: str, target: tuple[str, int]) -> None:
        self.netns = netns
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connector = ThreadPoolExecutor(max_workers=1, initializer=_enter_netns, initargs=(netns,),
                                             thread_name_prefix=f"netns-{netns}")
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.connect_failures: list[str] = []  # shown by failed kubectl calls: the test's view of the server
        self._acceptor = threading.Thread(target=self._accept_loop, name="netns-forwarder", daemon=True)
        self._acceptor.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self._connector.submit(socket.create_connection, self.target, 10).result()
        except (OSError, RuntimeError) as exc:
            self.connect_failures.append(f"{time.strftime('%H:%M:%S')} connecting to {self.target}: {exc!r}")
            client.close()
            return
        self._track(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            sock.close()
        self._connector.shutdown(wait=False, cancel_futures=True)


def processes_in_netns(netns: str) -> list[int]:
    """PIDs of the processes whose network namespace is `netns`."""
    target = os.stat(f"/var/run/netns/{netns}")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ns = os.stat(entry / "ns" / "net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry.name))
    return pids


def process_argvs() -> Iterator[tuple[int, list[bytes]]]:
    """(PID, argv) of every process that is still there when read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def find_containerd_pid(data_dir: Path) -> int | None:
    """The containerd whose config is under `data_dir` (the one a node agent started), if running."""
    config = str(data_dir / "containerd" / "config.toml").encode()
    return next((pid for pid, argv in process_argvs() if argv[0].endswith(b"containerd") and config in argv), None)


@dataclass
class NetnsCluster:
    """`pyk8s server` with its real node agent, all inside `netns`; reached from the test through `forwarder`."""

    netns: str
    data_dir: Path
    node_ip: str
    cgroup_root: str
    process: subprocess.Popen | None = None
    forwarder: NetnsForwarder | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / "server.log"

    @property
    def node_name(self) -> str:
        return socket.gethostname().lower()

    @property
    def agent_dir(self) -> Path:
        return self.data_dir / "agent"

    @property
    def kubeconfig(self) -> Path:
        """Admin credentials pointing at the forwarder (the serving certificate has a 127.0.0.1 SAN)."""
        return self.data_dir.parent / "kubeconfig-forwarded.yaml"

    def start(self, extra_args: tuple[str, ...] = ()) -> None:
        argv = ["nsenter", f"--net=/var/run/netns/{self.netns}", sys.executable, "-m", "pyk8s.cli", "server",
                "--data-dir", str(self.data_dir), "--https-port", str(APISERVER_PORT),
                "--advertise-address", self.node_ip, "--node-ip", self.node_ip,
                "--kubelet-arg", f"cgroup-root={self.cgroup_root}", *extra_args]
        # nsenter switches only the network namespace (`ip netns exec` would remount /sys and hide the cgroup
        # mounts runc needs) and then execs python: the PID is the server's.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                            stdin=subprocess.DEVNULL)
        self.forwarder = self.forwarder or NetnsForwarder(self.netns, ("127.0.0.1", APISERVER_PORT))
        deadline = time.monotonic() + 90
        admin = self.data_dir / "kubeconfig.yaml"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pyk8s server exited ({self.process.returncode}):\n{self.server_log()}")
            if admin.exists() and self._ready():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"pyk8s server not ready in 90s:\n{self.server_log()}")
        config = yaml.safe_load(admin.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.forwarder.port}"
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _ready(self) -> bool:
        assert self.forwarder is not None
        ctx = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.crt"))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.forwarder.port}/readyz", context=ctx,
                                        timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    def server_log(self, tail: int = 4000) -> str:
        parts = [self.log_path.read_text(errors="replace")[-tail:]] if self.log_path.exists() else []
        agent_log = self.data_dir / "logs" / "agent.log"
        if agent_log.exists():
            parts.append("--- agent.log ---\n" + agent_log.read_text(errors="replace")[-tail:])
        return "\n".join(parts)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess:
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.data_dir.parent / "kcache"),
               *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            unreachable = ""
            if "Unable to connect" in result.stderr and self.forwarder is not None:
                unreachable = f"forwarder: {self.forwarder.connect_failures[-5:]}\n{self.server_log()}"
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                                 f"{result.stderr}{unreachable}")
        return result

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def exec_in_netns(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(["nsenter", f"--net=/var/run/netns/{self.netns}", *cmd], capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def agent_pid(self) -> int | None:
        """The supervised `pyk8s agent` child of the server."""
        if self.process is None:
            return None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"agent" in argv:
                return int(entry.name)
        return None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM the server by PID (it stops its agent, which stops containerd); SIGKILL past `timeout`."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait(timeout=30)

    async def remove_pods_from_runtime(self) -> None:
        """Freeze the agent, stop and remove every sandbox the node's containerd still has (its containers go with
        them) and kill the agent: the server's SIGTERM (`stop`) must follow within its 1 s restart backoff."""
        agent = self.agent_pid()
        socket_path = self.agent_dir / "containerd" / "containerd.sock"
        if not socket_path.exists():
            if agent is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(agent, signal.SIGKILL)
            return
        cri = CRIClient(f"unix://{socket_path}", timeout=30)
        try:
            await freeze_and_remove_sandboxes(agent, cri)
        finally:
            await cri.close()


@pytest.fixture
async def netns_cluster(node_netns: str, request: pytest.FixtureRequest) -> AsyncIterator[NetnsCluster]:
    """A whole cluster (`pyk8s server` with its real agent, containerd and pods) inside `node_netns`.

    The node's address is NODE_IP on a veth pair inside the namespace. The test reaches the apiserver through
    `cluster.kubeconfig` (a host-side forwarder on 127.0.0.1 into the namespace); `cluster.kubectl(...)` runs
    kubectl with it and `cluster.exec_in_netns(...)` runs a command inside the namespace. Afterwards the server
    is stopped by PID, and sandboxes, processes and cgroups it left are removed. Extra `pyk8s server` flags come
    from indirect parametrization: `@pytest.mark.parametrize("netns_cluster", [("--kubelet-arg", "k=v")],
    indirect=True)`."""
    async with running_cluster(node_netns, tuple(getattr(request, "param", ()))) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def running_cluster(node_netns: str, extra_args: tuple[str, ...] = ()) -> AsyncIterator[NetnsCluster]:
    """The netns_cluster fixture's cluster, for tests whose server flags are known only once the test runs."""
    _ip("-n", node_netns, "link", "add", "pyk8s0", "type", "veth", "peer", "name", "pyk8s1")
    _ip("-n", node_netns, "addr", "add", f"{NODE_IP}/24", "dev", "pyk8s0")
    _ip("-n", node_netns, "link", "set", "pyk8s0", "up")
    _ip("-n", node_netns, "link", "set", "pyk8s1", "up")
    suffix = node_netns.rsplit("-", 1)[-1]
    # Not under tmp_path: containerd's sockets there would pass the 108-byte limit of a unix socket path.
    data_dir = Path(f"/tmp/pyk8s-e2e-{suffix}")
    cluster = NetnsCluster(netns=node_netns, data_dir=data_dir / "server", node_ip=NODE_IP,
                           cgroup_root=f"/pyk8s-e2e-{suffix}")
    try:
        await asyncio.to_thread(cluster.start, extra_args)
        yield cluster
    finally:
        await cluster.remove_pods_from_runtime()
        await asyncio.to_thread(cluster.stop)
        for pid in processes_in_netns(node_netns):
            try:
                os.kill(pid, signal.SIGKILL)  # only what this test started lives in its namespace
            except ProcessLookupError:
                pass
        if cluster.forwarder is not None:
            cluster.forwarder.close()
        _remove_cgroup_tree(cluster.cgroup_root)
        shutil.rmtree(data_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[Path]:
    """A component-less `pyk8s server` on loopback in the host netns (no agent: the test plays the node or
    nodes); yields its kubeconfig."""
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    port = _free_port()
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(data_dir), "--https-port", str(port),
         "--bind-address", "127.0.0.1", "--disable-agent", "--disable-controller-manager", "--disable-scheduler"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (data_dir / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "pyk8s server not ready in 60 s"
            if (data_dir / "kubeconfig.yaml").exists():
                context = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.crt"))
                try:
                    with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context, timeout=2):
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        yield data_dir / "kubeconfig.yaml"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
async def client(apiserver: Path) -> AsyncIterator[APIClient]:
    async with APIClient.from_kubeconfig(str(apiserver), qps=0) as api:
        yield api
