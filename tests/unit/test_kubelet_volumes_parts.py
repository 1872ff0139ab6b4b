"""Volume building blocks: the atomic writer, item projection and modes, the downward API, hostPath type
checks, subPath safety, fsGroup ownership and the token cache."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest

from pyk8s.kubelet.volumes.atomic_writer import AtomicWriter, FileProjection, PayloadError, validate_path
from pyk8s.kubelet.volumes.downward import (
    DownwardAPIError,
    container_resource_value,
    extract_field_path,
    format_map,
)
from pyk8s.kubelet.volumes.hostpath import HostPathError, check_type
from pyk8s.kubelet.volumes.mounts import _unescape, disk_usage
from pyk8s.kubelet.volumes.ownership import set_volume_ownership
from pyk8s.kubelet.volumes.projection import ItemsError, configmap_payload, downward_payload, secret_payload
from pyk8s.kubelet.volumes.subpath import SubPathError, expand_subpath_expr, prepare_subpath
from pyk8s.kubelet.volumes.tokens import TokenManager

# ---- atomic writer --------------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, str]:
    """Every entry under root: 'link -> target' for symlinks, 'dir' or the file's text."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_text()
    return out


def test_atomic_writer_layout_and_update(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    assert writer.write({"a": FileProjection(b"1", 0o644), "sub/b": FileProjection(b"2", 0o400)})
    first = writer.current_version()
    # Upstream's name: ..<UTC time>.<random digits>
    assert first is not None and re.fullmatch(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+", first)
    assert os.readlink(tmp_path / "..data") == first
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "sub") == "..data/sub"
    assert (tmp_path / "a").read_text() == "1" and (tmp_path / "sub" / "b").read_text() == "2"
    assert stat.S_IMODE((tmp_path / first / "sub" / "b").stat().st_mode) == 0o400
    assert stat.S_IMODE((tmp_path / first).stat().st_mode) == 0o755

    # Same content: nothing is rewritten.
    assert not writer.write({"a": FileProjection(b"1", 0o644), "sub/b": FileProjection(b"2", 0o400)})
    assert writer.current_version() == first

    # New content: a new version directory, the link swapped, the removed key's link and the old dir gone.
    assert writer.write({"a": FileProjection(b"changed", 0o644)})
    second = writer.current_version()
    assert second != first
    assert not (tmp_path / first).exists()
    assert not (tmp_path / "sub").is_symlink()
    assert _tree(tmp_path) == {"..data": f"-> {second}", second: "dir", f"{second}/a": "changed", "a": "-> ..data/a"}


def test_atomic_writer_open_readers_keep_the_old_version(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"key": FileProjection(b"old", 0o644)})
    # A reader holding the old version directory open still reads it while the link now resolves to the new one.
    handle = open(tmp_path / "key")  # noqa: SIM115
    writer.write({"key": FileProjection(b"new", 0o644)})
    assert handle.read() == "old"
    handle.close()
    assert (tmp_path / "key").read_text() == "new"


@pytest.mark.parametrize(("path", "message"), [
    ("/abs", "invalid path: must be relative path: /abs"),
    ("a/../b", "invalid path: must not contain '..': a/../b"),
    ("..hidden", "invalid path: must not start with '..': ..hidden"),
    ("x" * 256, "invalid path: filenames must be less than or equal to 255 characters"),
    ("", 'invalid path: must not be empty: ""'),
])
def test_atomic_writer_rejects_unsafe_paths(path: str, message: str) -> None:
    with pytest.raises(PayloadError) as failed:
        validate_path(path)
    assert str(failed.value) == message


def test_atomic_writer_failed_write_leaves_previous_version(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"a": FileProjection(b"1", 0o644)})
    with pytest.raises(PayloadError):
        writer.write({"a": FileProjection(b"2", 0o644), "../escape": FileProjection(b"x", 0o644)})
    assert (tmp_path / "a").read_text() == "1"
    assert not (tmp_path.parent / "escape").exists()


# ---- items and modes -------------------------------------------------------------------------------------


