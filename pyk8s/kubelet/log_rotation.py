"""Container log rotation: the kubelet's ContainerLogManager (upstream pkg/kubelet/logs).

The runtime writes each container's CRI log to one file (`<pod log dir>/<container>/<restartCount>.log`) and
never trims it. Every monitor period the manager lists the runtime's containers and, for each RUNNING one (an
exited container writes nothing more, so an empty fresh file would be pointless), looks at the size of its
log file. One that reached the maximum size is rotated, as upstream does:

1. leftovers of an earlier failed pass go: `*.tmp` (a compression that did not finish) and an uncompressed
   file whose `.gz` already exists (the compression finished but the original was not removed yet);
2. the oldest rotated files go until at most `max_files - 2` are left (with the file about to be rotated and
   the fresh one the runtime opens, that makes `max_files`);
3. every rotated file that is not compressed yet is gzipped (to `<name>.tmp`, renamed to `<name>.gz`);
4. the live file is renamed to `<name>.<YYYYmmdd-HHMMSS>` (left uncompressed, so readers that have it open,
   such as `kubectl logs -f`, can finish it) and the runtime is told to reopen the container's log
   (CRI ReopenContainerLog), which creates a new live file. If the runtime cannot, the rename is undone so
   that the next pass tries again and no output goes to a file nobody rotates.

File work runs in a thread: a slow disk or a big gzip must never hold up the kubelet's event loop.
When the kubelet removes a container it removes its logs with it (`remove_container_logs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..api import quantity
from .runtime.cri import CRIClient, CRIError, pb

log = logging.getLogger("pyk8s.kubelet.log_rotation")

# Upstream's KubeletConfiguration defaults.
DEFAULT_MAX_SIZE = "10Mi"
DEFAULT_MAX_SIZE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 5
DEFAULT_MONITOR_PERIOD = 10.0
DEFAULT_WORKERS = 1

# Go's "20060102-150405": sorts in time order, which is what makes "oldest first" a plain sort.
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"
_COPY_BLOCK = 1024 * 1024


class LogRotationError(Exception):
    """One container's rotation failed; the message says which step (logged, retried next pass)."""


def parse_max_size(text: str) -> int:
    """--container-log-max-size as bytes (a quantity such as 10Mi); negative disables rotation.
    ValueError with upstream's message when it is not a whole number of bytes."""
    try:
        parsed = quantity.parse(text)
    except quantity.QuantityError as exc:
        raise ValueError(f'failed to parse container log max size "{text}": {exc}') from None
    if parsed.value.denominator != 1:
        raise ValueError(f'failed to parse container log max size "{text}": invalid max log size')
    return int(parsed.value)


def validate_max_files(max_files: int) -> None:
    """KubeletConfiguration validation of containerLogMaxFiles (ValueError with upstream's message)."""
    if max_files <= 1:
        raise ValueError("invalid configuration: containerLogMaxFiles must be greater than 1")


@dataclass
class RotationPass:
    """What one pass did (returned by rotate_once, for logs and tests)."""

    checked: int = 0
    rotated: int = 0
    failed: int = 0


