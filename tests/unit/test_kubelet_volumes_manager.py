"""VolumeManager against an in-memory API: every volume type set up on disk, CRI mounts, failures with
upstream's FailedMount messages, refreshes, emptyDir limits and clean removal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyk8s.client import APIStatusError
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb
from pyk8s.kubelet.volumes import VolumeError, VolumeManager
from pyk8s.kubelet.volumes.mounts import mount_points_under


class FakeAPI:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.token_requests: list[dict] = []
        self.reads: list[tuple[str, str, str]] = []

    def put(self, plural: str, namespace: str, name: str, obj: dict) -> None:
        obj.setdefault("metadata", {}).update({"name": name, "namespace": namespace})
        self.objects[(plural, namespace, name)] = obj

    async def get(self, plural, name, namespace=None):
        self.reads.append((plural, namespace or "", name))
        try:
            return self.objects[(plural, namespace or "", name)]
        except KeyError:
            raise APIStatusError({"code": 404, "reason": "NotFound",
                                  "message": f'{plural} "{name}" not found'}) from None

    async def create_subresource(self, resource, name, subresource, body, namespace=None):
        self.token_requests.append(body)
        return {"status": {"token": f"jwt-{len(self.token_requests)}", "expirationTimestamp": "2099-01-01T00:00:00Z"}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj, type, reason, message, **_):
        self.events.append((type, reason, message))


def _pod(volumes: list[dict], mounts: list[dict], uid: str = "uid-1", **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": uid, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default", "volumes": volumes,
                     "containers": [{"name": "app", "volumeMounts": mounts,
                                     "env": [{"name": "SUB", "value": "logs"}]}], **spec}}


@pytest.fixture
def api() -> FakeAPI:
    api = FakeAPI()
    api.put("configmaps", "shop", "settings", {"data": {"mode": "fast", "level": "3"}})
    api.put("configmaps", "shop", "kube-root-ca.crt", {"data": {"ca.crt": "CA PEM"}})
    api.put("secrets", "shop", "creds", {"data": {"password": "czNjcjN0"}})
    api.put("nodes", "", "n1", {"status": {"allocatable": {"cpu": "2", "memory": "1Gi"}}})
    return api


@pytest.fixture
def manager(api: FakeAPI, tmp_path: Path) -> VolumeManager:
    return VolumeManager(api, KubeletPaths(tmp_path / "data"), "n1", Recorder())  # type: ignore[arg-type]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_projected_types_on_disk_and_cri_mounts(api: FakeAPI, manager: VolumeManager, tmp_path: Path) -> None:
    host_dir = tmp_path / "host"
    volumes = [
        {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 0o640}},
        {"name": "sec", "secret": {"secretName": "creds", "items": [{"key": "password", "path": "pw", "mode": 0o400}]}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}}]}},
        {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
    ]
    mounts = [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"},
              {"name": "info", "mountPath": "/etc/info"},
              {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
               "readOnly": True},
              {"name": "scratch", "mountPath": "/scratch"},
              {"name": "scratch", "mountPath": "/logs", "subPathExpr": "$(SUB)/$(POD)"},
              {"name": "host", "mountPath": "/host", "mountPropagation": "HostToContainer"},
              {"name": "cfg", "mountPath": "/etc/mode", "subPath": "mode"}]
    pod = _pod(volumes, mounts)
    await manager.mount_pod_volumes(pod)
    volumes_dir = manager.paths.pod_volumes_dir("uid-1")
    cfg = volumes_dir / "kubernetes.io~configmap" / "cfg"
    assert (cfg / "mode").read_text() == "fast" and os.readlink(cfg / "mode") == "..data/mode"
    assert _mode(cfg / "..data" / "level") == 0o640
    sec = volumes_dir / "kubernetes.io~secret" / "sec"
    assert (sec / "pw").read_text() == "s3cr3t" and _mode(sec / "..data" / "pw") == 0o400
    info = volumes_dir / "kubernetes.io~downward-api" / "info"
    assert (info / "labels").read_text() == 'app="web"'
    assert (info / "cpu").read_text() == "2"  # no limit: the node's allocatable
    access = volumes_dir / "kubernetes.io~projected" / "kube-api-access-abcde"
    assert {p.name: p.read_text() for p in access.iterdir() if not p.name.startswith("..")} == {
        "token": "jwt-1", "ca.crt": "CA PEM", "namespace": "shop"}
    assert api.token_requests[0]["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "web",
                                                               "uid": "uid-1"}
    scratch = volumes_dir / "kubernetes.io~empty-dir" / "scratch"
    assert scratch.is_dir() and _mode(scratch) == 0o777
    assert host_dir.is_dir()

    cri_mounts = manager.container_mounts(pod, pod["spec"]["containers"][0],
                                          env=[("SUB", "logs"), ("POD", "web")])
    as_tuples = [(m.container_path, m.host_path, m.readonly, m.propagation) for m in cri_mounts]
    assert as_tuples == [
        ("/etc/cfg", str(cfg), True, pb.PROPAGATION_PRIVATE),
        ("/etc/sec", str(sec), True, pb.PROPAGATION_PRIVATE),
        ("/etc/info", str(info), True, pb.PROPAGATION_PRIVATE),
        ("/var/run/secrets/kubernetes.io/serviceaccount", str(access), True, pb.PROPAGATION_PRIVATE),
        ("/scratch", str(scratch), False, pb.PROPAGATION_PRIVATE),
        ("/logs", str(scratch / "logs" / "web"), False, pb.PROPAGATION_PRIVATE),
        ("/host", str(host_dir), False, pb.PROPAGATION_HOST_TO_CONTAINER),
        # subPath of a configMap key: the resolved file inside the current version directory.
        ("/etc/mode", str(cfg / os.readlink(cfg / "..data") / "mode"), True, pb.PROPAGATION_PRIVATE),
    ]
    assert (scratch / "logs" / "web").is_dir()
    with pytest.raises(VolumeError) as failed:
        manager.container_mounts(pod, pod["spec"]["containers"][0])  # POD is not in the literal env
    assert (failed.value.reason, failed.value.message) == ("CreateContainerConfigError", "missing value for POD")

    # Idempotent: a second sync changes nothing and asks for no new token.
    version = os.readlink(cfg / "..data")
    await manager.mount_pod_volumes(pod)
    assert os.readlink(cfg / "..data") == version and len(api.token_requests) == 1

    # A ConfigMap update and a label change reach the files on the next resync.
    api.put("configmaps", "shop", "settings", {"data": {"mode": "slow"}})
    pod["metadata"]["labels"] = {"app": "web", "tier": "front"}
    await manager.mount_pod_volumes(pod)
    assert (cfg / "mode").read_text() == "slow" and not (cfg / "level").exists()
    assert (info / "labels").read_text() == 'app="web"\ntier="front"'
    api.put("configmaps", "shop", "settings", {"data": {"mode": "turbo"}})
    await manager.resync()
    assert (cfg / "mode").read_text() == "turbo"

    # A restarted kubelet (a new manager) finds the pod's volumes on disk and can remove them.
    restarted = VolumeManager(api, manager.paths, "n1")  # type: ignore[arg-type]
    assert restarted.pod_uids_on_disk() == ["uid-1"]
    await restarted.unmount_pod_volumes("uid-1")
    assert not volumes_dir.exists() and restarted.pod_uids_on_disk() == []
    assert host_dir.is_dir()  # hostPath data is never touched
    await manager.unmount_pod_volumes("uid-1")  # idempotent


@pytest.mark.parametrize(("volume", "message"), [
    ({"name": "cfg", "configMap": {"name": "missing"}},
     'MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found'),
    ({"name": "sec", "secret": {"secretName": "missing"}},
     'MountVolume.SetUp failed for volume "sec" : secret "missing" not found'),
    ({"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "nope", "path": "x"}]}},
     'MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: nope'),
    ({"name": "p", "projected": {"sources": [{"configMap": {"name": "missing"}}, {"secret": {"name": "gone"}}]}},
     'MountVolume.SetUp failed for volume "p" : [configmap "missing" not found, secret "gone" not found]'),
    ({"name": "h", "hostPath": {"path": "/nonexistent-pyk8s", "type": "Directory"}},
     'MountVolume.SetUp failed for volume "h" : hostPath type check failed: /nonexistent-pyk8s is not a directory'),
    ({"name": "data", "persistentVolumeClaim": {"claimName": "pending"}},
     "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], failed to process "
     "volumes=[data]: error "
     "processing PVC shop/pending: PVC is not bound"),
    ({"name": "n", "nfs": {"server": "nfs.example", "path": "/"}},
     "Unable to attach or mount volumes: unmounted volumes=[n], unattached volumes=[n], failed to process "
     'volumes=[n]: failed to get Plugin from volumeSpec for volume "n" err=no volume plugin matched'),
    ({"name": "data", "persistentVolumeClaim": {"claimName": "absent"}},
     "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], failed to process "
     "volumes=[data]: error "
     'processing PVC shop/absent: failed to fetch PVC from API server: persistentvolumeclaims "absent" not found'),
])
async def test_failures_are_failed_mount_events(api: FakeAPI, manager: VolumeManager, volume: dict,
                                                message: str) -> None:
    api.put("persistentvolumeclaims", "shop", "pending", {"status": {"phase": "Pending"}})
    with pytest.raises(VolumeError) as failed:
        await manager.mount_pod_volumes(_pod([volume], []))
    assert (failed.value.reason, failed.value.message) == ("FailedMount", message)
    assert manager.recorder.events == [("Warning", "FailedMount", message)]  # type: ignore[union-attr]


async def test_optional_sources_may_be_missing(manager: VolumeManager) -> None:
    pod = _pod([{"name": "cfg", "configMap": {"name": "missing", "optional": True}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "gone", "optional": True}}]}}], [])
    await manager.mount_pod_volumes(pod)
    cfg = manager.paths.volume_dir("uid-1", "kubernetes.io~configmap", "cfg")
    assert cfg.is_dir() and [p.name for p in cfg.iterdir() if not p.name.startswith("..")] == []


async def test_resync_reads_each_object_once_for_all_pods(api: FakeAPI, manager: VolumeManager) -> None:
    volumes = [{"name": "a", "configMap": {"name": "settings"}}, {"name": "b", "configMap": {"name": "settings"}}]
    for uid in ("uid-1", "uid-2"):
        await manager.mount_pod_volumes(_pod(volumes, [], uid=uid))
    api.reads.clear()
    await manager.resync()
    assert api.reads == [("configmaps", "shop", "settings")]


async def test_deleted_configmap_keeps_last_content(api: FakeAPI, manager: VolumeManager) -> None:
    pod = _pod([{"name": "cfg", "configMap": {"name": "settings"}}], [])
    await manager.mount_pod_volumes(pod)
    del api.objects[("configmaps", "shop", "settings")]
    await manager.resync()
    cfg = manager.paths.volume_dir("uid-1", "kubernetes.io~configmap", "cfg")
    assert (cfg / "mode").read_text() == "fast"
    assert manager.recorder.events[-1][1:] == (  # type: ignore[union-attr]
        "FailedMount", 'MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found')


async def test_pvc_bound_to_host_path_and_local_pvs(api: FakeAPI, manager: VolumeManager, tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    api.put("persistentvolumeclaims", "shop", "claim", {"metadata": {"uid": "c1"}, "spec": {"volumeName": "pv1"},
                                                        "status": {"phase": "Bound"}})
    api.put("persistentvolumes", "", "pv1", {"spec": {"claimRef": {"uid": "c1"},
                                                      "hostPath": {"path": str(tmp_path / "pv"),
                                                                   "type": "DirectoryOrCreate"}}})
    api.put("persistentvolumeclaims", "shop", "local", {"metadata": {"uid": "c2"}, "spec": {"volumeName": "pv2"},
                                                        "status": {"phase": "Bound"}})
    api.put("persistentvolumes", "", "pv2", {"spec": {"claimRef": {"uid": "c2"},
                                                      "local": {"path": str(tmp_path / "local")}}})
    pod = _pod([{"name": "a", "persistentVolumeClaim": {"claimName": "claim"}},
                {"name": "b", "persistentVolumeClaim": {"claimName": "local", "readOnly": True}}],
               [{"name": "a", "mountPath": "/a"}, {"name": "b", "mountPath": "/b"}])
    await manager.mount_pod_volumes(pod)
    mounts = manager.container_mounts(pod, pod["spec"]["containers"][0])
    assert [(m.host_path, m.readonly) for m in mounts] == [(str(tmp_path / "pv"), False),
                                                           (str(tmp_path / "local"), True)]
    api.put("persistentvolumes", "", "pv2", {"spec": {"claimRef": {"uid": "c2"}, "local": {"path": "/nonexistent-x"}}})
    with pytest.raises(VolumeError) as failed:
        await manager.mount_pod_volumes(pod)
    assert failed.value.message == 'MountVolume.SetUp failed for volume "pv2" : path "/nonexistent-x" does not exist'
    api.put("persistentvolumes", "", "pv1", {"spec": {"claimRef": {"uid": "other"}, "hostPath": {"path": "/x"}}})
    with pytest.raises(VolumeError, match=r"its pv.Spec.ClaimRef.UID \(other\) does not point to claim.UID \(c1\)"):
        await manager.mount_pod_volumes(pod)


async def test_unknown_volume_in_mounts(manager: VolumeManager) -> None:
    pod = _pod([], [{"name": "ghost", "mountPath": "/g"}])
    await manager.mount_pod_volumes(pod)
    with pytest.raises(VolumeError) as failed:
        manager.container_mounts(pod, pod["spec"]["containers"][0])
    assert failed.value.message == 'cannot find volume "ghost" to mount into container "app"'


async def test_emptydir_size_limit_reported_once(manager: VolumeManager) -> None:
    pod = _pod([{"name": "scratch", "emptyDir": {"sizeLimit": "10Ki"}}], [])
    await manager.mount_pod_volumes(pod)
    assert await manager.check_emptydir_limits() == []
    scratch = manager.paths.volume_dir("uid-1", "kubernetes.io~empty-dir", "scratch")
    (scratch / "big").write_bytes(os.urandom(64 * 1024))
    await manager.resync()
    exceeded = manager.limit_exceeded.get_nowait()
    assert exceeded.volume == "scratch" and exceeded.usage_bytes >= 64 * 1024
    assert exceeded.message == 'Usage of EmptyDir volume "scratch" exceeds the limit "10Ki". '
    assert await manager.check_emptydir_limits() == []  # reported once
    (scratch / "big").unlink()
    assert await manager.check_emptydir_limits() == []
    (scratch / "big").write_bytes(os.urandom(64 * 1024))
    assert len(await manager.check_emptydir_limits()) == 1  # over again after coming back under


@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs mounts need root")
async def test_memory_emptydir_is_a_sized_tmpfs_and_unmounted(manager: VolumeManager) -> None:
    pod = _pod([{"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}], [],
               securityContext={"fsGroup": 2000})
    volumes_dir = manager.paths.pod_volumes_dir("uid-1")
    try:
        await manager.mount_pod_volumes(pod)
        fast = manager.paths.volume_dir("uid-1", "kubernetes.io~empty-dir", "fast")
        assert mount_points_under(volumes_dir) == [str(fast)]
        usage = os.statvfs(fast)
        assert usage.f_blocks * usage.f_frsize == 1024 * 1024
        assert fast.stat().st_gid == 2000 and fast.stat().st_mode & stat.S_ISGID
        await manager.mount_pod_volumes(pod)  # idempotent: not mounted twice
        assert mount_points_under(volumes_dir) == [str(fast)]
    finally:
        await manager.unmount_pod_volumes("uid-1")
    assert mount_points_under(volumes_dir) == []
    assert not volumes_dir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
async def test_fs_group_owns_projected_files_and_opens_the_token_to_the_group(manager: VolumeManager) -> None:
    pod = _pod([{"name": "cfg", "configMap": {"name": "settings", "defaultMode": 0o400}},
                {"name": "tok", "projected": {"defaultMode": 0o644, "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}]}}], [],
               securityContext={"fsGroup": 3000})
    await manager.mount_pod_volumes(pod)
    cfg = manager.paths.volume_dir("uid-1", "kubernetes.io~configmap", "cfg")
    token = manager.paths.volume_dir("uid-1", "kubernetes.io~projected", "tok") / "token"
    assert (cfg / "mode").stat().st_gid == 3000 and _mode(cfg / "mode") == 0o440  # read-only volume: group read
    assert token.stat().st_gid == 3000 and _mode(token) == 0o640  # 0600 for the token, then group read
    assert cfg.stat().st_gid == 3000 and cfg.stat().st_mode & stat.S_ISGID