CONFIGMAP = {"data": {"game.properties": "lives=3", "ui": "color=red"}, "binaryData": {"blob": "AAEC"}}


def test_configmap_payload_all_keys_default_mode() -> None:
    payload = configmap_payload(None, CONFIGMAP, 0o644, False)
    assert payload == {"game.properties": FileProjection(b"lives=3", 0o644), "ui": FileProjection(b"color=red", 0o644),
                       "blob": FileProjection(b"\x00\x01\x02", 0o644)}


def test_configmap_payload_items_paths_and_modes() -> None:
    items = [{"key": "ui", "path": "conf/ui.ini", "mode": 0o400}, {"key": "game.properties", "path": "game"}]
    payload = configmap_payload(items, CONFIGMAP, 0o640, False)
    assert payload == {"conf/ui.ini": FileProjection(b"color=red", 0o400), "game": FileProjection(b"lives=3", 0o640)}


def test_missing_keys_fail_unless_optional() -> None:
    items = [{"key": "nope", "path": "x"}, {"key": "ui", "path": "ui"}]
    with pytest.raises(ItemsError) as failed:
        configmap_payload(items, CONFIGMAP, 0o644, False)
    assert str(failed.value) == "configmap references non-existent config key: nope"
    assert configmap_payload(items, CONFIGMAP, 0o644, True) == {"ui": FileProjection(b"color=red", 0o644)}
    # A missing optional ConfigMap is an empty one.
    assert configmap_payload(None, None, 0o644, True) == {}
    with pytest.raises(ItemsError) as failed:
        secret_payload([{"key": "k", "path": "k"}], {"data": {}}, 0o644, False)
    assert str(failed.value) == "references non-existent secret key: k"


def test_secret_payload_decodes_base64() -> None:
    payload = secret_payload(None, {"data": {"password": "czNjcjN0"}}, 0o600, False)
    assert payload == {"password": FileProjection(b"s3cr3t", 0o600)}


# ---- downward API -------------------------------------------------------------------------------------------

POD = {
    "metadata": {"name": "web", "namespace": "shop", "uid": "1234",
                 "labels": {"tier": "front", "app": "web"},
                 "annotations": {"note": 'say "hi"\nbye', "z": "ü"}},
    "spec": {"nodeName": "n1", "containers": [
        {"name": "app", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}},
        {"name": "side", "resources": {}}]},
}
ALLOCATABLE = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"}


def test_format_map_sorted_go_quoted() -> None:
    assert format_map(POD["metadata"]["labels"]) == 'app="web"\ntier="front"'
    assert format_map(POD["metadata"]["annotations"]) == 'note="say \\"hi\\"\\nbye"\nz="ü"'
    assert format_map({}) == ""


def test_field_paths() -> None:
    assert extract_field_path(POD, "metadata.name") == "web"
    assert extract_field_path(POD, "metadata.namespace") == "shop"
    assert extract_field_path(POD, "metadata.uid") == "1234"
    assert extract_field_path(POD, "metadata.labels['tier']") == "front"
    assert extract_field_path(POD, "metadata.labels['absent']") == ""
    assert extract_field_path(POD, "metadata.annotations['z']") == "ü"
    with pytest.raises(DownwardAPIError, match="unsupported fieldPath: spec.nodeName"):
        extract_field_path(POD, "spec.nodeName")
    with pytest.raises(DownwardAPIError, match="does not support subscript"):
        extract_field_path(POD, "metadata.name['x']")


@pytest.mark.parametrize(("selector", "expected"), [
    ({"resource": "limits.cpu"}, "1"),  # 250m rounded up to whole cores
    ({"resource": "limits.cpu", "divisor": "1m"}, "250"),
    ({"resource": "requests.cpu", "divisor": "1m"}, "100"),
    ({"resource": "limits.memory"}, str(64 * 2**20)),
    ({"resource": "limits.memory", "divisor": "1Mi"}, "64"),
    ({"resource": "limits.memory", "divisor": "1M"}, "68"),  # 67.1 MB, rounded up
    ({"resource": "requests.memory"}, "0"),
    ({"resource": "limits.ephemeral-storage", "divisor": "1Gi"}, "100"),  # no limit: node allocatable
    ({"resource": "limits.cpu", "containerName": "side"}, "4"),
])
def test_resource_field_ref(selector: dict, expected: str) -> None:
    assert container_resource_value(selector, POD, POD["spec"]["containers"][0], ALLOCATABLE) == expected


