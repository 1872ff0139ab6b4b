"""Start and supervise the node's own containerd, with everything under the node's data dir.

Layout under `<data_dir>/containerd/`: config.toml, root/, state/, containerd.sock, containerd.log, cni/conf.d/
(CNI network configs), cni/ipam/ (host-local data), certs.d/ (per-registry hosts.toml files) and pause.tar (the
locally built sandbox image, imported at start when the runtime does not have the configured sandbox image).
The process is started by us, remembered by PID and stopped by that PID (SIGTERM, then SIGKILL).

`netns` runs containerd (and so every shim, container and CNI plugin under it) inside a named network
namespace (made by `ip netns add`), which is how tests keep all of it off the host's network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyk8s.kubelet.runtime.cri import CRIClient, CRIError
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, normalize_image_name, pause_image

log = logging.getLogger(__name__)

DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
CNI_BIN_CANDIDATES = ("/usr/lib/cni", "/opt/cni/bin")


class ContainerdError(Exception):
    """containerd is missing, failed to start, or died."""


def find_cni_bin_dir() -> Path:
    for candidate in CNI_BIN_CANDIDATES:
        if (Path(candidate) / "loopback").is_file():
            return Path(candidate)
    raise ContainerdError("no CNI plugins found (install containernetworking-plugins: scripts/install.sh)")


def bridge_network(pod_cidr: str, ipam_dir: Path, name: str = "pyk8s", bridge: str = "cni0") -> dict:
    """bridge + host-local for the node's podCIDR, portmap for hostPort (the usual kubenet-like setup)."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}],
                         "dataDir": str(ipam_dir)},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (longest mount point prefix in /proc/self/mountinfo)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    best, best_type = "", ""
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mount_point = fields[4].replace("\\040", " ")
            fs_type = fields[fields.index("-") + 1]
            inside = str(path) == mount_point or str(path).startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, best_type = mount_point, fs_type
    return best_type


def default_snapshotter(data_dir: Path) -> str:
    # overlayfs cannot use an overlayfs upper dir; the native (copying) snapshotter works anywhere, just slower.
    return "native" if filesystem_type(data_dir) == "overlay" else "overlayfs"


def configured_snapshotter(data_dir: Path) -> str:
    """The snapshotter a node's containerd was configured with (images must be unpacked into that one)."""
    config_file = data_dir / "containerd" / "config.toml"
    if not config_file.is_file():
        raise ContainerdError(f"{config_file} not found: no node containerd was set up under {data_dir}")
    with config_file.open("rb") as f:
        config = tomllib.load(f)
    return config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["snapshotter"]


@dataclass
class ContainerdConfig:
    data_dir: Path
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    # None: overlayfs unless the data dir is itself on overlayfs (inside a container), then native.
    snapshotter: str | None = None
    # The node's podCIDR. containerd's CRI needs an eth0 in every pod (a loopback-only network fails with
    # "failed to find network info"), so pods always get a bridge network; containerd adds `lo` itself.
    pod_cidr: str = "10.88.0.0/24"
    cni_networks: list[dict] | None = None
    cni_bin_dir: Path | None = None
    netns: str | None = None
    binary: str = "containerd"
    debug: bool = False

    def __post_init__(self) -> None:
        if self.snapshotter is None:
            self.snapshotter = default_snapshotter(self.data_dir)

    @property
    def home(self) -> Path:
        return self.data_dir / "containerd"

    @property
    def socket(self) -> Path:
        return self.home / "containerd.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cni_conf_dir(self) -> Path:
        return self.home / "cni" / "conf.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.home / "cni" / "ipam"

    @property
    def registry_config_dir(self) -> Path:
        return self.home / "certs.d"


def render_config(config: ContainerdConfig, cni_bin_dir: Path) -> str:
    """containerd 1.6 config (version 2) with the CRI plugin set up for an unprivileged-OOM, systemd-less node."""
    home = config.home
    return f"""version = 2
root = "{home / 'root'}"
state = "{home / 'state'}"
# Plugins we never use would only slow start-up or fail on this host.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{config.socket}"

[ttrpc]
  address = "{config.socket}.ttrpc"

[debug]
  level = "{'debug' if config.debug else 'info'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{normalize_image_name(config.sandbox_image)}"
  # The kubelet's pause sandbox asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE that a VM/container
  # host may not grant; restricting keeps the value at or above containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{config.snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's own state next to containerd's, not in the host-wide /run/containerd/runc.
        Root = "{home / 'state' / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{config.cni_conf_dir}"
    max_conf_num = 1
  # Per-registry settings (mirrors, plain-HTTP or self-signed registries, client certificates) are
  # <registry_config_dir>/<host[:port]>/hosts.toml files, read at every pull, so no restart is needed.
  # Loopback registries need none: containerd reaches them over plain HTTP by default.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{config.registry_config_dir}"
"""


