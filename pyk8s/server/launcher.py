"""`pyk8s server`: the all-in-one cluster on one machine, like k3s.

It prepares the data dir (PKI, kubeconfig, database), runs the apiserver on SQLite, supervises
the controller-manager, the scheduler and this machine's own node (`pyk8s agent` with real
containers, or simulated nodes with --simulated-nodes N) as child processes, serves until
SIGTERM/SIGINT and then stops cleanly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..apiserver.admission import AdmissionConfig
from ..apiserver.app import APIServer, APIServerConfig
from ..apiserver.audit import auditor_from_flags
from ..apiserver.authn import Authenticator
from ..apiserver.authz.chain import DEFAULT_MODES
from ..apiserver.node_proxy import KubeletClientConfig
from ..client import APIClient, APIStatusError, ClientConfig
from ..kubelet.node_status import fallback_pod_cidr
from ..kubelet.paths import KubeletPaths
from ..kubelet.tlsbootstrap import SIMULATED_NODES
from ..store.base import Store
from ..store.encryption import DecryptionError, EncryptingStore, load_encryption_config
from ..store.sqlite import SQLiteStore
from .jointoken import ensure_server_token, publish_cluster_info
from .kubeconfig import load_token_file, write_kubeconfig
from .kubeletserving import KubeletServingApprover
from .pki import PKI, ensure_pki, server_ssl_context, write_atomic
from .supervisor import Supervisor

log = logging.getLogger("pyk8s.server")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/pyk8s")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "pyk8s"


@dataclass
class ServerOptions:
    data_dir: Path = field(default_factory=default_data_dir)
    bind_address: str = "0.0.0.0"
    https_port: int = 6443
    advertise_address: str = ""
    token_file: Path | None = None
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    disable_agent: bool = False
    # The local node (unless disable_agent or simulated_nodes): its name (default: the host name), InternalIP
    # (default: the advertise address), an existing CRI runtime instead of its own containerd, and extra agent
    # flags given as key=value (k3s's --kubelet-arg), e.g. "cgroup-root=/pyk8s".
    node_name: str = ""
    node_ip: str = ""
    container_runtime_endpoint: str | None = None
    kubelet_args: tuple[str, ...] = ()
    container_log_max_size: str | None = None  # the agent's --container-log-max-size; None: its default
    container_log_max_files: int | None = None
    simulated_nodes: int = 0
    simulated_node_capacity: dict[str, str] = field(default_factory=dict)
    controllers: str = "*"
    disable_controller_manager: bool = False
    disable_scheduler: bool = False
    authorization_modes: tuple[str, ...] = DEFAULT_MODES
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    encryption_provider_config: Path | None = None
    audit_policy_file: Path | None = None
    audit_log_path: str | None = None  # "-" for stdout
    audit_log_maxsize: int = 0  # megabytes before rotation; 0 never rotates
    audit_log_maxbackup: int = 0  # rotated files kept; 0 keeps all
    verbose: bool = False


def host_addresses() -> list[str]:
    """The machine's own unicast addresses, for the serving certificate's SANs."""
    out = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                ip = addr.address.split("%", 1)[0]
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    continue
                out.append(ip)
    return sorted(set(out))


def _first_ipv4(addresses: list[str]) -> str:
    for ip in addresses:
        parsed = ipaddress.ip_address(ip)
        if parsed.version == 4 and not parsed.is_loopback:
            return ip
    return "127.0.0.1"


def _component_kubeconfig(opts: ServerOptions, pki: PKI, server_url: str, name: str, user: str,
                          groups: list[str]) -> Path:
    """A kubeconfig with the component's own client certificate (its identity, as upstream's components)."""
    cert, key = pki.issue_client_cert(user, groups)
    path = opts.data_dir / "components" / f"{name}.kubeconfig"
    path.parent.mkdir(exist_ok=True)
    write_kubeconfig(path, server_url, pki.ca_cert.read_bytes(), cert, key, user=name)
    return path


def _components(opts: ServerOptions, pki: PKI, server_url: str, advertise: str) -> Supervisor:
    """The child processes `pyk8s server` runs beside the apiserver."""
    supervisor = Supervisor()
    logs = opts.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    verbose = ["--verbose"] if opts.verbose else []
    cli = [sys.executable, "-m", "pyk8s.cli"]
    if not opts.disable_controller_manager:
        kubeconfig = _component_kubeconfig(opts, pki, server_url, "controller-manager",
                                           "system:kube-controller-manager", [])
        supervisor.add("controller-manager", [*cli, "controller-manager", "--kubeconfig", str(kubeconfig),
                                              "--controllers", opts.controllers, "--root-ca-file", str(pki.ca_cert),
                                              "--service-account-private-key-file", str(pki.service_account_key),
                                              "--cluster-signing-cert-file", str(pki.ca_cert),
                                              "--cluster-signing-key-file", str(pki.ca_key),
                                              *verbose],
                       log_path=logs / "controller-manager.log")
    if not opts.disable_scheduler:
        kubeconfig = _component_kubeconfig(opts, pki, server_url, "scheduler", "system:kube-scheduler", [])
        supervisor.add("scheduler", [*cli, "scheduler", "--kubeconfig", str(kubeconfig), *verbose],
                       log_path=logs / "scheduler.log")
    if opts.simulated_nodes:
        # Simulated nodes share one identity outside system:nodes: the node authorizer gives a node identity
        # its own node only (see docs/security.md).
        kubeconfig = _component_kubeconfig(opts, pki, server_url, "simulated-nodes", SIMULATED_NODES.user,
                                           list(SIMULATED_NODES.groups))
        capacity = ",".join(f"{k}={v}" for k, v in opts.simulated_node_capacity.items())
        supervisor.add("simulated-nodes", [*cli, "agent", "--simulated", "--nodes", str(opts.simulated_nodes),
                                           "--kubeconfig", str(kubeconfig), *(["--node-capacity", capacity]
                                                                              if capacity else []), *verbose],
                       log_path=logs / "simulated-nodes.log")
    elif not opts.disable_agent and os.geteuid() != 0 and not opts.container_runtime_endpoint:
        log.warning("no local node: running containers needs root (containerd, runc, cgroups); run as root, give "
                    "--container-runtime-endpoint, or use --simulated-nodes N")
    elif not opts.disable_agent:
        supervisor.add("agent", [*cli, "agent", *_agent_args(opts, pki, server_url, advertise), *verbose],
                       log_path=logs / "agent.log")
        _add_service_components(supervisor, opts, pki, server_url, opts.node_ip or advertise, cli, verbose, logs)
    return supervisor


def _add_service_components(supervisor: Supervisor, opts: ServerOptions, pki: PKI, server_url: str, node_ip: str,
                            cli: list[str], verbose: list[str], logs: Path) -> None:
    """The node's service proxy and the cluster DNS server beside a real local node (k3s runs kube-proxy and
    CoreDNS there). DNS listens on the node's address and publishes it as the kube-dns Service's endpoint, so
    the proxy routes the cluster DNS IP to it."""
    name = local_node_name(opts)
    kubeconfig = _component_kubeconfig(opts, pki, server_url, "proxy", "system:kube-proxy", [])
    supervisor.add("proxy", [*cli, "proxy", "--kubeconfig", str(kubeconfig), "--hostname-override", name,
                             "--cluster-cidr", opts.cluster_cidr, "--service-cidr", opts.service_cidr, *verbose],
                   log_path=logs / "proxy.log")
    cluster_dns = str(ipaddress.ip_network(opts.service_cidr).network_address + 10)
    kubeconfig = _component_kubeconfig(opts, pki, server_url, "dns", "system:coredns", [])
    supervisor.add("dns", [*cli, "dns", "--kubeconfig", str(kubeconfig), "--bind", f"{_host(node_ip)}:53",
                           "--advertise-address", node_ip, "--hostname-override", name, "--cluster-dns", cluster_dns,
                           *verbose],
                   log_path=logs / "dns.log")


def local_node_name(opts: ServerOptions) -> str:
    return (opts.node_name or socket.gethostname()).lower()


def _agent_args(opts: ServerOptions, pki: PKI, server_url: str, advertise: str) -> list[str]:
    """`pyk8s agent` flags for this machine's own node: its identity (system:node:<name> in system:nodes) and
    kubelet serving certificate come from the cluster PKI, its files live under <data-dir>/agent."""
    name = local_node_name(opts)
    node_ip = opts.node_ip or advertise
    kubeconfig = _component_kubeconfig(opts, pki, server_url, "agent", f"system:node:{name}", ["system:nodes"])
    paths = KubeletPaths(opts.data_dir / "agent")
    paths.pki.mkdir(parents=True, exist_ok=True)
    cert, key = pki.issue_serving_cert(f"system:node:{name}", ["system:nodes"],
                                       sorted({name, socket.gethostname().lower(), "localhost"}),
                                       sorted({node_ip, "127.0.0.1"}))
    write_atomic(paths.pki / "kubelet.key", key, 0o600)
    write_atomic(paths.pki / "kubelet.crt", cert, 0o644)
    cluster_dns = str(ipaddress.ip_network(opts.service_cidr).network_address + 10)
    args = ["--kubeconfig", str(kubeconfig), "--data-dir", str(paths.data_dir), "--node-name", name,
            "--node-ip", node_ip, "--cluster-dns", cluster_dns,
            # Used only if the node IPAM controller assigns no pod CIDR (the controller-manager is off).
            "--pod-cidr", fallback_pod_cidr(opts.cluster_cidr, 0, 1), "--cluster-cidr", opts.cluster_cidr,
            "--tls-cert-file", str(paths.pki / "kubelet.crt"), "--tls-private-key-file", str(paths.pki / "kubelet.key"),
            "--client-ca-file", str(pki.ca_cert)]
    if opts.container_runtime_endpoint:
        args += ["--container-runtime-endpoint", opts.container_runtime_endpoint]
    if opts.container_log_max_size is not None:
        args += ["--container-log-max-size", opts.container_log_max_size]
    if opts.container_log_max_files is not None:
        args += ["--container-log-max-files", str(opts.container_log_max_files)]
    for item in opts.kubelet_args:
        flag, _, value = item.partition("=")
        args += [f"--{flag.removeprefix('--')}", value]
    return args


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def _prepare_join(data_dir: Path, admin_kubeconfig: Path, server_url: str, ca_pem: bytes) -> None:
    """Publish kube-public/cluster-info and keep a join token in `<data-dir>/token` for `pyk8s agent`."""
    async with APIClient(ClientConfig.from_kubeconfig(admin_kubeconfig)) as client:
        await publish_cluster_info(client, server_url, ca_pem)
        token = await ensure_server_token(client, data_dir / "token", ca_pem)
    # The token is a credential: it goes to an interactive terminal, never into a log.
    log.info("join token written to %s: pyk8s agent --server %s --token \"$(cat %s)\"", data_dir / "token",
             server_url, data_dir / "token")
    if sys.stdout.isatty():
        print(f"join token: {token}", flush=True)  # noqa: T201 - the command's own output


# k3s's labels for its server nodes. NodeRestriction forbids a kubelet to set node-role labels on itself, so
# the server sets them with its own credentials once the node has registered (as k3s does).
SERVER_NODE_LABELS = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}


async def _label_server_node(admin_kubeconfig: Path, node_name: str, recheck: float = 5.0) -> None:
    """Keep the server's own node labelled as a control-plane node (also after it registers again)."""
    try:
        async with APIClient(ClientConfig.from_kubeconfig(admin_kubeconfig)) as client:
            while True:
                try:
                    node = await client.get("nodes", node_name)
                except APIStatusError as exc:
                    if exc.status.get("code") != 404:
                        raise
                    await asyncio.sleep(1.0)
                    continue
                labels = (node.get("metadata") or {}).get("labels") or {}
                missing = {k: v for k, v in SERVER_NODE_LABELS.items() if labels.get(k) != v}
                if missing:
                    await client.patch("nodes", node_name, {"metadata": {"labels": missing}})
                    log.info("labelled node %s as the server's: %s", node_name, ", ".join(missing))
                await asyncio.sleep(recheck)
    except asyncio.CancelledError:
        raise
    except Exception:  # never take the server down with it: the node then lacks its role labels
        log.exception("labelling the server's node %s stopped", node_name)


