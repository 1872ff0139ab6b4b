"""The kubelet's volume manager: sets up a pod's volumes before its containers start, tells the runtime what to
mount where, keeps projected contents fresh while the pod runs and removes everything when it is gone.

Upstream keeps a desired and an actual state of the world and reconciles them every 100 ms
(pkg/kubelet/volumemanager). Every volume type here is local to the node, so the pod workers drive it
directly: `mount_pod_volumes` (idempotent, called on every pod sync) sets up whatever is missing and
re-projects configMap/secret/downwardAPI/projected volumes; `run()` re-projects them periodically (upstream's
remount on sync, here every `resync_interval` seconds) so ConfigMap/Secret updates and pod label changes
reach the files, rotates service-account tokens at 80% of their lifetime and checks emptyDir size limits.

Volume directories are upstream's: `<pod dir>/volumes/kubernetes.io~<plugin>/<volume>`. hostPath and
persistentVolumeClaim volumes are used in place; nothing of theirs lives in the pod directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ...api import quantity
from ...client import WARNING, APIClient, APIConnectionError, APIStatusError, EventRecorder, is_not_found
from ..object_cache import ObjectSource
from ..paths import KubeletPaths
from ..runtime.cri import pb
from . import mounts
from .atomic_writer import AtomicWriter, FileProjection, PayloadError
from .downward import DownwardAPIError
from .errors import CREATE_CONTAINER_CONFIG_ERROR, FAILED_MOUNT, FAILED_UNMOUNT, VolumeError, aggregate
from .hostpath import HostPathError, check_type
from .ownership import set_volume_ownership
from .projection import DEFAULT_MODE, ItemsError, configmap_payload, downward_payload, secret_payload
from .subpath import SubPathError, expand_subpath_expr, prepare_subpath
from .tokens import TokenManager

log = logging.getLogger(__name__)

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIGMAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"
# The volume types whose contents come from API objects and are re-projected while the pod runs.
PROJECTED_TYPES = {"configMap": CONFIGMAP, "secret": SECRET, "downwardAPI": DOWNWARD_API, "projected": PROJECTED}
DEFAULT_RESYNC_INTERVAL = 10.0
ALLOCATABLE_TTL = 60.0

_PROPAGATION = {None: pb.PROPAGATION_PRIVATE, "None": pb.PROPAGATION_PRIVATE,
                "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER, "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL}


@dataclass(frozen=True)
class EmptyDirLimitExceeded:
    """A disk-backed emptyDir uses more than its sizeLimit: upstream's kubelet evicts the pod."""

    pod: dict
    volume: str
    usage_bytes: int
    limit: str

    @property
    def message(self) -> str:
        return f'Usage of EmptyDir volume "{self.volume}" exceeds the limit "{self.limit}". '


@dataclass
class PodVolumes:
    """What is set up for one pod: where each volume lives on the host and which ones the runtime must mount
    read-only whatever the volumeMount says."""

    pod: dict
    host_paths: dict[str, str] = field(default_factory=dict)
    forced_readonly: set[str] = field(default_factory=set)
    over_limit: set[str] = field(default_factory=set)

    @property
    def uid(self) -> str:
        return self.pod["metadata"]["uid"]


class _Objects:
    """ConfigMaps/Secrets read during one mount or resync pass, so a pass reads each object once however many
    volumes and pods use it."""

    def __init__(self, source: ObjectSource) -> None:
        self.source = source
        self._seen: dict[tuple[str, str, str], dict | None] = {}

    async def get(self, plural: str, namespace: str, name: str, optional: bool) -> dict | None:
        """The object; None when it is missing and optional. Missing and required: upstream's error."""
        key = (plural, namespace, name)
        if key not in self._seen:
            try:
                self._seen[key] = await self.source.get(plural, name, namespace)
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise _SetUpError(_api_message(exc)) from exc
                self._seen[key] = None
            except APIConnectionError as exc:
                raise _SetUpError(_api_message(exc)) from exc
        found = self._seen[key]
        if found is None and not optional:
            singular = {"configmaps": "configmap", "secrets": "secret"}[plural]
            raise _SetUpError(f'{singular} "{name}" not found')
        return found