class Containerd:
    """One containerd process owned by this node: started, watched and restarted by us, stopped by PID."""

    def __init__(self, config: ContainerdConfig) -> None:
        self.config = config
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._log_file: BinaryIO | None = None
        self._supervisor: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def prepare(self) -> None:
        """Write containerd's config and the node's CNI network configs under the data dir."""
        cfg = self.config
        if shutil.which(cfg.binary) is None:
            raise ContainerdError(f"{cfg.binary} not found (install containerd: scripts/install.sh)")
        cni_bin = cfg.cni_bin_dir or find_cni_bin_dir()
        for directory in (cfg.home, cfg.home / "root", cfg.home / "state", cfg.cni_conf_dir, cfg.cni_ipam_dir,
                          cfg.registry_config_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (cfg.home / "config.toml").write_text(render_config(cfg, cni_bin))
        for old in cfg.cni_conf_dir.glob("*.conflist"):
            old.unlink()
        networks = cfg.cni_networks or [bridge_network(cfg.pod_cidr, cfg.cni_ipam_dir)]
        for i, network in enumerate(networks):
            (cfg.cni_conf_dir / f"{10 + i:02d}-{network['name']}.conflist").write_text(json.dumps(network, indent=2))

    def command(self) -> list[str]:
        argv = [self.config.binary, "--config", str(self.config.home / "config.toml")]
        if self.config.netns:
            # nsenter switches only the network namespace; `ip netns exec` would also remount /sys, which hides
            # the cgroup mounts runc needs ("no cgroup mount found in mountinfo").
            argv = ["nsenter", f"--net=/var/run/netns/{self.config.netns}", *argv]
        return argv

    async def start(self, timeout: float = 30.0, supervise: bool = True) -> None:
        """Start containerd, wait for its CRI socket, make sure the sandbox image is there, then watch it."""
        if self.process is not None and self.process.returncode is None:
            return
        self.prepare()
        try:
            await self._spawn(timeout)
            await self.ensure_sandbox_image()
        except BaseException:
            await self.stop()
            raise
        if supervise:
            self._supervisor = asyncio.create_task(self._supervise(timeout), name="containerd-supervisor")

    async def _spawn(self, timeout: float) -> None:
        cfg = self.config
        if cfg.socket.exists():
            cfg.socket.unlink()
        if self._log_file is None:
            # Kept open for the life of the node: containerd writes its log through it.
            self._log_file = open(cfg.home / "containerd.log", "ab")  # noqa: SIM115
        self.process = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file,
            start_new_session=True)
        log.info("containerd started, pid %s, socket %s", self.process.pid, cfg.socket)
        try:
            await self.wait_ready(timeout)
        except BaseException:
            if self.process.returncode is None:
                # Never leave an unready containerd behind; the caller starts over or gives up.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                await self.process.wait()
            raise

    async def _supervise(self, timeout: float, max_backoff: float = 30.0) -> None:
        """Restart containerd when it dies. Running containers live on in their shims and are re-adopted."""
        backoff = 0.5
        while True:
            process = self.process
            if process is None:
                return
            returncode = await process.wait()
            if self.process is not process:
                return  # stop() took it down on purpose
            log.warning("containerd pid %s exited with %s; restarting in %.1fs", process.pid, returncode, backoff)
            await asyncio.sleep(backoff)
            try:
                await self._spawn(timeout)
                self.restarts += 1
                backoff = 0.5
            except ContainerdError as exc:
                log.error("containerd restart failed: %s", exc)
                backoff = min(backoff * 2, max_backoff)

    async def ensure_sandbox_image(self) -> None:
        """Import the locally built pause image unless the runtime already has the configured sandbox image."""
        name = normalize_image_name(self.config.sandbox_image)
        async with CRIClient(self.config.endpoint) as cri:
            if await cri.image_status(name) is not None:
                return
        archive = self.config.home / "pause.tar"
        build_oci_archive(pause_image(name), archive)
        await import_archive(archive, self.config.socket, self.config.snapshotter)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the CRI plugin answers Version on the socket."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_error: Exception | None = None
        while loop.time() < deadline:
            if self.process is None or self.process.returncode is not None:
                raise ContainerdError(f"containerd exited with {self.process.returncode if self.process else None}; "
                                      f"see {self.config.home / 'containerd.log'}")
            if self.config.socket.exists():
                try:
                    async with CRIClient(self.config.endpoint) as client:
                        await client.version(timeout=2.0)
                    return
                except CRIError as exc:
                    last_error = exc
            await asyncio.sleep(0.05)
        raise ContainerdError(f"containerd did not become ready in {timeout}s: {last_error}")

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL after `grace` seconds. Containers keep running in their shims (as upstream)."""
        process, self.process = self.process, None
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                log.warning("containerd pid %s ignored SIGTERM for %ss; killing", process.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                await process.wait()
            log.info("containerd pid %s stopped (%s)", process.pid, process.returncode)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
