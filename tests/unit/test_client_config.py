"""Client configuration (kubeconfig, in-cluster) and resource addressing, without a server."""

from __future__ import annotations

import base64
import os

import pytest
import yaml

from pyk8s.api.kinds import REGISTRY
from pyk8s.client.api import APIStatusError, Resource, is_conflict, is_gone, is_not_found, resolve, selector_string
from pyk8s.client.config import ClientConfig, ConfigError, TokenFile


def write_kubeconfig(path, users: dict, clusters: dict | None = None, current: str = "main") -> None:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": clusters or {"server": "https://10.0.0.1:6443/"}}],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name, "namespace": f"ns-{name}"}}
                     for name in users],
    }
    path.write_text(yaml.safe_dump(doc))


def test_kubeconfig_with_embedded_data(tmp_path):
    b64 = lambda s: base64.b64encode(s).decode()  # noqa: E731
    write_kubeconfig(tmp_path / "config", {"main": {"client-certificate-data": b64(b"CERT"),
                                                    "client-key-data": b64(b"KEY")}},
                     {"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(b"CA")})
    config = ClientConfig.from_kubeconfig(tmp_path / "config")
    assert config.server == "https://10.0.0.1:6443"
    assert (config.ca_data, config.cert_data, config.key_data) == (b"CA", b"CERT", b"KEY")
    assert config.namespace == "ns-main" and config.auth_header() is None


def test_kubeconfig_file_references_are_relative_to_the_kubeconfig(tmp_path):
    write_kubeconfig(tmp_path / "config", {"main": {"client-certificate": "pki/a.crt", "client-key": "/abs/a.key"}},
                     {"server": "https://h:1", "certificate-authority": "ca.crt"})
    config = ClientConfig.from_kubeconfig(tmp_path / "config")
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.cert_file == str(tmp_path / "pki" / "a.crt") and config.key_file == "/abs/a.key"


def test_kubeconfig_tokens_and_context_choice(tmp_path):
    (tmp_path / "tok").write_text("from-file\n")
    write_kubeconfig(tmp_path / "config", {"main": {"token": "inline"}, "other": {"tokenFile": "tok"}})
    assert ClientConfig.from_kubeconfig(tmp_path / "config").auth_header() == "Bearer inline"
    other = ClientConfig.from_kubeconfig(tmp_path / "config", context="other")
    assert other.auth_header() == "Bearer from-file" and other.namespace == "ns-other"
    with pytest.raises(ConfigError):
        ClientConfig.from_kubeconfig(tmp_path / "config", context="missing")


def test_kubeconfig_rejects_exec_plugins(tmp_path):
    write_kubeconfig(tmp_path / "config", {"main": {"exec": {"command": "aws"}}})
    with pytest.raises(ConfigError, match="exec"):
        ClientConfig.from_kubeconfig(tmp_path / "config")


def test_in_cluster(tmp_path):
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("team-a")
    (tmp_path / "ca.crt").write_text("CA")
    env = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = ClientConfig.in_cluster(tmp_path, env)
    assert config.server == "https://10.43.0.1:443"
    assert config.ca_file == str(tmp_path / "ca.crt") and config.namespace == "team-a"
    assert config.auth_header() == "Bearer sa-token"
    v6 = ClientConfig.in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert v6.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError):
        ClientConfig.in_cluster(tmp_path, {})


def test_token_file_is_reread_after_the_refresh_period(tmp_path):
    path = tmp_path / "token"
    path.write_text("one")
    cached = TokenFile(path, refresh=3600)
    fresh = TokenFile(path, refresh=0)
    assert cached.token() == "one" and fresh.token() == "one"
    path.write_text("two")
    assert cached.token() == "one", "within the period the cached token is used"
    assert fresh.token() == "two", "the kubelet rotates projected tokens; we pick them up"
    os.remove(path)
    assert fresh.token() == "two", "a failed re-read keeps the last good token"


def test_default_rate_limits_are_documented_values():
    config = ClientConfig(server="https://h:1")
    assert (config.qps, config.burst) == (50.0, 100)


# ---- resource addressing ---------------------------------------------------------------


@pytest.mark.parametrize("ref, path", [
    ("pods", "/api/v1/namespaces/ns/pods/p"),
    ("Pod", "/api/v1/namespaces/ns/pods/p"),
    (("v1", "Pod"), "/api/v1/namespaces/ns/pods/p"),
    (("", "v1", "pods"), "/api/v1/namespaces/ns/pods/p"),
    ("deployments.apps", "/apis/apps/v1/namespaces/ns/deployments/p"),
    (("apps/v1", "Deployment"), "/apis/apps/v1/namespaces/ns/deployments/p"),
    (REGISTRY.lookup("coordination.k8s.io", "v1", "leases"), "/apis/coordination.k8s.io/v1/namespaces/ns/leases/p"),
    (("example.com", "v1", "widgets"), "/apis/example.com/v1/namespaces/ns/widgets/p"),
    ("events", "/api/v1/namespaces/ns/events/p"),
    ("horizontalpodautoscalers.autoscaling", "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/p"),
], ids=str)
def test_resolve_paths(ref, path):
    assert resolve(ref).path("ns", "p") == path


def test_cluster_scoped_and_collection_paths():
    nodes = resolve("nodes")
    assert nodes.path(None, "n1") == "/api/v1/nodes/n1"
    assert nodes.path("ignored", "n1") == "/api/v1/nodes/n1"
    assert resolve("pods").path() == "/api/v1/pods"
    assert resolve("pods").path("ns", "p", "binding") == "/api/v1/namespaces/ns/pods/p/binding"
    with pytest.raises(ValueError):
        resolve("pods").path(None, "p")
    with pytest.raises(ValueError):
        resolve("nosuchthings")
    assert Resource("example.com", "v1", "widgets").api_version == "example.com/v1"


def test_selector_strings():
    assert selector_string({"app": "web", "tier": "db"}) == "app=web,tier=db"
    assert selector_string("a in (b)") == "a in (b)"
    assert selector_string({}) is None and selector_string("") is None


def test_error_helpers():
    def err(code, reason=None):
        return APIStatusError({"kind": "Status", "code": code, **({"reason": reason} if reason else {})})

    assert is_not_found(err(404, "NotFound")) and is_not_found(err(404))
    assert is_conflict(err(409, "Conflict")) and not is_conflict(err(409, "AlreadyExists"))
    assert is_gone(err(410, "Expired")) and is_gone(err(410, "Gone"))
    assert not is_not_found(ValueError())
    e = err(404, "NotFound")
    assert e.code == 404 and e.reason == "NotFound" and e.status["kind"] == "Status"
