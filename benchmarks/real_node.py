"""Pod start-up latency on one real node (containerd, real containers) and what the node agent costs.

    sudo .venv/bin/python benchmarks/real_node.py [--pods 100] [--rate 10] [--idle-seconds 60] [--runs 1]
        [--server-arg=--kubelet-arg --server-arg=max-parallel-runtime-starts=0]

A whole `pyk8s server` (apiserver, scheduler, controller-manager and its own node agent with a supervised
containerd) runs inside a network namespace this script creates (loopback and a veth pair, no route out) and
deletes afterwards; the script reaches the apiserver through a loopback forwarder, as tests/e2e does. A busybox
image is imported into the node's containerd first (imagePullPolicy IfNotPresent: no pull is measured).

Per run, JSON lines:
- `real_node.pod_startup`: `--pods` pods created at `--rate` pods/s (through the scheduler, or bound with
  nodeName with `--bind`), latency from just before each POST to the first watch event showing every container
  running and the Ready condition True (upstream's pod start-up SLI, measured from the request rather than from
  the 1 s-granular creationTimestamp): p50/p90/p99/max; target p50 ≤ 1 s, p99 ≤ 2 s (issue #6).
- `real_node.phases`: where the start-up time went, per pod, medians and p99 of: request → bound (seen on the
  watch), bound → RunPodSandbox began (the kubelet's reaction: informer, volumes, sandbox config), RunPodSandbox
  began → CreateContainer began (mostly containerd: sandbox, pause container, CNI), CreateContainer began →
  container started (containerd and runc), started → running and Ready seen on the watch (the kubelet's status
  write and the apiserver's watch fan-out). The runtime's timestamps come from CRI (created_at / started_at).
- `real_node.api_requests_per_pod`: the apiserver's requests during the start-up phase by verb and resource, per
  pod (every client's: the benchmark's own creates and the scheduler's bindings are in it too).
- `real_node.idle`: with every pod running, the agent's CPU % of one core over `--idle-seconds`, and the RSS
  of the agent, of containerd and of all its shims (separately), plus the apiserver's CPU.
- `real_node.deletion`: the pods deleted at `--rate` pods/s: latency from each DELETE to the watch's DELETED
  (the kubelet stops the containers, writes the final status and finishes the deletion), p50/p99/max and total.

The machine is usually shared: each line carries the 1-minute load average, and every process's CPU time is
reported so that time spent waiting for a CPU can be told apart from work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import emit  # noqa: E402

from pyk8s.client import APIClient, APIConnectionError, APIStatusError, ClientConfig  # noqa: E402
from pyk8s.kubelet.runtime.containerd import configured_snapshotter  # noqa: E402
from pyk8s.kubelet.runtime.cri import CRIClient, CRIError  # noqa: E402
from pyk8s.kubelet.runtime.images import import_archive  # noqa: E402
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image  # noqa: E402
from pyk8s.kubelet.runtime_state import POD_UID_LABEL  # noqa: E402


def _e2e_fixtures():
    """tests/e2e/conftest.py (the e2e fixtures' cluster, forwarder and clean-up code), loaded under a name of its
    own: inside a pytest run the module name `conftest` belongs to whichever test folder was collected first."""
    spec = importlib.util.spec_from_file_location("pyk8s_e2e_fixtures", ROOT / "tests" / "e2e" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_E2E = _e2e_fixtures()
NODE_IP = _E2E.NODE_IP
NetnsCluster = _E2E.NetnsCluster
_remove_cgroup_tree = _E2E._remove_cgroup_tree
processes_in_netns = _E2E.processes_in_netns

CGROUP_ROOT = Path("/sys/fs/cgroup")
IMAGE = "pyk8s.local/busybox-bench:1.0"
NAMESPACE = "bench-node"
# `sleep` as PID 1 would ignore SIGTERM and make every deletion wait out the grace period: measure the
# machinery, not the grace period.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@contextlib.contextmanager
def node_namespace():
    """A fresh network namespace with loopback and a veth pair carrying the node's address; no route out."""
    name = f"pyk8s-bench-{secrets.token_hex(4)}"
    ip("netns", "add", name)
    try:
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        ip("-n", name, "link", "add", "pyk8s0", "type", "veth", "peer", "name", "pyk8s1")
        ip("-n", name, "addr", "add", f"{NODE_IP}/24", "dev", "pyk8s0")
        ip("-n", name, "link", "set", "pyk8s0", "up")
        ip("-n", name, "link", "set", "pyk8s1", "up")
        routes = ip("netns", "exec", name, "ip", "-4", "route", "show", "table", "main").stdout
        if "default" in routes:
            raise RuntimeError(f"namespace {name} has a route out: {routes}")
        yield name
    finally:
        ip("netns", "delete", name, check=False)


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99 and max, in seconds rounded to ms."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50_s": round(rank(0.50), 3), "p90_s": round(rank(0.90), 3), "p99_s": round(rank(0.99), 3),
            "max_s": round(ordered[-1], 3)}


