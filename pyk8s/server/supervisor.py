"""Supervision of component child processes for `pyk8s server` (scheduler, controller-manager, ...).

Each child is a command line. The supervisor starts it, watches it, and when it exits starts it again
after a backoff that doubles from `initial_backoff` to `max_backoff` and resets once a run has lasted
`healthy_after` seconds (a crash loop slows down; a rare crash restarts fast). `stop()` sends SIGTERM
to each child by its PID, waits up to `stop_timeout`, then SIGKILLs what is left. On Linux each child
also asks the kernel for SIGTERM should the supervising process die without stopping it, so no
component outlives the server.

    supervisor = Supervisor()
    supervisor.add("controller-manager", [sys.executable, "-m", "pyk8s.cli", "controller-manager", ...],
                   log_path=data_dir / "logs" / "controller-manager.log")
    await supervisor.start()
    ...
    await supervisor.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..client.workqueue import REAL_CLOCK, Clock

log = logging.getLogger("pyk8s.server.supervisor")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_path: Path | None = None
    cwd: Path | None = None
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    last_exit_code: int | None = None
    _task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None
        return self.process.pid


class Supervisor:
    """Keeps a set of child processes running until stopped."""

    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 60.0, healthy_after: float = 60.0,
                 stop_timeout: float = 10.0, clock: Clock = REAL_CLOCK):
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after
        self.stop_timeout = stop_timeout
        self.clock = clock
        self.children: dict[str, Child] = {}
        self._started = False
        self._stopping = False

    def add(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            log_path: Path | None = None, cwd: Path | None = None) -> Child:
        """Register a child (started at once if the supervisor is already running). `env` replaces the
        environment when given; `log_path` receives stdout and stderr (appended), else they are inherited."""
        if name in self.children:
            raise ValueError(f"a child named {name!r} is already supervised")
        if not argv:
            raise ValueError("argv must not be empty")
        child = Child(name, list(argv), dict(env) if env is not None else None, log_path, cwd)
        self.children[name] = child
        if self._started and not self._stopping:
            self._launch(child)
        return child

    def pid(self, name: str) -> int | None:
        return self.children[name].pid

    async def start(self) -> None:
        """Start every registered child and keep them running."""
        if self._started:
            return
        self._started = True
        for child in self.children.values():
            self._launch(child)

    def _launch(self, child: Child) -> None:
        child._task = asyncio.get_running_loop().create_task(self._keep_running(child), name=f"supervise-{child.name}")

    async def _keep_running(self, child: Child) -> None:
        backoff = self.initial_backoff
        while not self._stopping:
            started = self.clock.now()
            try:
                code = await self._run_once(child)
            except OSError as exc:
                log.error("component %s: cannot start %s: %s", child.name, child.argv[0], exc)
                code = None
            if self._stopping:
                return
            if self.clock.now() - started >= self.healthy_after:
                backoff = self.initial_backoff
            log.warning("component %s exited with %s; restarting in %.1fs", child.name,
                        _describe_exit(code), backoff)
            await self.clock.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)

    async def _run_once(self, child: Child) -> int:
        log_file: IO[bytes] | None = None
        if child.log_path is not None:
            child.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(child.log_path, "ab")  # handed to the child; closed below
        try:
            child.process = await asyncio.create_subprocess_exec(
                *child.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=child.env,
                cwd=child.cwd, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own copy of the descriptor
        child.starts += 1
        log.info("component %s started (pid %d)", child.name, child.process.pid)
        child.last_exit_code = await child.process.wait()
        return child.last_exit_code

    async def stop(self) -> None:
        """Stop supervising; SIGTERM every child by PID, SIGKILL those still there after stop_timeout."""
        self._stopping = True
        children = list(self.children.values())
        for child in children:
            if child._task is not None and child.pid is None:
                child._task.cancel()  # waiting out a backoff: nothing to stop
        for child in children:
            self._signal(child, signal.SIGTERM)
        waits = [self._wait_stopped(child) for child in children]
        await asyncio.gather(*waits)
        for child in children:
            if child._task is not None:
                child._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child._task
                child._task = None

    async def _wait_stopped(self, child: Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        try:
            async with asyncio.timeout(self.stop_timeout):
                await process.wait()
        except TimeoutError:
            log.warning("component %s (pid %d) did not stop in %.0fs; killing it", child.name, process.pid,
                        self.stop_timeout)
            self._signal(child, signal.SIGKILL)
            await process.wait()
        log.info("component %s stopped (%s)", child.name, _describe_exit(process.returncode))

    @staticmethod
    def _signal(child: Child, sig: signal.Signals) -> None:
        pid = child.pid
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "a start failure"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
