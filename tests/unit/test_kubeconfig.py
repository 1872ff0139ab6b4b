"""Kubeconfig writing (checked with the real kubectl and Python client) and static token files."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from pyk8s.server.kubeconfig import load_token_file, write_kubeconfig
from pyk8s.server.pki import PKI, client_identity, ensure_pki, server_ssl_context


@pytest.fixture
def cluster_pki(tmp_path: Path) -> PKI:
    return ensure_pki(tmp_path / "data", hostnames=[], ips=[])


def admin_kubeconfig(p: PKI, path: Path, server: str = "https://127.0.0.1:6443", **kw) -> Path:
    write_kubeconfig(path, server, p.ca_pem(), p.admin_cert.read_bytes(), p.admin_key.read_bytes(), **kw)
    return path


def test_kubeconfig_contents(cluster_pki: PKI, tmp_path: Path):
    path = admin_kubeconfig(cluster_pki, tmp_path / "kube" / "config.yaml")
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == "v1" and config["kind"] == "Config"
    assert config["current-context"] == "default"
    assert config["contexts"] == [{"context": {"cluster": "default", "user": "default"}, "name": "default"}]
    cluster = config["clusters"][0]
    assert cluster["name"] == "default" and cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == cluster_pki.ca_pem()
    user = config["users"][0]
    assert user["name"] == "default"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == cluster_pki.admin_cert.read_bytes()
    assert base64.b64decode(user["user"]["client-key-data"]) == cluster_pki.admin_key.read_bytes()


def test_kubeconfig_is_private_and_replaced_atomically(cluster_pki: PKI, tmp_path: Path):
    path = tmp_path / "kube" / "config.yaml"
    path.parent.mkdir()
    path.write_text("old")
    os.chmod(path, 0o644)
    admin_kubeconfig(cluster_pki, path, cluster_name="c", user="u", context="x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["current-context"] == "x"
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(KUBECTL is None, reason="kubectl binary not installed")
def test_kubectl_reads_the_kubeconfig(cluster_pki: PKI, tmp_path: Path):
    path = admin_kubeconfig(cluster_pki, tmp_path / "config.yaml", cluster_name="pyk8s", user="admin",
                            context="pyk8s")
    out = subprocess.run([KUBECTL, "config", "view", "--kubeconfig", str(path), "--minify", "-o",
                          "jsonpath={.clusters[0].cluster.server} {.users[0].name} {.contexts[0].context.cluster}"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout == "https://127.0.0.1:6443 admin pyk8s"


async def test_python_client_authenticates_with_the_kubeconfig(cluster_pki: PKI, tmp_path: Path):
    """The official client loads the kubeconfig, verifies the serving certificate and presents
    the admin certificate, which the server sees as system:admin."""
    kubernetes = pytest.importorskip("kubernetes")

    async def whoami(request: web.Request) -> web.Response:
        identity = client_identity(request.transport.get_extra_info("peercert"))
        return web.json_response({"major": "1", "minor": "32", "gitVersion": f"{identity}", "gitCommit": "",
                                  "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "gc",
                                  "platform": "linux/amd64"})

    app = web.Application()
    app.router.add_get("/version/", whoami)
    app.router.add_get("/version", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock, ssl_context=server_ssl_context(cluster_pki))
    await site.start()
    try:
        path = admin_kubeconfig(cluster_pki, tmp_path / "config.yaml", server=f"https://127.0.0.1:{port}")

        def call() -> str:
            api_client = kubernetes.config.new_client_from_config(config_file=str(path))
            with api_client:
                return kubernetes.client.VersionApi(api_client).get_code().git_version

        version = await asyncio.wait_for(asyncio.to_thread(call), 30)
        assert version == str(("system:admin", ["system:masters"]))
    finally:
        await runner.cleanup()


# --- static token file -----------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    ("abc,alice,u1\n", {"abc": ("alice", "u1", [])}),
    ('abc,alice,u1,"devs,ops"\n', {"abc": ("alice", "u1", ["devs", "ops"])}),
    ("abc,alice,u1,devs\r\ndef,bob,u2,ops,extra\n", {"abc": ("alice", "u1", ["devs"]),
                                                    "def": ("bob", "u2", ["ops"])}),
    ("\nabc,alice,u1\n\n", {"abc": ("alice", "u1", [])}),
    (",alice,u1\nabc,bob,u2\n", {"abc": ("bob", "u2", [])}),
    ("abc,alice,u1\nabc,bob,u2\n", {"abc": ("bob", "u2", [])}),
    ("abc,alice,u1,\n", {"abc": ("alice", "u1", [""])}),
    ("", {}),
])
def test_load_token_file(tmp_path: Path, content, expected):
    path = tmp_path / "tokens.csv"
    path.write_text(content)
    assert load_token_file(path) == expected


def test_token_file_warns_about_empty_and_duplicate_tokens(tmp_path: Path, caplog):
    path = tmp_path / "tokens.csv"
    path.write_text(",nobody,u0\nabc,alice,u1\nabc,bob,u2\n")
    with caplog.at_level(logging.WARNING, logger="pyk8s.kubeconfig"):
        load_token_file(path)
    assert f"empty token has been found in token file '{path}', record number '1'" in caplog.text
    assert f"duplicate token has been found in token file '{path}', record number '3'" in caplog.text


def test_token_file_needs_three_columns(tmp_path: Path):
    path = tmp_path / "tokens.csv"
    path.write_text("abc,alice\n")
    with pytest.raises(ValueError) as err:
        load_token_file(path)
    assert str(err.value) == (f"token file '{path}' must have at least 3 columns (token, user name, user uid), "
                              "found 2")