def pod(name: str, node_name: str | None) -> dict:
    spec: dict = {"containers": [{"name": "sleep", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                  "command": COMMAND}],
                  "terminationGracePeriodSeconds": 10}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE,
                                                            "labels": {"app": "bench"}}, "spec": spec}


def running_and_ready(obj: dict) -> bool:
    status = obj.get("status") or {}
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses = status.get("containerStatuses") or []
    if len(statuses) != len(containers) or not all("running" in (s.get("state") or {}) for s in statuses):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


@dataclass
class PodTimes:
    requested: float = 0.0
    bound: float | None = None
    running: float | None = None
    delete_requested: float = 0.0
    deleted: float | None = None
    uid: str = ""


@dataclass
class Tracker:
    """Follows the namespace's pods through one watch and records when each reached each state."""

    pods: dict[str, PodTimes] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def see(self, type_: str, obj: dict) -> None:
        now = time.time()
        times = self.pods.get((obj.get("metadata") or {}).get("name", ""))
        if times is None:
            return
        times.uid = obj["metadata"].get("uid", times.uid)
        if type_ == "DELETED":
            times.deleted = times.deleted or now
        else:
            if times.bound is None and (obj.get("spec") or {}).get("nodeName"):
                times.bound = now
            if times.running is None and running_and_ready(obj):
                times.running = now
        self.changed.set()

    async def follow(self, client: APIClient, resource_version: str) -> None:
        while True:
            try:
                async with client.watch("pods", NAMESPACE, resource_version=resource_version,
                                        timeout_seconds=600) as stream:
                    async for type_, obj in stream:
                        if type_ == "BOOKMARK":
                            continue
                        resource_version = obj["metadata"]["resourceVersion"]
                        self.see(type_, obj)
            except (APIConnectionError, APIStatusError) as exc:
                # A lost watch: relist (what was deleted meanwhile is gone from the list) and watch on.
                sys.stderr.write(f"pod watch ended ({exc}); relisting\n")
                listed = await client.list("pods", NAMESPACE)
                present = {item["metadata"]["name"] for item in listed["items"]}
                for item in listed["items"]:
                    self.see("MODIFIED", item)
                for name, times in self.pods.items():
                    if name not in present and times.delete_requested and times.deleted is None:
                        times.deleted = time.time()
                self.changed.set()
                resource_version = listed["metadata"]["resourceVersion"]

    def pending(self, done) -> list[str]:
        return sorted(name for name, times in self.pods.items() if not done(times))

    async def wait(self, done, timeout: float) -> None:
        """Until `done(times)` holds for every pod; on timeout, say which pods did not get there."""
        try:
            async with asyncio.timeout(timeout):
                while self.pending(done):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{len(self.pending(done))} pods not there after {timeout}s: "
                               f"{self.pending(done)[:10]}") from None


async def paced(count: int, rate: float, action) -> None:
    """Start `action(i)` for i in range(count), the i-th at i/rate seconds, without waiting for earlier ones."""
    start = time.monotonic()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action(i)))
    await asyncio.gather(*tasks)


