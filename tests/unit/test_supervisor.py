"""The component supervisor: restarts with backoff, stops children by PID, and SIGKILLs the stubborn."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from pyk8s.server.supervisor import Supervisor


async def wait_for(check, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_restarts_a_dead_child_and_stops_it(tmp_path: Path):
    supervisor = Supervisor(initial_backoff=0.05, max_backoff=0.2, stop_timeout=5)
    child = supervisor.add("sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                           log_path=tmp_path / "logs" / "sleeper.log")
    await supervisor.start()
    log = tmp_path / "logs" / "sleeper.log"
    await wait_for(lambda: log.exists() and log.read_text().count("up") == 1)
    first = supervisor.pid("sleeper")
    os.kill(first, signal.SIGKILL)
    await wait_for(lambda: supervisor.pid("sleeper") not in (None, first))
    second = supervisor.pid("sleeper")
    assert child.starts == 2 and child.last_exit_code == -signal.SIGKILL
    await wait_for(lambda: log.read_text().count("up") == 2)  # both runs wrote to the one log
    await supervisor.stop()
    assert not alive(second) and child.last_exit_code == -signal.SIGTERM


async def test_crash_loop_backs_off():
    supervisor = Supervisor(initial_backoff=0.05, max_backoff=0.4, healthy_after=60)
    child = supervisor.add("crasher", [sys.executable, "-c", "raise SystemExit(3)"])
    await supervisor.start()
    await asyncio.sleep(1.0)
    # Read before stopping: the stop's SIGTERM may land on a child that is just starting (exit -15).
    starts, last_exit_code = child.starts, child.last_exit_code
    await supervisor.stop()
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... plus start-up time: a handful of starts, not dozens.
    assert 2 <= starts <= 6 and last_exit_code == 3


async def test_a_child_ignoring_sigterm_is_killed():
    supervisor = Supervisor(stop_timeout=0.5)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(60)"
    child = supervisor.add("stubborn", [sys.executable, "-u", "-c", code])
    await supervisor.start()
    await wait_for(lambda: supervisor.pid("stubborn") is not None)
    await asyncio.sleep(0.3)  # let it install the handler
    pid = supervisor.pid("stubborn")
    await supervisor.stop()
    assert not alive(pid) and child.last_exit_code == -signal.SIGKILL


async def test_children_added_after_start_run_too():
    supervisor = Supervisor()
    await supervisor.start()
    supervisor.add("late", [sys.executable, "-c", "import time; time.sleep(60)"])
    await wait_for(lambda: supervisor.pid("late") is not None)
    await supervisor.stop()
    assert supervisor.pid("late") is None
