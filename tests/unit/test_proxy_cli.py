"""`pyk8s proxy` and `pyk8s dns` refuse bad flags before they start anything."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from pyk8s.cli import main


def test_proxy_rejects_a_bad_cluster_cidr(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    result = CliRunner().invoke(main, ["proxy", "--kubeconfig", str(kubeconfig), "--hostname-override", "n",
                                       "--cluster-cidr", "10.42.0.0/33"])
    assert result.exit_code == 2 and "--cluster-cidr" in result.output


def test_proxy_rejects_bad_nodeport_addresses(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    result = CliRunner().invoke(main, ["proxy", "--kubeconfig", str(kubeconfig), "--hostname-override", "n",
                                       "--nodeport-addresses", "nonsense"])
    assert result.exit_code == 2 and "--nodeport-addresses" in result.output


def test_dns_will_not_publish_a_loopback_endpoint(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    result = CliRunner().invoke(main, ["dns", "--kubeconfig", str(kubeconfig), "--bind", "127.0.0.1:5353"])
    assert result.exit_code == 2 and "cannot be a Service endpoint" in result.output


def test_dns_rejects_a_bad_bind_address(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    result = CliRunner().invoke(main, ["dns", "--kubeconfig", str(kubeconfig), "--bind", "localhost:53",
                                       "--no-publish-service"])
    assert result.exit_code == 2 and "not an IP address" in result.output


def test_dns_fails_cleanly_when_its_port_is_taken(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["dns", "--kubeconfig", str(kubeconfig), "--bind", f"127.0.0.1:{port}",
                                           "--no-publish-service", "--metrics-bind-address", ""])
    assert result.exit_code == 1 and f"cannot serve DNS on 127.0.0.1:{port}" in result.output, result.output