class ContainerLogManager:
    """Rotates the CRI log files of running containers; `start()`/`await stop()`, or `await rotate_once()`."""

    def __init__(self, runtime: CRIClient, max_size_bytes: int, max_files: int,
                 monitor_period: float = DEFAULT_MONITOR_PERIOD, workers: int = DEFAULT_WORKERS,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        if max_files <= 1:
            raise ValueError(f"invalid MaxFiles {max_files}, must be > 1")
        if workers < 1:
            raise ValueError("invalid configuration: containerLogMaxWorkers must be greater than or equal to 1")
        if monitor_period <= 0:
            raise ValueError("container log monitor period must be positive")
        self.runtime = runtime
        self.max_size = max_size_bytes
        self.max_files = max_files
        self.monitor_period = monitor_period
        self.workers = workers
        # Upstream names rotated files by the kubelet's local time (Go's time.Now()).
        self.clock = clock
        self._task: asyncio.Task | None = None

    # ---- the loop ----

    def start(self) -> None:
        if self._task is None or self._task.done():
            log.info("container log rotation: max size %d bytes, max files %d, %d worker(s), every %gs",
                     self.max_size, self.max_files, self.workers, self.monitor_period)
            self._task = asyncio.create_task(self._run(), name="container-log-rotation")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.rotate_once()
            except CRIError as exc:
                log.error("failed to rotate container logs: %s", exc)
            except Exception:
                log.exception("failed to rotate container logs")
            await asyncio.sleep(self.monitor_period)

    async def rotate_once(self) -> RotationPass:
        """One pass over the runtime's running containers, `workers` of them at a time."""
        containers = await self.runtime.list_containers()
        queue: asyncio.Queue[str] = asyncio.Queue()
        for container in containers:
            if container.state == pb.CONTAINER_RUNNING:
                queue.put_nowait(container.id)
        stats = RotationPass()

        async def worker() -> None:
            while not queue.empty():
                container_id = queue.get_nowait()
                stats.checked += 1
                try:
                    if await self._process_container(container_id):
                        stats.rotated += 1
                except (LogRotationError, CRIError, OSError) as exc:
                    stats.failed += 1
                    log.error("container %s: log rotation failed: %s", container_id, exc)

        await asyncio.gather(*(worker() for _ in range(min(self.workers, queue.qsize()))))
        return stats

    # ---- one container ----

    async def _process_container(self, container_id: str) -> bool:
        """Rotate the container's log if it reached the maximum size; True when it was rotated."""
        try:
            status = (await self.runtime.container_status(container_id)).status
        except CRIError as exc:
            if exc.not_found:
                return False  # removed since the list was taken
            raise
        path = status.log_path
        if not path:
            return False  # created without a log path: the runtime keeps no log for it
        size = await asyncio.to_thread(_size, path)
        if size is None:
            # The live file is gone (a rotation that renamed it and then died): have the runtime create it.
            try:
                await self.runtime.reopen_container_log(container_id)
            except CRIError as exc:
                raise LogRotationError(f"log {path} does not exist, reopening it failed: {exc}") from None
            size = await asyncio.to_thread(_size, path)
            if size is None:
                raise LogRotationError(f"log {path} still does not exist after reopening it")
        if size < self.max_size:
            return False
        rotated = f"{path}.{self.clock().strftime(TIMESTAMP_FORMAT)}"
        if not await asyncio.to_thread(self._prepare_rotation, path, rotated):
            return False
        await self._rotate_latest(container_id, path, rotated)
        log.debug("container %s: rotated %s (%d bytes) to %s", container_id, path, size, rotated)
        return True

    def _prepare_rotation(self, path: str, rotated: str) -> bool:
        """Steps 1-3 on the files beside `path`; False when `rotated` (this second's name) is taken, which
        happens only when rotating more than once a second: the next pass rotates it instead."""
        logs = glob.glob(glob.escape(path) + ".*")
        logs = _remove_unused(logs)
        logs = _remove_excess(logs, max(self.max_files - 2, 0))
        for name in logs:
            if not name.endswith(COMPRESS_SUFFIX):
                _compress(name)
        return not (os.path.lexists(rotated) or os.path.lexists(rotated + COMPRESS_SUFFIX))

    async def _rotate_latest(self, container_id: str, path: str, rotated: str) -> None:
        try:
            await asyncio.to_thread(os.rename, path, rotated)
        except OSError as exc:
            raise LogRotationError(f"failed to rotate log {path!r} to {rotated!r}: {exc}") from None
        try:
            await self.runtime.reopen_container_log(container_id)
        except CRIError as exc:
            # Put it back so the next pass can try again; if this fails too the runtime keeps writing to the
            # rotated file until the next successful rotation.
            try:
                await asyncio.to_thread(os.rename, rotated, path)
            except OSError as rename_exc:
                log.error("container %s: failed to rename rotated log %s back to %s: %s", container_id, rotated,
                          path, rename_exc)
            raise LogRotationError(f"failed to reopen container log {container_id!r}: {exc}") from None


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _split_unused(logs: list[str]) -> tuple[list[str], list[str]]:
    names = set(logs)
    in_use, unused = [], []
    for name in logs:
        if name.endswith(TMP_SUFFIX) or (not name.endswith(COMPRESS_SUFFIX) and name + COMPRESS_SUFFIX in names):
            unused.append(name)
        else:
            in_use.append(name)
    return in_use, unused


def _remove_unused(logs: list[str]) -> list[str]:
    in_use, unused = _split_unused(logs)
    for name in unused:
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LogRotationError(f"failed to remove unused log {name!r}: {exc}") from None
    return in_use


def _remove_excess(logs: list[str], keep: int) -> list[str]:
    """Remove the oldest until `keep` are left (oldest first, so a reader on a newer one is not cut off)."""
    logs = sorted(logs)
    excess = max(len(logs) - keep, 0)
    for name in logs[:excess]:
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LogRotationError(f"failed to remove old log {name!r}: {exc}") from None
    return logs[excess:]


def _compress(name: str) -> None:
    """`name` -> `name.gz` through `name.tmp` (a crash leaves only a .tmp, which the next pass removes)."""
    tmp = name + TMP_SUFFIX
    try:
        mode = os.stat(name).st_mode & 0o7777
        with open(name, "rb") as source:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw) as out:
                shutil.copyfileobj(source, out, _COPY_BLOCK)
        os.rename(tmp, name + COMPRESS_SUFFIX)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise LogRotationError(f"failed to compress log {name!r}: {exc}") from None
    try:
        os.remove(name)
    except OSError as exc:
        raise LogRotationError(f"failed to remove log {name!r} after compressing it: {exc}") from None


def remove_container_logs(path: str) -> None:
    """The live log of a removed container and every rotated or compressed one beside it (upstream's Clean)."""
    for name in glob.glob(glob.escape(path) + "*"):
        if name == path or name.startswith(path + "."):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)


def container_log_manager(runtime: CRIClient, max_size_bytes: int, max_files: int,
                          monitor_period: float = DEFAULT_MONITOR_PERIOD,
                          workers: int = DEFAULT_WORKERS) -> ContainerLogManager | None:
    """The manager for these settings, or None when rotation is disabled (a negative max size, as upstream)."""
    if max_size_bytes < 0:
        return None
    return ContainerLogManager(runtime, max_size_bytes, max_files, monitor_period, workers)