def test_resource_field_ref_errors() -> None:
    with pytest.raises(DownwardAPIError, match="unsupported container resource : limits.gpu"):
        container_resource_value({"resource": "limits.gpu"}, POD, POD["spec"]["containers"][0], ALLOCATABLE)
    with pytest.raises(DownwardAPIError, match="container nope not found"):
        container_resource_value({"resource": "limits.cpu", "containerName": "nope"}, POD, None, ALLOCATABLE)


def test_downward_payload() -> None:
    items = [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "./podname", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
             {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                  "divisor": "1Mi"}}]
    payload, errors = downward_payload(items, POD, 0o644, ALLOCATABLE)
    assert errors == []
    assert payload == {"labels": FileProjection(b'app="web"\ntier="front"', 0o644),
                       "podname": FileProjection(b"web", 0o400), "mem": FileProjection(b"64", 0o644)}
    _, errors = downward_payload([{"path": "x", "fieldRef": {"fieldPath": "status.phase"}}], POD, 0o644, ALLOCATABLE)
    assert errors == ["unsupported fieldPath: status.phase"]


# ---- hostPath ----------------------------------------------------------------------------------------------


def test_host_path_types(tmp_path: Path) -> None:
    directory, file = tmp_path / "d", tmp_path / "f"
    directory.mkdir()
    file.write_text("x")
    check_type(str(directory), "Directory")
    check_type(str(file), "File")
    check_type(str(tmp_path / "nothing"), "")  # no type: no check
    check_type(str(tmp_path / "new" / "dir"), "DirectoryOrCreate")
    assert (tmp_path / "new" / "dir").is_dir()
    check_type(str(tmp_path / "newfile"), "FileOrCreate")
    assert (tmp_path / "newfile").is_file() and stat.S_IMODE((tmp_path / "newfile").stat().st_mode) == 0o644
    check_type("/dev/null", "CharDevice")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.sock"))
        check_type(str(tmp_path / "s.sock"), "Socket")
    cases = [(file, "Directory", "is not a directory"), (directory, "File", "is not a file"),
             (file, "Socket", "is not a socket file"), (file, "CharDevice", "is not a character device"),
             (file, "BlockDevice", "is not a block device"), (tmp_path / "missing", "Directory", "is not a directory"),
             (file, "DirectoryOrCreate", "is not a directory")]
    for path, kind, what in cases:
        with pytest.raises(HostPathError) as failed:
            check_type(str(path), kind)
        assert str(failed.value) == f"hostPath type check failed: {path} {what}"
    with pytest.raises(HostPathError, match="Weird is an invalid volume type"):
        check_type(str(file), "Weird")


# ---- subPath ------------------------------------------------------------------------------------------------


