"""OCI image archives built from busybox-static: layout, digests, config, reproducibility."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from pyk8s.kubelet.runtime.containerd import (
    ContainerdConfig,
    ContainerdError,
    bridge_network,
    configured_snapshotter,
    render_config,
)
from pyk8s.kubelet.runtime.oci import (
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    NAME_ANNOTATION,
    PAUSE_COMMAND,
    ImageBuildError,
    build_oci_archive,
    busybox_image,
    find_busybox,
    normalize_image_name,
    oci_architecture,
    pause_image,
)


@pytest.fixture
def fake_busybox(tmp_path: Path) -> Path:
    # Content does not matter for the layout; a real busybox is only needed to run the image.
    path = tmp_path / "busybox"
    path.write_bytes(b"\x7fELF-not-really-busybox" * 100)
    return path


def _read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _blob(files: dict[str, bytes], digest: str) -> bytes:
    algorithm, hex_digest = digest.split(":")
    assert algorithm == "sha256"
    data = files[f"blobs/sha256/{hex_digest}"]
    assert hashlib.sha256(data).hexdigest() == hex_digest
    return data


def test_archive_is_an_oci_layout_with_verified_digests(tmp_path: Path, fake_busybox: Path) -> None:
    built = build_oci_archive(busybox_image("pyk8s.local/busybox:1.35", fake_busybox), tmp_path / "bb.tar")
    files = _read_archive(tmp_path / "bb.tar")
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    index = json.loads(files["index.json"])
    [descriptor] = index["manifests"]
    assert descriptor["mediaType"] == MEDIA_MANIFEST
    assert descriptor["annotations"][NAME_ANNOTATION] == "pyk8s.local/busybox:1.35"
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == "1.35"
    assert descriptor["digest"] == built.manifest_digest
    manifest_bytes = _blob(files, descriptor["digest"])
    assert descriptor["size"] == len(manifest_bytes)

    manifest = json.loads(manifest_bytes)
    assert manifest["config"]["digest"] == built.config_digest
    config = json.loads(_blob(files, manifest["config"]["digest"]))
    assert config["os"] == "linux" and config["architecture"] == oci_architecture()
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert "Entrypoint" not in config["config"]

    [layer_descriptor] = manifest["layers"]
    assert layer_descriptor["mediaType"] == MEDIA_LAYER_GZIP
    layer = gzip.decompress(_blob(files, layer_descriptor["digest"]))
    # The config's diff_id is the digest of the uncompressed layer: containerd checks it when unpacking.
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}
    assert built.layer_diff_id == config["rootfs"]["diff_ids"][0]

    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile(members["bin/busybox"]).read() == fake_busybox.read_bytes()
        assert members["bin/busybox"].mode == 0o755
        assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
        assert members["bin/sleep"].issym()
        assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
        assert b"root:x:0:0:" in tar.extractfile(members["etc/passwd"]).read()


def test_archives_are_reproducible(tmp_path: Path, fake_busybox: Path) -> None:
    first = build_oci_archive(busybox_image("pyk8s.local/busybox:1", fake_busybox), tmp_path / "a.tar")
    second = build_oci_archive(busybox_image("pyk8s.local/busybox:1", fake_busybox), tmp_path / "b.tar")
    assert first == second
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    other = build_oci_archive(busybox_image("pyk8s.local/busybox:1", fake_busybox, cmd=("sleep", "1")),
                              tmp_path / "c.tar")
    assert other.config_digest != first.config_digest
    assert other.layer_diff_id == first.layer_diff_id


def test_pause_image_runs_a_process_that_ends_on_sigterm(tmp_path: Path, fake_busybox: Path) -> None:
    built = build_oci_archive(pause_image("registry.k8s.io/pause:3.10", fake_busybox), tmp_path / "pause.tar")
    files = _read_archive(tmp_path / "pause.tar")
    config = json.loads(_blob(files, json.loads(_blob(files, built.manifest_digest))["config"]["digest"]))
    assert config["config"]["Entrypoint"] == list(PAUSE_COMMAND)
    assert "trap" in PAUSE_COMMAND[-1] and "TERM" in PAUSE_COMMAND[-1]
    assert "Cmd" not in config["config"]


@pytest.mark.parametrize(("name", "normalized"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/app", "docker.io/user/app:latest"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("localhost/app", "localhost/app:latest"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
    ("quay.io/a/b@sha256:" + "0" * 64, "quay.io/a/b@sha256:" + "0" * 64),
])
def test_normalize_image_name(name: str, normalized: str) -> None:
    assert normalize_image_name(name) == normalized


def test_find_busybox_refuses_a_dynamic_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dynamic = tmp_path / "busybox"
    dynamic.write_bytes(b"\x7fELF" + b"\0" * 500 + b"/lib64/ld-linux-x86-64.so.2\0")
    monkeypatch.setattr("pyk8s.kubelet.runtime.oci.BUSYBOX_CANDIDATES", (str(dynamic),))
    with pytest.raises(ImageBuildError, match="busybox-static"):
        find_busybox()


def test_containerd_config_keeps_everything_under_the_data_dir(tmp_path: Path) -> None:
    config = ContainerdConfig(data_dir=tmp_path, sandbox_image="pause:1", snapshotter="native")
    text = render_config(config, Path("/usr/lib/cni"))
    parsed = tomllib.loads(text)
    cri = parsed["plugins"]["io.containerd.grpc.v1.cri"]
    assert parsed["root"] == str(tmp_path / "containerd" / "root")
    assert parsed["state"] == str(tmp_path / "containerd" / "state")
    assert parsed["grpc"]["address"] == str(config.socket)
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "docker.io/library/pause:1"
    assert cri["containerd"]["snapshotter"] == "native"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["Root"].startswith(str(tmp_path))
    assert cri["cni"]["conf_dir"] == str(config.cni_conf_dir)
    assert config.cni_conf_dir.is_relative_to(tmp_path)
    assert cri["registry"]["config_path"] == str(tmp_path / "containerd" / "certs.d")


def test_configured_snapshotter_reads_the_node_config(tmp_path: Path) -> None:
    with pytest.raises(ContainerdError, match="no node containerd"):
        configured_snapshotter(tmp_path)
    config = ContainerdConfig(data_dir=tmp_path, snapshotter="native")
    config.home.mkdir(parents=True)
    (config.home / "config.toml").write_text(render_config(config, Path("/usr/lib/cni")))
    assert configured_snapshotter(tmp_path) == "native"


def test_bridge_network_uses_the_pod_cidr(tmp_path: Path) -> None:
    network = bridge_network("10.244.3.0/24", tmp_path / "ipam")
    bridge, portmap = network["plugins"]
    assert bridge["type"] == "bridge" and bridge["hairpinMode"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
