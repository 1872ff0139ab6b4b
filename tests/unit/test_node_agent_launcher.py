"""`pyk8s server` runs this machine's real node unless told otherwise; `pyk8s agent` checks its flags."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.cli import main
from pyk8s.server.launcher import ServerOptions, _components
from pyk8s.server.pki import ensure_pki


@pytest.fixture
def pki(tmp_path: Path, monkeypatch):
    # As root, where a real node can run (the non-root case is tested on its own).
    monkeypatch.setattr("pyk8s.server.launcher.os.geteuid", lambda: 0)
    return ensure_pki(tmp_path, hostnames=[], ips=[])


def _argv_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_server_runs_a_real_agent_for_its_own_node(tmp_path: Path, pki) -> None:
    opts = ServerOptions(data_dir=tmp_path, node_name="Node-A", kubelet_args=("cgroup-root=/pyk8s", "max-pods=50",
                                                                              "eviction-hard=memory.available<99%"))
    supervisor = _components(opts, pki, "https://127.0.0.1:6443", "10.0.0.5")
    assert set(supervisor.children) == {"controller-manager", "scheduler", "agent", "proxy", "dns"}
    proxy = supervisor.children["proxy"].argv
    assert _argv_value(proxy, "--hostname-override") == "node-a" and _argv_value(proxy, "--cluster-cidr") == \
        "10.42.0.0/16"
    dns = supervisor.children["dns"].argv
    assert _argv_value(dns, "--bind") == "10.0.0.5:53" and _argv_value(dns, "--advertise-address") == "10.0.0.5"
    assert _argv_value(dns, "--cluster-dns") == "10.43.0.10"
    argv = supervisor.children["agent"].argv
    assert argv[argv.index("agent") - 1] == "pyk8s.cli"
    assert _argv_value(argv, "--node-name") == "node-a"
    assert _argv_value(argv, "--node-ip") == "10.0.0.5"
    assert _argv_value(argv, "--data-dir") == str(tmp_path / "agent")
    assert _argv_value(argv, "--cluster-dns") == "10.43.0.10"
    assert _argv_value(argv, "--pod-cidr") == "10.42.255.0/24"
    assert _argv_value(argv, "--cgroup-root") == "/pyk8s" and _argv_value(argv, "--max-pods") == "50"
    assert _argv_value(argv, "--eviction-hard") == "memory.available<99%"
    # NodeRestriction forbids a kubelet its node-role labels: the server sets them (_label_server_node).
    assert "--node-labels" not in argv
    assert "--container-runtime-endpoint" not in argv

    # Its identity: system:node:<name> in system:nodes, from the cluster CA.
    kubeconfig = yaml.safe_load(Path(_argv_value(argv, "--kubeconfig")).read_text())
    client_cert = x509.load_pem_x509_certificate(base64.b64decode(kubeconfig["users"][0]["user"][
        "client-certificate-data"]))
    assert client_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    assert client_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"

    # Its kubelet serving certificate, issued by the cluster CA for the node's name and address.
    cert = x509.load_pem_x509_certificate(Path(_argv_value(argv, "--tls-cert-file")).read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node-a" in sans.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.0.0.5") in sans.get_values_for_type(x509.IPAddress)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert Path(_argv_value(argv, "--tls-private-key-file")).stat().st_mode & 0o777 == 0o600
    assert _argv_value(argv, "--client-ca-file") == str(pki.ca_cert)


def test_server_without_a_real_agent(tmp_path: Path, pki) -> None:
    assert "agent" not in _components(ServerOptions(data_dir=tmp_path, disable_agent=True), pki, "https://x", "1.2.3.4"
                                      ).children
    simulated = _components(ServerOptions(data_dir=tmp_path, simulated_nodes=3), pki, "https://x", "1.2.3.4")
    assert "agent" not in simulated.children and "simulated-nodes" in simulated.children
    runtime = _components(ServerOptions(data_dir=tmp_path, container_runtime_endpoint="unix:///run/crio.sock",
                                        node_ip="192.168.1.9"), pki, "https://x", "1.2.3.4")
    argv = runtime.children["agent"].argv
    assert _argv_value(argv, "--container-runtime-endpoint") == "unix:///run/crio.sock"
    assert _argv_value(argv, "--node-ip") == "192.168.1.9"


def test_no_local_node_without_root_unless_a_runtime_is_given(tmp_path: Path, pki, monkeypatch) -> None:
    monkeypatch.setattr("pyk8s.server.launcher.os.geteuid", lambda: 1000)
    assert "agent" not in _components(ServerOptions(data_dir=tmp_path), pki, "https://x", "1.2.3.4").children
    given = ServerOptions(data_dir=tmp_path, container_runtime_endpoint="unix:///run/user/1000/containerd.sock")
    assert "agent" in _components(given, pki, "https://x", "1.2.3.4").children


@pytest.mark.parametrize("args, message", [
    ([], "give --kubeconfig, or --server and --token to join"),
    (["--server", "https://x:6443"], "give --kubeconfig, or --server and --token to join"),
    (["--kubeconfig", "{kc}", "--token", "t"], "--kubeconfig and --server/--token are alternatives"),
    (["--kubeconfig", "{kc}", "--tls-cert-file", "{kc}"], "--tls-cert-file and --tls-private-key-file go together"),
    (["--kubeconfig", "{kc}", "--pod-cidr", "10.42.0.0/33"], "Invalid value for --pod-cidr: '10.42.0.0/33'"),
    (["--kubeconfig", "{kc}", "--node-ip", "not-an-ip"], "Invalid value for --node-ip"),
    (["--kubeconfig", "{kc}", "--node-labels", "a=b,c"], "Invalid value for --node-labels: expected key=value"),
    (["--kubeconfig", "{kc}", "--eviction-hard", "foo.available<1Gi"], "unsupported eviction signal foo.available"),
    (["--kubeconfig", "{kc}", "--eviction-soft", "memory.available<1Gi"],
     "grace period must be specified for the soft eviction threshold memory.available"),
    (["--kubeconfig", "{kc}", "--eviction-pressure-transition-period", "soon"], 'time: invalid duration "soon"'),
    (["--kubeconfig", "{kc}", "--image-gc-low-threshold", "90"],
     "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 90 must be less than "
     "imageGCHighThresholdPercent (--image-gc-high-threshold) 85"),
])
def test_agent_rejects_bad_flags(tmp_path: Path, args: list[str], message: str) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("{}")
    result = CliRunner().invoke(main, ["agent", *(a.replace("{kc}", str(kubeconfig)) for a in args)])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_server_rejects_a_malformed_kubelet_arg() -> None:
    result = CliRunner().invoke(main, ["server", "--kubelet-arg", "cgroup-root"])
    assert result.exit_code == 2 and "expected key=value" in result.output
