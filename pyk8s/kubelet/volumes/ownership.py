"""fsGroup: upstream's SetVolumeOwnership (pkg/volume/volume_linux.go). Every file and directory gets the
group, group read (and write unless the volume is read-only), and directories setgid + group exec, so new
files inherit the group. `OnRootMismatch` skips the walk when the volume root already looks right."""

from __future__ import annotations

import os
import stat

RW_MASK = 0o660
RO_MASK = 0o440
EXEC_MASK = 0o110
ON_ROOT_MISMATCH = "OnRootMismatch"


def _wanted_mode(mode: int, readonly: bool) -> int:
    mask = RO_MASK if readonly else RW_MASK
    if stat.S_ISDIR(mode):
        mask |= stat.S_ISGID | EXEC_MASK
    return stat.S_IMODE(mode) | mask


def _change(path: str, fs_group: int, readonly: bool) -> None:
    os.lchown(path, -1, fs_group)
    info = os.lstat(path)
    # chmod through a symlink would change its target (e.g. the atomic writer's data files) a second time.
    if stat.S_ISLNK(info.st_mode):
        return
    os.chmod(path, _wanted_mode(info.st_mode, readonly))


def root_matches(root: str, fs_group: int, readonly: bool) -> bool:
    info = os.stat(root)
    return info.st_gid == fs_group and stat.S_IMODE(info.st_mode) == _wanted_mode(info.st_mode, readonly)


def set_volume_ownership(root: str, fs_group: int, readonly: bool, change_policy: str | None = None) -> None:
    if change_policy == ON_ROOT_MISMATCH and root_matches(root, fs_group, readonly):
        return
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in files + dirs:
            _change(os.path.join(directory, name), fs_group, readonly)
    _change(root, fs_group, readonly)
