"""Load OCI-layout or `docker save` archives into a node's containerd, where the CRI plugin sees them.

containerd's CRI plugin only lists images in the `k8s.io` namespace, and only runs them once unpacked into its
snapshotter, so the import names both. The work is done by `ctr` (shipped with containerd), which speaks
containerd's content and image APIs on the node's socket.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

# The containerd namespace the CRI plugin works in.
K8S_NAMESPACE = "k8s.io"


class ImageImportError(Exception):
    """The archive could not be imported."""


_IMPORTED = re.compile(r"^unpacking (\S+) \(sha256:[0-9a-f]+\)", re.MULTILINE)


async def import_archive(archive: Path, socket: Path, snapshotter: str = "overlayfs",
                         namespace: str = K8S_NAMESPACE, ctr: str = "ctr", timeout: float = 120.0) -> list[str]:
    """Import `archive` and return the image names it brought in."""
    if not archive.is_file():
        raise ImageImportError(f"{archive}: no such file")
    if shutil.which(ctr) is None:
        raise ImageImportError(f"{ctr} not found (it ships with containerd: scripts/install.sh)")
    argv = [ctr, "--address", str(socket), "--namespace", namespace, "images", "import",
            "--snapshotter", snapshotter, str(archive)]
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ImageImportError(f"importing {archive} took longer than {timeout}s") from None
    if process.returncode != 0:
        raise ImageImportError(f"importing {archive} failed: {stderr.decode(errors='replace').strip()}")
    names = _IMPORTED.findall(stdout.decode(errors="replace"))
    if not names:
        # An archive without image names (no io.containerd.image.name / RepoTags) imports blobs nobody can run.
        raise ImageImportError(f"{archive} holds no named image; tag it (docker save NAME:TAG) before importing")
    log.info("imported %s from %s", ", ".join(names), archive)
    return names
