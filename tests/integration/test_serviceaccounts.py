"""The serviceaccount and root-CA publisher controllers, on a real server with its controller-manager."""

from __future__ import annotations

import base64
import json

from conftest import Cluster, eventually

ROOT_CA = "kube-root-ca.crt"


def _get_json(cluster: Cluster, *args: str) -> dict | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_new_namespace_gets_default_service_account_and_root_ca(cluster: Cluster, namespace: str):
    account = eventually(lambda: _get_json(cluster, "serviceaccount", "default", "-n", namespace), timeout=60)
    assert account["metadata"]["name"] == "default"
    configmap = eventually(lambda: _get_json(cluster, "configmap", ROOT_CA, "-n", namespace), timeout=60)
    assert configmap["data"] == {"ca.crt": (cluster.data_dir / "tls" / "ca.crt").read_text()}
    assert "kubernetes.io/description" in configmap["metadata"]["annotations"]


def test_system_namespaces_have_them_too(cluster: Cluster):
    for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
        eventually(lambda ns=namespace: _get_json(cluster, "serviceaccount", "default", "-n", ns), timeout=60)
        eventually(lambda ns=namespace: _get_json(cluster, "configmap", ROOT_CA, "-n", ns), timeout=60)


def test_deleted_default_service_account_comes_back(cluster: Cluster, namespace: str):
    first = eventually(lambda: _get_json(cluster, "serviceaccount", "default", "-n", namespace), timeout=60)
    cluster.kubectl("delete", "serviceaccount", "default", "-n", namespace)

    def recreated():
        account = _get_json(cluster, "serviceaccount", "default", "-n", namespace)
        return account if account and account["metadata"]["uid"] != first["metadata"]["uid"] else None

    eventually(recreated, timeout=60)


def test_root_ca_configmap_is_kept_correct(cluster: Cluster, namespace: str):
    ca = (cluster.data_dir / "tls" / "ca.crt").read_text()
    eventually(lambda: _get_json(cluster, "configmap", ROOT_CA, "-n", namespace), timeout=60)
    cluster.kubectl("patch", "configmap", ROOT_CA, "-n", namespace, "--type", "merge",
                    "-p", json.dumps({"data": {"ca.crt": "tampered", "extra": "x"}}))
    eventually(lambda: (_get_json(cluster, "configmap", ROOT_CA, "-n", namespace) or {}).get("data")
               == {"ca.crt": ca}, timeout=60)
    cluster.kubectl("delete", "configmap", ROOT_CA, "-n", namespace)
    eventually(lambda: (_get_json(cluster, "configmap", ROOT_CA, "-n", namespace) or {}).get("data")
               == {"ca.crt": ca}, timeout=60)


def test_legacy_token_secret_is_filled_and_revoked_with_it(cluster: Cluster, namespace: str):
    from test_authn import whoami

    cluster.kubectl("create", "serviceaccount", "legacy", "-n", namespace)
    account = cluster.kubectl_json("get", "serviceaccount", "legacy", "-n", namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "legacy-token", "namespace": namespace,
                     "annotations": {"kubernetes.io/service-account.name": "legacy"}}}))

    def filled():
        secret = _get_json(cluster, "secret", "legacy-token", "-n", namespace)
        return secret if secret and "token" in (secret.get("data") or {}) else None

    secret = eventually(filled, timeout=60)
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == account["metadata"]["uid"]
    assert base64.b64decode(secret["data"]["namespace"]).decode() == namespace
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == (cluster.data_dir / "tls" / "ca.crt").read_text()
    token = base64.b64decode(secret["data"]["token"]).decode()
    status, review = whoami(cluster, token)
    assert status == 201
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:legacy"
    assert review["status"]["userInfo"]["uid"] == account["metadata"]["uid"]

    cluster.kubectl("delete", "secret", "legacy-token", "-n", namespace)
    eventually(lambda: whoami(cluster, token)[0] == 401, timeout=60)


def test_legacy_token_secret_without_its_service_account_is_deleted(cluster: Cluster, namespace: str):
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "orphan-token", "namespace": namespace,
                     "annotations": {"kubernetes.io/service-account.name": "nobody"}}}))
    eventually(lambda: _get_json(cluster, "secret", "orphan-token", "-n", namespace) is None, timeout=60)
