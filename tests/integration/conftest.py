"""A real `pyk8s server` process for the integration tests, and the real clients to drive it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema_oracle import assert_valid

VENV_BIN = Path(sys.executable).parent
KUBECTL = shutil.which("kubectl", path=str(VENV_BIN)) or "kubectl"
KUBECTL_132 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One `pyk8s server` child process on a temp data dir, restartable on the same dir."""

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.cache_dir = data_dir / "kubectl-cache"
        self.log_path = data_dir / "server.log"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(self.data_dir),
             "--https-port", str(self.port), "--bind-address", "127.0.0.1", "--disable-agent",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pyk8s server exited: {self.log_path.read_text()[-3000:]}")
            if self.kubeconfig.exists() and self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"pyk8s server not ready in time: {self.log_path.read_text()[-3000:]}")

    def _ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.crt"))
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def kubectl(self, *args: str, binary: str = KUBECTL, check: bool = True, input: str | None = None,
                timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> dict:
        obj = json.loads(self.kubectl(*args, "-o", "json").stdout)
        validate_tree(obj)
        return obj


def validate_tree(obj: dict) -> None:
    """Schema-check an object or a list and every item in it."""
    if obj.get("kind", "").endswith("List") and obj.get("kind") != "List":
        assert_valid(obj)
    if obj.get("kind") == "List" or obj.get("kind", "").endswith("List"):
        for item in obj.get("items") or []:
            assert_valid(item)
    else:
        assert_valid(obj)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    # No scheduler here: these tests bind pods themselves and compare resourceVersions, and a scheduler writing
    # PodScheduled=False on node-less pods would race them (test_all_in_one covers the full set of components).
    c = Cluster(tmp_path_factory.mktemp("pyk8s"), ("--disable-scheduler",))
    c.start()
    yield c
    if c.process is not None:
        c.stop()


# A server with no components beside the apiserver, for tests that run the component under test themselves.
BARE = ("--disable-controller-manager", "--disable-scheduler")


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory) -> Iterator[Cluster]:
    """One component-less server per test module."""
    c = Cluster(tmp_path_factory.mktemp("bare"), BARE)
    c.start()
    yield c
    if c.process is not None:
        c.stop()


@pytest.fixture
async def client(bare_cluster: Cluster):
    """An unthrottled pyk8s.client APIClient on the bare cluster."""
    from pyk8s.client import APIClient

    async with APIClient.from_kubeconfig(str(bare_cluster.kubeconfig), qps=0) as api:
        yield api


def eventually(check, timeout: float = 20, interval: float = 0.2):
    """Poll `check` until it returns something truthy (and return it) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last result: {last!r}")


@pytest.fixture(scope="session")
def api_client(cluster: Cluster):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture
def namespace(cluster: Cluster, request) -> str:
    """A fresh namespace per test (names from the test name)."""
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50].strip("-")
    name = f"{name}-{os.getpid() % 1000}"
    # `kubectl create namespace` sends protobuf, which arrives with the next issue; apply sends JSON.
    cluster.kubectl("apply", "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    return name


def kubectl_132_available() -> bool:
    return os.access(KUBECTL_132, os.X_OK)
