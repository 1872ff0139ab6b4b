"""The few mount operations volumes need (tmpfs for medium: Memory emptyDirs and memory-backed secrets), the
mount table, and disk usage for emptyDir sizeLimit checks."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


class MountError(OSError):
    pass


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field  # nearly every line: no per-character walk
    out, i = [], 0
    while i < len(field):
        escape = field[i + 1:i + 4]
        if field[i] == "\\" and len(escape) == 3 and escape.isdigit():
            out.append(chr(int(escape, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points_under(root: Path) -> list[str]:
    """Mount points at or below `root` in this process's mount namespace, deepest first."""
    base = os.path.realpath(root)
    found = []
    try:
        lines = MOUNTINFO.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(" ", 5)
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == base or point.startswith(base.rstrip("/") + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def is_mount_point(path: Path) -> bool:
    return os.path.realpath(path) in mount_points_under(path)


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise MountError(f"{' '.join(argv)} failed: exit status {process.returncode}: "
                         f"{stderr.decode(errors='replace').strip()}")


async def mount_tmpfs(path: Path, size_bytes: int | None) -> None:
    options = f"size={size_bytes}" if size_bytes else "defaults"
    await _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path))


async def unmount(path: str) -> None:
    await _run("umount", path)


def disk_usage(root: Path) -> int:
    """Bytes allocated to files below root (like `du`), not following symlinks nor crossing into other
    filesystems."""
    total = 0
    try:
        device = os.lstat(root).st_dev
    except FileNotFoundError:
        return 0
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_dev != device:
                continue
            total += info.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total
