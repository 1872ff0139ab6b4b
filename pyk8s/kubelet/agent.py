"""One real node: the composition `pyk8s agent` (and `pyk8s server`'s own node) runs.

Start-up order, and why:
1. the container runtime: the node's own supervised containerd under `<data-dir>/containerd` (pause image
   imported), or an existing CRI runtime at --container-runtime-endpoint, which is left alone;
2. the API clients: one for pod traffic, one for heartbeats (Lease and node status), so heartbeats never
   wait behind pod work;
3. the eviction manager and image GC (they run from here on: the node's pressure conditions are the eviction
   manager's), then registration: the Node is created (or adopted) with its real capacity, nodeInfo and
   conditions; the Lease and status loops start;
4. the pod network: the node's spec.podCIDR (from the node IPAM controller, else --pod-cidr) goes into
   containerd's CNI config (containerd reloads it); until then the node reports NotReady with upstream's
   "cni plugin not initialized" message and runs no pods;
5. the pod side: Kubelet (admitting new pods against the eviction manager's conditions; the eviction manager
   evicts through it), the KubeletServer on port 10250 and container log rotation.
On SIGTERM everything stops in reverse; containerd is stopped by its PID (its containers live on in their
shims, as with upstream's kubelet restarts, and are re-adopted on the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..client import APIClient, ClientConfig, EventRecorder
from .config import default_parallel_runtime_starts
from .eviction import EvictionConfig, EvictionManager, HostStatsProvider
from .eviction.thresholds import (
    DEFAULT_EVICTION_HARD,
    DEFAULT_PRESSURE_TRANSITION_PERIOD,
    Threshold,
    parse_duration,
    parse_threshold_config,
)
from .image_gc import ImageGC, ImageGCPolicy
from .kubelet import Kubelet, KubeletConfig
from .log_rotation import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE_BYTES, ContainerLogManager, container_log_manager
from .node import LeaseController, NodeConfig, NodeRegistration, NodeStatusSource, node_reference
from .node_status import DEFAULT_MAX_PODS, KUBELET_PORT
from .object_cache import ObjectCache
from .paths import KubeletPaths
from .routes import HostGatewayRoutes
from .runtime.containerd import DEFAULT_SANDBOX_IMAGE, Containerd, ContainerdConfig
from .runtime.cri import CRIClient
from .server import KubeletServer
from .volumes import VolumeManager

log = logging.getLogger("pyk8s.kubelet.agent")

COMPONENT = "kubelet"
# Interfaces that belong to pods or overlays, never the node's own address.
_POD_INTERFACE_PREFIXES = ("cni", "veth", "flannel", "cali", "docker", "kube-", "lo")


def default_node_ip() -> str:
    """The node's InternalIP when --node-ip is not given: the first IPv4 address on an interface that is
    up and not loopback or a pod network; 127.0.0.1 on a machine with no other address."""
    stats = psutil.net_if_stats()
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        if name.startswith(_POD_INTERFACE_PREFIXES) or not (stats.get(name) and stats[name].isup):
            continue
        for address in addresses:
            if address.family == socket.AF_INET and not ipaddress.ip_address(address.address).is_loopback:
                return address.address
    return "127.0.0.1"


def default_node_name() -> str:
    """The host name, lower-cased as a node name must be (upstream's --hostname-override default)."""
    return socket.gethostname().lower()


@dataclass(frozen=True)
class EvictionSettings:
    """The kubelet's eviction and image GC flags, parsed and validated."""

    thresholds: list[Threshold] = field(default_factory=parse_threshold_config)
    pressure_transition_period: float = DEFAULT_PRESSURE_TRANSITION_PERIOD
    image_gc: ImageGCPolicy = field(default_factory=ImageGCPolicy)


def eviction_settings(*, hard: str | None = None, soft: str = "", soft_grace_period: str = "",
                      minimum_reclaim: str = "", pressure_transition_period: str = "5m0s",
                      image_gc_high_threshold: int = 85, image_gc_low_threshold: int = 80) -> EvictionSettings:
    """From the flags' text, with upstream's messages on bad input (ValueError). As upstream (without the
    MergeDefaultEvictionSettings gate), an --eviction-hard that is given replaces the defaults: signals it does
    not name have no hard threshold."""
    thresholds = parse_threshold_config(DEFAULT_EVICTION_HARD if hard is None else hard, soft, soft_grace_period,
                                        minimum_reclaim)
    period = parse_duration(pressure_transition_period)
    errors = []
    if not 0 <= image_gc_high_threshold <= 100:
        errors.append(f"invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) "
                      f"{image_gc_high_threshold} must be between 0 and 100, inclusive")
    if not 0 <= image_gc_low_threshold <= 100:
        errors.append(f"invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) "
                      f"{image_gc_low_threshold} must be between 0 and 100, inclusive")
    if image_gc_low_threshold >= image_gc_high_threshold:
        errors.append(f"invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) "
                      f"{image_gc_low_threshold} must be less than imageGCHighThresholdPercent "
                      f"(--image-gc-high-threshold) {image_gc_high_threshold}")
    if errors:
        # A Go error aggregate: one error alone, several as [a, b].
        raise ValueError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    return EvictionSettings(thresholds=thresholds, pressure_transition_period=period,
                            image_gc=ImageGCPolicy(high_threshold_percent=image_gc_high_threshold,
                                                   low_threshold_percent=image_gc_low_threshold))


@dataclass
class AgentOptions:
    data_dir: Path  # the node's own directory: containerd, kubelet files, pod logs
    kubeconfig: Path  # the node's credentials (system:node:<name> in system:nodes)
    node_name: str = field(default_factory=default_node_name)
    node_ip: str = ""
    container_runtime_endpoint: str | None = None  # None: start our own containerd
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    cluster_dns: list[str] = field(default_factory=lambda: ["10.43.0.10"])
    cluster_domain: str = "cluster.local"
    pod_cidr: str | None = None  # used when no node IPAM controller assigns one
    cgroup_root: str = "/"
    kubelet_port: int = KUBELET_PORT
    max_pods: int = DEFAULT_MAX_PODS
    node_labels: dict[str, str] = field(default_factory=dict)
    # The kubelet's serving certificate; None: requested through a kubelet-serving CSR (join mode).
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None  # CA that signs clients of the kubelet port; default: the kubeconfig's
    pod_cidr_wait: float = 30.0
    # Pod addresses of the whole cluster: routed between nodes as is, masqueraded when leaving it.
    cluster_cidr: str = "10.42.0.0/16"
    eviction: EvictionSettings = field(default_factory=EvictionSettings)
    container_log_max_size: int = DEFAULT_MAX_SIZE_BYTES  # bytes; negative: logs are not rotated
    container_log_max_files: int = DEFAULT_MAX_FILES
    max_parallel_runtime_starts: int = field(default_factory=default_parallel_runtime_starts)

    def __post_init__(self) -> None:
        self.node_ip = self.node_ip or default_node_ip()

    @property
    def cgroup_parent(self) -> str:
        """Where pod cgroups go: <cgroup-root>/kubepods, as upstream's cgroupfs driver names it."""
        return f"{self.cgroup_root.rstrip('/')}/kubepods"


def containerd_processes(config: ContainerdConfig) -> list[int]:
    """PIDs of containerd processes running with this node's config (its path is unique to the data dir)."""
    config_path = str(config.home / "config.toml").encode()
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        argv = process.info.get("cmdline") or []
        if argv and argv[0].endswith("containerd") and config_path in (arg.encode() for arg in argv):
            pids.append(process.info["pid"])
    return pids


async def stop_stale_containerd(config: ContainerdConfig, grace: float = 10.0) -> None:
    """Stop a containerd an earlier run of this agent left running (that agent was killed): two containerds on
    one root would fight over it. Its containers live on in their shims and the new containerd adopts them."""
    for pid in containerd_processes(config):
        log.warning("stopping containerd pid %d left running by an earlier agent", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while psutil.pid_exists(pid) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        if psutil.pid_exists(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Agent:
    """A running node. `await agent.start()`, then `await agent.stop()` (also on failure)."""

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.paths = KubeletPaths(options.data_dir)
        self.containerd: Containerd | None = None
        self.runtime: CRIClient | None = None
        self.client: APIClient | None = None
        self.heartbeat_client: APIClient | None = None
        self.events_client: APIClient | None = None
        self.registration: NodeRegistration | None = None
        self.lease: LeaseController | None = None
        self.recorder: EventRecorder | None = None
        self.pod_cidr: str | None = None
        self.network_ready = False
        self.kubelet_server = None
        self.objects: ObjectCache | None = None
        self.volumes: VolumeManager | None = None
        self.image_gc: ImageGC | None = None
        self.eviction: EvictionManager | None = None
        self.kubelet: Kubelet | None = None
        self.log_manager: ContainerLogManager | None = None
        self._tasks: list[asyncio.Task] = []

    # ---- start ----

    async def start(self) -> None:
        opts = self.options
        for directory in (opts.data_dir, self.paths.pods, self.paths.pod_logs, self.paths.pki):
            directory.mkdir(parents=True, exist_ok=True)
        endpoint = opts.container_runtime_endpoint
        if endpoint is None:
            self.containerd = Containerd(ContainerdConfig(data_dir=opts.data_dir, sandbox_image=opts.sandbox_image,
                                                          pod_cidr=opts.pod_cidr or "10.88.0.0/24"))
            await stop_stale_containerd(self.containerd.config)
            await self.containerd.start(timeout=60)
            endpoint = self.containerd.config.endpoint
        else:
            # An existing runtime manages its own pod network: its CRI Status says when that is ready.
            self.network_ready = True
        self.runtime = CRIClient(endpoint)
        version = await self.runtime.version(timeout=30)
        log.info("node %s: container runtime %s %s (CRI %s) at %s", opts.node_name, version.runtime_name,
                 version.runtime_version, version.runtime_api_version, endpoint)

        config = ClientConfig.from_kubeconfig(opts.kubeconfig)
        config.user_agent = config.user_agent.replace("client", "kubelet")
        self.client = APIClient(config)
        heartbeat = ClientConfig.from_kubeconfig(opts.kubeconfig)
        heartbeat.user_agent = config.user_agent
        self.heartbeat_client = APIClient(heartbeat)
        # Events get a client (and rate limit) of their own, as upstream's kubelet (eventRecordQPS/eventBurst
        # beside kubeAPIQPS): three events per started pod must not queue the pods' own requests behind them.
        events = ClientConfig.from_kubeconfig(opts.kubeconfig)
        events.user_agent = config.user_agent
        self.events_client = APIClient(events)
        self.recorder = EventRecorder(self.events_client, COMPONENT, opts.node_name)
        # The ConfigMaps and Secrets the pods name, watched (shared by the kubelet, which registers the pods, and
        # the volume manager).
        self.objects = ObjectCache(self.client)
        self.volumes = VolumeManager(self.client, self.paths, opts.node_name, self.recorder, objects=self.objects)
        eviction = self._eviction_manager()

        node_config = NodeConfig(name=opts.node_name, node_ip=opts.node_ip, data_dir=opts.data_dir,
                                 labels=dict(opts.node_labels),
                                 kubelet_port=opts.kubelet_port, max_pods=opts.max_pods,
                                 thresholds=list(opts.eviction.thresholds), pod_cidr_fallback=opts.pod_cidr,
                                 pod_cidr_wait=opts.pod_cidr_wait)
        source = NodeStatusSource(node_config, self.runtime, network_ready=lambda: self.network_ready,
                                  pressure=eviction.conditions)
        self.registration = NodeRegistration(self.heartbeat_client, source, recorder=self.recorder)
        await self.registration.register()
        self.recorder.event(node_reference(opts.node_name), "Normal", "Starting", "Starting kubelet.")
        self._spawn(eviction.run(), "eviction-manager")
        assert self.image_gc is not None
        self._spawn(self.image_gc.run(), "image-gc")
        self.lease = LeaseController(self.heartbeat_client, opts.node_name, lambda: self.registration.uid,
                                     renew_interval=node_config.lease_renew_interval)
        self._spawn(self.lease.run(), "node-lease")
        self._spawn(self.registration.run_status_loop(), "node-status")
        self._spawn(self._bring_up_pods(), "pod-side")

    def _eviction_manager(self) -> EvictionManager:
        """Image GC and the eviction manager; they reach the pods through the Kubelet once it runs."""
        opts = self.options
        assert self.runtime is not None and self.volumes is not None
        stats = HostStatsProvider(self.paths, self.runtime, cgroup_parent=opts.cgroup_parent)
        self.image_gc = ImageGC(self.runtime, opts.eviction.image_gc, in_use=self._pod_images,
                                image_fs=stats.image_fs, sandbox_image=opts.sandbox_image, recorder=self.recorder,
                                node_name=opts.node_name)
        config = EvictionConfig(thresholds=list(opts.eviction.thresholds),
                                pressure_transition_period=opts.eviction.pressure_transition_period,
                                node_name=opts.node_name)
        self.eviction = EvictionManager(config, stats, self._active_pods, self._evict_pod, self.image_gc,
                                        container_gc=self._delete_dead_containers,
                                        limit_exceeded=self.volumes.limit_exceeded, recorder=self.recorder)
        return self.eviction

    def _active_pods(self) -> list[dict]:
        return self.kubelet.active_pods() if self.kubelet is not None else []

    async def _evict_pod(self, pod: dict, reason: str, message: str, *, grace_period_seconds: int,
                         condition: dict | None) -> bool:
        if self.kubelet is None:
            return False
        return await self.kubelet.evict_pod(pod, reason, message, grace_period_seconds=grace_period_seconds,
                                            condition=condition)

    def _pod_images(self) -> set[str]:
        return self.kubelet.pod_images() if self.kubelet is not None else set()

    async def _delete_dead_containers(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.delete_dead_containers()

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    @staticmethod
    def _task_done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task %s failed", task.get_name(), exc_info=task.exception())

    async def _bring_up_pods(self) -> None:
        """Pod network first (the node's pod CIDR into the CNI config), then the pod side."""
        assert self.registration is not None
        self.pod_cidr = await self.registration.wait_pod_cidr()
        if self.containerd is not None:
            self.configure_pod_network(self.pod_cidr)
        self.network_ready = True
        log.info("node %s: pod network %s ready", self.options.node_name, self.pod_cidr)
        await self.registration.update_status()
        self._spawn(self._follow_pod_cidr(), "pod-cidr")
        if self.containerd is not None:
            # Our own CNI bridge network: routes to the other nodes' pod CIDRs are ours to keep too.
            assert self.client is not None
            routes = HostGatewayRoutes(self.client, self.options.node_name,
                                       cluster_cidrs=self.options.cluster_cidr.split(","))
            self._spawn(routes.run(), "pod-routes")
        await self._start_pod_side()

    async def _follow_pod_cidr(self) -> None:
        """A Node deleted and registered again gets a pod CIDR anew (maybe another): new pods use that one."""
        assert self.registration is not None
        while True:
            await self.registration.reregistered.wait()
            self.registration.reregistered.clear()
            self.network_ready = self.containerd is None
            cidr = await self.registration.wait_pod_cidr()
            if cidr != self.pod_cidr:
                log.warning("node %s: pod CIDR is now %s (was %s); running pods keep their addresses",
                            self.options.node_name, cidr, self.pod_cidr)
                self.pod_cidr = cidr
                if self.containerd is not None:
                    self.configure_pod_network(cidr)
            self.network_ready = True
            await self.registration.update_status()

    def configure_pod_network(self, pod_cidr: str) -> None:
        """Rewrite containerd's CNI network for the node's pod CIDR; containerd's CRI plugin watches its CNI
        config directory and reloads it, so no restart is needed."""
        assert self.containerd is not None
        config = self.containerd.config
        if config.pod_cidr == pod_cidr and any(config.cni_conf_dir.glob("*.conflist")):
            return
        config.pod_cidr = pod_cidr
        self.containerd.prepare()

    async def _start_pod_side(self) -> None:
        opts = self.options
        assert self.client is not None and self.runtime is not None
        cert_file, key_file = await self._serving_certificate()
        client_ca = opts.client_ca_file or self._kubeconfig_ca()
        assert self.volumes is not None and self.eviction is not None and self.objects is not None
        config = KubeletConfig(node_name=opts.node_name, paths=self.paths, cluster_dns=list(opts.cluster_dns),
                               cluster_domain=opts.cluster_domain, cgroup_parent=opts.cgroup_parent,
                               pod_cidr=self.pod_cidr, node_ips=[opts.node_ip],
                               container_log_max_size=opts.container_log_max_size,
                               container_log_max_files=opts.container_log_max_files,
                               max_parallel_runtime_starts=opts.max_parallel_runtime_starts)
        kubelet = Kubelet(self.client, self.runtime, config, self.volumes, recorder=self.recorder,
                          pressure=self.eviction.conditions, objects=self.objects)
        self.kubelet_server = KubeletServer(self.client, self.runtime, self.paths, opts.node_name, cert_file,
                                            key_file, client_ca)
        await self.kubelet_server.start(opts.node_ip, opts.kubelet_port)
        self.kubelet = kubelet
        self._spawn(kubelet.run(), "kubelet")  # it runs the volume manager's refresh loop too
        self.log_manager = container_log_manager(self.runtime, config.container_log_max_size,
                                                 config.container_log_max_files)
        if self.log_manager is not None:
            self.log_manager.start()

    async def _serving_certificate(self) -> tuple[Path, Path]:
        opts = self.options
        if opts.tls_cert_file and opts.tls_private_key_file:
            return opts.tls_cert_file, opts.tls_private_key_file
        from .servingcert import ensure_serving_certificate

        cert_file, key_file = self.paths.pki / "kubelet.crt", self.paths.pki / "kubelet.key"
        assert self.client is not None
        # The names the node reports (its Hostname address is its name, as with upstream's --hostname-override),
        # so the server can check them against the Node.
        await ensure_serving_certificate(self.client, opts.node_name, [opts.node_name], [opts.node_ip], cert_file,
                                         key_file)
        return cert_file, key_file

    def _kubeconfig_ca(self) -> Path:
        """The cluster CA from the node's kubeconfig, as a file the kubelet server can load."""
        assert self.client is not None
        config = self.client.config
        if config.ca_file:
            return Path(config.ca_file)
        path = self.paths.pki / "client-ca.crt"
        path.write_bytes(config.ca_data or b"")
        return path

    # ---- stop ----

    async def stop(self) -> None:
        """Stop the loops, the pod side, the clients and (by PID) our containerd; safe after a failed start."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.log_manager is not None:
            await self.log_manager.stop()
        if self.kubelet_server is not None:
            with contextlib.suppress(Exception):
                await self.kubelet_server.stop()
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                await self.recorder.close()
        for client in (self.client, self.heartbeat_client, self.events_client):
            if client is not None:
                await client.close()
        if self.runtime is not None:
            await self.runtime.close()
        if self.containerd is not None:
            await self.containerd.stop()
        log.info("node %s: agent stopped", self.options.node_name)


async def run_agent(options: AgentOptions, stop: asyncio.Event) -> None:
    """Run one real node until `stop` is set (also while it is still starting, e.g. waiting for the apiserver)."""
    agent = Agent(options)
    starting = asyncio.create_task(agent.start(), name="agent-start")
    stopping = asyncio.create_task(stop.wait(), name="agent-stop-signal")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start raises here
            log.info("node %s: agent running (node IP %s)", options.node_name, options.node_ip)
            await stopping
    finally:
        for task in (starting, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await agent.stop()
