"""What the benchmarks share: JSON-line output and a real `pyk8s server` process on loopback.

The server runs the apiserver alone (no controller-manager, no scheduler) so a benchmark measures
only what it drives; components under test are started by the benchmark itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, from the scheduler's nanosecond counters (Linux): the
    clock-tick resolution of /proc/<pid>/stat is too coarse for bursts of a few hundred requests."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # the thread ended between listing and reading
            pass
    return total / 1e9


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`pyk8s server` on 127.0.0.1 with a fresh data dir; stopped by its PID."""

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(data_dir), "--https-port",
             str(self.port), "--bind-address", "127.0.0.1", "--disable-agent", "--disable-controller-manager",
             "--disable-scheduler", *extra_args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "wb"))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def ssl_context(self) -> ssl.SSLContext:
        tls = self.data_dir / "tls"
        ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
        return ctx

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.data_dir / "server.log").read_text()[-3000:])
            if self.kubeconfig.exists():
                try:
                    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context())) as s:
                        async with s.get(self.url + "/readyz") as resp:
                            if resp.status == 200:
                                return
                except (aiohttp.ClientError, OSError):
                    pass
            await asyncio.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class PeakRss:
    """Samples a process's RSS every 0.25 s and keeps the maximum (`stop()` returns it in MiB)."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            await asyncio.sleep(0.25)

    def start(self) -> None:
        self.task = asyncio.create_task(self._sample())

    def stop(self) -> float:
        if self.task is not None:
            self.task.cancel()
        return round(self.peak / 2**20, 1)