def cpu_seconds(pids: list[int], reaped_children: bool = False) -> float:
    """CPU time of the processes; with `reaped_children`, also of the children they have waited for (the CNI
    plugins containerd runs, the runc calls of a shim)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system + ((t.children_user + t.children_system) if reaped_children else 0.0)
    return total


_CONTAINERD_LINE = re.compile(r'^time="([^"]+)" level=\w+ msg="(.*)"$')
_RUN_SANDBOX = re.compile(r'RunPodSandbox for &PodSandboxMetadata\{Name:([^,]+),.*?\}'
                          r'(?: returns sandbox id \\"(\w+)\\")?')
_CREATE = re.compile(r'CreateContainer within sandbox \\"(\w+)\\" for (?:container )?&ContainerMetadata.*?\}'
                     r'(?: returns container id \\"(\w+)\\")?')
_START = re.compile(r'StartContainer for \\"(\w+)\\"( returns successfully)?')


def _log_time(stamp: str) -> float:
    base, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(base).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")


def cri_call_times(containerd_log: Path, pod_names: set[str]) -> dict[str, list[float]]:
    """From containerd's info log (each CRI call logs when it starts and when it returns): per pod, how long
    RunPodSandbox, CreateContainer and StartContainer took inside containerd, and the kubelet's gaps between
    one returning and the next being called."""
    begin: dict[tuple[str, str], float] = {}
    end: dict[tuple[str, str], float] = {}
    pod_of: dict[str, str] = {}  # sandbox or container id -> pod name
    for line in containerd_log.read_text(errors="replace").splitlines():
        match = _CONTAINERD_LINE.match(line)
        if not match:
            continue
        at, message = _log_time(match.group(1)), match.group(2)
        if found := _RUN_SANDBOX.match(message):
            name, sandbox = found.groups()
            (end if sandbox else begin)[(name, "run_sandbox")] = at
            if sandbox:
                pod_of[sandbox] = name
        elif found := _CREATE.match(message):
            sandbox, container = found.groups()
            name = pod_of.get(sandbox, "")
            (end if container else begin)[(name, "create")] = at
            if container:
                pod_of[container] = name
        elif found := _START.match(message):
            container, done = found.groups()
            (end if done else begin)[(pod_of.get(container, ""), "start")] = at
    out: dict[str, list[float]] = {"RunPodSandbox": [], "kubelet_between_sandbox_and_create": [],
                                   "CreateContainer": [], "kubelet_between_create_and_start": [],
                                   "StartContainer": []}
    for name in pod_names:
        keys = [(name, call) for call in ("run_sandbox", "create", "start")]
        if not all(k in begin and k in end for k in keys):
            continue
        sandbox, create, start = keys
        out["RunPodSandbox"].append(end[sandbox] - begin[sandbox])
        out["kubelet_between_sandbox_and_create"].append(begin[create] - end[sandbox])
        out["CreateContainer"].append(end[create] - begin[create])
        out["kubelet_between_create_and_start"].append(begin[start] - end[create])
        out["StartContainer"].append(end[start] - begin[start])
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return round(total / 2**20, 1)


def shim_pids(containerd_socket: Path) -> list[int]:
    """The containerd-shim-runc-v2 processes of this node's containerd (their argv names its socket)."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if argv and "containerd-shim" in argv[0] and any(str(containerd_socket) in a for a in argv):
            pids.append(proc.info["pid"])
    return pids


async def runtime_times(socket_path: Path, uids: set[str]) -> dict[str, tuple[float, float, float]]:
    """Per pod UID of `uids`: (sandbox created_at, container created_at, container started_at) from CRI, in
    seconds."""
    out: dict[str, tuple[float, float, float]] = {}
    cri = CRIClient(f"unix://{socket_path}", timeout=30)
    try:
        sandboxes = {s.labels.get(POD_UID_LABEL): s.created_at / 1e9 for s in await cri.list_pod_sandbox()}
        for container in await cri.list_containers():
            uid = container.labels.get(POD_UID_LABEL)
            if uid not in uids or uid not in sandboxes:
                continue
            try:
                status = (await cri.container_status(container.id)).status
            except CRIError as exc:
                if exc.not_found:
                    continue
                raise
            out[uid] = (sandboxes[uid], status.created_at / 1e9, status.started_at / 1e9)
    finally:
        await cri.close()
    return out


async def runtime_pod_uids(socket_path: Path) -> set[str]:
    cri = CRIClient(f"unix://{socket_path}", timeout=30)
    try:
        return {s.labels.get(POD_UID_LABEL, "") for s in await cri.list_pod_sandbox()}
    finally:
        await cri.close()