async def _approve_kubelet_serving(admin_kubeconfig: Path) -> None:
    """Approve joined nodes' kubelet serving certificates for as long as the server runs."""
    try:
        async with APIClient(ClientConfig.from_kubeconfig(admin_kubeconfig)) as client:
            await KubeletServingApprover(client).run()
    except Exception:  # never take the server down with it: requests then wait for an administrator
        log.exception("approving kubelet serving certificates stopped")


async def run_server(opts: ServerOptions, *, ready: asyncio.Event | None = None,
                     stop: asyncio.Event | None = None) -> None:
    data_dir = opts.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    addresses = host_addresses()
    # Like kube-apiserver, advertise a routable address: the bind address when it is one, else the host's.
    bind_is_routable = opts.bind_address not in ("0.0.0.0", "::") and not ipaddress.ip_address(
        opts.bind_address).is_loopback
    advertise = opts.advertise_address or (opts.bind_address if bind_is_routable else _first_ipv4(addresses))
    service_ip = str(ipaddress.ip_network(opts.service_cidr).network_address + 1)
    hostnames = sorted({socket.gethostname(), socket.getfqdn()})
    ips = sorted(set(addresses) | {advertise, service_ip} | (
        {opts.bind_address} if opts.bind_address not in ("0.0.0.0", "::") else set()))
    log.info("preparing certificates in %s", data_dir / "tls")
    pki = ensure_pki(data_dir, hostnames=hostnames, ips=ips)
    tokens = load_token_file(opts.token_file) if opts.token_file else {}
    # Bad encryption or audit configuration stops the server here, before anything is served or written.
    encryption = load_encryption_config(opts.encryption_provider_config) if opts.encryption_provider_config else None
    auditor = auditor_from_flags(opts.audit_policy_file, opts.audit_log_path, opts.audit_log_maxsize,
                                 opts.audit_log_maxbackup)

    (data_dir / "db").mkdir(exist_ok=True)
    store: Store = SQLiteStore(str(data_dir / "db" / "state.db"))
    if encryption is not None:
        store = EncryptingStore(store, encryption.transformer_for_key)
        log.info("encrypting resources at rest as %s configures", opts.encryption_provider_config)
    log.info("opening the store at %s", data_dir / "db" / "state.db")
    await store.start()
    config = APIServerConfig(bind_address=opts.bind_address, secure_port=opts.https_port,
                             advertise_address=advertise, service_cidr=opts.service_cidr, admission=opts.admission,
                             kubelet_client=KubeletClientConfig(pki.kubelet_client_cert, pki.kubelet_client_key),
                             authorization_modes=opts.authorization_modes)
    server = APIServer(store, config, server_ssl_context(pki), Authenticator(tokens),
                       service_account_key=pki.service_account_signing_key(), auditor=auditor)
    try:
        try:
            await server.start()
        except DecryptionError as exc:
            # The watch cache reads everything at start: a missing key stops the server here, not per request.
            raise SystemExit(f"pyk8s server: cannot read the stored data with the encryption configuration "
                             f"{opts.encryption_provider_config}: {exc}; keep the key that wrote it among the "
                             "providers") from None
        local = "127.0.0.1" if opts.bind_address in ("0.0.0.0", "127.0.0.1") else opts.bind_address
        if ":" in local:
            local = f"[{local}]"
        kubeconfig = data_dir / "kubeconfig.yaml"
        write_kubeconfig(kubeconfig, f"https://{local}:{server.port}", pki.ca_cert.read_bytes(),
                         pki.admin_cert.read_bytes(), pki.admin_key.read_bytes())
        await _prepare_join(data_dir, kubeconfig, f"https://{_host(advertise)}:{server.port}", pki.ca_pem())
        supervisor = _components(opts, pki, f"https://{local}:{server.port}", advertise)
        await supervisor.start()
        background = [asyncio.create_task(_approve_kubelet_serving(kubeconfig), name="kubelet-serving")]
        if "agent" in supervisor.children:
            background.append(asyncio.create_task(_label_server_node(kubeconfig, local_node_name(opts)),
                                                  name="server-node-labels"))
        log.info("cluster ready: kubeconfig written to %s (apiserver https://%s:%d)", kubeconfig, local,
                 server.port)
        if ready is not None:
            ready.set()
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await stop.wait()
        log.info("stopping")
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await supervisor.stop()
    finally:
        await server.stop()
        await store.close()
        log.info("stopped")
