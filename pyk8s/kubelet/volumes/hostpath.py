"""hostPath volumes: upstream's type checks (pkg/volume/hostpath/host_path.go checkTypeInternal)."""

from __future__ import annotations

import os
import stat


class HostPathError(ValueError):
    """The path is not what the volume's `type` demands; the message is upstream's."""


def _mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None


def check_type(path: str, path_type: str | None) -> None:
    """Check (or create, for the *OrCreate types) `path`; an empty type checks nothing."""
    if not path_type:
        return
    mode = _mode(path)
    if path_type == "DirectoryOrCreate":
        if mode is None:
            os.makedirs(path, mode=0o755, exist_ok=True)
            return
        path_type = "Directory"
    elif path_type == "FileOrCreate":
        if mode is None:
            # Like upstream: the parent directory must exist already.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            return
        path_type = "File"
    checks = {
        "Directory": (stat.S_ISDIR, "a directory"),
        "File": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket file"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if path_type not in checks:
        raise HostPathError(f"{path_type} is an invalid volume type")
    is_kind, what = checks[path_type]
    if mode is None or not is_kind(mode):
        raise HostPathError(f"hostPath type check failed: {path} is not {what}")