async def one_run(cluster: NetnsCluster, client: APIClient, args: argparse.Namespace, run: int) -> None:
    tracker = Tracker()
    listed = await client.list("pods", NAMESPACE)
    watcher = asyncio.create_task(tracker.follow(client, listed["metadata"]["resourceVersion"]))
    node_name = cluster.node_name if args.bind else None
    names = [f"bench-{run}-{i:04d}" for i in range(args.pods)]
    for name in names:
        tracker.pods[name] = PodTimes()
    server_pid = cluster.process.pid if cluster.process else 0
    agent_pid = cluster.agent_pid() or 0
    socket_path = cluster.agent_dir / "containerd" / "containerd.sock"
    containerd = [p for p in [cluster_containerd_pid(cluster)] if p]
    requests_before = await request_counts(client)
    cpu_before = {"agent": cpu_seconds([agent_pid]), "apiserver": cpu_seconds([server_pid]),
                  "containerd": cpu_seconds(containerd, reaped_children=True)}
    common = {"run": run, "pods": args.pods, "rate_per_s": args.rate, "bound_by": "nodeName" if args.bind
              else "scheduler"}
    try:
        async def create(i: int) -> None:
            tracker.pods[names[i]].requested = time.time()
            await client.create(pod(names[i], node_name))

        started = time.monotonic()
        await paced(args.pods, args.rate, create)
        await tracker.wait(lambda t: t.running is not None, args.timeout)
        wall = time.monotonic() - started
        latencies = [t.running - t.requested for t in tracker.pods.values()]
        emit(bench="real_node.pod_startup", **common, **percentiles(latencies), all_running_s=round(wall, 2),
             agent_cpu_s=round(cpu_seconds([agent_pid]) - cpu_before["agent"], 1),
             server_cpu_s=round(cpu_seconds([server_pid]) - cpu_before["apiserver"], 1),
             containerd_and_cni_cpu_s=round(cpu_seconds(containerd, reaped_children=True)
                                            - cpu_before["containerd"], 1),
             shims_and_runc_cpu_s=round(cpu_seconds(shim_pids(socket_path), reaped_children=True), 1),
             load_average_1m=round(os.getloadavg()[0], 1), memory_cgroups=memory_cgroups())
        requests = await request_counts(client)
        per_pod = {key: round((count - requests_before.get(key, 0)) / args.pods, 2)
                   for key, count in sorted(requests.items()) if count - requests_before.get(key, 0) > 0}
        emit(bench="real_node.api_requests_per_pod", **common, total=round(sum(per_pod.values()), 1), **per_pod)
        calls = cri_call_times(cluster.agent_dir / "containerd" / "containerd.log", set(names))
        emit(bench="real_node.cri_calls", **common,
             **{f"{name}_median_s": round(statistics.median(v), 3) for name, v in calls.items() if v},
             **{f"{name}_p99_s": percentiles(v)["p99_s"] for name, v in calls.items() if v})

        runtime = await runtime_times(socket_path, {t.uid for t in tracker.pods.values()})
        phases: dict[str, list[float]] = {"request_to_bound": [], "bound_to_run_sandbox": [],
                                          "run_sandbox_to_create_container": [], "create_to_started": [],
                                          "started_to_seen_running": []}
        for t in tracker.pods.values():
            if t.uid not in runtime or t.bound is None or t.running is None:
                continue
            sandbox, created, started_at = runtime[t.uid]
            phases["request_to_bound"].append(t.bound - t.requested)
            phases["bound_to_run_sandbox"].append(sandbox - t.bound)
            phases["run_sandbox_to_create_container"].append(created - sandbox)
            phases["create_to_started"].append(started_at - created)
            phases["started_to_seen_running"].append(t.running - started_at)
        emit(bench="real_node.phases", **common,
             **{f"{name}_median_s": round(statistics.median(v), 3) for name, v in phases.items() if v},
             **{f"{name}_p99_s": percentiles(v)["p99_s"] for name, v in phases.items() if v})

        await asyncio.sleep(args.settle)
        shims = shim_pids(socket_path)
        idle_before = {"agent": cpu_seconds([agent_pid]), "containerd": cpu_seconds(containerd),
                       "shims": cpu_seconds(shims), "apiserver": cpu_seconds([server_pid])}
        await asyncio.sleep(args.idle_seconds)
        emit(bench="real_node.idle", **common, seconds=args.idle_seconds,
             **{f"{name}_cpu_percent": round(100 * (cpu_seconds(pids) - idle_before[name]) / args.idle_seconds, 2)
                for name, pids in (("agent", [agent_pid]), ("containerd", containerd), ("shims", shims),
                                   ("apiserver", [server_pid]))},
             agent_rss_mb=rss_mb([agent_pid]), containerd_rss_mb=rss_mb(containerd), shims=len(shims),
             shims_rss_mb=rss_mb(shims), shim_rss_mb_each=round(rss_mb(shims) / max(len(shims), 1), 1),
             apiserver_process_rss_mb=rss_mb([server_pid]), load_average_1m=round(os.getloadavg()[0], 1))

        async def delete(i: int) -> None:
            tracker.pods[names[i]].delete_requested = time.time()
            await client.delete("pods", names[i], NAMESPACE)

        started = time.monotonic()
        await paced(args.pods, args.rate, delete)
        await tracker.wait(lambda t: t.deleted is not None, args.timeout)
        latencies = [t.deleted - t.delete_requested for t in tracker.pods.values()]
        deleted_s = time.monotonic() - started
        # Housekeeping removes the stopped sandboxes after the pods are gone from the API; the next run starts on
        # a clean runtime.
        uids = {t.uid for t in tracker.pods.values()}
        async with asyncio.timeout(args.timeout):
            while uids & await runtime_pod_uids(socket_path):
                await asyncio.sleep(0.5)
        emit(bench="real_node.deletion", **common, **percentiles(latencies), all_deleted_s=round(deleted_s, 2),
             runtime_clean_s=round(time.monotonic() - started, 2), load_average_1m=round(os.getloadavg()[0], 1))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