class _SetUpError(Exception):
    """One volume failed; the message is the cause part of upstream's FailedMount event, which names
    `volume` (a PV's name for claims, as upstream's volume spec does) or the pod's volume."""

    def __init__(self, message: str, volume: str | None = None) -> None:
        super().__init__(message)
        self.volume = volume


class _ProcessError(_SetUpError):
    """The volume could not even be resolved to something to set up (upstream's populator errors); the
    message is the whole event text."""

    def __init__(self, volume: str, cause: str) -> None:
        super().__init__(f"Unable to attach or mount volumes: unmounted volumes=[{volume}], unattached "
                         f"volumes=[{volume}], failed to process volumes=[{volume}]: {cause}")


class VolumeManager:
    def __init__(self, client: APIClient, paths: KubeletPaths, node_name: str, recorder: EventRecorder | None = None,
                 *, resync_interval: float = DEFAULT_RESYNC_INTERVAL, secrets_in_memory: bool = False,
                 objects: ObjectSource | None = None) -> None:
        """secrets_in_memory: back secret and projected volumes with tmpfs as upstream does (needs root, and
        every pod then holds a mount until `unmount_pod_volumes`). objects: where ConfigMaps and Secrets are read
        (the kubelet's watch-based ObjectCache); default: the API."""
        self.client = client
        self.objects: ObjectSource = objects if objects is not None else client
        self.paths = paths
        self.node_name = node_name
        self.recorder = recorder
        self.resync_interval = resync_interval
        self.secrets_in_memory = secrets_in_memory
        self.tokens = TokenManager(client)
        # Disk-backed emptyDirs over their sizeLimit; the kubelet's eviction logic consumes these.
        self.limit_exceeded: asyncio.Queue[EmptyDirLimitExceeded] = asyncio.Queue()
        self._pods: dict[str, PodVolumes] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._allocatable: dict[str, str] | None = None
        self._allocatable_at = 0.0

    # ---- the contract ------------------------------------------------------------------------------

    async def mount_pod_volumes(self, pod: dict) -> None:
        """Set up every volume of the pod (idempotent); refresh projected contents. Raises VolumeError with
        the first failure after recording a FailedMount event per failed volume."""
        uid = pod["metadata"]["uid"]
        async with self._lock(uid):
            state = self._pods.get(uid)
            if state is None:
                state = self._pods[uid] = PodVolumes(pod)
            state.pod = pod
            failures = await self._set_up_all(state, _Objects(self.objects), refresh_only=False)
        if failures:
            raise VolumeError(FAILED_MOUNT, failures[0])

    def container_mounts(self, pod: dict, container: dict, *,
                         env: list[tuple[str, str]] | None = None) -> list[pb.Mount]:
        """CRI mounts for the container's volumeMounts. `env` is the container's environment (what
        `container_env` returned) for subPathExpr; without it the literal env values are used. Raises
        VolumeError(CreateContainerConfigError, ...) as upstream's makeMounts fails."""
        uid = pod["metadata"]["uid"]
        state = self._pods.get(uid)
        name = container.get("name", "")
        env_map = dict(env) if env is not None else {e["name"]: e.get("value", "") for e in container.get("env") or []
                                                     if "valueFrom" not in e}
        result = []
        for mount in container.get("volumeMounts") or []:
            volume = mount.get("name", "")
            host_path = state.host_paths.get(volume) if state else None
            if host_path is None:
                raise VolumeError(CREATE_CONTAINER_CONFIG_ERROR,
                                  f'cannot find volume "{volume}" to mount into container "{name}"')
            try:
                sub_path = mount.get("subPath") or ""
                if mount.get("subPathExpr"):
                    sub_path = expand_subpath_expr(mount["subPathExpr"], env_map)
                if sub_path:
                    host_path = prepare_subpath(host_path, sub_path, volume, name)
            except SubPathError as exc:
                raise VolumeError(CREATE_CONTAINER_CONFIG_ERROR, str(exc)) from exc
            readonly = bool(mount.get("readOnly")) or volume in state.forced_readonly
            result.append(pb.Mount(container_path=mount.get("mountPath", ""), host_path=host_path, readonly=readonly,
                                   propagation=_PROPAGATION.get(mount.get("mountPropagation"),
                                                                pb.PROPAGATION_PRIVATE)))
        return result

    async def unmount_pod_volumes(self, pod_uid: str) -> None:
        """Unmount whatever was mounted for the pod and remove its volume directories (idempotent)."""
        async with self._lock(pod_uid):
            volumes_dir = self.paths.pod_volumes_dir(pod_uid)
            for point in mounts.mount_points_under(volumes_dir):
                try:
                    await mounts.unmount(point)
                except mounts.MountError as exc:
                    log.warning("pod %s: %s", pod_uid, exc)
            left = mounts.mount_points_under(volumes_dir)
            if left:
                # Never delete through a mount: it could be someone's data. The next call tries again.
                raise VolumeError(FAILED_UNMOUNT, f"volumes of pod {pod_uid} are still mounted at {', '.join(left)}")
            await asyncio.to_thread(shutil.rmtree, volumes_dir, ignore_errors=True)
            self._pods.pop(pod_uid, None)
            self.tokens.forget_pod(pod_uid)
        self._locks.pop(pod_uid, None)

    def pod_uids_on_disk(self) -> list[str]:
        """Pods that have volume directories on this node, known to this process or not (after a restart, the
        kubelet compares these with its pods and unmounts the orphans' volumes)."""
        if not self.paths.pods.is_dir():
            return []
        return sorted(entry.name for entry in self.paths.pods.iterdir() if (entry / "volumes").is_dir())

    async def run(self) -> None:
        """Re-project contents, rotate tokens and check emptyDir limits every resync_interval, until cancelled."""
        while True:
            await asyncio.sleep(self.resync_interval)
            try:
                await self.resync()
            except Exception:
                log.exception("volume resync failed")

    # ---- periodic work -----------------------------------------------------------------------------

    async def resync(self) -> None:
        """One pass of run(): refresh every mounted pod's projected volumes, then check emptyDir limits."""
        objects = _Objects(self.objects)
        for uid in list(self._pods):
            async with self._lock(uid):
                state = self._pods.get(uid)
                if state is not None:
                    await self._set_up_all(state, objects, refresh_only=True)
        for exceeded in await self.check_emptydir_limits():
            log.warning("pod %s/%s: %s", exceeded.pod["metadata"].get("namespace"),
                        exceeded.pod["metadata"].get("name"), exceeded.message)
            self.limit_exceeded.put_nowait(exceeded)

    async def check_emptydir_limits(self) -> list[EmptyDirLimitExceeded]:
        """Disk-backed emptyDirs newly over their sizeLimit (each reported once until back under it)."""
        found = []
        for state in list(self._pods.values()):
            for volume in (state.pod.get("spec") or {}).get("volumes") or []:
                empty_dir = volume.get("emptyDir")
                if empty_dir is None or empty_dir.get("medium") == "Memory" or not empty_dir.get("sizeLimit"):
                    continue
                name = volume["name"]
                limit = quantity.parse(empty_dir["sizeLimit"]).value
                directory = self.paths.volume_dir(state.uid, EMPTY_DIR, name)
                usage = await asyncio.to_thread(mounts.disk_usage, directory)
                if usage > limit:
                    if name not in state.over_limit:
                        state.over_limit.add(name)
                        found.append(EmptyDirLimitExceeded(state.pod, name, usage, str(empty_dir["sizeLimit"])))
                else:
                    state.over_limit.discard(name)
        return found

    # ---- set-up --------------------------------------------------------------------------------------

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    async def _set_up_all(self, state: PodVolumes, objects: _Objects, refresh_only: bool) -> list[str]:
        pod = state.pod
        failures = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume.get("name", "")
            kind = _volume_type(volume)
            if refresh_only and kind not in PROJECTED_TYPES:
                continue
            try:
                if kind == "persistentVolumeClaim":
                    await self._set_up_claim(state, volume)
                    continue
                try:
                    await self._set_up(state, volume, kind, objects)
                except (OSError, mounts.MountError) as exc:
                    raise _SetUpError(str(exc)) from exc
            except _SetUpError as exc:
                message = str(exc)
                if not isinstance(exc, _ProcessError):
                    message = f'MountVolume.SetUp failed for volume "{exc.volume or name}" : {message}'
                failures.append(message)
                log.warning("pod %s/%s: %s", pod["metadata"].get("namespace"), pod["metadata"].get("name"), message)
                if self.recorder is not None:
                    self.recorder.event(pod, WARNING, FAILED_MOUNT, message)
        return failures

    async def _set_up(self, state: PodVolumes, volume: dict, kind: str | None, objects: _Objects) -> None:
        pod = state.pod
        name = volume["name"]
        if kind == "emptyDir":
            directory = self.paths.volume_dir(state.uid, EMPTY_DIR, name)
            empty_dir = volume["emptyDir"] or {}
            memory = empty_dir.get("medium") == "Memory"
            # Sized once, when mounted: a later sync must not depend on reading the node again.
            size = await self._tmpfs_size(pod, empty_dir) if memory and not mounts.is_mount_point(directory) else None
            await self._make_volume_dir(directory, memory=memory, size=size)
            await self._apply_fs_group(pod, directory, readonly=False)
            state.host_paths[name] = str(directory)
        elif kind == "hostPath":
            source = volume["hostPath"]
            try:
                await asyncio.to_thread(check_type, source.get("path", ""), source.get("type"))
            except HostPathError as exc:
                raise _SetUpError(str(exc)) from exc
            state.host_paths[name] = source.get("path", "")
        elif kind in PROJECTED_TYPES:
            directory = self.paths.volume_dir(state.uid, PROJECTED_TYPES[kind], name)
            payload = await self._payload(pod, volume, kind, objects)
            memory = self.secrets_in_memory and kind in ("secret", "projected")
            await self._make_volume_dir(directory, memory=memory, size=None, mode=0o755)
            try:
                AtomicWriter(directory, f"{pod['metadata'].get('name')}/{name}").write(payload)
            except PayloadError as exc:
                raise _SetUpError(str(exc)) from exc
            await self._apply_fs_group(pod, directory, readonly=True)
            state.host_paths[name] = str(directory)
            state.forced_readonly.add(name)
        else:
            raise _ProcessError(name, f'failed to get Plugin from volumeSpec for volume "{name}" err=no volume '
                                      "plugin matched")

    async def _payload(self, pod: dict, volume: dict, kind: str, objects: _Objects) -> dict[str, FileProjection]:
        source = volume[kind] or {}
        default_mode = source.get("defaultMode", DEFAULT_MODE)
        try:
            if kind == "configMap":
                optional = bool(source.get("optional"))
                found = await objects.get("configmaps", _namespace(pod), source.get("name", ""), optional)
                return configmap_payload(source.get("items"), found, default_mode, optional)
            if kind == "secret":
                optional = bool(source.get("optional"))
                found = await objects.get("secrets", _namespace(pod), source.get("secretName", ""), optional)
                return secret_payload(source.get("items"), found, default_mode, optional)
            if kind == "downwardAPI":
                items = source.get("items")
                payload, errors = downward_payload(items, pod, default_mode, await self._allocatable_for(items))
                if errors:
                    raise _SetUpError(aggregate(errors))
                return payload
            return await self._projected_payload(pod, source, default_mode, objects)
        except ItemsError as exc:
            raise _SetUpError(str(exc)) from exc

    async def _projected_payload(self, pod: dict, source: dict, default_mode: int,
                                 objects: _Objects) -> dict[str, FileProjection]:
        """All sources of a projected volume; every failing source is reported (upstream's aggregate)."""
        payload: dict[str, FileProjection] = {}
        errors: list[str] = []
        fs_group_set = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup") is not None
        for projection in source.get("sources") or []:
            try:
                if "configMap" in projection:
                    ref = projection["configMap"] or {}
                    optional = bool(ref.get("optional"))
                    found = await objects.get("configmaps", _namespace(pod), ref.get("name", ""), optional)
                    payload.update(configmap_payload(ref.get("items"), found, default_mode, optional))
                elif "secret" in projection:
                    ref = projection["secret"] or {}
                    optional = bool(ref.get("optional"))
                    found = await objects.get("secrets", _namespace(pod), ref.get("name", ""), optional)
                    payload.update(secret_payload(ref.get("items"), found, default_mode, optional))
                elif "downwardAPI" in projection:
                    items = (projection["downwardAPI"] or {}).get("items")
                    part, failed = downward_payload(items, pod, default_mode, await self._allocatable_for(items))
                    payload.update(part)
                    errors.extend(failed)
                elif "serviceAccountToken" in projection:
                    ref = projection["serviceAccountToken"] or {}
                    try:
                        token = await self.tokens.get(pod, ref.get("audience") or "",
                                                      int(ref.get("expirationSeconds") or 3600))
                    except (APIStatusError, APIConnectionError) as exc:
                        raise _SetUpError(f"failed to fetch token: {_api_message(exc)}") from exc
                    # With an fsGroup, ownership opens it to the group (0640); without, the volume's mode.
                    mode = 0o600 if fs_group_set else default_mode
                    payload[ref.get("path", "token")] = FileProjection(token.encode(), mode)
            except (_SetUpError, ItemsError, DownwardAPIError) as exc:
                errors.append(str(exc))
        if errors:
            raise _SetUpError(aggregate(errors))
        return payload

    async def _set_up_claim(self, state: PodVolumes, volume: dict) -> None:
        """A PVC bound to a hostPath or local PV: the PV's path is used in place."""
        pod = state.pod
        namespace = pod["metadata"].get("namespace", "")
        source = volume["persistentVolumeClaim"] or {}
        claim_name = source.get("claimName", "")

        def failed(reason: str) -> _SetUpError:
            return _ProcessError(volume["name"], f"error processing PVC {namespace}/{claim_name}: {reason}")

        try:
            claim = await self.client.get("persistentvolumeclaims", claim_name, namespace)
        except (APIStatusError, APIConnectionError) as exc:
            raise failed(f"failed to fetch PVC from API server: {_api_message(exc)}") from exc
        if claim["metadata"].get("deletionTimestamp"):
            raise failed("PVC is being deleted")
        if (claim.get("status") or {}).get("phase") != "Bound":
            raise failed("PVC is not bound")
        pv_name = (claim.get("spec") or {}).get("volumeName")
        if not pv_name:
            raise failed("PVC has empty pvc.Spec.VolumeName")
        try:
            pv = await self.client.get("persistentvolumes", pv_name)
        except (APIStatusError, APIConnectionError) as exc:
            raise failed(f"failed to fetch PV {pv_name} from API server: {_api_message(exc)}") from exc
        claim_ref = (pv.get("spec") or {}).get("claimRef")
        if claim_ref is None:
            raise failed(f"found PV object {pv_name} but it has a nil pv.Spec.ClaimRef indicating it is not yet "
                         "bound to the claim")
        if claim_ref.get("uid") != claim["metadata"].get("uid"):
            raise failed(f"found PV object {pv_name} but its pv.Spec.ClaimRef.UID ({claim_ref.get('uid')}) does not "
                         f"point to claim.UID ({claim['metadata'].get('uid')})")
        spec = pv.get("spec") or {}
        if spec.get("hostPath"):
            path = spec["hostPath"].get("path", "")
            try:
                await asyncio.to_thread(check_type, path, spec["hostPath"].get("type"))
            except HostPathError as exc:
                raise _SetUpError(str(exc), pv_name) from exc
        elif spec.get("local"):
            path = spec["local"].get("path", "")
            if not os.path.isdir(path):
                raise _SetUpError(f'path "{path}" does not exist', pv_name)
        else:
            raise _ProcessError(volume["name"], f'failed to get Plugin from volumeSpec for volume "{pv_name}" '
                                                "err=no volume plugin matched")
        state.host_paths[volume["name"]] = path
        if source.get("readOnly"):
            state.forced_readonly.add(volume["name"])

    async def _make_volume_dir(self, directory: Path, *, memory: bool, size: int | None, mode: int = 0o777) -> None:
        """The volume's directory (emptyDirs are world-writable: containers run as any user), on a tmpfs when
        memory-backed."""
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, mode)  # the umask applied at creation
        if memory and not mounts.is_mount_point(directory):
            await mounts.mount_tmpfs(directory, size)
            os.chmod(directory, mode)

    async def _tmpfs_size(self, pod: dict, empty_dir: Mapping) -> int | None:
        """Upstream's calculateEmptyDirMemorySize: node allocatable memory, lowered to the pod's memory limit
        and then to the volume's sizeLimit when those are smaller."""
        allocatable = (await self._node_allocatable()).get("memory")
        size = quantity.parse(allocatable).value if allocatable else None
        for candidate in (_pod_memory_limit(pod), quantity.parse(empty_dir["sizeLimit"]).value
                          if empty_dir.get("sizeLimit") else None):
            if candidate and candidate > 0 and (size is None or candidate <= size):
                size = candidate
        return int(size) if size else None

    async def _apply_fs_group(self, pod: dict, directory: Path, readonly: bool) -> None:
        context = (pod.get("spec") or {}).get("securityContext") or {}
        if context.get("fsGroup") is None:
            return
        await asyncio.to_thread(set_volume_ownership, str(directory), int(context["fsGroup"]), readonly,
                                context.get("fsGroupChangePolicy"))

    async def _allocatable_for(self, items: list[dict] | None) -> dict[str, str]:
        """Only resourceFieldRef items need the node (a container without a limit gets allocatable)."""
        if any(item.get("resourceFieldRef") for item in items or []):
            return await self._node_allocatable()
        return {}

    async def _node_allocatable(self) -> dict[str, str]:
        """The node's allocatable resources: limits for containers without one (downward API, tmpfs size)."""
        loop = asyncio.get_running_loop()
        if self._allocatable is None or loop.time() - self._allocatable_at > ALLOCATABLE_TTL:
            try:
                node = await self.client.get("nodes", self.node_name)
            except (APIStatusError, APIConnectionError) as exc:
                raise _SetUpError(f"failed to get node {self.node_name}: {_api_message(exc)}") from exc
            self._allocatable = dict((node.get("status") or {}).get("allocatable") or {})
            self._allocatable_at = loop.time()
        return self._allocatable


def _api_message(exc: Exception) -> str:
    """What Go's err.Error() shows for a client error: the Status message."""
    return exc.message if isinstance(exc, APIStatusError) and exc.message else str(exc)


def _namespace(pod: Mapping) -> str:
    return (pod.get("metadata") or {}).get("namespace", "")


def _volume_type(volume: Mapping) -> str | None:
    return next((key for key in ("emptyDir", "configMap", "secret", "downwardAPI", "projected", "hostPath",
                                 "persistentVolumeClaim") if key in volume), None)


def _pod_memory_limit(pod: Mapping) -> Fraction | None:
    """The pod cgroup's memory limit: the sum over containers when every container has one (an init
    container alone may need more)."""
    spec = pod.get("spec") or {}
    limits = [((c.get("resources") or {}).get("limits") or {}).get("memory") for c in spec.get("containers") or []]
    if not limits or any(limit is None for limit in limits):
        return None
    total = sum((quantity.parse(limit).value for limit in limits), Fraction(0))
    for init in spec.get("initContainers") or []:
        limit = ((init.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is None:
            return None
        total = max(total, quantity.parse(limit).value)
    return total
