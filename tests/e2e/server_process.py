"""A component-less `pyk8s server` child process for end-to-end tests, optionally inside a network namespace.

Inside a namespace nothing outside can reach it, so the test talks to it through `kubectl` run in the
same namespace (`ip netns exec`). The process is stopped by its PID.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pyk8s.server.kubeconfig import write_kubeconfig
from pyk8s.server.pki import PKI

VENV_BIN = Path(sys.executable).parent
KUBECTL = shutil.which("kubectl", path=str(VENV_BIN)) or "kubectl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def eventually(check, timeout: float = 60, interval: float = 0.2):
    """Call `check` until it returns something truthy (and return it) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last result: {last!r}")


class ServerProcess:
    def __init__(self, data_dir: Path, netns: str | None = None):
        self.data_dir = data_dir
        self.netns = netns
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(self.data_dir),
                 "--https-port", str(self.port), "--bind-address", "127.0.0.1", "--disable-agent",
                 "--disable-controller-manager", "--disable-scheduler"],
                stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"pyk8s server exited: {self.log_path.read_text()[-3000:]}")
            return self.kubeconfig.exists() and self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0

        eventually(ready, timeout=90, interval=0.3)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def component_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig with a client certificate for `user`, as the launcher gives each component."""
        cert, key = PKI.at(self.data_dir / "tls").issue_client_cert(user, list(groups))
        path = self.data_dir / "components" / f"{user.replace(':', '-')}.kubeconfig"
        write_kubeconfig(path, f"https://127.0.0.1:{self.port}", (self.data_dir / "tls" / "ca.crt").read_bytes(),
                         cert, key, user=user)
        return path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [*self.prefix, KUBECTL, "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def apply(self, *objects: dict) -> None:
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objects))

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)