_REQUEST_TOTAL = re.compile(r'^apiserver_request_total\{code="(\d+)",group="[^"]*",resource="([^"]*)",'
                            r'subresource="([^"]*)",verb="([^"]*)"\} (\d+)$')


async def request_counts(client: APIClient) -> dict[str, int]:
    """The apiserver's request counters by `verb resource[/subresource]` (every client's, this script's included:
    its pod creates and its watch)."""
    counts: dict[str, int] = {}
    for line in (await client.request("GET", "/metrics", raw=True)).decode().splitlines():
        match = _REQUEST_TOTAL.match(line)
        if match:
            _, resource, subresource, verb, count = match.groups()
            key = f"{verb} {resource}/{subresource}" if subresource else f"{verb} {resource}"
            counts[key] = counts.get(key, 0) + int(count)
    return counts


def memory_cgroups() -> int:
    """The kernel's memory cgroups, dying ones included: thousands of them (left by earlier pods whose page cache
    still charges them; `echo 3 > /proc/sys/vm/drop_caches` frees them) make every pod start slower."""
    for line in Path("/proc/cgroups").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "memory":
            return int(fields[2])
    return 0


def cluster_containerd_pid(cluster: NetnsCluster) -> int | None:
    config = str(cluster.agent_dir / "containerd" / "config.toml")
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if argv and argv[0].endswith("containerd") and config in argv:
            return proc.info["pid"]
    return None


async def prepare(cluster: NetnsCluster, client: APIClient, work: Path) -> None:
    """Node Ready, the busybox image in its containerd, the namespace with its default ServiceAccount."""
    async with asyncio.timeout(180):
        while True:
            with contextlib.suppress(Exception):
                node = await client.get("nodes", cluster.node_name)
                if any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (node.get("status") or {}).get("conditions") or []):
                    break
            await asyncio.sleep(1)
    build_oci_archive(busybox_image(IMAGE), work / "busybox.tar")
    await import_archive(work / "busybox.tar", cluster.agent_dir / "containerd" / "containerd.sock",
                         configured_snapshotter(cluster.agent_dir))
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(Exception):
                await client.get("serviceaccounts", "default", NAMESPACE)
                return
            await asyncio.sleep(0.5)