def test_subpath_created_resolved_and_confined(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir(mode=0o750)
    os.chmod(volume, 0o750)
    made = prepare_subpath(str(volume), "a/b", "data", "app")
    assert made == str(volume / "a" / "b") and Path(made).is_dir()
    assert stat.S_IMODE(Path(made).stat().st_mode) == 0o750
    # A symlink inside the volume resolves to its target (configMap keys are links through ..data).
    (volume / "real.txt").write_text("x")
    (volume / "alias").symlink_to("real.txt")
    assert prepare_subpath(str(volume), "alias", "data", "app") == str(volume / "real.txt")
    # A symlink that leaves the volume is refused, whether it exists already or is to be created through.
    (volume / "escape").symlink_to("/etc")
    with pytest.raises(SubPathError) as failed:
        prepare_subpath(str(volume), "escape", "data", "app")
    assert str(failed.value) == 'failed to prepare subPath for volumeMount "data" of container "app"'
    with pytest.raises(SubPathError) as failed:
        prepare_subpath(str(volume), "escape/newdir", "data", "app")
    assert str(failed.value) == 'failed to create subPath directory for volumeMount "data" of container "app"'
    assert not Path("/etc/newdir").exists()
    with pytest.raises(SubPathError, match="must not be an absolute path"):
        prepare_subpath(str(volume), "/etc", "data", "app")
    with pytest.raises(SubPathError, match="must not contain '..'"):
        prepare_subpath(str(volume), "a/../../x", "data", "app")


def test_subpath_expr() -> None:
    assert expand_subpath_expr("logs/$(POD_NAME)", {"POD_NAME": "web-1"}) == "logs/web-1"
    assert expand_subpath_expr("$$(POD_NAME)", {}) == "$(POD_NAME)"
    with pytest.raises(SubPathError) as failed:
        expand_subpath_expr("$(B)/$(A)/$(EMPTY)", {"EMPTY": ""})
    assert str(failed.value) == "missing value for A, B, EMPTY"


# ---- ownership and usage -----------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
def test_fs_group_ownership(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("x")
    os.chmod(root / "sub" / "f", 0o600)
    (root / "link").symlink_to("sub/f")
    set_volume_ownership(str(root), 1234, readonly=False)
    f = (root / "sub" / "f").stat()
    assert f.st_gid == 1234 and stat.S_IMODE(f.st_mode) == 0o660
    d = (root / "sub").stat()
    assert d.st_gid == 1234 and d.st_mode & stat.S_ISGID and stat.S_IMODE(d.st_mode) & 0o070 == 0o070
    assert os.lstat(root / "link").st_gid == 1234
    set_volume_ownership(str(root), 99, readonly=True, change_policy="OnRootMismatch")
    assert (root / "sub" / "f").stat().st_gid == 99
    # OnRootMismatch: a root that already looks right means no walk (a file changed since stays as it is).
    os.chown(root / "sub" / "f", -1, 5)
    set_volume_ownership(str(root), 99, readonly=True, change_policy="OnRootMismatch")
    assert (root / "sub" / "f").stat().st_gid == 5
    set_volume_ownership(str(root), 99, readonly=True)  # the default policy always walks
    assert (root / "sub" / "f").stat().st_gid == 99


def test_disk_usage_counts_files_not_symlink_targets(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100_000)
    (tmp_path / "link").symlink_to("/usr")
    assert 100_000 <= disk_usage(tmp_path) < 200_000


def test_mountinfo_unescape() -> None:
    assert _unescape("/a\\040b\\134c") == "/a b\\c"


# ---- tokens ------------------------------------------------------------------------------------------------


class TokenAPI:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict]] = []

    async def create_subresource(self, resource, name, subresource, body, namespace=None):
        self.requests.append((namespace, name, body))
        return {"status": {"token": f"token-{len(self.requests)}",
                           "expirationTimestamp": "2030-01-01T01:00:00Z"}}


async def test_token_cache_refreshes_at_80_percent() -> None:
    from datetime import UTC, datetime
    issued = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    now = [issued]
    api = TokenAPI()
    manager = TokenManager(api, clock=lambda: now[0])  # type: ignore[arg-type]
    pod = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}, "spec": {"serviceAccountName": "robot"}}
    assert await manager.get(pod, "vault", 3600) == "token-1"
    namespace, account, body = api.requests[0]
    assert (namespace, account) == ("shop", "robot")
    assert body["spec"] == {"audiences": ["vault"], "expirationSeconds": 3600,
                            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u1"}}
    now[0] = issued + 0.79 * 3600
    assert await manager.get(pod, "vault", 3600) == "token-1"
    now[0] = issued + 0.81 * 3600
    assert await manager.get(pod, "vault", 3600) == "token-2"
    # No audience: the apiserver's own; a different key, so a different token.
    assert await manager.get(pod, "", 3600) == "token-3"
    assert "audiences" not in api.requests[2][2]["spec"]
    manager.forget_pod("u1")
    assert await manager.get(pod, "vault", 3600) == "token-4"
