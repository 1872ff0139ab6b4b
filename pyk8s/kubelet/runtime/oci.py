"""Build small OCI image archives from the host's static busybox, so nodes and tests need no registry.

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) in a tar file, the format
`ctr images import` (and `pyk8s images import`) reads. The image name travels in the index's
`io.containerd.image.name` annotation. Archives are reproducible: fixed timestamps and owners, sorted entries,
gzip without a timestamp, so the same busybox gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# Applets linked into /bin; busybox-static dispatches on argv[0].
BUSYBOX_APPLETS = (
    "sh", "ash", "cat", "echo", "env", "false", "hostname", "id", "kill", "ls", "mkdir", "nc", "ping", "ps",
    "rm", "sleep", "tail", "head", "touch", "true", "wget", "wc", "grep", "date", "uname", "httpd", "dd", "tr",
    "tar", "cp", "mv", "sed", "seq", "nslookup", "test", "timeout",
)

# The pause process must end on SIGTERM: PID 1 in a pid namespace ignores signals it installs no handler for.
PAUSE_COMMAND = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait")

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ImageBuildError(Exception):
    """The image cannot be built on this host (e.g. no static busybox)."""


@dataclass
class ImageDefinition:
    """What goes into one image: a fully qualified name, its command and extra files."""

    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("/bin/sh",)
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltImage:
    name: str
    manifest_digest: str
    config_digest: str
    layer_diff_id: str


def normalize_image_name(name: str) -> str:
    """Qualify a reference the way containerd's CRI stores it: docker.io/library/busybox:latest."""
    first, sep, rest = name.partition("/")
    if not sep:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static_elf(path):
            return path
    raise ImageBuildError("no static busybox found (install Debian's busybox-static: scripts/install.sh)")


def _is_static_elf(path: Path) -> bool:
    # A dynamically linked ELF carries a PT_INTERP program header naming its loader; a static one does not.
    data = path.read_bytes()
    return data[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in data[:4096] and b"/lib/ld-" not in data[:4096]


def oci_architecture() -> str:
    machine = platform.machine().lower()
    return _ARCHITECTURES.get(machine, machine)


def busybox_image(name: str, busybox: Path | None = None, cmd: tuple[str, ...] = ("/bin/sh",)) -> ImageDefinition:
    return ImageDefinition(name=normalize_image_name(name), cmd=cmd, files=_busybox_files(busybox or find_busybox()))


def pause_image(name: str, busybox: Path | None = None) -> ImageDefinition:
    return ImageDefinition(name=normalize_image_name(name), entrypoint=PAUSE_COMMAND, cmd=(),
                     files=_busybox_files(busybox or find_busybox()))


def _busybox_files(busybox: Path) -> dict[str, bytes]:
    return {
        "bin/busybox": busybox.read_bytes(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }


def _layer_tar(spec: ImageDefinition) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "usr/bin", "var"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for path in sorted(spec.files):
            data = spec.files[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if path.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
        if "bin/busybox" in spec.files:
            for applet in BUSYBOX_APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type = tarfile.SYMTYPE
                info.linkname = "busybox"
                info.mode = 0o777
                tar.addfile(info)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def build_oci_archive(spec: ImageDefinition, dest: Path) -> BuiltImage:
    """Write `spec` as an OCI image layout tar to `dest` and return its digests."""
    layer = _layer_tar(spec)
    diff_id = _sha256(layer)
    layer_gz = gzip.compress(layer, compresslevel=6, mtime=0)
    config = {
        "architecture": oci_architecture(),
        "os": "linux",
        "config": {
            "Env": list(spec.env),
            **({"Entrypoint": list(spec.entrypoint)} if spec.entrypoint else {}),
            **({"Cmd": list(spec.cmd)} if spec.cmd else {}),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "pyk8s oci.build_oci_archive"}],
    }
    config_bytes = _canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": _sha256(layer_gz), "size": len(layer_gz)}],
    }
    manifest_bytes = _canonical_json(manifest)
    tag = spec.name.rsplit(":", 1)[-1] if ":" in spec.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": _sha256(manifest_bytes),
            "size": len(manifest_bytes),
            "annotations": {NAME_ANNOTATION: spec.name, REF_ANNOTATION: tag},
        }],
    }
    entries = {
        "oci-layout": _canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _canonical_json(index),
    }
    for blob in (layer_gz, config_bytes, manifest_bytes):
        entries["blobs/sha256/" + _sha256(blob).removeprefix("sha256:")] = blob
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return BuiltImage(name=spec.name, manifest_digest=_sha256(manifest_bytes),
                      config_digest=manifest["config"]["digest"], layer_diff_id=diff_id)