async def bench(args: argparse.Namespace) -> None:
    with node_namespace() as netns, tempfile.TemporaryDirectory(prefix="pyk8s-nodebench-") as tmp:
        suffix = netns.rsplit("-", 1)[-1]
        # Short: containerd's socket paths under it must stay within a unix socket path's 108 bytes.
        data_dir = Path(f"/tmp/pyk8s-nb-{suffix}")
        cluster = NetnsCluster(netns=netns, data_dir=data_dir / "server", node_ip=NODE_IP,
                               cgroup_root=f"/pyk8s-nb-{suffix}")
        try:
            await asyncio.to_thread(cluster.start, tuple(args.server_arg))
            config = ClientConfig.from_kubeconfig(cluster.kubeconfig)
            config.qps = 0  # the benchmark paces itself
            async with APIClient(config) as client:
                await prepare(cluster, client, Path(tmp))
                for run in range(args.runs):
                    await one_run(cluster, client, args, run)
        except Exception:
            sys.stderr.write(cluster.server_log(8000) + "\n")
            raise
        finally:
            if args.keep_logs:
                for log in (cluster.log_path, cluster.data_dir / "logs" / "agent.log",
                            cluster.agent_dir / "containerd" / "containerd.log"):
                    if log.exists():
                        shutil.copy(log, args.keep_logs / log.name)
            await remove_sandboxes(cluster.agent_dir / "containerd" / "containerd.sock")
            await asyncio.to_thread(cluster.stop)
            # Containers the runtime could not stop live in their pods' namespaces, not the node's: find them
            # (and those namespaces) through the benchmark's own cgroup tree.
            leftovers = processes_in_cgroup(cluster.cgroup_root)
            pod_namespaces = netns_mounts_of(leftovers)
            for pid in processes_in_netns(netns) + leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # only what this benchmark started lives there
            if cluster.forwarder is not None:
                cluster.forwarder.close()
            for name in pod_namespaces:
                ip("netns", "delete", name, check=False)
            unmount_under(data_dir)
            await remove_cgroup_tree_when_empty(cluster.cgroup_root)
            shutil.rmtree(data_dir, ignore_errors=True)


async def remove_sandboxes(socket_path: Path) -> None:
    """Stop and remove every sandbox of the node's containerd, each on its own (one failure stops nothing)."""
    if not socket_path.exists():
        return
    cri = CRIClient(f"unix://{socket_path}", timeout=30)
    try:
        for sandbox in await cri.list_pod_sandbox():
            for step in (cri.stop_pod_sandbox, cri.remove_pod_sandbox):
                with contextlib.suppress(CRIError):
                    await step(sandbox.id)
    except CRIError:
        pass
    finally:
        await cri.close()


def processes_in_cgroup(relative: str) -> list[int]:
    top = CGROUP_ROOT / "pids" / relative.lstrip("/")
    if not top.is_dir():
        top = CGROUP_ROOT / "unified" / relative.lstrip("/")
    pids: set[int] = set()
    for procs in top.rglob("cgroup.procs") if top.is_dir() else []:
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in procs.read_text().split())
    return sorted(pids)


def netns_mounts_of(pids: list[int]) -> list[str]:
    """Names under /var/run/netns of the network namespaces these processes are in."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
    names = []
    for entry in Path("/var/run/netns").iterdir() if inodes else []:
        with contextlib.suppress(OSError):
            if entry.stat().st_ino in inodes:
                names.append(entry.name)
    return names


def unmount_under(directory: Path) -> None:
    """Unmount what the runtime left mounted under `directory` (rootfs overlays, sandbox shm), deepest first."""
    prefix = str(directory) + "/"
    with open("/proc/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for target in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False, timeout=30)


async def remove_cgroup_tree_when_empty(relative: str, timeout: float = 30.0) -> None:
    """Killed processes leave their cgroups a moment later: retry until the tree can be removed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _remove_cgroup_tree(relative)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="pods created (and deleted) per second")
    parser.add_argument("--bind", action="store_true", help="set spec.nodeName instead of using the scheduler")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server-arg", action="append", default=[],
                        help="an extra `pyk8s server` argument (repeatable), e.g. --server-arg=--kubelet-arg "
                             "--server-arg=max-parallel-runtime-starts=0")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after start-up before the idle window")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for all pods to run / be deleted")
    parser.add_argument("--keep-logs", type=Path, help="copy the server and agent logs into this directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("real_node.py runs containers: run it as root")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
