"""subPath and subPathExpr: a path inside a volume, made safe against escapes through symlinks.

Upstream (pkg/kubelet/kubelet_pods.go makeMounts, pkg/volume/util/subpath): a subPath must be relative and
may not contain `..`; a missing subPath is created as directories, one component at a time without
following symlinks; an existing one is resolved and must stay inside the volume. The runtime is then given
the resolved path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping

from ..expansion import expand


class SubPathError(ValueError):
    """The subPath cannot be used; the message is upstream's (it names no host paths)."""


def expand_subpath_expr(expression: str, env: Mapping[str, str]) -> str:
    """subPathExpr with $(VAR) from the container's env; unknown or empty variables are an error."""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        value = env.get(name, "")
        if not value:
            missing.add(name)
        return value

    expanded = expand(expression, lookup)
    if missing:
        raise SubPathError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def check_subpath(sub_path: str) -> None:
    if os.path.isabs(sub_path):
        raise SubPathError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise SubPathError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")


def is_within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _safe_make_dirs(base: str, sub_path: str, mode: int) -> None:
    """mkdir -p of sub_path under base, refusing to pass through any symlink (upstream's doSafeMakeDir)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for component in [c for c in sub_path.split("/") if c and c != "."]:
            try:
                os.mkdir(component, mode, dir_fd=fd)
                os.chmod(component, mode, dir_fd=fd)  # the umask applied at creation
            except FileExistsError:
                pass
            try:
                child = os.open(component, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SubPathError("path is a symlink or not a directory") from exc
                raise
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def prepare_subpath(volume_path: str, sub_path: str, mount_name: str, container_name: str) -> str:
    """The host path to give the runtime for `sub_path` of the volume at `volume_path`."""
    check_subpath(sub_path)
    base = os.path.realpath(volume_path)
    target = os.path.join(volume_path, sub_path)
    if not os.path.lexists(target):
        try:
            _safe_make_dirs(base, sub_path, os.stat(base).st_mode & 0o7777)
        except (OSError, SubPathError) as exc:
            raise SubPathError(f'failed to create subPath directory for volumeMount "{mount_name}" of container '
                               f'"{container_name}"') from exc
    resolved = os.path.realpath(target)
    if not is_within(resolved, base) or not os.path.exists(resolved):
        # Upstream keeps host details out of the message the user sees.
        raise SubPathError(f'failed to prepare subPath for volumeMount "{mount_name}" of container '
                           f'"{container_name}"')
    return resolved
