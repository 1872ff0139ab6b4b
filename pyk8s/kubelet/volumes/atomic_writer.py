"""Upstream's AtomicWriter (pkg/volume/util/atomic_writer.go): configMap, secret, downwardAPI and projected
volumes are written so that a reader never sees a half-updated volume.

Layout of a target directory:

    ..2026_11_26_21_55_48.1234567/   the real files, one timestamped directory per version
    ..data -> ..2026_11_26_21_55_48.1234567
    key -> ..data/key                 every user-visible top-level name goes through ..data
    dir -> ..data/dir                 (nested paths: only the first component is a link)

An update writes a new timestamped directory, points a fresh `..data_tmp` link at it and renames that over
`..data` (rename is atomic), then drops top-level links no longer in the payload and the old directory.
Names starting with `..` are reserved for this machinery.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR_NAME = "..data"
NEW_DATA_DIR_NAME = "..data_tmp"
MAX_FILE_NAME_LENGTH = 255
MAX_PATH_LENGTH = 4096


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


class PayloadError(ValueError):
    """A payload path that may not be written (absolute, with '..', too long)."""


def validate_path(target: str) -> None:
    """Upstream's validatePath: relative, no '..' element, not starting with '..', bounded lengths."""
    if not target:
        raise PayloadError(f'invalid path: must not be empty: "{target}"')
    if os.path.isabs(target):
        raise PayloadError(f"invalid path: must be relative path: {target}")
    if len(target) > MAX_PATH_LENGTH:
        raise PayloadError(f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")
    items = target.split(os.sep)
    for item in items:
        if item == "..":
            raise PayloadError(f"invalid path: must not contain '..': {target}")
        if len(item) > MAX_FILE_NAME_LENGTH:
            raise PayloadError(f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} "
                               "characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise PayloadError(f"invalid path: must not start with '..': {target}")


def clean_payload(payload: Mapping[str, FileProjection]) -> dict[str, FileProjection]:
    cleaned = {}
    for path, projection in payload.items():
        validate_path(path)
        cleaned[os.path.normpath(path)] = projection
    return cleaned


class AtomicWriter:
    """Projects a payload {relative path: FileProjection} into `target_dir` atomically.

    Not safe for concurrent writers to the same directory: the caller serialises writes (the volume
    manager holds a per-pod lock)."""

    def __init__(self, target_dir: Path, log_context: str = "") -> None:
        self.target_dir = target_dir
        self.log_context = log_context or str(target_dir)

    @property
    def data_dir(self) -> Path:
        return self.target_dir / DATA_DIR_NAME

    def current_version(self) -> str | None:
        """The timestamped directory `..data` points at, or None before the first write."""
        try:
            return os.readlink(self.data_dir)
        except FileNotFoundError:
            return None

    def write(self, payload: Mapping[str, FileProjection]) -> bool:
        """Write the payload; returns False when the volume already held exactly this content."""
        cleaned = clean_payload(payload)
        old_version = self.current_version()
        old_dir = self.target_dir / old_version if old_version else None
        stale: set[str] = set()
        if old_dir is not None:
            stale = self._paths_to_remove(cleaned, old_dir)
            if not stale and not self._differs(cleaned, old_dir):
                return False
        new_dir = self._new_timestamp_dir()
        try:
            self._write_payload(cleaned, new_dir)
            self._create_user_visible_links(cleaned)
            new_link = self.target_dir / NEW_DATA_DIR_NAME
            if new_link.is_symlink():
                new_link.unlink()  # left by a writer that died between steps
            os.symlink(new_dir.name, new_link)
            os.rename(new_link, self.data_dir)
        except BaseException:
            _remove_tree(new_dir)
            raise
        for path in stale:
            # Only top-level names are links of their own; nested stale paths went away with the old directory.
            if os.sep not in path:
                try:
                    (self.target_dir / path).unlink()
                except FileNotFoundError:
                    pass
        if old_dir is not None:
            _remove_tree(old_dir)
        log.debug("%s: wrote new version %s", self.log_context, new_dir.name)
        return True

    def _differs(self, payload: Mapping[str, FileProjection], old_dir: Path) -> bool:
        # Content only, as upstream: ownership changes (fsGroup) adjust modes after each write.
        for path, projection in payload.items():
            try:
                if (old_dir / path).read_bytes() != projection.data:
                    return True
            except OSError:
                return True
        return False

    def _paths_to_remove(self, payload: Mapping[str, FileProjection], old_dir: Path) -> set[str]:
        if not old_dir.is_dir():
            return set()
        current = {str(p.relative_to(old_dir)) for p in old_dir.rglob("*")}
        wanted: set[str] = set()
        for path in payload:
            while path:
                wanted.add(path)
                path = os.path.dirname(path)
        return current - wanted

    def _new_timestamp_dir(self) -> Path:
        # Go's MkdirTemp: the pattern followed by random digits, e.g. ..2026_11_26_21_55_48.3141592653
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        while True:
            created = self.target_dir / f"{stamp}{random.randrange(1 << 32)}"
            try:
                os.mkdir(created, 0o700)
                break
            except FileExistsError:
                continue
        # Group and others must be able to traverse it whatever the umask (containers run as any user).
        os.chmod(created, 0o755)
        return created

    def _write_payload(self, payload: Mapping[str, FileProjection], directory: Path) -> None:
        for path, projection in payload.items():
            full = directory / path
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(projection.data)
            # The umask applied at creation; the projection's mode is what the user asked for.
            os.chmod(full, projection.mode)

    def _create_user_visible_links(self, payload: Mapping[str, FileProjection]) -> None:
        for path in payload:
            top = path.split(os.sep, 1)[0]
            link = self.target_dir / top
            if not link.is_symlink():
                os.symlink(os.path.join(DATA_DIR_NAME, top), link)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
