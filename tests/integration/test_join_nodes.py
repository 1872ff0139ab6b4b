"""Joining nodes: the server's join token, `pyk8s token`, CertificateSigningRequests with
`kubectl certificate approve|deny`, and `pyk8s agent --server --token` (good, wrong-CA, deleted and
expired tokens)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.server.jointoken import ca_hash, parse_join_token

from conftest import Cluster, eventually

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
  - level: Metadata
"""


@pytest.fixture(scope="module")
def join_cluster(tmp_path_factory) -> Iterator[Cluster]:
    config_dir = tmp_path_factory.mktemp("join-config")
    (config_dir / "policy.yaml").write_text(POLICY)
    c = Cluster(tmp_path_factory.mktemp("join"), (
        "--disable-scheduler", "--audit-policy-file", str(config_dir / "policy.yaml"),
        "--audit-log-path", str(config_dir / "audit.log")))
    c.audit_log = config_dir / "audit.log"  # type: ignore[attr-defined]
    c.start()
    yield c
    if c.process is not None:
        c.stop()


def pyk8s(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyk8s.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def audit_users(cluster: Cluster) -> list[str]:
    path: Path = cluster.audit_log  # type: ignore[attr-defined]
    if not path.exists():
        return []
    return [json.loads(line)["user"].get("username", "") for line in path.read_text().splitlines()]


def server_token(cluster: Cluster) -> str:
    """The server's join token (written just after the apiserver is ready)."""
    path = cluster.data_dir / "token"
    eventually(path.exists, timeout=30)
    return path.read_text().strip()


def csr_manifest(name: str, cn: str, signer: str, usages: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    pem = request.public_bytes(serialization.Encoding.PEM)
    return json.dumps({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                       "metadata": {"name": name},
                       "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                                "usages": usages, "expirationSeconds": 3600}})


class Agent:
    """A `pyk8s agent` child process, stopped by pid at the end of the test."""

    def __init__(self, log_path: Path, *args: str):
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "pyk8s.cli", "agent", *args], stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def test_server_writes_a_join_token_for_its_ca_and_keeps_it(join_cluster: Cluster) -> None:
    token = parse_join_token(server_token(join_cluster))
    assert token.ca_hash == ca_hash((join_cluster.data_dir / "tls" / "ca.crt").read_bytes())
    assert (join_cluster.data_dir / "token").stat().st_mode & 0o777 == 0o600
    secret = join_cluster.kubectl_json("get", "secret", "-n", "kube-system", f"bootstrap-token-{token.token_id}")
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert token.bootstrap_token not in join_cluster.log_path.read_text()  # a credential never goes to the log
    join_cluster.restart()
    assert parse_join_token(server_token(join_cluster)) == token


def test_kubectl_certificate_approve_and_deny(join_cluster: Cluster) -> None:
    join_cluster.kubectl("apply", "-f", "-", input=csr_manifest("jane", "jane", "kubernetes.io/kube-apiserver-client",
                                                                 ["client auth"]))
    join_cluster.kubectl("apply", "-f", "-", input=csr_manifest("bob", "bob", "kubernetes.io/kube-apiserver-client",
                                                                 ["client auth"]))
    rows = join_cluster.kubectl("get", "csr", "jane").stdout.splitlines()
    assert rows[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert rows[1].split()[2:] == ["kubernetes.io/kube-apiserver-client", "system:admin", "60m", "Pending"]

    # bob is denied before jane is approved: once jane's certificate is out, the signer has seen bob too.
    join_cluster.kubectl("certificate", "deny", "bob")
    assert "approved" in join_cluster.kubectl("certificate", "approve", "jane").stdout

    def issued() -> str:
        return join_cluster.kubectl_json("get", "csr", "jane").get("status", {}).get("certificate", "")

    cert = x509.load_pem_x509_certificate(base64.b64decode(eventually(issued, timeout=60)))
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(
        (join_cluster.data_dir / "tls" / "ca.crt").read_bytes()))
    assert cert.subject.rfc4514_string() == "CN=jane"
    assert join_cluster.kubectl("get", "csr", "jane").stdout.split()[-1] == "Approved,Issued"

    bob = join_cluster.kubectl_json("get", "csr", "bob")["status"]
    assert [(c["type"], c["reason"]) for c in bob["conditions"]] == [("Denied", "KubectlDeny")]
    assert "certificate" not in bob
    assert join_cluster.kubectl("get", "csr", "bob").stdout.split()[-1] == "Denied"
    again = join_cluster.kubectl("certificate", "approve", "bob", check=False)
    assert again.returncode != 0 and "already Denied" in again.stderr


def test_invalid_csrs_are_refused(join_cluster: Cluster) -> None:
    bad = json.loads(csr_manifest("short", "x", "kubernetes.io/kube-apiserver-client", ["client auth"]))
    bad["spec"]["expirationSeconds"] = 60
    result = join_cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds" in \
        result.stderr
    bad["spec"].update(expirationSeconds=600, signerName="nope")
    result = join_cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert "spec.signerName: Invalid value: \"nope\"" in result.stderr


def test_token_create_list_delete(join_cluster: Cluster) -> None:
    created = pyk8s("token", "create", "--data-dir", str(join_cluster.data_dir), "--ttl", "2h",
                    "--description", "rack 7")
    assert created.returncode == 0, created.stderr
    token = parse_join_token(created.stdout.strip())
    assert token.ca_hash == parse_join_token(server_token(join_cluster)).ca_hash
    listed = pyk8s("token", "list", "--data-dir", str(join_cluster.data_dir))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(token.token_id))
    assert row.split()[1] in ("1h", "119m", "120m") and "rack 7" in row
    assert token.bootstrap_token not in listed.stdout  # secrets are never listed
    deleted = pyk8s("token", "delete", "--data-dir", str(join_cluster.data_dir), token.token_id)
    assert deleted.returncode == 0 and f'bootstrap token "{token.token_id}" deleted' in deleted.stdout
    assert token.token_id not in pyk8s("token", "list", "--data-dir", str(join_cluster.data_dir)).stdout
    again = pyk8s("token", "delete", "--data-dir", str(join_cluster.data_dir), token.token_id)
    assert again.returncode != 0 and "not found" in again.stderr
    bad_ttl = pyk8s("token", "create", "--data-dir", str(join_cluster.data_dir), "--ttl", "3 days")
    assert bad_ttl.returncode != 0 and "invalid duration" in bad_ttl.stderr


def test_an_agent_with_a_good_token_joins_and_runs_ready_nodes(join_cluster: Cluster, tmp_path) -> None:
    agent = Agent(tmp_path / "agent.log", "--simulated", "--nodes", "2", "--name-prefix", "joined-", "--server",
                  join_cluster.url, "--token", server_token(join_cluster), "--data-dir", str(tmp_path / "agent"))
    try:
        def ready_nodes() -> list[str]:
            nodes = join_cluster.kubectl_json("get", "nodes")["items"]
            return sorted(n["metadata"]["name"] for n in nodes if n["metadata"]["name"].startswith("joined-") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])))

        # Both at once: the agent registers its nodes one after the other, so a first answer may hold one.
        try:
            eventually(lambda: ready_nodes() == ["joined-0", "joined-1"], timeout=90)
        except AssertionError:
            raise AssertionError(f"ready: {ready_nodes()}\n{agent.log_path.read_text()[-3000:]}") from None
    finally:
        agent.stop()
    kubeconfig = (tmp_path / "agent" / "kubelet.kubeconfig").read_text()
    cert_pem = base64.b64decode(next(line.split(": ", 1)[1] for line in kubeconfig.splitlines()
                                     if "client-certificate-data" in line))
    cert = x509.load_pem_x509_certificate(cert_pem)
    # The simulated agent's own identity, outside system:nodes (the node authorizer gives a node identity one node).
    assert cert.subject.rfc4514_string() == "CN=system:pyk8s:simulated-nodes"
    token_id = parse_join_token(server_token(join_cluster)).token_id
    csrs = join_cluster.kubectl_json("get", "csr")["items"]
    mine = [c for c in csrs if c["spec"]["username"] == f"system:bootstrap:{token_id}"]
    assert mine and all(c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client" for c in mine)
    assert any(c["type"] == "Approved" and c["reason"] == "AutoApproved" for c in mine[-1]["status"]["conditions"])

    # A restarted agent keeps its certificate: no second request.
    again = Agent(tmp_path / "agent-again.log", "--simulated", "--nodes", "2", "--name-prefix", "joined-",
                  "--server", join_cluster.url, "--token", server_token(join_cluster), "--data-dir",
                  str(tmp_path / "agent"))
    try:
        eventually(lambda: "reusing the client certificate" in again.log_path.read_text(), timeout=60)
    finally:
        again.stop()
    after = [c for c in join_cluster.kubectl_json("get", "csr")["items"]
             if c["spec"]["username"] == f"system:bootstrap:{token_id}"]
    assert len(after) == len(mine)


def test_a_wrong_ca_hash_is_refused_before_the_token_is_sent(join_cluster: Cluster, tmp_path) -> None:
    token_id = pyk8s("token", "create", "--data-dir", str(join_cluster.data_dir)).stdout.strip().rpartition("::")[2]
    wrong = "K10" + "0" * 64 + "::" + token_id
    result = pyk8s("agent", "--simulated", "--server", join_cluster.url, "--token", wrong, "--data-dir",
                   str(tmp_path / "agent"))
    assert result.returncode != 0
    assert "hash does not match the join token" in result.stderr and "refusing to send the token" in result.stderr
    bootstrap_user = f"system:bootstrap:{token_id.split('.')[0]}"

    # The CA read is the agent's only request, and it is anonymous; the token's user never appears.
    def anonymous_read_logged() -> bool:
        return "system:anonymous" in audit_users(join_cluster)

    eventually(anonymous_read_logged, timeout=30)
    assert bootstrap_user not in audit_users(join_cluster)
    assert not (tmp_path / "agent" / "kubelet.kubeconfig").exists()


def test_deleted_and_expired_tokens_are_refused(join_cluster: Cluster, tmp_path) -> None:
    data_dir = str(join_cluster.data_dir)
    deleted = parse_join_token(pyk8s("token", "create", "--data-dir", data_dir).stdout.strip())
    pyk8s("token", "delete", "--data-dir", data_dir, deleted.token_id)
    result = pyk8s("agent", "--simulated", "--server", join_cluster.url, "--token", str(deleted), "--data-dir",
                   str(tmp_path / "a1"))
    assert result.returncode != 0 and "refused the join token (401 Unauthorized)" in result.stderr

    expiring = parse_join_token(pyk8s("token", "create", "--data-dir", data_dir, "--ttl", "1s").stdout.strip())

    def expired() -> bool:
        row = [line for line in pyk8s("token", "list", "--data-dir", data_dir).stdout.splitlines()
               if line.startswith(expiring.token_id)]
        return bool(row) and "<invalid>" in row[0]

    eventually(expired, timeout=30)
    result = pyk8s("agent", "--simulated", "--server", join_cluster.url, "--token", str(expiring), "--data-dir",
                   str(tmp_path / "a2"))
    assert result.returncode != 0 and "refused the join token (401 Unauthorized)" in result.stderr


def test_approving_needs_the_approve_verb_and_masters_certificates_are_refused(join_cluster: Cluster) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "csr-approver"},
            "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
                       "verbs": ["get", "list"]},
                      {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
                       "verbs": ["update"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "csr-approver"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "csr-approver"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "approver"}]}
    join_cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    join_cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    join_cluster.kubectl("apply", "-f", "-", input=csr_manifest("carol", "carol",
                                                                 "kubernetes.io/kube-apiserver-client",
                                                                 ["client auth"]))
    refused = join_cluster.kubectl("certificate", "approve", "carol", "--as", "approver", check=False)
    assert refused.returncode != 0
    assert ('certificatesigningrequests.certificates.k8s.io "carol" is forbidden: user not permitted to approve '
            'requests with signerName "kubernetes.io/kube-apiserver-client"') in refused.stderr
    role["rules"].append({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"],
                          "resourceNames": ["kubernetes.io/kube-apiserver-client"]})
    join_cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    eventually(lambda: join_cluster.kubectl("certificate", "approve", "carol", "--as", "approver",
                                            check=False).returncode == 0, timeout=30)

    manifest = json.loads(csr_manifest("mallory", "mallory", "kubernetes.io/kube-apiserver-client",
                                       ["client auth"]))
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
        x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])).sign(key, hashes.SHA256())
    manifest["spec"]["request"] = base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode()
    result = join_cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed" in \
        result.stderr
